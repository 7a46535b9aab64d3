"""Loading an identity provider's JWKS: public signature keys only, each bound to one algorithm."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from security.jwks import JwksError, load_jwks
from tests.external_idp import generate_private_key, new_signing_key, write_jwks

ALGORITHMS = ("RS256", "ES256", "EdDSA")


@pytest.fixture(scope="module")
def keys() -> dict:
    return {algorithm: new_signing_key(algorithm) for algorithm in ALGORITHMS}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("members", [{}, {"use": "sig"}, {"alg": "same"}])
def test_public_key_is_bound_to_its_algorithm(tmp_path, keys, algorithm, members):
    key = keys[algorithm]
    stated = {k: (algorithm if v == "same" else v) for k, v in members.items()}
    loaded = load_jwks(write_jwks(tmp_path / "jwks.json", [key.public_jwk(**stated)]))
    assert list(loaded) == [key.kid]
    assert loaded[key.kid].algorithm == algorithm
    assert loaded[key.kid].jwk.algorithm_name == algorithm


def test_every_key_of_a_set_is_loaded_by_kid(tmp_path, keys):
    path = write_jwks(tmp_path / "jwks.json", [k.public_jwk() for k in keys.values()])
    loaded = load_jwks(path)
    assert {kid: key.algorithm for kid, key in loaded.items()} == {
        "rs256-key": "RS256", "es256-key": "ES256", "eddsa-key": "EdDSA"}


def test_encryption_key_is_skipped(tmp_path, keys):
    enc = new_signing_key("RS256", "enc-key").public_jwk(use="enc", alg="RSA-OAEP")
    loaded = load_jwks(write_jwks(tmp_path / "jwks.json", [enc, keys["ES256"].public_jwk()]))
    assert list(loaded) == ["es256-key"]


def _jwk(keys: dict, case: str) -> list:
    """The "keys" list of a JWKS that must be refused, for each case of the table below."""
    rs, es, ed = keys["RS256"], keys["ES256"], keys["EdDSA"]
    table = {
        "RSA private key": [rs.private_jwk()],
        "EC private key": [es.private_jwk()],
        "Ed25519 private key": [ed.private_jwk()],
        "symmetric oct key": [{"kty": "oct", "kid": "hs", "k": "c2VjcmV0"}],
        "oct key without k": [{"kty": "oct", "kid": "hs"}],
        "unknown kty": [{"kty": "XYZ", "kid": "odd"}],
        "EC P-384": [{**es.public_jwk(), "crv": "P-384"}],
        "OKP X25519": [{**ed.public_jwk(), "crv": "X25519"}],
        "RSA key stating PS256": [rs.public_jwk(alg="PS256")],
        "RSA key stating HS256": [rs.public_jwk(alg="HS256")],
        "EC key stating RS256": [es.public_jwk(alg="RS256")],
        "Ed25519 key stating ES256": [ed.public_jwk(alg="ES256")],
        "1024-bit RSA key": [{**rs.public_jwk(), **_small_rsa()}],
        "duplicate kid": [es.public_jwk(), {**ed.public_jwk(), "kid": es.kid}],
        "key without kid": [{k: v for k, v in es.public_jwk().items() if k != "kid"}],
        "key not an object": ["es256-key"],
        "unknown use": [es.public_jwk(use="tls")],
        "only encryption keys": [rs.public_jwk(use="enc", alg="RSA-OAEP")],
        "garbled EC point": [{**es.public_jwk(), "x": es.public_jwk()["y"]}],
    }
    return table[case]


def _small_rsa() -> dict:
    from jwt.algorithms import RSAAlgorithm
    small = RSAAlgorithm.to_jwk(generate_private_key("RS256", 1024).public_key(), as_dict=True)
    return {"n": small["n"], "e": small["e"]}


@pytest.mark.parametrize(("case", "message"), [
    ("RSA private key", "kid 'rs256-key' holds private or secret key material"),
    ("EC private key", "kid 'es256-key' holds private or secret key material"),
    ("Ed25519 private key", "kid 'eddsa-key' holds private or secret key material"),
    ("symmetric oct key", "kid 'hs' holds private or secret key material"),
    ("oct key without k", "kid 'hs' is a symmetric (oct) key"),
    ("unknown kty", "kid 'odd' has kty 'XYZ'"),
    ("EC P-384", "kid 'es256-key' has kty 'EC' crv 'P-384'"),
    ("OKP X25519", "kid 'eddsa-key' has kty 'OKP' crv 'X25519'"),
    ("RSA key stating PS256", "kid 'rs256-key' states alg 'PS256', but a RSA key here "
                              "verifies RS256 only"),
    ("RSA key stating HS256", "kid 'rs256-key' states alg 'HS256'"),
    ("EC key stating RS256", "kid 'es256-key' states alg 'RS256'"),
    ("Ed25519 key stating ES256", "kid 'eddsa-key' states alg 'ES256'"),
    ("1024-bit RSA key", "kid 'rs256-key' is a 1024-bit RSA key"),
    ("duplicate kid", "kid 'es256-key' appears twice"),
    ("key without kid", "key #0 has no kid"),
    ("key not an object", "key #0 is not a JSON object"),
    ("unknown use", "kid 'es256-key' has \"use\": 'tls'"),
    ("only encryption keys", "no signature keys"),
    ("garbled EC point", "kid 'es256-key' is not a valid ES256 public key"),
])
def test_unsafe_or_unusable_key_is_refused(tmp_path, keys, case, message):
    path = write_jwks(tmp_path / "jwks.json", _jwk(keys, case))
    with pytest.raises(JwksError, match=re.escape(f"{path}: {message}")) as caught:
        load_jwks(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read {path}: No such file or directory"),
    ("{not json", "{path} is not valid JSON"),
    ('[{"kty": "RSA"}]', "{path}: expected a JWK Set"),
    ('{"keys": []}', "{path}: expected a JWK Set"),
    ('{"keys": {"kty": "RSA"}}', "{path}: expected a JWK Set"),
])
def test_file_that_is_not_a_jwk_set_is_refused(tmp_path, content, message):
    path = Path(tmp_path / "jwks.json")
    if content is not None:
        path.write_text(content)
    with pytest.raises(JwksError, match=re.escape(message.format(path=path))):
        load_jwks(path)


def test_loaded_key_repr_shows_no_key_material(tmp_path, keys):
    loaded = load_jwks(write_jwks(tmp_path / "jwks.json", [keys["RS256"].public_jwk()]))
    assert repr(loaded["rs256-key"]) == "VerificationKey(kid='rs256-key', algorithm='RS256')"
