"""The audit hook over HTTP: one record per request that reached a view, `audit verify`, 503s."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa
from flask import Flask

from app import create_app
from security.audit import audit_records
from security.audit_verify import RECORD_ALTERED, RECORD_REMOVED, TAIL_REMOVED
from tests.conftest import SEALED

ROWS = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}
RECORD_KEYS = ("subject", "action", "model", "version", "decision", "status")


def audit_rows(app: Flask) -> list[sa.Row]:
    with app.app_context():
        engine = app.extensions["torchgate"].engine
    with engine.connect() as conn:
        return conn.execute(sa.select(audit_records)
                            .order_by(audit_records.c.chain_id, audit_records.c.seq)).all()


def only_record(app: Flask) -> dict:
    (row,) = audit_rows(app)
    return {key: getattr(row, key) for key in RECORD_KEYS}


def verify(app: Flask) -> tuple[int, dict]:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    return result.exit_code, json.loads(result.stdout)


# ---- what one request leaves behind

def test_allowed_predict_is_recorded_with_its_body_hash(app, client, auth, sealer):
    body = sealer.seal(ROWS)
    response = client.post("/predict/tiny", data=body, content_type=SEALED,
                           headers={**auth.headers(), "X-Request-ID": "audit-test-0001"})
    assert response.status_code == 200
    (row,) = audit_rows(app)
    assert {key: getattr(row, key) for key in RECORD_KEYS} == {
        "subject": "alice", "action": "predict.predict", "model": "tiny", "version": "1",
        "decision": "allow", "status": 200}
    assert row.body_sha256 == hashlib.sha256(body).hexdigest()
    assert row.request_id == "audit-test-0001"
    assert row.latency_us > 0


def test_prediction_of_a_named_version_records_it(app, client, auth, sealer):
    response = client.post("/predict/tiny/versions/1", data=sealer.seal(ROWS),
                           content_type=SEALED, headers=auth.headers())
    assert response.status_code == 200
    assert only_record(app)["version"] == "1"


DENIED = [
    # case, path, roles (None: no token), content type, body, status, subject, model
    ("no token", "/predict/tiny", None, SEALED, b"{}", 401, None, "tiny"),
    ("role without permission", "/predict/tiny", ("viewer",), SEALED, b"{}", 403, "alice",
     "tiny"),
    ("unknown model", "/predict/nope", ("analyst",), SEALED, b"{}", 404, "alice", "nope"),
    ("wrong media type", "/predict/tiny", ("analyst",), "text/plain", b"x", 415, "alice",
     "tiny"),
]


@pytest.mark.parametrize(("path", "roles", "content_type", "body", "status", "subject", "model"),
                         [case[1:] for case in DENIED], ids=[case[0] for case in DENIED])
def test_denied_predict_is_recorded(app, client, auth, path, roles, content_type, body, status,
                                    subject, model):
    headers = auth.headers(roles=roles) if roles else {}
    response = client.post(path, data=body, content_type=content_type, headers=headers)
    assert response.status_code == status
    record = only_record(app)
    assert record == {"subject": subject, "action": "predict.predict", "model": model,
                      "version": "1" if status == 415 else None, "decision": "deny",
                      "status": status}
    assert audit_rows(app)[0].body_sha256 is None


def test_invalid_input_is_recorded_with_the_body_hash(app, predict):
    response = predict({"inputs": [[1.0, 2.0]]})
    assert response.status_code == 422
    assert only_record(app)["decision"] == "deny"
    assert audit_rows(app)[0].body_sha256 is not None


@pytest.mark.parametrize(("method", "path", "data", "status", "action"), [
    ("post", "/auth/token", {"grant_type": "nonsense"}, 400, "auth.token"),
    ("get", "/auth/whoami", None, 401, "auth.whoami"),
    ("get", "/models", None, 401, "predict.list_models"),
], ids=["token endpoint", "whoami", "models"])
def test_auth_and_catalogue_requests_are_recorded(app, client, method, path, data, status,
                                                  action):
    response = getattr(client, method)(path, data=data)
    assert response.status_code == status
    assert only_record(app) == {"subject": None, "action": action, "model": None,
                                "version": None, "decision": "deny", "status": status}


def test_open_inference_protocol_call_is_recorded(app, client):
    assert client.post("/v2/models/tiny/infer", json={}).status_code == 401
    assert only_record(app) == {"subject": None, "action": "oip.infer", "model": "tiny",
                                "version": None, "decision": "deny", "status": 401}


def test_whoami_records_the_subject(app, client, auth):
    assert client.get("/auth/whoami", headers=auth.headers("bob")).status_code == 200
    assert only_record(app)["subject"] == "bob"


@pytest.fixture
def lockout_app(overrides) -> Flask:
    return create_app({**overrides, "login_max_failures": 1})


def test_rate_limited_login_is_recorded(lockout_app):
    client = lockout_app.test_client()
    attempt = {"grant_type": "password", "username": "mallory", "password": "a wrong guess"}
    client.post("/auth/token", data=attempt)
    response = client.post("/auth/token", data=attempt)
    assert response.status_code == 429
    assert [r.status for r in audit_rows(lockout_app)] == [400, 429]


# ---- what is not audited

@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json",
                                  "/v2/health/live", "/v2/health/ready"])
def test_probes_are_not_recorded(app, client, path):
    client.get(path)
    assert audit_rows(app) == []


@pytest.mark.parametrize(("method", "path", "status"), [
    ("get", "/no/such/route", 404),
    ("get", "/predict/tiny", 405),
    ("options", "/predict/tiny", 200),
], ids=["unknown route", "wrong method", "automatic OPTIONS"])
def test_requests_that_reach_no_view_are_not_recorded(app, client, method, path, status):
    assert getattr(client, method)(path).status_code == status
    assert audit_rows(app) == []


# ---- audit verify

def test_verify_reports_an_intact_trail(app, client, auth):
    for _ in range(3):
        client.get("/auth/whoami", headers=auth.headers())
    assert verify(app) == (0, {"intact": True, "chains": 1, "records": 3})


def test_verify_of_an_empty_trail_is_intact(app):
    assert verify(app) == (0, {"intact": True, "chains": 0, "records": 0})


@pytest.mark.parametrize(("statement", "seq", "reason"), [
    ("UPDATE audit_records SET status = 200 WHERE seq = 1", 1, RECORD_ALTERED),
    ("DELETE FROM audit_records WHERE seq = 1", 1, RECORD_REMOVED),
    ("DELETE FROM audit_records WHERE seq = 2", 2, TAIL_REMOVED),
], ids=["edited", "middle removed", "last removed"])
def test_verify_reports_the_first_broken_record(app, client, statement, seq, reason):
    for _ in range(3):
        client.get("/auth/whoami")
    with app.app_context(), app.extensions["torchgate"].engine.begin() as conn:
        conn.exec_driver_sql(statement)
    chain = audit_rows(app)[0].chain_id
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"intact": False, "chain": chain, "seq": seq,
                                         "reason": reason}
    assert reason in result.stderr
