"""The dataplane's admission over HTTP: revocation and rate limits answer before later refusals,
a token verified once is still checked for revocation on every call."""

from __future__ import annotations

import time

import pytest
from flask import Flask

from app import create_app
from tests.conftest import SEALED, Auth, Sealer

ROWS = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}


def revoke(app: Flask, auth: Auth, token: str) -> None:
    response = app.test_client().post("/auth/revoke", data={"token": token},
                                      headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def post(app: Flask, token: str, body: bytes, path: str = "/predict/tiny"):
    return app.test_client().post(path, data=body, content_type=SEALED,
                                  headers={"Authorization": f"Bearer {token}"})


def test_a_cached_token_is_refused_on_the_call_after_its_revocation(app, auth, sealer):
    token = auth.token()
    assert post(app, token, sealer.seal(ROWS)).status_code == 200  # verified and cached
    revoke(app, auth, token)
    response = post(app, token, sealer.seal(ROWS))
    assert (response.status_code, response.json["type"]) == (
        401, "urn:torchgate:problem:token-revoked")


@pytest.mark.parametrize(("case", "path", "body"), [
    ("unknown model", "/predict/nope", None),
    ("unknown version", "/predict/tiny/versions/9", None),
    ("garbage envelope", "/predict/tiny", b"{}"),
])
def test_a_revoked_token_answers_401_before_any_later_refusal(app, auth, sealer, case, path,
                                                              body):
    token = auth.token()
    revoke(app, auth, token)
    response = post(app, token, body or sealer.seal(ROWS), path)
    assert (response.status_code, response.json["type"]) == (
        401, "urn:torchgate:problem:token-revoked"), case


def test_a_revoked_token_without_the_permission_is_401(app, auth, sealer):
    token = auth.token(roles=("viewer",))
    revoke(app, auth, token)
    assert post(app, token, sealer.seal(ROWS)).status_code == 401


def limited(overrides: dict, rate: str) -> tuple[Flask, str, Sealer]:
    """An app with RATE_LIMIT_PREDICT=rate, a caller's token and sealer."""
    app = create_app({**overrides, "rate_limit_predict": rate})
    auth = Auth(app)
    return app, auth.token(), Sealer(*auth.payload_key())


def test_a_spent_budget_answers_429_before_a_bad_envelope(overrides):
    app, token, sealer = limited(overrides, "1/minute")
    assert post(app, token, b"{}").status_code == 400  # counted, then refused
    response = post(app, token, b"{}")
    assert (response.status_code, response.json["type"]) == (
        429, "urn:torchgate:problem:rate-limited")
    assert post(app, token, sealer.seal(ROWS)).status_code == 429


def test_a_request_refused_for_its_rate_limit_can_be_sent_again(overrides):
    app, token, sealer = limited(overrides, "1/second")
    assert post(app, token, sealer.seal(ROWS)).status_code == 200
    envelope = sealer.seal(ROWS)
    assert post(app, token, envelope).status_code == 429
    for _ in range(30):  # the next one-second window; the envelope was never claimed
        response = post(app, token, envelope)
        if response.status_code != 429:
            break
        time.sleep(0.1)
    assert response.status_code == 200


def test_a_replayed_envelope_is_refused_even_with_a_cached_token(predict, client, auth, sealer):
    envelope = sealer.seal(ROWS)
    headers = auth.headers()
    assert client.post("/predict/tiny", data=envelope, content_type=SEALED,
                       headers=headers).status_code == 200
    response = client.post("/predict/tiny", data=envelope, content_type=SEALED, headers=headers)
    assert (response.status_code, response.json["type"]) == (
        400, "urn:torchgate:problem:replayed-envelope")


@pytest.mark.parametrize(("case", "roles", "path", "status"), [
    ("no permission", ("viewer",), "/predict/tiny", 403),
    ("unknown model", ("analyst",), "/predict/nope", 404),
])
def test_a_declared_oversized_body_is_413_only_after_the_earlier_checks(overrides, case, roles,
                                                                         path, status):
    app = create_app({**overrides, "max_body_bytes": 64})
    token = Auth(app).token(roles=roles)
    response = post(app, token, b"{" + b" " * 200 + b"}", path)
    assert response.status_code == status, case
