"""Payload keys: 256-bit, issued per subject, stored wrapped by MASTER_KEY, revocable, expiring."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from errors import InvalidRequest, KeyNotAllowed
from security import aead
from security.encoding import b64url_encode
from security.schema import metadata

log = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
WRAP_CONTEXT = b"torchgate:payload-key:v1:"
SECONDS_PER_DAY = 86_400

payload_keys = sa.Table(
    "payload_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(255), nullable=False, index=True),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),  # nonce || ciphertext || tag
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Integer, nullable=True),
    sa.Column("revoked_at", sa.Integer, nullable=True),
)


def isoformat_utc(epoch: int | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC with a "Z" (the CLI's and API's one time format)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class IssuedKey:
    """A freshly issued key; the only moment its bytes leave the keyring."""

    kid: str
    key: bytes = field(repr=False)
    subject: str
    expires_at: int | None

    def to_json(self) -> dict:
        return {"kid": self.kid, "key": b64url_encode(self.key), "subject": self.subject,
                "expires_at": isoformat_utc(self.expires_at)}


@dataclass(frozen=True)
class KeyRecord:
    """What `keys list` shows of a key: never the key itself."""

    kid: str
    subject: str
    created_at: int
    expires_at: int | None
    revoked: bool

    def to_json(self) -> dict:
        return {"kid": self.kid, "subject": self.subject,
                "created_at": isoformat_utc(self.created_at),
                "expires_at": isoformat_utc(self.expires_at), "revoked": self.revoked}


@dataclass(frozen=True)
class _CachedKey:
    """An unwrapped active key as one worker remembers it, with when it was read."""

    key: bytes = field(repr=False)
    subject: str
    expires_at: int | None
    fetched_at: float


class PayloadKeyring:
    """Issues, lists, revokes and resolves payload keys stored in the `payload_keys` table."""

    def __init__(self, engine: sa.Engine, master_key: bytes, *, cache_ttl: float = 10.0,
                 clock: Callable[[], float] = time.time,
                 previous_master_keys: Sequence[bytes] = ()) -> None:
        self._masters = (master_key, *previous_master_keys)
        if any(len(key) != KEY_BYTES for key in self._masters):
            raise ValueError("MASTER_KEY must be 32 bytes")
        self._engine = engine
        self._master_key = master_key
        self._cache_ttl = cache_ttl
        self._clock = clock
        # Positive results only, so unknown kids cannot grow it; plain dict ops are atomic.
        self._cache: dict[str, _CachedKey] = {}

    def issue(self, subject: str, ttl_days: int | None = None) -> IssuedKey:
        """Create a random key for `subject`, store it wrapped, and return it once."""
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise InvalidRequest("subject must be 1 to 255 characters")
        if ttl_days is not None and (type(ttl_days) is not int or ttl_days < 1):
            raise InvalidRequest("ttl_days must be a positive whole number")
        now = int(self._clock())
        kid = "pk_" + secrets.token_urlsafe(12)
        key = secrets.token_bytes(KEY_BYTES)
        expires_at = None if ttl_days is None else now + ttl_days * SECONDS_PER_DAY
        with self._engine.begin() as conn:
            conn.execute(payload_keys.insert().values(
                kid=kid, subject=subject, wrapped=wrap_key(self._master_key, key, kid, subject),
                created_at=now, expires_at=expires_at, revoked_at=None))
        return IssuedKey(kid=kid, key=key, subject=subject, expires_at=expires_at)

    def revoke(self, kid: str) -> bool:
        """Mark `kid` revoked (keeping the first revocation time); False when unknown."""
        table = payload_keys
        with self._engine.begin() as conn:
            updated = conn.execute(
                table.update().where(table.c.kid == kid, table.c.revoked_at.is_(None))
                .values(revoked_at=int(self._clock()))).rowcount
            known = bool(updated) or conn.execute(
                sa.select(table.c.kid).where(table.c.kid == kid)).first() is not None
        # After the commit, so a concurrent lookup in this process cannot re-cache the key.
        self._cache.pop(kid, None)
        return known

    def revoke_subject(self, subject: str) -> list[str]:
        """Revoke every active key of `subject`; the kids revoked now."""
        table = payload_keys
        with self._engine.begin() as conn:
            kids = [row.kid for row in conn.execute(sa.select(table.c.kid).where(
                table.c.subject == subject, table.c.revoked_at.is_(None)))]
            if kids:
                conn.execute(table.update().where(table.c.kid.in_(kids))
                             .values(revoked_at=int(self._clock())))
        for kid in kids:
            self._cache.pop(kid, None)
        return kids

    def key_for(self, kid: str, subject: str) -> bytes:
        """The key `kid` if it is active and `subject`'s; else KeyNotAllowed, whatever the cause."""
        now = self._clock()
        cached = self._cache.get(kid)
        if cached is None or not 0 <= now - cached.fetched_at < self._cache_ttl:
            cached = self._load(kid, now)
        if cached.subject != subject or (
                cached.expires_at is not None and now >= cached.expires_at):
            raise KeyNotAllowed()
        return cached.key

    def list(self, subject: str | None = None) -> list[KeyRecord]:
        """Every key (of `subject`, when given), oldest first, without key material."""
        table = payload_keys
        query = sa.select(table.c.kid, table.c.subject, table.c.created_at, table.c.expires_at,
                          table.c.revoked_at).order_by(table.c.created_at, table.c.kid)
        if subject is not None:
            query = query.where(table.c.subject == subject)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [KeyRecord(kid=row.kid, subject=row.subject, created_at=row.created_at,
                          expires_at=row.expires_at, revoked=row.revoked_at is not None)
                for row in rows]

    def _load(self, kid: str, now: float) -> _CachedKey:
        """Read and unwrap a non-revoked key, refreshing this worker's cache entry."""
        self._cache.pop(kid, None)
        table = payload_keys
        query = sa.select(table.c.subject, table.c.wrapped, table.c.expires_at).where(
            table.c.kid == kid, table.c.revoked_at.is_(None))
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise KeyNotAllowed()
        try:
            key = unwrap_with_any(self._masters, bytes(row.wrapped), kid, row.subject)
        except ValueError:
            log.warning("payload key %s could not be unwrapped; is MASTER_KEY the one it was "
                        "issued under?", kid)
            raise KeyNotAllowed() from None
        cached = _CachedKey(key=key, subject=row.subject, expires_at=row.expires_at,
                            fetched_at=now)
        self._cache[kid] = cached
        return cached


def wrap_secret(master_key: bytes, secret: bytes, context: bytes) -> bytes:
    """`secret` sealed by MASTER_KEY for storage, bound to `context`: nonce || ciphertext || tag."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext, tag = aead.seal(master_key, nonce, secret, context)
    return nonce + ciphertext + tag


def unwrap_secret(master_key: bytes, wrapped: bytes, context: bytes, length: int) -> bytes:
    """Inverse of wrap_secret; ValueError when the key, context or length do not match."""
    if len(wrapped) != NONCE_BYTES + length + TAG_BYTES:
        raise ValueError("wrapped secret has the wrong length")
    nonce, ciphertext, tag = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:-TAG_BYTES], \
        wrapped[-TAG_BYTES:]
    return aead.open_(master_key, nonce, ciphertext, tag, context)


def unwrap_secret_with_any(master_keys: Sequence[bytes], wrapped: bytes, context: bytes,
                           length: int) -> bytes:
    """The secret unwrapped by the first master key that opens it; ValueError when none does.

    During a rotation the previous master keys open what `keys rewrap` has not reached."""
    for master_key in master_keys[:-1]:
        try:
            return unwrap_secret(master_key, wrapped, context, length)
        except ValueError:
            continue
    return unwrap_secret(master_keys[-1], wrapped, context, length)


def wrap_key(master_key: bytes, key: bytes, kid: str, subject: str) -> bytes:
    """A payload key under a master key, bound to its kid and subject."""
    return wrap_secret(master_key, key, payload_key_context(kid, subject))


def unwrap_key(master_key: bytes, wrapped: bytes, kid: str, subject: str) -> bytes:
    """Inverse of wrap_key; ValueError when the master key, kid or subject do not match."""
    return unwrap_secret(master_key, wrapped, payload_key_context(kid, subject), KEY_BYTES)


def unwrap_with_any(master_keys: Sequence[bytes], wrapped: bytes, kid: str,
                    subject: str) -> bytes:
    """A payload key unwrapped by the first of master_keys that opens it."""
    return unwrap_secret_with_any(master_keys, wrapped, payload_key_context(kid, subject),
                                  KEY_BYTES)


def payload_key_context(kid: str, subject: str) -> bytes:
    """AAD binding a wrapped key to its kid and subject, so rows cannot be swapped."""
    return WRAP_CONTEXT + kid.encode("utf-8") + b":" + subject.encode("utf-8")
