"""Receipts: sign and verify with each algorithm, jwcrypto agrees, every forgery is refused."""

from __future__ import annotations

import dataclasses
import json

import jwt
import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from security.encoding import b64url_decode, b64url_encode
from security.receipt_algorithms import (
    ALGORITHMS,
    EDDSA,
    ML_DSA_65,
    generate_signing_key,
)
from security.receipts import (
    RECEIPT_TYPE,
    ReceiptClaims,
    ReceiptError,
    attach_receipt,
    sha256_hex,
    sign_receipt,
    split_reply,
    verify_receipt,
)

CLAIMS = ReceiptClaims(iss="torchgate", iat=1_700_000_000, rid="req-0001", sub="alice",
                       model="digits", version="2", weights_sha256=sha256_hex(b"weights"),
                       request_sha256=sha256_hex(b"request"), body_sha256=sha256_hex(b"body"),
                       reply_sha256=sha256_hex(b"reply"))


@pytest.fixture(scope="module", params=ALGORITHMS)
def key(request):
    return generate_signing_key(request.param, f"receipt-{request.param}")


def jwks_of(*keys) -> dict:
    return {"keys": [k.public_jwk() for k in keys]}


def segments(receipt: str) -> list[str]:
    return receipt.split(".")


def with_header(receipt: str, header: dict) -> str:
    return ".".join([b64url_encode(json.dumps(header).encode()), *segments(receipt)[1:]])


def with_payload(receipt: str, payload: bytes) -> str:
    first, _, last = segments(receipt)
    return ".".join([first, b64url_encode(payload), last])


def test_round_trip(key):
    receipt = sign_receipt(CLAIMS, key)
    header = json.loads(b64url_decode(segments(receipt)[0]))
    assert header == {"alg": key.alg, "kid": key.kid, "typ": RECEIPT_TYPE}
    assert verify_receipt(receipt, jwks_of(key)) == CLAIMS


def test_jwcrypto_verifies_a_receipt(key):
    """A third party's JOSE library, from the published JWK alone."""
    receipt = sign_receipt(CLAIMS, key)
    token = jwcrypto_jws.JWS()
    token.deserialize(receipt)
    token.verify(jwcrypto_jwk.JWK(**key.public_jwk()), alg=key.alg)
    assert json.loads(token.payload) == CLAIMS.to_json()


def test_pyjwt_verifies_an_eddsa_receipt():
    key = generate_signing_key(EDDSA, "k1")
    public = jwt.PyJWK(key.public_jwk())
    claims = jwt.decode(sign_receipt(CLAIMS, key), public, algorithms=[EDDSA],
                        options={"verify_aud": False})
    assert claims == CLAIMS.to_json()


def test_every_public_jwk_is_public_only(key):
    jwk = key.public_jwk()
    assert jwk["use"] == "sig" and jwk["alg"] == key.alg and jwk["kid"] == key.kid
    assert not {"d", "priv", "seed"} & set(jwk)


def forged(key) -> dict[str, str]:
    """Receipts that must not verify against jwks_of(key)."""
    receipt = sign_receipt(CLAIMS, key)
    other = generate_signing_key(key.alg, key.kid)  # same kid, another key
    changed = dataclasses.replace(CLAIMS, version="1").to_json()
    header = json.loads(b64url_decode(segments(receipt)[0]))
    signature = b64url_decode(segments(receipt)[2])
    return {
        "claims edited": with_payload(receipt, json.dumps(changed).encode()),
        "signature flipped": ".".join([*segments(receipt)[:2],
                                       b64url_encode(bytes([signature[0] ^ 1]) + signature[1:])]),
        "another key, same kid": sign_receipt(CLAIMS, other),
        "alg none": with_header(receipt, {**header, "alg": "none"})[:-len(segments(receipt)[2])]
                    + "AA",
        "alg HS256 with the public key": jwt.encode(CLAIMS.to_json(), b"x" * 32, "HS256",
                                                    headers={"kid": key.kid, "typ": RECEIPT_TYPE}),
        "other alg named": with_header(receipt, {**header, "alg": next(
            a for a in ALGORITHMS if a != key.alg)}),
        "unknown kid": with_header(receipt, {**header, "kid": "nobody"}),
        "typ JWT": with_header(receipt, {**header, "typ": "JWT"}),
        "crit header": with_header(receipt, {**header, "crit": ["b64"], "b64": False}),
        "not a JWS": "a.b",
        "JSON serialization": json.dumps({"payload": segments(receipt)[1]}),
        "not text": 42,
    }


@pytest.mark.parametrize("case", ["claims edited", "signature flipped", "another key, same kid",
                                  "alg none", "alg HS256 with the public key", "other alg named",
                                  "unknown kid", "typ JWT", "crit header", "not a JWS",
                                  "JSON serialization", "not text"])
def test_forged_receipts_are_refused(key, case):
    with pytest.raises(ReceiptError):
        verify_receipt(forged(key)[case], jwks_of(key))


@pytest.mark.parametrize("case, edit", [
    ("use enc", {"use": "enc"}),
    ("no use", {"use": None}),
    ("other alg", {"alg": "ES256"}),
    ("private part present", {"d": "AA", "priv": "AA"}),
    ("short public key", {"x": "AAAA", "pub": "AAAA"}),
])
def test_keys_that_are_not_receipt_keys_are_refused(key, case, edit):
    jwk = {name: value for name, value in {**key.public_jwk(), **edit}.items()
           if value is not None}
    with pytest.raises(ReceiptError):
        verify_receipt(sign_receipt(CLAIMS, key), {"keys": [jwk]})


def test_two_keys_with_one_kid_are_ambiguous():
    key = generate_signing_key(EDDSA, "dup")
    twin = generate_signing_key(EDDSA, "dup")
    with pytest.raises(ReceiptError, match="more than one"):
        verify_receipt(sign_receipt(CLAIMS, key), jwks_of(key, twin))


@pytest.mark.parametrize("case, claims", [
    ("member missing", {k: v for k, v in CLAIMS.to_json().items() if k != "rid"}),
    ("member added", {**CLAIMS.to_json(), "admin": True}),
    ("iat as text", {**CLAIMS.to_json(), "iat": "1700000000"}),
    ("iat as bool", {**CLAIMS.to_json(), "iat": True}),
    ("digest upper case", {**CLAIMS.to_json(), "reply_sha256": "A" * 64}),
    ("digest short", {**CLAIMS.to_json(), "body_sha256": "ab"}),
    ("sub not text", {**CLAIMS.to_json(), "sub": None}),
])
def test_claims_outside_the_claim_set_are_refused(case, claims):
    with pytest.raises(ReceiptError):
        ReceiptClaims.from_json(claims)


@pytest.mark.parametrize("at, tail", [
    (("receipt",), b',"receipt":"R.R.R"}'),
    (("parameters", "receipt"), b',"parameters":{"receipt":"R.R.R"}}'),
])
def test_a_receipt_is_the_replys_last_member(at, tail):
    reply = b'{"model":"digits","outputs":[[0.5,1e-7]]}'
    plaintext = attach_receipt(reply, "R.R.R", at)
    assert plaintext == reply[:-1] + tail
    assert split_reply(plaintext, at) == ("R.R.R", reply)


@pytest.mark.parametrize("case, plaintext", [
    ("not last", b'{"receipt":"R.R.R","outputs":[1]}'),
    ("spaced", b'{"outputs":[1], "receipt":"R.R.R"}'),
    ("missing", b'{"outputs":[1]}'),
    ("not a JWS", b'{"outputs":[1],"receipt":"R"}'),
    ("not JSON", b'{"outputs":'),
])
def test_a_reply_without_a_proper_last_receipt_is_refused(case, plaintext):
    with pytest.raises(ReceiptError):
        split_reply(plaintext, ("receipt",))


def test_ml_dsa_65_receipts_name_the_rfc_9964_algorithm():
    key = generate_signing_key(ML_DSA_65, "pq")
    assert key.public_jwk()["kty"] == "AKP"
    assert json.loads(b64url_decode(sign_receipt(CLAIMS, key).split(".")[0]))["alg"] == "ML-DSA-65"
