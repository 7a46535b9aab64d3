"""The receipt signature algorithms: Ed25519 (JWS `EdDSA`) and ML-DSA-65 (RFC 9964), their keys
as JWKs, and the one PyJWS instance that signs and verifies with exactly these two.

EdDSA signs through PyJWT (cryptography: ~40 µs a signature, against ~200 µs for pycryptodome's
Ed25519, benchmarks/README.md); ML-DSA-65 is pycryptodome's FIPS 204 code, plugged into PyJWT as
an Algorithm, so both share one compact-JWS path with an explicit allow-list.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from Crypto.PublicKey import MLDSA
from Crypto.Signature import mldsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from jwt.algorithms import Algorithm
from jwt.exceptions import InvalidKeyError

from security.encoding import b64url_decode, b64url_encode

EDDSA = "EdDSA"
ML_DSA_65 = "ML-DSA-65"
ALGORITHMS = (EDDSA, ML_DSA_65)
ED25519_KEY_BYTES = 32
ML_DSA_65_PUBLIC_BYTES = 1952


class KeyFormatError(ValueError):
    """A JWK that is not a well-formed public key of the algorithm it claims."""


@dataclass(frozen=True)
class SigningKey:
    """One receipt signing key: its id, JWS algorithm and private key (never shown)."""

    kid: str
    alg: str
    private: Any = field(repr=False)  # Ed25519PrivateKey or a private MLDSA.MLDSAKey

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK with kid, use "sig" and alg."""
        if self.alg == EDDSA:
            raw = self.private.public_key().public_bytes_raw()
            material = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
        else:
            material = {"kty": "AKP", "pub": b64url_encode(self.private.pk)}
        return {**material, "kid": self.kid, "use": "sig", "alg": self.alg}


def generate_signing_key(alg: str, kid: str) -> SigningKey:
    """A fresh key pair for `alg` (EdDSA or ML-DSA-65)."""
    if alg == EDDSA:
        return SigningKey(kid, alg, Ed25519PrivateKey.generate())
    if alg == ML_DSA_65:
        return SigningKey(kid, alg, MLDSA.generate(param_set=MLDSA.ML_DSA_65))
    raise ValueError(f"receipt algorithm must be one of {', '.join(ALGORITHMS)}")


def public_key_from_jwk(jwk: Mapping[str, Any], alg: str) -> Any:
    """The verification key a JWK holds for `alg`; KeyFormatError unless exactly that."""
    if alg == EDDSA:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "d" in jwk:
            raise KeyFormatError("an EdDSA key must be a public OKP key on Ed25519")
        return Ed25519PublicKey.from_public_bytes(_raw(jwk, "x", ED25519_KEY_BYTES))
    if alg == ML_DSA_65:
        if jwk.get("kty") != "AKP" or "priv" in jwk:
            raise KeyFormatError("an ML-DSA-65 key must be a public AKP key")
        return MLDSA.construct(param_set=MLDSA.ML_DSA_65,
                               pk=_raw(jwk, "pub", ML_DSA_65_PUBLIC_BYTES))
    raise KeyFormatError(f"algorithm {alg!r} is not a receipt algorithm")


def _raw(jwk: Mapping[str, Any], name: str, size: int) -> bytes:
    value = jwk.get(name)
    try:
        raw = b64url_decode(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise KeyFormatError(f"member {name!r} must be {size} bytes as base64url")
    return raw


class MLDSA65Algorithm(Algorithm):
    """JWS `ML-DSA-65` (RFC 9964): pure ML-DSA over the signing input, empty context, hedged."""

    def prepare_key(self, key: Any) -> MLDSA.MLDSAKey:
        if not isinstance(key, MLDSA.MLDSAKey) or key.param_set != MLDSA.ML_DSA_65:
            raise InvalidKeyError("ML-DSA-65 needs an ML-DSA-65 key")
        return key

    def sign(self, msg: bytes, key: MLDSA.MLDSAKey) -> bytes:
        return mldsa.new(key).sign(msg)

    def verify(self, msg: bytes, key: MLDSA.MLDSAKey, sig: bytes) -> bool:
        try:
            mldsa.new(key).verify(msg, sig)
        except (ValueError, TypeError):
            return False
        return True

    @staticmethod
    def to_jwk(key_obj: Any, as_dict: bool = False) -> Any:
        raise NotImplementedError("SigningKey.public_jwk writes receipt JWKs")

    @staticmethod
    def from_jwk(jwk: Any) -> Any:
        raise NotImplementedError("public_key_from_jwk reads receipt JWKs")


@functools.cache
def receipt_jws() -> jwt.PyJWS:
    """PyJWS knowing EdDSA and ML-DSA-65 only: `none`, HMAC and the rest cannot be named."""
    jws = jwt.PyJWS(algorithms=[EDDSA])
    jws.register_algorithm(ML_DSA_65, MLDSA65Algorithm())
    return jws
