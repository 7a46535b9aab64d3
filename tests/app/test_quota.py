"""Query budgets (model.toml [quota]): per subject and model, on /predict and /v2 alike."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from tests.conftest import KEK, KEK_ID, SEALED, Auth, Sealer, instance_overrides
from tests.fixtures import MLP_MANIFEST, write_model

DAY = 86400
ROWS = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}
OIP_ROWS = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                        "data": [0.1, 0.2, 0.3, 0.4]}]}


@pytest.fixture(scope="module")
def quota_repository(tmp_path_factory) -> Path:
    repository = tmp_path_factory.mktemp("quota-repository")
    write_model(repository, "tiny", kek_id=KEK_ID, kek=KEK,
                manifest=MLP_MANIFEST + "[quota]\nper_subject = '3/day'\n")
    write_model(repository, "free", kek_id=KEK_ID, kek=KEK)
    return repository


@pytest.fixture
def overrides(tmp_path, quota_repository) -> dict:
    """The apps of this module (two_workers too) serve the repository with a quota."""
    return instance_overrides(tmp_path / "instance", quota_repository)


def call(app, subject: str, path: str = "/predict/tiny", payload: dict = ROWS,
         body: bytes | None = None):
    auth = Auth(app)
    if body is None:
        body = Sealer(*auth.payload_key(subject)).seal(payload)
    return app.test_client().post(path, data=body, content_type=SEALED,
                                  headers=auth.headers(subject, ("admin",)))


def remaining(response) -> int:
    return int(re.fullmatch(r'"quota-86400";r=(\d+);t=\d+', response.headers["RateLimit"])[1])


def assert_quota_exceeded(response) -> None:
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "urn:torchgate:problem:quota-exceeded"
    assert response.json["title"] == "Quota exceeded"
    retry_after = int(response.headers["Retry-After"])
    assert DAY - 30 <= retry_after <= DAY
    assert response.json["detail"] == (f"Query quota of 3 per 1 day on this model exceeded; "
                                       f"retry after {retry_after} seconds.")
    assert response.headers["RateLimit"] == f'"quota-86400";r=0;t={retry_after}'


def test_each_call_shows_what_is_left_of_the_quota(app):
    answers = [call(app, "alice") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert {a.headers["RateLimit-Policy"] for a in answers} == {'"quota-86400";q=3;w=86400'}
    assert [remaining(a) for a in answers] == [2, 1, 0]


def test_the_call_after_the_quota_is_spent_gets_429_quota_exceeded(app):
    for _ in range(3):
        assert call(app, "alice").status_code == 200
    assert_quota_exceeded(call(app, "alice"))
    assert call(app, "bob").status_code == 200  # every subject has its own budget


def test_predict_and_v2_infer_spend_one_quota(app):
    assert call(app, "alice").status_code == 200
    infer = call(app, "alice", "/v2/models/tiny/infer", OIP_ROWS)
    assert infer.status_code == 200
    assert remaining(infer) == 1
    assert call(app, "alice", "/predict/tiny/versions/1").status_code == 200
    refused = call(app, "alice", "/v2/models/tiny/infer", OIP_ROWS)
    assert_quota_exceeded(refused)
    assert refused.json["error"] == refused.json["detail"]  # the OIP member


def test_a_replayed_envelope_spends_no_quota(app):
    auth = Auth(app)
    body = Sealer(*auth.payload_key("alice")).seal(ROWS)
    assert remaining(call(app, "alice", body=body)) == 2
    replay = call(app, "alice", body=body)
    assert replay.status_code == 400
    assert replay.json["type"] == "urn:torchgate:problem:replayed-envelope"
    assert "RateLimit" not in replay.headers
    assert remaining(call(app, "alice")) == 1


def test_a_model_without_quota_sends_no_ratelimit_fields(app):
    answers = [call(app, "alice", "/predict/free") for _ in range(4)]
    assert [a.status_code for a in answers] == [200] * 4
    assert not any("RateLimit" in a.headers or "RateLimit-Policy" in a.headers for a in answers)


def test_spent_quotas_are_counted_by_model_without_naming_the_caller(app):
    for _ in range(5):
        call(app, "carol-the-caller")
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'torchgate_quota_exceeded_total{model="tiny"} 2.0' in text
    assert "carol-the-caller" not in text


def test_two_workers_share_one_quota(two_workers):
    first, second = two_workers
    subject = f"alice-{uuid.uuid4().hex}"  # Redis keeps a day's counts between runs
    assert [call(first, subject).status_code for _ in range(2)] == [200, 200]
    assert remaining(call(second, subject)) == 0
    assert_quota_exceeded(call(second, subject))
    assert_quota_exceeded(call(first, subject))
