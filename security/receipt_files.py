"""A saved receipt, checked offline: the bare compact JWS, or the whole reply plaintext that
carries it (then the reply's digest is checked too). Both CLIs read receipts through here."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from security.receipts import (
    RECEIPT_AT,
    ReceiptClaims,
    ReceiptError,
    sha256_hex,
    split_reply,
    verify_receipt,
)

RECEIPT_PLACES = (RECEIPT_AT, ("parameters", "receipt"))  # /predict, then /v2 (OIP)


@dataclass(frozen=True)
class SavedReceipt:
    """A receipt as read from a file, with the reply bytes it covers when the file held them."""

    receipt: str
    reply: bytes | None = None  # the bytes reply_sha256 must match


def parse_saved(data: bytes) -> SavedReceipt:
    """A compact JWS (surrounding whitespace ignored) or a reply plaintext carrying one."""
    text = data.strip()
    if not text.startswith(b"{"):
        try:
            return SavedReceipt(text.decode("ascii"))
        except UnicodeDecodeError as exc:
            raise ReceiptError("the file holds neither a receipt nor a reply") from exc
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ReceiptError("the file is not a JSON reply") from exc
    for at in RECEIPT_PLACES:
        if _holds(value, at):
            receipt, reply = split_reply(text, at)
            return SavedReceipt(receipt, reply)
    raise ReceiptError("the reply carries no receipt (receipt or parameters.receipt)")


def _holds(value: Any, at: Sequence[str]) -> bool:
    for name in at:
        if not isinstance(value, dict) or name not in value:
            return False
        value = value[name]
    return True


def check_saved(saved: SavedReceipt, jwks: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                request: bytes | None = None) -> ReceiptClaims:
    """The claims, once the signature verifies and every digest that can be checked matches."""
    claims = verify_receipt(saved.receipt, jwks)
    if saved.reply is not None and sha256_hex(saved.reply) != claims.reply_sha256:
        raise ReceiptError("the reply is not the one the receipt was signed for")
    if request is not None and sha256_hex(request) != claims.request_sha256:
        raise ReceiptError("the request is not the one the receipt was signed for")
    return claims


def read_jwks_file(path: Path) -> dict[str, Any]:
    """A JWKS file as JSON ({"keys": [...]}); ReceiptError when it cannot be read as one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReceiptError(f"cannot read a JWKS from {path}") from exc
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise ReceiptError(f'{path} is not a JWKS ({{"keys": [...]}})')
    return value
