"""Signing-key ids, the rotation window's time format, and the token cache bounded by it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwcrypto.jwk import JWK

from errors import Unauthorized
from security.signing_keys import (
    SigningKey,
    algorithm_of,
    parse_until,
    public_key_kid,
    secret_kid,
)
from security.tokens import TokenVerifier

CURRENT = "c" * 16 + "0123456789abcdefghij"
PREVIOUS = "p" * 16 + "0123456789abcdefghij"


@pytest.mark.parametrize("make", [
    lambda: rsa.generate_private_key(65537, 2048),
    lambda: ec.generate_private_key(ec.SECP256R1()),
    ed25519.Ed25519PrivateKey.generate,
], ids=["RSA", "P-256", "Ed25519"])
def test_public_key_kid_is_the_rfc7638_thumbprint(make):
    public = make().public_key()
    assert public_key_kid(public) == JWK.from_pyca(public).thumbprint()


def test_algorithm_of_refuses_curves_the_gateway_does_not_sign_with():
    with pytest.raises(ValueError, match="not an RSA"):
        algorithm_of(ec.generate_private_key(ec.SECP384R1()).public_key())


def test_secret_kid_differs_per_secret_and_does_not_contain_it():
    assert secret_kid(CURRENT) == secret_kid(CURRENT) != secret_kid(PREVIOUS)
    assert CURRENT not in secret_kid(CURRENT) and secret_kid(CURRENT).startswith("hs-")


@pytest.mark.parametrize(("text", "epoch"), [
    ("2027-01-15T08:00:00Z", 1_800_000_000),
    ("2027-01-15T10:00:00+02:00", 1_800_000_000),
    ("2027-01-15T08:00Z", 1_800_000_000),
])
def test_parse_until_reads_an_iso_time_with_its_zone(text, epoch):
    assert parse_until(text) == epoch


@pytest.mark.parametrize("text", ["2027-01-15T08:00:00", "tomorrow", ""])
def test_parse_until_refuses_a_time_without_zone_or_garbage(text):
    with pytest.raises(ValueError):
        parse_until(text)


@dataclass
class Clock:
    now: float
    def __call__(self) -> float:
        return self.now


def token(secret: str, kid: str, exp: float) -> str:
    now = int(time.time())
    claims = {"sub": "alice", "roles": [], "jti": "j", "type": "access", "iss": "torchgate",
              "aud": "torchgate", "iat": now, "nbf": now, "exp": int(exp)}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


def test_cached_claims_do_not_outlive_the_previous_keys_window():
    t0 = time.time()
    clock = Clock(t0)
    previous = SigningKey(secret_kid(PREVIOUS), "HS256", PREVIOUS, until=t0 + 60)
    verifier = TokenVerifier(algorithm="HS256", key=CURRENT, issuer="torchgate",
                             audience="torchgate", is_revoked=lambda keys: False,
                             previous=[previous], clock=clock)
    old = token(PREVIOUS, previous.kid, exp=time.time() + 3600)
    assert verifier.authenticate(old)["sub"] == "alice"
    clock.now = t0 + 59
    assert verifier.authenticate(old)["sub"] == "alice"  # cached, still inside
    clock.now = t0 + 60
    with pytest.raises(Unauthorized, match="no longer accepted"):
        verifier.authenticate(old)
    assert verifier.read_for_revocation(old) is None
    current = token(CURRENT, secret_kid(CURRENT), exp=time.time() + 3600)
    assert verifier.authenticate(current)["sub"] == "alice"
