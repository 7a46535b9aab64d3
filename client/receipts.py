"""Receipt checking in the client: every reply's receipt verified against the gateway's signing
keys (fetched once and pinned, or given), then held to the call the client actually made."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from client.errors import InvalidReceipt
from security.receipts import (
    ReceiptClaims,
    ReceiptError,
    UnknownReceiptKey,
    sha256_hex,
    split_reply,
    verify_receipt,
)

Jwks = Mapping[str, Any]


@dataclass(frozen=True)
class SentCall:
    """What the client sent: the model it named, the request plaintext and the body as sent."""

    model: str
    plaintext: bytes
    body: bytes


class ReceiptChecker:
    """Checks receipts with pinned keys: `jwks` as given, or fetched on first use. A receipt
    naming a kid the pinned set lacks refetches once (the gateway rotated), then pins that."""

    def __init__(self, fetch: Callable[[], Jwks] | None, jwks: Jwks | None = None):
        if fetch is None and jwks is None:
            raise ValueError("give the gateway's receipt keys, or a way to fetch them")
        self._fetch = fetch if jwks is None else None
        self._jwks = jwks

    def check(self, plaintext: bytes, at: Sequence[str], sent: SentCall) -> ReceiptClaims:
        """The receipt's claims once it verifies and describes `sent` and this reply."""
        try:
            receipt, covered = split_reply(plaintext, at)
            claims = self._verified(receipt)
        except ReceiptError as exc:
            raise InvalidReceipt(str(exc), slug="invalid-receipt") from exc
        wrong = describes(claims, covered, sent)
        if wrong:
            raise InvalidReceipt(f"the receipt does not describe this call: {', '.join(wrong)}",
                                 slug="invalid-receipt")
        return claims

    def _verified(self, receipt: str) -> ReceiptClaims:
        fetched_now = self._jwks is None
        if self._jwks is None and self._fetch is not None:
            self._jwks = self._fetch()
        try:
            return verify_receipt(receipt, self._jwks or {})
        except UnknownReceiptKey:
            if fetched_now or self._fetch is None:
                raise
        self._jwks = self._fetch()
        return verify_receipt(receipt, self._jwks)


def describes(claims: ReceiptClaims, covered: bytes, sent: SentCall) -> list[str]:
    """The claims that do not match the call as the client made and received it."""
    checks = {
        "reply_sha256": claims.reply_sha256 == sha256_hex(covered),
        "request_sha256": claims.request_sha256 == sha256_hex(sent.plaintext),
        "body_sha256": claims.body_sha256 == sha256_hex(sent.body),
        "model": claims.model == sent.model,
    }
    return [name for name, holds in checks.items() if not holds]
