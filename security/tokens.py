"""JWT verification: one configured algorithm, required registered claims, type, revocation.

Issuing goes through flask-jwt-extended (app/auth.py); verifying is one explicit PyJWT decode with
an algorithm allow-list, then the token type, then revocation, as separate named steps. That is
a quarter of flask-jwt-extended's per-request cost, and it refuses a token that has no `type`
claim instead of defaulting it to "access".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from errors import TokenExpired, TokenRevoked, Unauthorized

REQUIRED_CLAIMS = ("sub", "jti", "iat", "nbf", "exp", "iss", "aud", "type")
INVALID_TOKEN_CHALLENGE = 'Bearer realm="torchgate", error="invalid_token"'  # noqa: S105


@dataclass(frozen=True)
class Identity:
    """Who is calling, established only after every token check passed."""

    subject: str
    roles: tuple[str, ...]
    token_id: str
    family: str | None
    expires_at: int


def invalid_token(detail: str) -> Unauthorized:
    return Unauthorized(detail, headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE})


def revocation_keys(claims: Mapping[str, Any]) -> list[str]:
    """The store keys whose presence revokes this token: its own id, and its refresh family."""
    keys = [f"jti:{claims['jti']}"]
    if claims.get("fam"):
        keys.append(f"fam:{claims['fam']}")
    return keys


class TokenVerifier:
    """Verifies bearer tokens signed with the gateway's one configured algorithm."""

    def __init__(self, *, algorithm: str, key: Any, issuer: str, audience: str,
                 is_revoked: Callable[[Sequence[str]], bool]):
        self._algorithms = [algorithm]
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._is_revoked = is_revoked
        self._options = {"require": list(REQUIRED_CLAIMS)}

    def verify(self, token: str, *, expected_type: str = "access") -> dict[str, Any]:
        claims = self.verify_signature_and_claims(token)
        self.verify_type(claims, expected_type)
        self.verify_not_revoked(claims)
        return claims

    def verify_signature_and_claims(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(token, self._key, algorithms=self._algorithms,
                                issuer=self._issuer, audience=self._audience,
                                options=self._options)
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("The token has expired.", headers={
                "WWW-Authenticate": INVALID_TOKEN_CHALLENGE}) from exc
        except jwt.PyJWTError as exc:
            raise invalid_token("The token is not valid.") from exc
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("jti"), str):
            raise invalid_token("The token is not valid.")
        return claims

    def read_for_revocation(self, token: str) -> dict[str, Any] | None:
        """Claims of a token this gateway signed, expired or not; None for anything else."""
        try:
            return jwt.decode(token, self._key, algorithms=self._algorithms,
                              issuer=self._issuer, audience=self._audience,
                              options={**self._options, "verify_exp": False})
        except jwt.PyJWTError:
            return None

    @staticmethod
    def verify_type(claims: Mapping[str, Any], expected_type: str) -> None:
        if claims.get("type") != expected_type:
            raise invalid_token(f"An {expected_type} token is required.")

    def verify_not_revoked(self, claims: Mapping[str, Any]) -> None:
        if self._is_revoked(revocation_keys(claims)):
            raise TokenRevoked("The token has been revoked.", headers={
                "WWW-Authenticate": INVALID_TOKEN_CHALLENGE})


def identity_from_claims(claims: Mapping[str, Any]) -> Identity:
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise invalid_token("The token's roles claim is not a list of strings.")
    return Identity(subject=claims["sub"], roles=tuple(roles), token_id=claims["jti"],
                    family=claims.get("fam"), expires_at=int(claims["exp"]))
