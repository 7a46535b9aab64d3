"""HPKE envelopes through real requests: JWKS, pyca-sealed calls, refusals, modes, rotation, CLI."""

from __future__ import annotations

import json
import time

import pytest

from app import create_app
from app.gateway import current_gateway
from config import ConfigError
from tests.conftest import Auth, Sealer
from tests.security import hpke_reference as ref

JOSE = "application/jose+json"
ROW = [[0.1, 0.2, 0.3, 0.4]]
XWING, X25519 = "HPKE-XWING-SHA256-A256GCM", "HPKE-3"


def published(client, alg: str) -> dict:
    return next(k for k in client.get("/.well-known/jwks.json").json["keys"] if k["alg"] == alg)


def request_header(jwk: dict, token: str, **changes) -> dict:
    header = {"alg": jwk["alg"], "kid": jwk["kid"], "iat": int(time.time()),
              "ath": ref.ath(token), **changes}
    return {k: v for k, v in header.items() if v is not None}


def post(client, token: str, body: bytes, path: str = "/predict/tiny"):
    return client.post(path, data=body, content_type=JOSE,
                       headers={"Authorization": f"Bearer {token}"})


def assert_problem(response, status: int, slug: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == f"urn:torchgate:problem:{slug}"


def test_jwks_needs_no_token_and_may_be_cached(client):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.mimetype == "application/jwk-set+json"
    assert response.headers["Cache-Control"] == "public, max-age=300"
    keys = response.json["keys"]
    assert [(k["use"], k["alg"], k["kty"]) for k in keys] == [
        ("enc", XWING, "AKP"), ("enc", X25519, "OKP"), ("sig", "EdDSA", "OKP")]
    assert all(set(k) <= {"kty", "kid", "use", "alg", "crv", "x", "pub", "exp"} for k in keys)


def test_jwks_max_age_is_a_setting(overrides):
    client = create_app({**overrides, "jwks_max_age": 60}).test_client()
    assert client.get("/.well-known/jwks.json").headers["Cache-Control"] == "public, max-age=60"


@pytest.mark.parametrize("alg", [XWING, X25519])
def test_a_pyca_sealed_request_is_answered_with_a_reply_only_its_sender_opens(
        client, auth, sealer, alg):
    token = auth.token()
    body, reply_key = ref.seal_request(json.dumps({"inputs": ROW}).encode(),
                                       published(client, alg), request_header(
                                           published(client, alg), token))
    response = post(client, token, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == JOSE
    reply = ref.open_reply(response.data, reply_key, body)
    dir_reply = sealer.open(post(client, token, sealer.seal({"inputs": ROW})).data)
    assert (reply["model"], reply["outputs"]) == ("tiny", dir_reply["outputs"])
    assert reply["request_id"] == response.headers["X-Request-ID"]


def tampered(body: bytes) -> bytes:
    members = json.loads(body)
    raw = bytearray(ref.unb64(members["ciphertext"]))
    raw[0] ^= 1
    return json.dumps({**members, "ciphertext": ref.b64(bytes(raw))}).encode()


REFUSALS = [  # (case, header changes, body edit, status, slug)
    ("tampered", {}, tampered, 400, "invalid-envelope"),
    ("unknown kid", {"kid": "gk_enc_unknown"}, None, 403, "key-not-allowed"),
    ("foreign token binding", {"ath": ref.ath("a.different.token")}, None, 400,
     "invalid-envelope"),
    ("stale", {"iat": int(time.time()) - 3600}, None, 400, "stale-envelope"),
]


@pytest.mark.parametrize(("case", "changes", "edit", "status", "slug"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
@pytest.mark.parametrize("alg", [XWING, X25519])
def test_refusals(client, auth, alg, case, changes, edit, status, slug):
    token, jwk = auth.token(), published(client, alg)
    body, _ = ref.seal_request(b'{"inputs": [[0.1, 0.2, 0.3, 0.4]]}', jwk,
                               request_header(jwk, token, **changes))
    assert_problem(post(client, token, edit(body) if edit else body), status, slug)


def test_a_signing_key_cannot_be_sealed_to(client, auth):
    token, jwk = auth.token(), published(client, X25519)
    signing_kid = published(client, "EdDSA")["kid"]
    body, _ = ref.seal_request(b"{}", jwk, request_header(jwk, token, kid=signing_kid))
    assert_problem(post(client, token, body), 403, "key-not-allowed")


def test_a_token_of_the_same_caller_cannot_carry_anothers_envelope(client, auth):
    first, second = auth.token(), auth.token()
    jwk = published(client, XWING)
    body, _ = ref.seal_request(b'{"inputs": [[0.1, 0.2, 0.3, 0.4]]}', jwk,
                               request_header(jwk, first))
    assert_problem(post(client, second, body), 400, "invalid-envelope")
    assert post(client, first, body).status_code == 200


def test_the_same_encapsulated_key_twice_is_a_replay(client, auth):
    token, jwk = auth.token(), published(client, XWING)
    body, _ = ref.seal_request(b'{"inputs": [[0.1, 0.2, 0.3, 0.4]]}', jwk,
                               request_header(jwk, token))
    assert post(client, token, body).status_code == 200
    assert_problem(post(client, token, body), 400, "replayed-envelope")


def test_a_reply_posted_back_as_a_request_is_refused(client, auth):
    token, jwk = auth.token(), published(client, X25519)
    body, _ = ref.seal_request(b'{"inputs": [[0.1, 0.2, 0.3, 0.4]]}', jwk,
                               request_header(jwk, token))
    reply = post(client, token, body).data
    assert_problem(post(client, token, reply), 400, "invalid-envelope")


@pytest.mark.parametrize(("modes", "hpke_status", "dir_status"), [
    ("dir,hpke", 200, 200), ("hpke", 200, 400), ("dir", 400, 200)])
def test_envelope_modes_choose_what_is_accepted(overrides, modes, hpke_status, dir_status):
    app = create_app({**overrides, "envelope_modes": modes})
    client = app.test_client()
    auth = Auth(app)
    token, jwk = auth.token(), published(client, XWING)
    body, _ = ref.seal_request(b'{"inputs": [[0.1, 0.2, 0.3, 0.4]]}', jwk,
                               request_header(jwk, token))
    assert post(client, token, body).status_code == hpke_status
    dir_body = Sealer(*auth.payload_key()).seal({"inputs": ROW})
    response = post(client, token, dir_body)
    assert response.status_code == dir_status
    if dir_status == 400:
        assert_problem(response, 400, "invalid-envelope")


@pytest.mark.parametrize("value", ["", "dir,jwe", "HPKE"])
def test_a_bad_envelope_modes_setting_stops_start_up(overrides, value):
    with pytest.raises(ConfigError, match="ENVELOPE_MODES"):
        create_app({**overrides, "envelope_modes": value})


@pytest.mark.parametrize(("overlap", "old_key_status"), [(3600, 200), (0, 403)])
def test_a_rotated_key_opens_requests_for_the_overlap(overrides, overlap, old_key_status):
    app = create_app({**overrides, "gateway_key_overlap": overlap})
    client = app.test_client()
    token, old = Auth(app).token(), published(client, XWING)
    with app.app_context():
        new = current_gateway().gateway_keys.rotate("enc")
    assert published(client, XWING)["kid"] == new.kid
    body, _ = ref.seal_request(b'{"inputs": [[0.1, 0.2, 0.3, 0.4]]}', old,
                               request_header(old, token))
    assert post(client, token, body).status_code == old_key_status


def test_gateway_keys_cli(app, client):
    cli = app.test_cli_runner()
    made = json.loads(cli.invoke(args=["gateway-keys", "generate", "--use", "sig", "--alg",
                                       "ML-DSA-65"]).output)
    assert (made["use"], made["alg"], made["retired_at"]) == ("sig", "ML-DSA-65", None)
    old = published(client, XWING)["kid"]
    rotated = json.loads(cli.invoke(args=["gateway-keys", "rotate", "--use", "enc"]).output)
    listed = {k["kid"]: k for k in json.loads(
        cli.invoke(args=["gateway-keys", "list"]).output)["keys"]}
    assert listed[old]["retired_at"] is not None and listed[old]["not_after"] is not None
    assert listed[rotated["kid"]]["alg"] == XWING
    assert not any("seed" in k or "private" in k for k in listed.values())
    wrong = cli.invoke(args=["gateway-keys", "generate", "--use", "enc", "--alg", "EdDSA"])
    assert wrong.exit_code == 1 and "unknown enc algorithm" in wrong.output


def test_an_envelope_opened_by_one_worker_is_a_replay_on_the_other(two_workers):
    first, second = two_workers
    token = Auth(first).token()
    jwk = published(first.test_client(), XWING)
    body, _ = ref.seal_request(b'{"inputs": [[0.1, 0.2, 0.3, 0.4]]}', jwk,
                               request_header(jwk, token))
    assert post(first.test_client(), token, body).status_code == 200
    assert_problem(post(second.test_client(), token, body), 400, "replayed-envelope")


def test_a_key_rotated_on_one_worker_opens_on_the_other_at_once(two_workers):
    first, second = two_workers
    published(second.test_client(), XWING)  # the second worker has cached the key set
    with first.app_context():
        rotated = current_gateway().gateway_keys.rotate("enc").public_jwk()
    token = Auth(second).token()
    body, _ = ref.seal_request(b'{"inputs": [[0.1, 0.2, 0.3, 0.4]]}', rotated,
                               request_header(rotated, token))
    assert post(second.test_client(), token, body).status_code == 200
