"""Where receipt signing keys come from: the ReceiptKeys seam, and a branch-local source.

The gateway's key-pair store (kid, use, alg, wrapped private key; `GET /.well-known/jwks.json`)
implements ReceiptKeys in production. EphemeralReceiptKeys is the stand-in until then: one key
generated when the app is built, lost when the process ends, so a receipt verifies only against
the JWKS of the process that signed it (every worker of a preloaded gunicorn shares it).
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

from security.receipt_algorithms import SigningKey, generate_signing_key


class ReceiptKeys(Protocol):
    """What signing and publishing receipts needs from a key source."""

    def current(self) -> SigningKey:
        """The key new receipts are signed with."""
        ...

    def public_jwks(self) -> list[dict[str, Any]]:
        """Every public key a receipt may still name (`use: "sig"`, with kid and alg)."""
        ...


class EphemeralReceiptKeys:
    """One signing key, generated at construction and kept in memory only."""

    def __init__(self, alg: str) -> None:
        self._key = generate_signing_key(alg, f"receipt-{secrets.token_hex(8)}")

    def current(self) -> SigningKey:
        return self._key

    def public_jwks(self) -> list[dict[str, Any]]:
        return [self._key.public_jwk()]
