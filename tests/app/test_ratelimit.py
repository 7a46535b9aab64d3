"""Rate limits: per subject on model calls, per address on /auth/token, shared by every worker."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from app import create_app
from config import ConfigError
from tests.conftest import SEALED, Auth, Sealer, env_url

ROWS = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}
OTHER_ADDRESS = {"REMOTE_ADDR": "10.0.0.9"}
REPO = Path(__file__).resolve().parents[2]


def limited_app(overrides, **settings):
    return create_app({**overrides, **settings})


def predict(app, subject: str = "alice", path: str = "/predict/tiny"):
    auth = Auth(app)
    body = Sealer(*auth.payload_key(subject)).seal(ROWS)
    return app.test_client().post(path, data=body, content_type=SEALED,
                                  headers=auth.headers(subject))


def token_request(client, **kwargs):
    return client.post("/auth/token", data={"grant_type": "authorization_code"}, **kwargs)


def assert_rate_limited(response, window: int) -> None:
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "urn:torchgate:problem:rate-limited"
    retry_after = int(response.headers["Retry-After"])
    assert window - 5 <= retry_after <= window
    assert response.json["detail"].endswith(f"retry after {retry_after} seconds.")


def test_the_call_after_the_limit_gets_429_with_retry_after(overrides):
    app = limited_app(overrides, rate_limit_predict="3/hour")
    assert [predict(app).status_code for _ in range(3)] == [200, 200, 200]
    response = predict(app)
    assert_rate_limited(response, 3600)
    assert response.json["detail"].startswith("Rate limit of 3 per 1 hour exceeded")


def test_subjects_have_their_own_budgets(overrides):
    app = limited_app(overrides, rate_limit_predict="1/minute")
    assert predict(app, "alice").status_code == 200
    assert predict(app, "alice").status_code == 429
    response = predict(app, "bob")
    assert response.status_code == 200
    assert response.mimetype == SEALED


@pytest.mark.parametrize(("case", "roles", "status"), [
    ("no token", None, 401),
    ("no permission", ("viewer",), 403),
])
def test_refused_callers_do_not_spend_the_budget(overrides, case, roles, status):
    app = limited_app(overrides, rate_limit_predict="1/minute")
    headers = {} if roles is None else Auth(app).headers("alice", roles)
    client = app.test_client()
    for _ in range(3):
        refused = client.post("/predict/tiny", headers=headers)
        assert refused.status_code == status
        assert refused.json["status"] == status
    assert predict(app).status_code == 200


def test_model_calls_on_every_route_share_one_budget(overrides):
    app = limited_app(overrides, rate_limit_predict="2/minute")
    headers = Auth(app).headers("alice")
    assert predict(app, path="/predict/tiny/versions/1").status_code == 200
    infer = app.test_client().post("/v2/models/tiny/infer", headers=headers)
    assert infer.status_code == 415
    assert_rate_limited(predict(app), 60)


def test_token_endpoint_is_limited_per_address(overrides):
    client = limited_app(overrides, rate_limit_token="2/minute").test_client()
    assert [token_request(client).status_code for _ in range(2)] == [400, 400]
    assert_rate_limited(token_request(client), 60)
    other = token_request(client, environ_base=OTHER_ADDRESS)
    assert other.status_code == 400
    assert other.json["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(("rate", "second_status"), [("1/minute", 429), ("", 200)])
def test_an_empty_rate_switches_the_limit_off(overrides, rate, second_status):
    app = limited_app(overrides, rate_limit_predict=rate)
    assert predict(app).status_code == 200
    response = predict(app)
    assert response.status_code == second_status
    assert ("Retry-After" in response.headers) == (second_status == 429)


@pytest.mark.parametrize(("setting", "value"), [
    ("rate_limit_predict", "lots"),
    ("rate_limit_token", "10 per fortnight"),
])
def test_a_malformed_rate_stops_start_up_naming_the_setting(overrides, setting, value):
    with pytest.raises(ConfigError) as raised:
        create_app({**overrides, setting: value})
    assert str(raised.value).startswith(f"TORCHGATE_{setting.upper()}: not a rate limit")


def store_url(kind: str) -> str:
    return "sqlite" if kind == "sqlite" else env_url("TORCHGATE_TEST_REDIS_URL")


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_two_workers_share_one_budget(overrides, kind):
    shared = {**overrides, "store_url": store_url(kind), "rate_limit_predict": "3/minute"}
    first, second = create_app(shared), create_app(shared)
    subject = f"alice-{uuid.uuid4().hex}"
    assert [predict(first, subject).status_code for _ in range(2)] == [200, 200]
    assert predict(second, subject).status_code == 200
    assert_rate_limited(predict(second, subject), 60)
    assert predict(first, subject).status_code == 429


def test_an_unreachable_limit_store_falls_back_to_per_worker_limits(overrides, caplog):
    app = limited_app(overrides, store_url="redis://127.0.0.1:1/0", rate_limit_token="2/minute")
    client = app.test_client()
    assert [token_request(client).status_code for _ in range(2)] == [400, 400]
    assert_rate_limited(token_request(client), 60)
    assert "falling back to in-memory storage" in caplog.text
