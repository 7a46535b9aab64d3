"""An external identity provider's public keys (a JWKS file), each bound to its one algorithm.

The file is read and parsed once at start-up; verifying a token is then a dict lookup by `kid`.
Only public signature keys of three kinds are accepted, and each verifies one algorithm only:

    kty RSA (at least 2048 bits) -> RS256,  kty EC crv P-256 -> ES256,  kty OKP crv Ed25519 -> EdDSA

A JWK's own "alg" may be given but must name that same algorithm. Anything else in the file is
an error that names the file and the key: private key material, symmetric ("oct") keys, other
key types or curves, a key without a kid, two keys with one kid. Keys marked "use": "enc" are
encryption keys (Keycloak publishes one beside its signing key): they are skipped, never used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jwt import PyJWK, PyJWTError

# (kty, crv) -> the one algorithm such a key verifies; RSA keys have no curve.
ALGORITHM_FOR_KEY_TYPE: Mapping[tuple[str, str | None], str] = {
    ("RSA", None): "RS256",
    ("EC", "P-256"): "ES256",
    ("OKP", "Ed25519"): "EdDSA",
}
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MIN_RSA_BITS = 2048


class JwksError(ValueError):
    """The JWKS file cannot be used; the one-line message names the file and the key."""


@dataclass(frozen=True)
class VerificationKey:
    """One public key of the identity provider and the only algorithm it may verify."""

    kid: str
    algorithm: str
    jwk: PyJWK = field(repr=False, compare=False)


def load_jwks(path: str | Path) -> dict[str, VerificationKey]:
    """Read a JWKS file into {kid: VerificationKey}; raise JwksError on anything doubtful."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JwksError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise JwksError(f"{path} is not valid JSON: {exc}") from exc
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise JwksError(f"{path}: expected a JWK Set, {{\"keys\": [...]}} with at least one key")
    return parse_jwks(keys, origin=str(path))


def parse_jwks(keys: list[Any], origin: str) -> dict[str, VerificationKey]:
    """The signature keys of a JWK Set's "keys" list, by kid; `origin` names it in errors."""
    parsed: dict[str, VerificationKey] = {}
    seen: set[str] = set()
    for index, jwk in enumerate(keys):
        kid = _kid(jwk, index, origin)
        if kid in seen:
            raise JwksError(f"{origin}: kid {kid!r} appears twice")
        seen.add(kid)
        key = parse_jwk(jwk, kid, origin)
        if key is not None:
            parsed[kid] = key
    if not parsed:
        raise JwksError(f"{origin}: no signature keys (every key is marked \"use\": \"enc\")")
    return parsed


def parse_jwk(jwk: Mapping[str, Any], kid: str, origin: str) -> VerificationKey | None:
    """One public signature key; None for an encryption key, JwksError for anything unsafe."""
    where = f"{origin}: kid {kid!r}"
    if PRIVATE_MEMBERS & set(jwk):
        raise JwksError(f"{where} holds private or secret key material; publish public keys only")
    if jwk.get("kty") == "oct":
        raise JwksError(f"{where} is a symmetric (oct) key; only public keys are accepted")
    use = jwk.get("use")
    if use == "enc":
        return None
    if use not in (None, "sig"):
        raise JwksError(f"{where} has \"use\": {use!r}; expected \"sig\"")
    algorithm = key_algorithm(jwk, where)
    try:
        parsed = PyJWK(dict(jwk), algorithm=algorithm)
    except PyJWTError as exc:
        raise JwksError(f"{where} is not a valid {algorithm} public key: {exc}") from exc
    if algorithm == "RS256" and parsed.key.key_size < MIN_RSA_BITS:
        raise JwksError(f"{where} is a {parsed.key.key_size}-bit RSA key; "
                        f"at least {MIN_RSA_BITS} bits are required")
    return VerificationKey(kid=kid, algorithm=algorithm, jwk=parsed)


def key_algorithm(jwk: Mapping[str, Any], where: str) -> str:
    """The algorithm the key's type and curve allow; a stated "alg" must agree with it."""
    kty = jwk.get("kty")
    crv = None if kty == "RSA" else jwk.get("crv")
    algorithm = ALGORITHM_FOR_KEY_TYPE.get((kty, crv))
    if algorithm is None:
        supported = ", ".join(f"{t} {c or ''}".strip() for t, c in ALGORITHM_FOR_KEY_TYPE)
        raise JwksError(f"{where} has kty {kty!r} crv {crv!r}; supported: {supported}")
    stated = jwk.get("alg")
    if stated is not None and stated != algorithm:
        raise JwksError(f"{where} states alg {stated!r}, but a {kty} key here verifies "
                        f"{algorithm} only")
    return algorithm


def _kid(jwk: Any, index: int, origin: str) -> str:
    if not isinstance(jwk, dict):
        raise JwksError(f"{origin}: key #{index} is not a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise JwksError(f"{origin}: key #{index} has no kid; tokens select keys by kid")
    return kid
