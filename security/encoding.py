"""base64url without padding (RFC 7515 §2), the one encoding of every key and JOSE member."""

from __future__ import annotations

import base64
import binascii


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """Decode base64url with or without padding; anything else raises ValueError."""
    if isinstance(text, str):
        try:
            text = text.encode("ascii")
        except UnicodeEncodeError as exc:
            raise ValueError("not base64url") from exc
    if b"+" in text or b"/" in text:
        raise ValueError("not base64url")
    text = text.rstrip(b"=")
    try:
        return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
