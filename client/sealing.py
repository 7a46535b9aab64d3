"""The caller's payload key: seals requests, opens replies, with the gateway's own envelope code."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from client.errors import InvalidEnvelope
from errors import GatewayError
from security.encoding import b64url_decode
from security.envelope import KEY_BYTES, open_envelope, request_digest, seal_envelope

SEALED = "application/jose+json"


def request_plaintext(payload: dict[str, Any]) -> bytes:
    """The request plaintext the client sends: compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class PayloadKey:
    """A payload key as `flask keys issue` prints it: the id and the 256-bit key."""

    kid: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.kid or len(self.key) != KEY_BYTES:
            raise ValueError("a payload key needs a kid and exactly 32 bytes of key")

    @classmethod
    def from_text(cls, kid: str, key: str | bytes) -> PayloadKey:
        """From the base64url text of `keys issue` (padding optional), or from raw bytes."""
        raw = key if isinstance(key, bytes) else b64url_decode(key.strip(), allow_padding=True)
        return cls(kid, raw)

    def seal(self, payload: dict[str, Any] | bytes,
             clock: Callable[[], float] = time.time) -> bytes:
        """A fresh envelope (new random IV, iat now) around the JSON of `payload` (or around
        `payload` itself, already JSON bytes)."""
        plaintext = payload if isinstance(payload, bytes) else request_plaintext(payload)
        return seal_envelope(plaintext, key=self.key, kid=self.kid, now=clock())

    def open_plaintext(self, body: bytes, *, request: bytes, max_age: int,
                       clock: Callable[[], float] = time.time) -> bytes:
        """Authenticate and decrypt the sealed reply to `request` (the body as sent);
        InvalidEnvelope when it is not ours, not fresh, or answers another request."""
        try:
            opened = open_envelope(body, key_for=self._key_for, now=clock(), max_age=max_age,
                                   reply_to=request_digest(request))
        except GatewayError as exc:  # the envelope code's InvalidEnvelope / StaleEnvelope
            raise InvalidEnvelope("The reply envelope could not be opened.",
                                  slug="invalid-reply-envelope") from exc
        return opened.plaintext

    def open(self, body: bytes, *, request: bytes, max_age: int,
             clock: Callable[[], float] = time.time) -> dict[str, Any]:
        """The sealed reply to `request` as a JSON object (see open_plaintext)."""
        value = json.loads(self.open_plaintext(body, request=request, max_age=max_age,
                                               clock=clock))
        if not isinstance(value, dict):
            raise InvalidEnvelope("The reply is not a JSON object.", slug="invalid-reply-envelope")
        return value

    def _key_for(self, kid: str) -> bytes:
        if kid != self.kid:
            raise InvalidEnvelope("The reply is sealed with another key.",
                                  slug="invalid-reply-envelope")
        return self.key
