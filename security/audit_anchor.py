"""Signed chain-head anchors: where each audit chain had reached, kept outside the audit database.

The chain links (security.audit) make an edited or removed record detectable, but not the removal
of a whole chain, newest first, or of every row: what is gone leaves no link behind. An anchor
says "chain C had reached seq S with hash H at time T", signed with an Ed25519 key derived from
MASTER_KEY (its own HKDF label, not the audit key): nobody without MASTER_KEY can make one, and an
exported archive can be checked with the public key alone. Each writer publishes its head to the
shared store at chain start and at most every AUDIT_ANCHOR_INTERVAL seconds; `audit verify` checks
the database against them, and against archives written by `audit export`. docs/audit.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from errors import ServiceUnavailable
from security.audit import ChainHead, utc_now
from security.encoding import b64url_decode, b64url_encode

ANCHOR_KEY_INFO = b"torchgate:audit-anchor:v1"
ANCHOR_FIELDS = ("chain_id", "seq", "record_hash", "time", "key_id")
log = logging.getLogger(__name__)


class AnchorInvalid(ValueError):
    """Not an anchor signed by this MASTER_KEY's anchor key (malformed, or edited)."""


class AnchorForeign(AnchorInvalid):
    """A well-formed anchor that names another anchor key (another deployment's)."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """One signed chain head: chain_id had reached seq, whose record hashes to record_hash."""

    chain_id: str
    seq: int
    record_hash: str
    time: str
    key_id: str
    signature: str

    def order(self) -> tuple[str, str, int]:
        """Sort key: oldest first, so the first break reported is the oldest one."""
        return self.time, self.chain_id, self.seq

    def to_line(self) -> str:
        """The anchor as one canonical JSON line (the store's value, the archive's line)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class AnchorKey:
    """The anchor signing key pair, derived from MASTER_KEY."""

    private: Ed25519PrivateKey
    public: Ed25519PublicKey
    key_id: str

    @property
    def public_raw(self) -> str:
        return b64url_encode(self.public.public_bytes(Encoding.Raw, PublicFormat.Raw))


def anchor_key(master_key: bytes) -> AnchorKey:
    """HKDF(MASTER_KEY, its own label) as an Ed25519 seed; its key id names the public key."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=ANCHOR_KEY_INFO).derive(master_key)
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return AnchorKey(private, public, hashlib.sha256(raw).hexdigest()[:16])


def _signed_bytes(values: dict) -> bytes:
    body = {name: values[name] for name in ANCHOR_FIELDS}
    return ANCHOR_KEY_INFO + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign_anchor(key: AnchorKey, head: ChainHead) -> Anchor:
    values = {"chain_id": head.chain_id, "seq": head.seq, "record_hash": head.record_hash,
              "time": utc_now(), "key_id": key.key_id}
    signature = b64url_encode(key.private.sign(_signed_bytes(values)))
    return Anchor(**values, signature=signature)


def read_anchor(values: object, *keys: AnchorKey) -> Anchor:
    """The anchor of one decoded JSON value, signed by one of keys (the current MASTER_KEY's,
    then earlier ones'); AnchorInvalid if not, AnchorForeign if it names none of them."""
    if not isinstance(values, dict) or set(values) != {*ANCHOR_FIELDS, "signature"}:
        raise AnchorInvalid("not an anchor")
    anchor = Anchor(**values)
    texts = (anchor.chain_id, anchor.record_hash, anchor.time, anchor.key_id, anchor.signature)
    if not (type(anchor.seq) is int and anchor.seq >= 0 and all(isinstance(t, str) for t in texts)):
        raise AnchorInvalid("not an anchor")
    key = next((key for key in keys if hmac.compare_digest(anchor.key_id, key.key_id)), None)
    if key is None:
        raise AnchorForeign("an anchor of another key")
    try:
        key.public.verify(b64url_decode(anchor.signature), _signed_bytes(values))
    except (ValueError, InvalidSignature) as exc:
        raise AnchorInvalid("an anchor whose signature does not match") from exc
    return anchor


def read_anchors(lines: Iterable[str], *keys: AnchorKey, skip_foreign: bool) -> list[Anchor]:
    """Every anchor of JSON lines (the store's, an archive's); AnchorInvalid naming the first
    line that is not an anchor of keys (another key's are skipped when skip_foreign)."""
    anchors = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            anchors.append(read_anchor(json.loads(line), *keys))
        except AnchorForeign:
            if not skip_foreign:
                raise AnchorInvalid(f"line {number}: an anchor of another key") from None
        except (AnchorInvalid, ValueError, TypeError) as exc:
            raise AnchorInvalid(f"line {number}: not a validly signed anchor") from exc
    return anchors


class AnchorPublisher:
    """Publishes this process's chain head after a commit: when its chain is new, then at most
    every `interval` seconds (0: after every commit). A failed publish never fails the request
    (its records are committed); the next commit tries again."""

    def __init__(self, put: Callable[[str, int, str], None], key: AnchorKey, interval: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._put, self._key, self._interval, self._clock = put, key, interval, clock
        self._lock = threading.Lock()
        self._chain: str | None = None
        self._due_at = 0.0

    def after_commit(self, head: ChainHead) -> None:
        now = self._clock()
        with self._lock:
            if head.chain_id == self._chain and now < self._due_at:
                return
            self._chain, self._due_at = head.chain_id, now + self._interval
        anchor = sign_anchor(self._key, head)
        try:
            self._put(anchor.chain_id, anchor.seq, anchor.to_line())
        except ServiceUnavailable:
            with self._lock:
                self._due_at = 0.0  # retry with the next commit
            log.warning("audit anchor not published for chain %s", head.chain_id)
