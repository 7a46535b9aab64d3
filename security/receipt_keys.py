"""Where receipt signing keys come from: the ReceiptKeys seam, and the gateway's key-pair store.

StoredReceiptKeys signs with the newest active `sig` key of RECEIPT_ALGORITHM in the store
(security.gateway_keys: seeds wrapped by MASTER_KEY, rotated by `gateway-keys rotate --use sig`)
and publishes every usable `sig` key, so every worker and node signs and verifies alike.
"""

from __future__ import annotations

from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from errors import ServiceUnavailable
from security.gateway_key_algs import SIG
from security.gateway_keys import GatewayKey, GatewayKeyStore
from security.receipt_algorithms import EDDSA, SigningKey


class ReceiptKeys(Protocol):
    """What signing and publishing receipts needs from a key source."""

    def current(self) -> SigningKey:
        """The key new receipts are signed with."""
        ...

    def public_jwks(self) -> list[dict[str, Any]]:
        """Every public key a receipt may still name (`use: "sig"`, with kid and alg)."""
        ...


class StoredReceiptKeys:
    """The store's `sig` keys of one algorithm, as receipt signing keys."""

    def __init__(self, store: GatewayKeyStore, alg: str) -> None:
        self._store = store
        self._alg = alg
        self._signing: dict[str, SigningKey] = {}  # by kid: converted once per worker

    def current(self) -> SigningKey:
        key = self._store.current(SIG, self._alg)
        if key is None:  # start-up makes one; only a key deleted from the database gets here
            raise ServiceUnavailable(f"No {self._alg} receipt signing key: run `flask --app "
                                     f"wsgi gateway-keys generate --use sig --alg {self._alg}`.")
        signing = self._signing.get(key.kid)
        if signing is None:
            signing = self._signing[key.kid] = _signing_key(key)
        return signing

    def public_jwks(self) -> list[dict[str, Any]]:
        return [jwk for jwk in self._store.public_jwks()["keys"] if jwk["use"] == SIG]


def _signing_key(key: GatewayKey) -> SigningKey:
    """EdDSA signs through PyJWT on a cryptography key (about 5x faster than pycryptodome's,
    security.receipt_algorithms), made from the same 32-byte seed; ML-DSA-65 keys are
    pycryptodome's in both places."""
    if key.alg == EDDSA:
        return SigningKey(key.kid, key.alg, Ed25519PrivateKey.from_private_bytes(key.private.seed))
    return SigningKey(key.kid, key.alg, key.private)
