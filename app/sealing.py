"""The HTTP side of payload encryption: media type, size, envelope, replay, sealed reply."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from flask import Response, g, request

from app.gateway import current_gateway
from errors import (
    InvalidRequest,
    PayloadTooLarge,
    ReplayedEnvelope,
    UnsupportedMediaType,
)
from security.encoding import b64url_encode
from security.envelope import open_envelope, seal_envelope
from security.tokens import CLOCK_MARGIN, Identity

JOSE_JSON = "application/jose+json"
PLAIN_JSON = "application/json"


@dataclass(frozen=True)
class ReplyKey:
    """The payload key a sealed request came with; its reply is sealed with the same one."""

    kid: str
    key: bytes


def accepted_media_types() -> tuple[str, ...]:
    optional = current_gateway().settings.payload_encryption == "optional"
    return (JOSE_JSON, PLAIN_JSON) if optional else (JOSE_JSON,)


def read_request(identity: Identity) -> tuple[dict[str, Any], ReplyKey | None]:
    """Check media type and size, open the envelope, refuse a replay; return the JSON request."""
    if request.mimetype not in accepted_media_types():
        raise UnsupportedMediaType(f"Send {' or '.join(accepted_media_types())}.")
    body = _read_body(current_gateway().settings.max_body_bytes)
    if request.mimetype == PLAIN_JSON:
        return _parse_json_object(body), None
    opened, reply_key = _open(identity, body)
    return _parse_json_object(opened), reply_key


def reply(body: dict[str, Any], reply_key: ReplyKey | None, status: int = 200) -> Response:
    text = json.dumps(body, separators=(",", ":")).encode()
    if reply_key is None:
        return Response(text, status=status, mimetype=PLAIN_JSON)
    sealed = seal_envelope(text, key=reply_key.key, kid=reply_key.kid)
    return Response(sealed, status=status, mimetype=JOSE_JSON)


def _read_body(limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes.")
    body = request.stream.read(limit + 1)  # a chunked body is read no further than the limit
    if len(body) > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes.")
    g.body_sha256 = hashlib.sha256(body).hexdigest()  # for the audit record, as received
    return body


def _open(identity: Identity, body: bytes) -> tuple[bytes, ReplyKey]:
    gateway = current_gateway()
    max_age = gateway.settings.envelope_max_age
    keys: dict[str, bytes] = {}

    def key_for(kid: str) -> bytes:
        keys[kid] = gateway.keyring.key_for(kid, identity.subject)
        return keys[kid]

    opened = open_envelope(body, key_for=key_for, now=time.time(), max_age=max_age)
    # An envelope is fresh for max_age either side of its iat: remember its IV that long, plus
    # a margin for nodes whose clocks disagree.
    seen_for = 2 * max_age + CLOCK_MARGIN
    if not gateway.store.claim_once(f"iv:{opened.kid}:{b64url_encode(opened.iv)}", seen_for):
        raise ReplayedEnvelope("This envelope was already received.")
    return opened.plaintext, ReplyKey(opened.kid, keys[opened.kid])


def _parse_json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest("The request is not valid JSON.") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("The request must be a JSON object.")
    return value
