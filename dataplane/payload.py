"""The request body of a model call: media type, size, JWE envelope in; sealed reply out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from security.envelope import open_envelope, request_digest, seal_envelope
from security.keys import PayloadKeyring
from security.tokens import CLOCK_MARGIN

JOSE_JSON = "application/jose+json"
PLAIN_JSON = "application/json"


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
    key: bytes | None = None
    claim_key: str | None = None


@dataclass(frozen=True, slots=True)
class PayloadPolicy:
    """The deployment's payload settings, read once from Settings."""

    media_types: tuple[str, ...]
    max_body_bytes: int
    envelope_max_age: int

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


def open_body(data: bytes, media_type: str, subject: str, keyring: PayloadKeyring,
              policy: PayloadPolicy) -> Opened:
    """Plain JSON as it is; a JWE opened with a payload key of `subject` (400/403 if not)."""
    digest = request_digest(data)
    if media_type == PLAIN_JSON:
        return Opened(plaintext=data, sha256=digest)
    found: dict[str, bytes] = {}

    def key_for(kid: str) -> bytes:
        found[kid] = keyring.key_for(kid, subject)
        return found[kid]

    opened = open_envelope(data, key_for=key_for, now=time.time(),
                           max_age=policy.envelope_max_age)
    return Opened(plaintext=opened.plaintext, sha256=digest, kid=opened.kid,
                  key=found[opened.kid], claim_key=f"iv:{opened.kid}:{opened.iv.hex()}")


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
