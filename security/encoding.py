"""base64url (RFC 7515 §2): the one encoding of every key and JOSE member, decoded strictly."""

from __future__ import annotations

import base64
import binascii

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_INDEX = {char: n for n, char in enumerate(_ALPHABET)}
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/***")  # "+", "/", "=" become invalid


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes, *, allow_padding: bool = False) -> bytes:
    """Decode base64url: alphabet only, canonical final character; ValueError otherwise.

    JOSE members never carry padding; configured keys may (allow_padding=True).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError("not base64url") from exc
    if allow_padding:
        text = text.removesuffix("==").removesuffix("=")
    tail = len(text) % 4
    if not text.isascii() or tail == 1:
        raise ValueError("not base64url")
    if tail and _INDEX.get(text[-1], 1) & (0x0F if tail == 2 else 0x03):
        raise ValueError("not base64url")  # stray bits after the last byte: not canonical
    raw = text.encode("ascii").translate(_TO_STANDARD)
    try:
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4), strict_mode=True)
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc
