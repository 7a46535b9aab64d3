"""The envelope checks of /predict, end to end: one generic answer for every crypto failure."""

from __future__ import annotations

import json
import time

import pytest

from errors import InvalidEnvelope
from security.encoding import b64url_decode, b64url_encode
from tests.conftest import SEALED

ROWS = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}


def post(client, auth, body: bytes, sub: str = "alice"):
    return client.post("/predict/tiny", data=body, content_type=SEALED,
                       headers=auth.headers(sub))


def edit(body: bytes, member: str, change) -> bytes:
    envelope = json.loads(body)
    envelope[member] = change(envelope[member])
    return json.dumps(envelope).encode()


def flip_first_byte(text: str) -> str:
    raw = bytearray(b64url_decode(text))
    raw[0] ^= 1
    return b64url_encode(bytes(raw))


def edit_header(text: str, **changes) -> str:
    header = json.loads(b64url_decode(text))
    header.update(changes)
    return b64url_encode(json.dumps(header).encode())


@pytest.mark.parametrize(("case", "mutate"), [
    ("edited tag", lambda b: edit(b, "tag", flip_first_byte)),
    ("edited ciphertext", lambda b: edit(b, "ciphertext", flip_first_byte)),
    ("edited iv", lambda b: edit(b, "iv", flip_first_byte)),
    ("edited header", lambda b: edit(b, "protected", lambda p: edit_header(p, cty="x"))),
    ("zip", lambda b: edit(b, "protected", lambda p: edit_header(p, zip="DEF"))),
    ("other alg", lambda b: edit(b, "protected", lambda p: edit_header(p, alg="A256KW"))),
    ("other enc", lambda b: edit(b, "protected", lambda p: edit_header(p, enc="A128GCM"))),
    ("crit", lambda b: edit(b, "protected", lambda p: edit_header(p, crit=["exp"]))),
    ("not JSON", lambda b: b"\x00garbage"),
])
def test_broken_envelope_gets_one_generic_answer(client, auth, sealer, case, mutate):
    response = post(client, auth, mutate(sealer.seal(ROWS)))
    assert response.status_code == 400
    assert response.json["type"] == "urn:torchgate:problem:invalid-envelope"
    assert response.json["detail"] == InvalidEnvelope.GENERIC


def test_wrong_key_is_invalid_envelope(client, auth, sealer):
    from tests.conftest import Sealer
    forged = Sealer(sealer.kid, bytes(32)).seal(ROWS)
    response = post(client, auth, forged)
    assert response.status_code == 400
    assert response.json["detail"] == InvalidEnvelope.GENERIC


@pytest.mark.parametrize("case", ["unknown kid", "another subject's key", "revoked key"])
def test_key_not_allowed_has_one_detail(app, client, auth, sealer, case):
    from tests.conftest import Sealer
    if case == "unknown kid":
        body = Sealer("pk_unknown", sealer.key).seal(ROWS)
    elif case == "another subject's key":
        body = Sealer(*auth.payload_key("mallory")).seal(ROWS)
    else:
        kid, key = auth.payload_key("alice")
        with app.app_context():
            app.extensions["torchgate"].keyring.revoke(kid)
        body = Sealer(kid, key).seal(ROWS)
    response = post(client, auth, body)
    assert response.status_code == 403
    assert response.json["type"] == "urn:torchgate:problem:key-not-allowed"
    assert response.json["detail"] == "The payload key is not usable by this caller."


@pytest.mark.parametrize("skew", [-400, 400])
def test_stale_envelope_is_refused(client, auth, sealer, skew):
    response = post(client, auth, sealer.seal(ROWS, now=time.time() + skew))
    assert response.status_code == 400
    assert response.json["type"] == "urn:torchgate:problem:stale-envelope"


def test_replayed_envelope_is_refused(client, auth, sealer):
    body = sealer.seal(ROWS)
    assert post(client, auth, body).status_code == 200
    again = post(client, auth, body)
    assert again.status_code == 400
    assert again.json["type"] == "urn:torchgate:problem:replayed-envelope"


def test_reply_is_sealed_with_a_fresh_iv(client, auth, sealer):
    body = sealer.seal(ROWS)
    reply = json.loads(post(client, auth, body).data)
    assert reply["iv"] != json.loads(body)["iv"]
    assert json.loads(b64url_decode(reply["protected"]))["kid"] == sealer.kid


def test_a_sealed_reply_posted_back_as_a_request_is_invalid_envelope(client, auth, sealer,
                                                                      predict):
    request = sealer.seal({"inputs": [[0.1, 0.2, 0.3, 0.4]]})
    reply = client.post("/predict/tiny", data=request, content_type=SEALED,
                        headers=auth.headers())
    assert reply.status_code == 200
    assert sealer.open(reply.data, request=request)["model"] == "tiny"
    back = client.post("/predict/tiny", data=reply.data, content_type=SEALED,
                       headers=auth.headers())
    assert back.status_code == 400
    assert back.json["type"] == "urn:torchgate:problem:invalid-envelope"
    with pytest.raises(InvalidEnvelope):  # and it answers no other request
        sealer.open(reply.data, request=sealer.seal({"inputs": [[0.1, 0.2, 0.3, 0.4]]}))
