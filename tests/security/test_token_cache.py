"""The per-worker cache of verified tokens: one signature check per token, bounded, expiring."""

from __future__ import annotations

import time

import jwt
import pytest

from errors import TokenExpired, Unauthorized
from security.token_cache import VerifiedTokenCache
from security.tokens import TokenVerifier

SECRET = "s" * 40
NOW = int(time.time())


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


def token(exp: int | None = None, **claims) -> str:
    now = int(time.time())
    payload = {"sub": "alice", "jti": "j1", "iat": now - 1, "nbf": now - 1,
               "exp": now + 60 if exp is None else exp,
               "iss": "torchgate", "aud": "torchgate", "type": "access", **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


def test_entries_end_at_their_time() -> None:
    clock = Clock()
    cache = VerifiedTokenCache(clock=clock)
    digest = cache.digest("t")
    cache.put(digest, {"sub": "alice"}, until=NOW + 10)
    assert cache.get(digest) == {"sub": "alice"}
    clock.now = NOW + 10
    assert cache.get(digest) is None and len(cache) == 0


def test_the_cache_never_holds_the_token_itself() -> None:
    cache = VerifiedTokenCache()
    cache.put(cache.digest("secret-token"), {}, until=NOW + 10**9)
    assert all(isinstance(key, bytes) and key != b"secret-token" for key in cache._entries)


def test_a_full_cache_drops_expired_entries_then_the_oldest_half() -> None:
    clock = Clock()
    cache = VerifiedTokenCache(max_entries=4, clock=clock)
    for n in range(4):
        cache.put(bytes([n]), {"n": n}, until=NOW + (1 if n == 0 else 100))
    clock.now = NOW + 2
    cache.put(b"new", {}, until=NOW + 100)  # the expired entry made room
    assert len(cache) == 4 and cache.get(bytes([0])) is None
    cache.put(b"newer", {}, until=NOW + 100)  # none expired: the oldest half goes
    assert cache.get(bytes([1])) is None and cache.get(b"newer") == {}


def test_a_token_is_verified_once_then_served_from_the_cache(monkeypatch) -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET, issuer="torchgate",
                             audience="torchgate", is_revoked=lambda keys: False)
    calls = []
    real = verifier.verify_signature_and_claims
    monkeypatch.setattr(verifier, "verify_signature_and_claims",
                        lambda t, key=None: calls.append(t) or real(t, key))
    value = token()
    assert verifier.authenticate(value)["sub"] == verifier.authenticate(value)["sub"] == "alice"
    assert len(calls) == 1


def test_an_expired_token_is_not_served_from_the_cache() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET, issuer="torchgate",
                             audience="torchgate", is_revoked=lambda keys: False)
    value = token(exp=int(time.time()) + 1)
    verifier.authenticate(value)
    time.sleep(max(0.0, jwt.decode(value, options={"verify_signature": False})["exp"]
                   - time.time()) + 0.05)
    with pytest.raises(TokenExpired):
        verifier.authenticate(value)


def test_a_time_claim_that_is_not_a_number_is_refused_every_time() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET, issuer="torchgate",
                             audience="torchgate", is_revoked=lambda keys: False)
    value = token(exp=str(int(time.time()) + 60))  # PyJWT alone accepts a numeric string
    for _ in range(2):
        with pytest.raises(Unauthorized):
            verifier.authenticate(value)


def test_cached_claims_cannot_be_changed_by_a_caller() -> None:
    verifier = TokenVerifier(algorithm="HS256", key=SECRET, issuer="torchgate",
                             audience="torchgate", is_revoked=lambda keys: False)
    value = token()
    with pytest.raises(TypeError):
        verifier.authenticate(value)["sub"] = "mallory"  # type: ignore[index]
    assert verifier.authenticate(value)["sub"] == "alice"
