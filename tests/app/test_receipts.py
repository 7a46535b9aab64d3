"""Receipts through real requests: every successful reply carries one, its digests are the ones
a caller computes on its own, and a third party's JOSE library verifies it."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws
from safetensors.torch import save

from app import create_app
from app.gateway import current_gateway
from config import ConfigError
from security.encoding import b64url_decode
from security.envelope import open_envelope, request_digest
from security.receipts import RECEIPT_TYPE, ReceiptClaims, verify_receipt
from tests.conftest import SEALED, Auth, Sealer
from tests.fixtures import tiny_mlp

PAYLOAD = {"inputs": [[0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4]]}
OIP_PAYLOAD = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                           "data": [0.1, 0.2, 0.3, 0.4]}]}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def opened_plaintext(sealer: Sealer, body: bytes) -> bytes:
    """The reply plaintext exactly as sealed, bytes and all."""
    return open_envelope(body, key_for=lambda kid: sealer.key, now=time.time(), max_age=300,
                         reply_to=request_digest(sealer.sent[-1])).plaintext


def call(client, auth: Auth, sealer: Sealer, path: str, payload: dict) -> tuple[bytes, bytes]:
    """(request plaintext, reply plaintext) of one sealed call that must succeed."""
    plaintext = json.dumps(payload).encode()
    response = client.post(path, data=sealer.seal(plaintext), content_type=SEALED,
                           headers={**auth.headers(), "X-Request-ID": "receipt-test-1"})
    assert response.status_code == 200, response.get_json()
    return plaintext, opened_plaintext(sealer, response.data)


def jwks(app) -> dict:
    with app.app_context():
        return {"keys": current_gateway().receipt_keys.public_jwks()}


def signing_key(app, receipt: str) -> dict:
    """The published key the receipt's header names (there may be others: retired keys)."""
    kid = json.loads(b64url_decode(receipt.split(".")[0]))["kid"]
    (key,) = [key for key in jwks(app)["keys"] if key["kid"] == kid]
    return key


def test_a_predict_reply_carries_a_receipt_over_what_was_asked_and_answered(
        app, client, auth, sealer):
    before = int(time.time())
    request, reply = call(client, auth, sealer, "/predict/tiny", PAYLOAD)
    body = json.loads(reply)
    assert list(body) == ["model", "version", "outputs", "labels", "request_id",
                          "receipt"]
    tail = f',"receipt":"{body["receipt"]}"}}'.encode()
    assert reply.endswith(tail)
    claims = verify_receipt(body["receipt"], jwks(app))
    assert claims == ReceiptClaims(
        iss="torchgate", iat=claims.iat, rid="receipt-test-1", sub="alice", model="tiny",
        version="1", weights_sha256=sha256(save(tiny_mlp().state_dict())),
        request_sha256=sha256(request), body_sha256=sha256(sealer.sent[-1]),
        reply_sha256=sha256(reply[:-len(tail)] + b"}"))
    assert before <= claims.iat <= time.time()


def test_an_oip_reply_carries_it_in_parameters(app, client, auth, sealer):
    request, reply = call(client, auth, sealer, "/v2/models/tiny/infer", OIP_PAYLOAD)
    body = json.loads(reply)
    receipt = body["parameters"]["receipt"]
    assert set(body["parameters"]) == {"receipt"}
    tail = f',"parameters":{{"receipt":"{receipt}"}}}}'.encode()
    assert reply.endswith(tail)
    claims = verify_receipt(receipt, jwks(app))
    assert (claims.model, claims.version, claims.request_sha256, claims.reply_sha256) == (
        "tiny", "1", sha256(request), sha256(reply[:-len(tail)] + b"}"))


def test_jwcrypto_verifies_an_eddsa_receipt_of_a_real_reply(app, client, auth, sealer):
    _, reply = call(client, auth, sealer, "/predict/tiny", PAYLOAD)
    receipt = json.loads(reply)["receipt"]
    key = signing_key(app, receipt)
    token = jwcrypto_jws.JWS()
    token.deserialize(receipt)
    token.verify(jwcrypto_jwk.JWK(**key), alg="EdDSA")
    assert token.jose_header == {"alg": "EdDSA", "kid": key["kid"], "typ": RECEIPT_TYPE}
    assert json.loads(token.payload)["sub"] == "alice"


def test_ml_dsa_65_is_an_option(overrides):
    app = create_app({**overrides, "receipt_algorithm": "ML-DSA-65"})
    auth = Auth(app)
    sealer = Sealer(*auth.payload_key("alice"))
    _, reply = call(app.test_client(), auth, sealer, "/predict/tiny", PAYLOAD)
    receipt = json.loads(reply)["receipt"]
    assert json.loads(b64url_decode(receipt.split(".")[0]))["alg"] == "ML-DSA-65"
    key = signing_key(app, receipt)
    assert (key["kty"], key["alg"], key["use"]) == ("AKP", "ML-DSA-65", "sig")
    assert verify_receipt(receipt, {"keys": [key]}).sub == "alice"


def test_a_plain_json_call_gets_a_receipt_too(overrides):
    app = create_app({**overrides, "payload_encryption": "optional"})
    plaintext = json.dumps(PAYLOAD).encode()
    response = app.test_client().post("/predict/tiny", data=plaintext,
                                      content_type="application/json",
                                      headers=Auth(app).headers())
    assert response.status_code == 200
    claims = verify_receipt(response.get_json()["receipt"], jwks(app))
    assert claims.request_sha256 == claims.body_sha256 == sha256(plaintext)


@pytest.mark.parametrize("case, payload, status", [
    ("invalid input", {"inputs": [[1, 2]]}, 422),
    ("not JSON", b"{", 400),
])
def test_a_refused_call_has_no_receipt(client, auth, sealer, case, payload, status):
    response = client.post("/predict/tiny", data=sealer.seal(payload), content_type=SEALED,
                           headers=auth.headers())
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert "receipt" not in response.get_json()


def test_an_unknown_receipt_algorithm_stops_start_up(overrides):
    with pytest.raises(ConfigError, match="RECEIPT_ALGORITHM"):
        create_app({**overrides, "receipt_algorithm": "HS256"})
