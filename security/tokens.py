"""JWT verification: the key named by the kid, its one algorithm, required claims, type, revocation.

Issuing goes through flask-jwt-extended (app/auth.py); verifying is one explicit PyJWT decode with
an algorithm allow-list, then the token type, then revocation, as separate named steps. That is
a quarter of flask-jwt-extended's per-request cost, and it refuses a token that has no `type`
claim instead of defaulting it to "access".

The header `kid` picks the key (security/signing_keys.py): the gateway's current key, a previous
one inside its rotation window, or a key of an external identity provider's JWKS
(JWT_JWKS_FILE, docs/external-tokens.md); a token without a kid is the current key's, and a kid
that names none of them is refused.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import jwt

from errors import TokenExpired, TokenRevoked, Unauthorized
from security.attributes import (
    NO_ATTRIBUTES,
    Attributes,
    InvalidAttributes,
    attributes_at,
    claim_at,
    parse_attributes,
)
from security.encoding import b64url_decode
from security.jwks import VerificationKey
from security.signing_keys import SigningKey, SigningKeyring, current_key
from security.token_cache import VerifiedTokenCache

REQUIRED_CLAIMS = ("sub", "jti", "iat", "nbf", "exp", "iss", "aud", "type")
EXTERNAL_REQUIRED_CLAIMS = ("sub", "iat", "exp", "iss", "aud")
EXTERNAL_LEEWAY_SECONDS = 30  # the identity provider's clock is not ours
CLOCK_MARGIN = 2 * EXTERNAL_LEEWAY_SECONDS  # how long store marks outlive what they guard
ACCESS_HEADER_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})  # RFC 9068 §2.1
INVALID_TOKEN_CHALLENGE = 'Bearer realm="torchgate", error="invalid_token"'  # noqa: S105


@dataclass(frozen=True)
class Identity:
    """Who is calling, established only after every token check passed."""

    subject: str
    roles: tuple[str, ...]
    token_id: str
    family: str | None
    expires_at: int
    attributes: Attributes = field(default_factory=lambda: NO_ATTRIBUTES, compare=False)


def mark_lifetime(claims: Mapping[str, Any], now: float) -> int:
    """Seconds a store mark about this token (revoked, refresh used) must live to cover it.

    Until `exp` rounded up, plus CLOCK_MARGIN: an external token is honoured
    EXTERNAL_LEEWAY_SECONDS past its exp, and nodes' clocks drift; a mark that expired
    first would revive the token.
    """
    return max(1, math.ceil(claims["exp"] - now)) + CLOCK_MARGIN


def invalid_token(detail: str) -> Unauthorized:
    return Unauthorized(detail, headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE})


def subject_generation_key(subject: str, generation: int) -> str:
    """The store key that ends every token of `subject` issued in `generation` (claim "gen")."""
    return f"gen:{generation}:{subject}"  # the number first: a subject may hold colons


def revocation_keys(claims: Mapping[str, Any]) -> list[str]:
    """The store keys whose presence revokes this token: its own id, its refresh family, and its
    subject's generation (a disabled, deleted or re-keyed identity ends every earlier token;
    a token without "gen" predates generations and counts as generation 0)."""
    keys = [subject_generation_key(claims["sub"], claims.get("gen", 0))]
    if claims.get("jti"):  # an identity provider's token may have none
        keys.append(f"jti:{claims['jti']}")
    if claims.get("fam"):
        keys.append(f"fam:{claims['fam']}")
    return keys


def decode_verified(token: str, key: Any, **kwargs: Any) -> dict[str, Any]:
    """PyJWT's decode_complete, its failures turned into 401 answers (expiry has its own slug)."""
    try:
        return jwt.decode_complete(token, key, **kwargs)
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired("The token has expired.", headers={
            "WWW-Authenticate": INVALID_TOKEN_CHALLENGE}) from exc
    except jwt.PyJWTError as exc:
        raise invalid_token("The token is not valid.") from exc


class TokenVerifier:
    """Verifies the gateway's own tokens (each key with its one algorithm, found by the header
    kid; previous keys until their window ends) and, given a JWKS, an IdP's tokens."""

    def __init__(self, *, algorithm: str, key: Any, issuer: str, audience: str,
                 is_revoked: Callable[[Sequence[str]], bool],
                 external_keys: Mapping[str, VerificationKey] | None = None,
                 roles_claim: str = "roles", attributes_claim: str = "attributes",
                 previous: Sequence[SigningKey] = (), clock: Callable[[], float] = time.time):
        self.signing = SigningKeyring(current_key(algorithm, key), previous)
        self._clock = clock
        self._header_kid = lru_cache(maxsize=256)(header_kid)
        self._issuer = issuer
        self._audience = audience
        self._is_revoked = is_revoked
        self._options = {"require": list(REQUIRED_CLAIMS)}
        self._external = ExternalTokenVerifier(
            external_keys, issuer=issuer, audience=audience, roles_claim=roles_claim,
            attributes_claim=attributes_claim) if external_keys else None
        self._cache = VerifiedTokenCache(clock=clock)

    def verify(self, token: str, *, expected_type: str = "access") -> Mapping[str, Any]:
        """Every check, revocation included (one store read)."""
        claims = self.authenticate(token, expected_type=expected_type)
        self.verify_not_revoked(claims)
        return claims

    def authenticate(self, token: str, *, expected_type: str = "access") -> Mapping[str, Any]:
        """Signature, registered claims and type; NOT revocation, which the caller must check
        on every request (the dataplane does it in its admission round trip). A token's
        signature is verified once per worker: later calls find its claims in the cache."""
        digest = self._cache.digest(token)
        claims = self._cache.get(digest)
        if claims is None:
            verified, until = self._verify_uncached(token, expected_type)
            claims = MappingProxyType(verified)  # shared by every later request: read-only
            self._cache.put(digest, claims, until)
        self.verify_type(claims, expected_type)
        return claims

    def _verify_uncached(self, token: str, expected_type: str) -> tuple[dict[str, Any], float]:
        """(claims, until when they may be reused) after signature and claims checks; never
        past the signing key's window, so the cache cannot outlive a retired key."""
        own = self.own_key(token)
        external = self._external.key_for(token) if own is None and self._external else None
        if external is not None:
            claims = self._external.verify(token, external, expected_type)
            return claims, claims["exp"] + self._external.leeway
        if own is None:
            raise invalid_token("The token is not valid.")
        claims = self.verify_signature_and_claims(token, own)
        return claims, min(claims["exp"], own.until)

    def own_key(self, token: str) -> SigningKey | None:
        """The own key the header kid names (none: the current key); None when not ours."""
        return self.signing.find(self._header_kid(token.partition(".")[0]))

    def verify_signature_and_claims(self, token: str,
                                    key: SigningKey | None = None) -> dict[str, Any]:
        key = key or self.signing.current
        if key.retired(self._clock()):
            raise invalid_token("The token's signing key is no longer accepted.")
        claims = decode_verified(token, key.key, algorithms=[key.algorithm],
                                 issuer=self._issuer, audience=self._audience,
                                 options=self._options)["payload"]
        # An empty sub is no one: it would share every per-subject limit and key lookup.
        if not _nonempty(claims.get("sub")) or not _nonempty(claims.get("jti")) \
                or not is_number(claims["exp"]):
            raise invalid_token("The token is not valid.")
        return claims

    def read_for_revocation(self, token: str) -> dict[str, Any] | None:
        """Claims of a token this gateway accepts, expired or not, with a jti; else None."""
        own = self.own_key(token)
        external = self._external.key_for(token) if own is None and self._external else None
        if external is not None:
            return self._external.read_for_revocation(token, external)
        if own is None or own.retired(self._clock()):
            return None
        try:
            return jwt.decode(token, own.key, algorithms=[own.algorithm],
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


class ExternalTokenVerifier:
    """Verifies an identity provider's access tokens, each with its key's one algorithm."""

    def __init__(self, keys: Mapping[str, VerificationKey], *, issuer: str, audience: str,
                 roles_claim: str, attributes_claim: str = "attributes",
                 leeway: int = EXTERNAL_LEEWAY_SECONDS):
        self._keys = dict(keys)
        self.leeway = leeway
        self._kwargs = {"issuer": issuer, "audience": audience, "leeway": leeway}
        self._options = {"require": list(EXTERNAL_REQUIRED_CLAIMS)}
        self._roles_claim = roles_claim
        self._attributes_claim = attributes_claim
        # Header segments repeat (one per signing key), so the kid lookup is a cache hit.
        self._header_kid = lru_cache(maxsize=256)(header_kid)

    def key_for(self, token: str) -> VerificationKey | None:
        """The JWKS key named by the token's header kid; None sends the token the own way."""
        kid = self._header_kid(token.partition(".")[0])
        return self._keys.get(kid) if kid is not None else None

    def verify(self, token: str, key: VerificationKey,
               expected_type: str = "access") -> dict[str, Any]:
        """The token's claims as the gateway reads them (roles, type, jti), after every check
        but revocation (TokenVerifier.verify_not_revoked)."""
        if expected_type != "access":  # an identity provider's token is never our refresh token
            raise invalid_token(f"An {expected_type} token is required.")
        decoded = self.decode(token, key, verify_exp=True)
        verify_access_type(decoded["header"], decoded["payload"])
        if not decoded["payload"]["sub"] or not is_number(decoded["payload"]["exp"]):
            raise invalid_token("The token is not valid.")
        return self.gateway_claims(decoded["payload"])

    def read_for_revocation(self, token: str, key: VerificationKey) -> dict[str, Any] | None:
        """Claims of a genuine access token with a jti, expired or not; else None."""
        try:
            decoded = self.decode(token, key, verify_exp=False)
            verify_access_type(decoded["header"], decoded["payload"])
        except Unauthorized:
            return None
        claims = self.gateway_claims(decoded["payload"])
        return claims if claims["jti"] else None

    def decode(self, token: str, key: VerificationKey, *, verify_exp: bool) -> dict[str, Any]:
        return decode_verified(token, key.jwk, algorithms=[key.algorithm], **self._kwargs,
                               options={**self._options, "verify_exp": verify_exp})

    def gateway_claims(self, claims: Mapping[str, Any]) -> dict[str, Any]:
        """Roles and attributes from the configured claims, type "access", jti "" when absent,
        no refresh family."""
        # fam and gen are the gateway's own claims (refresh family, identity generation)
        gateway = {name: value for name, value in claims.items() if name not in ("fam", "gen")}
        jti = claims.get("jti")
        gateway.update(roles=list(roles_at(claims, self._roles_claim)), type="access",
                       jti=jti if isinstance(jti, str) else "",
                       attributes=attributes_at(claims, self._attributes_claim))
        return gateway


def is_number(value: Any) -> bool:
    """A JSON number as a time claim must be (PyJWT also accepts numeric strings)."""
    return type(value) in (int, float)


def header_kid(segment: str) -> str | None:
    """The `kid` of a compact JWS header segment; None when absent or the header is garbled,
    "" when it is not a string (which names no key, so such a token is refused)."""
    try:
        header = json.loads(b64url_decode(segment))
    except (ValueError, RecursionError):  # RecursionError: a header of deeply nested arrays
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if kid is None or isinstance(kid, str) else ""


def verify_access_type(header: Mapping[str, Any], claims: Mapping[str, Any]) -> None:
    """Access tokens only: header typ JWT/at+jwt, and no refresh/ID marker in the claims."""
    header_type, claim_type = header.get("typ"), claims.get("typ")
    if ((header_type is not None and str(header_type).lower() not in ACCESS_HEADER_TYPES)
            or claims.get("type", "access") != "access"
            or (claim_type is not None and str(claim_type).lower() != "bearer")):
        raise invalid_token("An access token is required.")


def roles_at(claims: Mapping[str, Any], path: str) -> tuple[str, ...]:
    """Roles at a dotted claim path ("realm_access.roles"); anything but a string list is none."""
    value = claim_at(claims, path)
    if isinstance(value, list) and all(isinstance(role, str) for role in value):
        return tuple(value)
    return ()


def identity_from_claims(claims: Mapping[str, Any]) -> Identity:
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise invalid_token("The token's roles claim is not a list of strings.")
    try:
        attributes = parse_attributes(claims.get("attributes", {}))
    except InvalidAttributes:
        raise invalid_token("The token's attributes claim is not valid.") from None
    return Identity(subject=claims["sub"], roles=tuple(roles), token_id=claims["jti"],
                    family=claims.get("fam"), expires_at=int(claims["exp"]),
                    attributes=attributes)


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and bool(value)
