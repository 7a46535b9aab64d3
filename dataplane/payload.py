"""The request body of a model call: media type, size, JWE envelope in; sealed reply out."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from errors import (
    InvalidEnvelope,
    InvalidRequest,
    KeyNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from security.envelope import (
    ParsedEnvelope,
    open_parsed,
    parse_envelope,
    request_digest,
    seal_envelope,
)
from security.envelope_hpke import is_hpke, open_hpke
from security.gateway_key_algs import ENC
from security.gateway_keys import GatewayKeyStore
from security.keys import PayloadKeyring
from security.tokens import CLOCK_MARGIN

JOSE_JSON = "application/jose+json"
PLAIN_JSON = "application/json"
DIR_MODE, HPKE_MODE = "dir", "hpke"
ENVELOPE_MODES = (DIR_MODE, HPKE_MODE)


@dataclass(frozen=True, slots=True)
class Body:
    """An HTTP body not read yet: its declared type and length, and how to read it."""

    media_type: str
    content_length: int | None
    read: Callable[[int], bytes]  # read(n): at most n bytes


@dataclass(frozen=True, slots=True)
class Opened:
    """A request body read and opened: the plaintext, and for a sealed one its key and the
    store key that claims it (replay refusal)."""

    plaintext: bytes
    sha256: str
    kid: str | None = None
    key: bytes | None = None  # the payload key, or the key exported from the HPKE context
    claim_key: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends the body: the token's subject and `ath`, the binding of its bearer token."""

    subject: str
    token_binding: str


@dataclass(frozen=True)
class EnvelopeKeys:
    """The keys envelopes are opened with: issued payload keys and the gateway's HPKE keys."""

    keyring: PayloadKeyring
    gateway_keys: GatewayKeyStore


def parse_envelope_modes(value: str) -> frozenset[str]:
    """ENVELOPE_MODES: a comma-separated, non-empty subset of dir and hpke; ValueError if not."""
    modes = frozenset(part.strip() for part in value.split(",") if part.strip())
    if not modes or not modes <= set(ENVELOPE_MODES):
        raise ValueError(f"expected a comma-separated list of {' and '.join(ENVELOPE_MODES)}")
    return modes


@dataclass(frozen=True, slots=True)
class PayloadPolicy:
    """The deployment's payload settings, read once from Settings."""

    media_types: tuple[str, ...]
    max_body_bytes: int
    envelope_max_age: int
    envelope_modes: frozenset[str] = frozenset(ENVELOPE_MODES)

    @property
    def claim_ttl(self) -> int:
        """How long an envelope's IV is remembered: it is fresh for max_age either side of
        its iat, plus a margin for nodes whose clocks disagree."""
        return 2 * self.envelope_max_age + CLOCK_MARGIN


def read_body(body: Body, policy: PayloadPolicy) -> bytes:
    """The whole body, or 415 for a type not accepted and 413 past the size limit."""
    if body.media_type not in policy.media_types:
        raise UnsupportedMediaType(f"Send {' or '.join(policy.media_types)}.")
    limit = policy.max_body_bytes
    if body.content_length is not None and body.content_length > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes.")
    data = body.read(limit + 1)  # a chunked body is read no further than the limit
    if len(data) > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes.")
    return data


def open_body(data: bytes, media_type: str, caller: Caller, keys: EnvelopeKeys,
              policy: PayloadPolicy) -> Opened:
    """Plain JSON as it is; a JWE opened with a payload key of the caller's (dir) or the
    gateway's private key (hpke), in a mode the deployment accepts (400/403 if not)."""
    digest = request_digest(data)
    if media_type == PLAIN_JSON:
        return Opened(plaintext=data, sha256=digest)
    parsed = parse_envelope(data)
    mode = HPKE_MODE if is_hpke(parsed) else DIR_MODE
    if mode not in policy.envelope_modes:
        raise InvalidEnvelope()
    if mode == HPKE_MODE:
        return _open_hpke(parsed, digest, caller, keys.gateway_keys, policy)
    found: dict[str, bytes] = {}

    def key_for(kid: str) -> bytes:
        found[kid] = keys.keyring.key_for(kid, caller.subject)
        return found[kid]

    opened = open_parsed(parsed, key_for=key_for, now=time.time(),
                         max_age=policy.envelope_max_age)
    return Opened(plaintext=opened.plaintext, sha256=digest, kid=opened.kid,
                  key=found[opened.kid], claim_key=f"iv:{opened.kid}:{opened.iv.hex()}")


def _open_hpke(parsed: ParsedEnvelope, digest: str, caller: Caller, gateway_keys: GatewayKeyStore,
               policy: PayloadPolicy) -> Opened:
    """An HPKE request; its replay key is (kid, ek), the encapsulated key being fresh per
    request (hashed: an X-Wing ek is 1,120 bytes)."""
    def private_key_for(kid: str, alg: str):
        key = gateway_keys.by_kid(kid)
        if key is None or key.use != ENC:
            raise KeyNotAllowed()
        if key.alg != alg:
            raise InvalidEnvelope()
        return key.private

    opened = open_hpke(parsed, private_key_for=private_key_for, ath=caller.token_binding,
                       now=time.time(), max_age=policy.envelope_max_age)
    ek_digest = hashlib.sha256(opened.ek).hexdigest()
    return Opened(plaintext=opened.plaintext, sha256=digest, kid=opened.kid,
                  key=opened.reply_key, claim_key=f"ek:{opened.kid}:{ek_digest}")


def parse_object(plaintext: bytes) -> dict[str, Any]:
    """The plaintext as a JSON object, or 400 invalid-request."""
    try:
        value = json.loads(plaintext)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest("The request is not valid JSON.") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("The request must be a JSON object.")
    return value


def seal_reply(text: bytes, opened: Opened) -> tuple[bytes, str]:
    """(bytes, media type) of the reply plaintext `text`: sealed with the request's key, or
    plain JSON."""
    if opened.key is None:
        return text, PLAIN_JSON
    return seal_envelope(text, key=opened.key, kid=opened.kid, reply_to=opened.sha256), JOSE_JSON
