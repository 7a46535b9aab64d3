"""The gateway's key store: generation, rotation with overlap, wrapping, the published JWKS."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa
from Crypto.Protocol import HPKE
from Crypto.Signature import eddsa

from app.gateway import create_database_engine
from security.encoding import b64url_decode
from security.gateway_key_algs import EDDSA, ENC, MLDSA65, SIG, X25519, XWING, hpke_public_key
from security.gateway_keys import GatewayKeyStore, gateway_keys

OVERLAP = 600


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path) -> sa.Engine:
    return create_database_engine(f"sqlite:///{tmp_path / 'keys.db'}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def master_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def store(engine, master_key, clock) -> GatewayKeyStore:
    return GatewayKeyStore(engine, master_key, overlap=OVERLAP, cache_ttl=10, clock=clock)


def another_worker(engine, master_key, clock) -> GatewayKeyStore:
    return GatewayKeyStore(engine, master_key, overlap=OVERLAP, cache_ttl=10, clock=clock)


@pytest.mark.parametrize(("use", "alg", "expected_alg", "kty"), [
    (ENC, None, XWING, "AKP"),
    (ENC, X25519, X25519, "OKP"),
    (SIG, None, EDDSA, "OKP"),
    (SIG, MLDSA65, MLDSA65, "AKP"),
])
def test_generate_publishes_the_public_half(store, use, alg, expected_alg, kty):
    key = store.generate(use, alg)
    jwk = store.public_jwks()["keys"][0]
    assert (key.alg, jwk["kid"], jwk["use"], jwk["alg"], jwk["kty"]) == (
        expected_alg, key.kid, use, expected_alg, kty)
    assert b64url_decode(jwk.get("x") or jwk["pub"]) == key.public
    assert not {"d", "priv", "seed"} & set(jwk)


def test_a_key_unwrapped_by_another_worker_opens_what_was_sealed_to_it(
        store, engine, master_key, clock):
    key = store.generate(ENC)
    algorithm, public = hpke_public_key(key.public_jwk())
    sender = HPKE.new(receiver_key=public, aead_id=algorithm.hpke_aead)
    ciphertext = sender.seal(b"hello", b"aad")
    found = another_worker(engine, master_key, clock).by_kid(key.kid)
    receiver = HPKE.new(receiver_key=found.private, aead_id=algorithm.hpke_aead, enc=sender.enc)
    assert receiver.unseal(ciphertext, b"aad") == b"hello"


def test_the_seed_is_stored_wrapped_and_bound_to_its_row(store, engine, master_key, clock):
    first, second = store.generate(SIG), store.generate(SIG)
    with engine.begin() as conn:
        rows = {r.kid: r for r in conn.execute(sa.select(gateway_keys))}
        conn.execute(gateway_keys.update().where(gateway_keys.c.kid == first.kid)
                     .values(wrapped=rows[second.kid].wrapped))
    fresh = another_worker(engine, master_key, clock)
    assert fresh.by_kid(first.kid) is None  # a swapped seed does not unwrap: the key is skipped
    assert fresh.by_kid(second.kid).public == second.public


def test_a_wrong_master_key_skips_the_keys_instead_of_failing(store, engine, clock):
    store.generate(ENC)
    assert another_worker(engine, secrets.token_bytes(32), clock).public_jwks() == {"keys": []}


def test_rotation_keeps_the_old_key_for_the_overlap_then_drops_it(store, clock):
    old = store.generate(ENC)
    clock.now += 5
    new = store.rotate(ENC)
    assert store.current(ENC).kid == new.kid
    assert store.by_kid(old.kid).not_after == int(clock.now) + OVERLAP
    published = {k["kid"]: k for k in store.public_jwks()["keys"]}
    assert published[old.kid]["exp"] == int(clock.now) + OVERLAP
    assert "exp" not in published[new.kid]
    assert next(iter(published)) == new.kid  # the active key first
    clock.now += OVERLAP
    assert store.by_kid(old.kid) is None
    assert [k["kid"] for k in store.public_jwks()["keys"]] == [new.kid]


def test_rotation_touches_only_its_use_and_algorithm(store):
    xwing, x25519, signer = store.generate(ENC), store.generate(ENC, X25519), store.generate(SIG)
    store.rotate(ENC)
    assert store.by_kid(xwing.kid).retired_at is not None
    assert store.by_kid(x25519.kid).retired_at is None
    assert store.by_kid(signer.kid).retired_at is None


def test_a_key_rotated_on_another_worker_is_found_without_waiting(store, engine, master_key,
                                                                 clock):
    store.public_jwks()  # loads this worker's cache
    clock.now += 2
    made_elsewhere = another_worker(engine, master_key, clock).generate(ENC)
    assert store.by_kid(made_elsewhere.kid).kid == made_elsewhere.kid


def test_current_prefers_the_default_algorithm(store, clock):
    store.generate(ENC, X25519)
    assert store.current(ENC).alg == X25519
    clock.now -= 100  # even an older X-Wing key wins over a newer X25519 one
    xwing = store.generate(ENC)
    assert store.current(ENC).kid == xwing.kid
    assert store.current(ENC, X25519).alg == X25519


def test_ensure_defaults_makes_each_default_kind_once(store):
    made = store.ensure_defaults()
    assert sorted((k.use, k.alg) for k in made) == [(ENC, X25519), (ENC, XWING), (SIG, EDDSA)]
    assert store.ensure_defaults() == []


def test_the_signing_key_signs_what_its_published_jwk_verifies(store):
    assert store.current(SIG) is None
    key = store.generate(SIG)
    signing = store.current(SIG)
    assert (signing.kid, signing.alg) == (key.kid, EDDSA)
    signature = eddsa.new(signing.private, "rfc8032").sign(b"receipt")
    jwk = key.public_jwk()
    public = eddsa.import_public_key(b64url_decode(jwk["x"]))
    eddsa.new(public, "rfc8032").verify(b"receipt", signature)


@pytest.mark.parametrize(("use", "alg", "message"), [
    (ENC, EDDSA, "unknown enc algorithm 'EdDSA'"),
    (SIG, XWING, "unknown sig algorithm"),
    ("wrap", None, "unknown key use 'wrap'"),
])
def test_a_wrong_use_or_algorithm_is_refused(store, use, alg, message):
    with pytest.raises(ValueError, match=message):
        store.generate(use, alg)


def test_list_shows_no_private_material(store):
    store.ensure_defaults()
    listed = [k.to_json() for k in store.list()]
    assert {tuple(sorted(entry)) for entry in listed} == {
        ("alg", "created_at", "kid", "not_after", "retired_at", "use")}
    assert "private=" not in repr(store.list()[0])
