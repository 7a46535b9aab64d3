"""Two app instances sharing one store and database behave as two workers (or nodes) must."""

from __future__ import annotations

import uuid

from app import create_app
from tests.conftest import SEALED, Auth, Sealer

ROWS = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}


def test_revocation_on_one_worker_is_seen_by_the_other(two_workers):
    first, second = two_workers
    token = Auth(first).token(f"alice-{uuid.uuid4().hex}")
    headers = {"Authorization": f"Bearer {token}"}
    assert second.test_client().get("/auth/whoami", headers=headers).status_code == 200
    first.test_client().post("/auth/revoke", data={"token": token}, headers=headers)
    response = second.test_client().get("/auth/whoami", headers=headers)
    assert response.status_code == 401
    assert response.json["type"] == "urn:torchgate:problem:token-revoked"


def test_envelope_accepted_by_one_worker_is_a_replay_on_the_other(two_workers):
    first, second = two_workers
    subject = f"alice-{uuid.uuid4().hex}"
    auth = Auth(first)
    sealer = Sealer(*auth.payload_key(subject))
    body = sealer.seal(ROWS)
    headers = auth.headers(subject)
    ok = first.test_client().post("/predict/tiny", data=body, content_type=SEALED,
                                  headers=headers)
    assert ok.status_code == 200
    again = second.test_client().post("/predict/tiny", data=body, content_type=SEALED,
                                      headers=headers)
    assert again.status_code == 400
    assert again.json["type"] == "urn:torchgate:problem:replayed-envelope"


def test_users_created_through_one_worker_sign_in_on_the_other(two_workers):
    first, second = two_workers
    name = f"user-{uuid.uuid4().hex}"
    with first.app_context():
        first.extensions["torchgate"].directory.create_user(name, "a long password", ["viewer"])
    response = second.test_client().post("/auth/token", data={
        "grant_type": "password", "username": name, "password": "a long password"})
    assert response.status_code == 200


def test_unreachable_store_fails_closed_with_503(overrides, auth):
    app = create_app({**overrides, "store_url": "redis://127.0.0.1:1/0"})
    token = Auth(app).token()
    response = app.test_client().get("/auth/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.json["type"] == "urn:torchgate:problem:service-unavailable"
    assert response.headers["Retry-After"]
