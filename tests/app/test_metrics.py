"""/metrics in one process: counts after real requests, auth failures, model gauges."""

from __future__ import annotations

import time

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.metrics import EXTENSION
from tests.conftest import SEALED, Auth, Sealer, write_tiny_model

ROWS = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}
Samples = dict[tuple[str, frozenset], float]


def scrape(client, **headers) -> Samples:
    """Every sample of GET /metrics, keyed by (sample name, labels)."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    return parse(response.get_data(as_text=True))


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_total(samples: Samples, route: str, status: int, method: str = "GET") -> float:
    return value(samples, "torchgate_http_requests_total", method=method, route=route,
                 status=str(status))


@pytest.mark.parametrize(("accept", "content_type"), [
    (None, "text/plain; version=0.0.4; charset=utf-8"),
    ("application/openmetrics-text; version=1.0.0",
     "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"),
])
def test_metrics_needs_no_token_and_speaks_prometheus_text(client, accept, content_type):
    response = client.get("/metrics", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert "# TYPE torchgate_http_requests_in_flight gauge" in response.get_data(as_text=True)


@pytest.mark.parametrize(("method", "path", "route", "status"), [
    ("GET", "/healthz", "/healthz", 200),
    ("GET", "/no/such/path", "unmatched", 404),
    ("POST", "/predict/tiny", "/predict/<name>", 401),
    ("POST", "/predict/tiny/versions/1", "/predict/<name>/versions/<version>", 401),
    ("DELETE", "/healthz", "unmatched", 405),  # no rule matched the method
    ("BREW", "/healthz", "unmatched", 405),
])
def test_requests_are_counted_by_route_template_and_status(client, method, path, route, status):
    response = client.open(path, method=method)
    assert response.status_code == status
    samples = scrape(client)
    counted = "other" if method == "BREW" else method
    assert requests_total(samples, route, status, counted) == 1
    assert path == route or path not in {dict(labels).get("route") for _, labels in samples}


def test_predict_latency_is_observed_per_model_and_version(client, predict):
    assert predict(ROWS).status_code == 200
    assert predict(ROWS, path="/predict/tiny/versions/1").status_code == 200
    samples = scrape(client)
    assert value(samples, "torchgate_predict_latency_seconds_count", model="tiny",
                 version="1") == 2
    assert 0 < value(samples, "torchgate_predict_latency_seconds_sum", model="tiny",
                     version="1") < 10
    assert requests_total(samples, "/predict/<name>", 200, "POST") == 1


def test_refused_model_calls_are_not_latency_samples(client, predict):
    response = predict({"inputs": [[1, 2]]})
    assert response.status_code == 422
    samples = scrape(client)
    assert value(samples, "torchgate_predict_latency_seconds_count", model="tiny",
                 version="1") == 0
    assert requests_total(samples, "/predict/<name>", 422, "POST") == 1


def _expired(app, overrides, client, auth):
    now = int(time.time())
    token = jwt.encode({"sub": "alice", "roles": ["analyst"], "jti": "j-exp", "type": "access",
                        "iss": "torchgate", "aud": "torchgate", "iat": now - 900,
                        "nbf": now - 900, "exp": now - 60}, overrides["jwt_secret"], "HS256")
    return client.get("/auth/whoami", headers={"Authorization": f"Bearer {token}"})


def _revoked(app, overrides, client, auth):
    headers = auth.headers()
    client.post("/auth/revoke", data={"token": headers["Authorization"][7:]}, headers=headers)
    return client.get("/auth/whoami", headers=headers)


def _someone_elses_key(app, overrides, client, auth):
    body = Sealer(*auth.payload_key("mallory")).seal(ROWS)
    return client.post("/predict/tiny", data=body, content_type=SEALED, headers=auth.headers())


def _rate_limited(app, overrides, client, auth):
    headers = auth.headers()
    client.post("/predict/tiny", headers=headers)
    return client.post("/predict/tiny", headers=headers)


AUTH_FAILURES = {
    "no token": (lambda app, o, client, auth: client.get("/auth/whoami"), 401, "unauthorized"),
    "expired token": (_expired, 401, "token-expired"),
    "revoked token": (_revoked, 401, "token-revoked"),
    "no permission": (lambda app, o, client, auth: client.post(
        "/predict/tiny", headers=auth.headers(roles=("viewer",))), 403, "forbidden"),
    "someone else's key": (_someone_elses_key, 403, "key-not-allowed"),
    "rate limited": (_rate_limited, 429, "rate-limited"),
    "wrong password": (lambda app, o, client, auth: client.post("/auth/token", data={
        "grant_type": "password", "username": "nobody", "password": "x"}), 400, "invalid_grant"),
    "unknown client": (lambda app, o, client, auth: client.post("/auth/token", data={
        "grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}),
        401, "invalid_client"),
}


@pytest.mark.parametrize("case", AUTH_FAILURES)
def test_auth_failures_are_counted_by_reason(overrides, case):
    app = create_app({**overrides, "rate_limit_predict": "1/minute"})
    client, auth = app.test_client(), Auth(app)
    make, status, reason = AUTH_FAILURES[case]
    response = make(app, overrides, client, auth)
    assert response.status_code == status
    assert reason in (response.json.get("type", "").rpartition(":")[2], response.json.get("error"))
    samples = scrape(client)
    assert value(samples, "torchgate_auth_failures_total", reason=reason) == 1
    assert sum(v for (name, _), v in samples.items()
               if name == "torchgate_auth_failures_total") == 1


def test_answers_that_are_not_auth_failures_are_not_counted(client):
    response = client.post("/auth/token", data={"grant_type": "authorization_code"})
    assert response.status_code == 400 and response.json["error"] == "unsupported_grant_type"
    assert client.get("/no/such/path").status_code == 404
    samples = scrape(client)
    assert not [k for k in samples if k[0] == "torchgate_auth_failures_total"]


@pytest.mark.parametrize(("kek_matches", "ready"), [(True, 1.0), (False, 0.0)])
def test_model_gauges_show_load_time_and_readiness(overrides, tmp_path, kek_matches, ready):
    repository = tmp_path / "models"
    write_tiny_model(repository, kek=bytes(range(32)) if kek_matches else bytes(32))
    app = create_app({**overrides, "model_repository": str(repository)})
    samples = scrape(app.test_client())
    assert value(samples, "torchgate_model_ready", model="tiny", version="1") == ready
    assert value(samples, "torchgate_model_load_seconds", model="tiny", version="1") > 0


def test_in_flight_returns_to_zero_after_answers_and_errors(app, client, predict):
    for response in (predict(ROWS), predict({"inputs": "no"}), client.get("/nope"),
                     client.post("/predict/tiny"), client.get("/healthz")):
        assert response.status_code in (200, 401, 404, 422)
    registry = app.extensions[EXTENSION].registry
    assert registry.get_sample_value("torchgate_http_requests_in_flight") == 0
    assert value(scrape(client), "torchgate_http_requests_in_flight") == 1  # the scrape itself


def test_two_apps_in_one_process_keep_their_own_counts(overrides, tmp_path):
    first = create_app(overrides)
    second = create_app({**overrides, "instance_dir": str(tmp_path / "second")})
    assert first.test_client().get("/healthz").status_code == 200
    assert requests_total(scrape(first.test_client()), "/healthz", 200) == 1
    assert requests_total(scrape(second.test_client()), "/healthz", 200) == 0


def test_a_failure_to_count_never_changes_the_answer(app, client, auth, monkeypatch):
    from app import metrics

    def broken(_response):
        raise OSError("No space left on device")
    monkeypatch.setattr(metrics, "_count", broken)
    response = client.get("/auth/whoami", headers=auth.headers())
    assert response.status_code == 200 and response.json["sub"] == "alice"
