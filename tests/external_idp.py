"""A fake external identity provider: signing keys generated in the test, their public JWKS."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example/realms/torchgate"
AUDIENCE = "torchgate"
JWK_WRITERS = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}


def generate_private_key(algorithm: str, rsa_bits: int = 2048) -> Any:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


@dataclass(frozen=True)
class SigningKey:
    """One of the identity provider's signing keys."""

    kid: str
    algorithm: str
    private: Any = field(repr=False)

    def public_jwk(self, **members: str) -> dict:
        jwk = JWK_WRITERS[self.algorithm].to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, **members}

    def private_jwk(self) -> dict:
        jwk = JWK_WRITERS[self.algorithm].to_jwk(self.private, as_dict=True)
        return {**jwk, "kid": self.kid}

    def sign(self, claims: dict, *, algorithm: str | None = None, **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm=algorithm or self.algorithm,
                          headers={"kid": self.kid, "typ": "JWT", **header})


def new_signing_key(algorithm: str, kid: str | None = None) -> SigningKey:
    return SigningKey(kid or f"{algorithm.lower()}-key", algorithm, generate_private_key(algorithm))


def idp_claims(**changes: Any) -> dict:
    """A Keycloak-style access token's claims; a change to None removes that claim."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "f3a1c2d4-user", "iat": now, "exp": now + 300,
              "jti": f"idp-{time.time_ns()}", "typ": "Bearer", "azp": "batch-client",
              "realm_access": {"roles": ["analyst"]}}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def write_jwks(path: Path, keys: list[dict]) -> Path:
    path.write_text(json.dumps({"keys": keys}), encoding="utf-8")
    return path


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict, claims: dict, sign: Callable[[bytes], bytes] = lambda _: b"") -> str:
    """A compact JWS built by hand, for headers and signatures no honest library would write."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"
