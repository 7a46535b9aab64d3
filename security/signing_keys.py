"""The gateway's own JWT keys: the current signing key and a previous one kept for a window.

Every token the gateway issues names its key in the header `kid`, so a verifier can pick the key
without trying each. A previous key (JWT_PREVIOUS_SECRET, JWT_PREVIOUS_PUBLIC_KEY) verifies only
until JWT_PREVIOUS_KEYS_UNTIL, an absolute time, so every node retires it at the same moment
however often it restarts. docs/operations.md §4 walks through a rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import get_default_algorithms

from security.encoding import b64url_encode

HMAC_KID_LABEL = b"torchgate:jwt-kid:v1"
# RFC 7638 §3.2: the members a thumbprint covers, per key type.
THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"),
                      "OKP": ("crv", "kty", "x")}


@dataclass(frozen=True)
class SigningKey:
    """One key that verifies the gateway's tokens: its kid, its one algorithm, and until when."""

    kid: str
    algorithm: str
    key: Any = field(repr=False)  # the HS256 secret, or a public key object
    until: float = math.inf  # epoch seconds; inf for the current key

    def retired(self, now: float) -> bool:
        return now >= self.until


def secret_kid(secret: str) -> str:
    """The kid of an HS256 secret: a keyed digest, so it tells nothing a token does not."""
    digest = hmac.new(secret.encode(), HMAC_KID_LABEL, hashlib.sha256).digest()
    return "hs-" + b64url_encode(digest[:12])


def public_key_kid(public_key: Any) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key."""
    jwk = json.loads(get_default_algorithms()[algorithm_of(public_key)].to_jwk(public_key))
    members = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


def algorithm_of(public_key: Any) -> str:
    """The one JWS algorithm the gateway uses with this kind of key; ValueError for others."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(public_key, ec.EllipticCurvePublicKey) \
            and isinstance(public_key.curve, ec.SECP256R1):
        return "ES256"
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "EdDSA"
    raise ValueError("not an RSA, P-256 or Ed25519/Ed448 public key")


def load_public_key(pem: str) -> Any:
    """A PEM public key; ValueError when it is none."""
    return load_pem_public_key(pem.encode())


def current_key(algorithm: str, key: Any) -> SigningKey:
    """The key tokens are signed with now: the HS256 secret or the public half of the pair."""
    kid = secret_kid(key) if algorithm == "HS256" else public_key_kid(key)
    return SigningKey(kid=kid, algorithm=algorithm, key=key)


def parse_until(text: str) -> float:
    """An ISO-8601 time with its UTC offset ("2026-12-01T12:00:00Z") as epoch seconds."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-12-01T12:00:00Z")
    return moment.timestamp()


class SigningKeyring:
    """The current key and the previous ones, found by kid; a token without one is the
    current key's (tokens issued before kids existed)."""

    def __init__(self, current: SigningKey, previous: Iterable[SigningKey] = ()) -> None:
        self.current = current
        self._by_kid = {key.kid: key for key in previous}
        self._by_kid[current.kid] = current

    def previous(self) -> list[SigningKey]:
        return [key for key in self._by_kid.values() if key is not self.current]

    def find(self, kid: str | None) -> SigningKey | None:
        """The key named by `kid` (None: the current key), or None when it is not ours."""
        return self.current if kid is None else self._by_kid.get(kid)
