"""Models change without a restart: load, unload, reload on every worker, none dropped."""

from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa
from flask import Flask

from app import create_app
from tests.conftest import KEK, KEK_ID, SEALED, Auth, Sealer, instance_overrides
from tests.fixtures import seal_state, tiny_mlp, write_model
from tests.ops.slow_model import SLEEPY_MANIFEST, STARTED_DIR, Sleepy

ROWS = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}


@pytest.fixture
def repository(tmp_path):
    root = tmp_path / "repository"
    write_model(root, "tiny", kek_id=KEK_ID, kek=KEK)
    return root


@pytest.fixture
def workers(tmp_path, repository) -> tuple[Flask, Flask]:
    """Two workers of one machine: one instance dir (store, database), checking on each call."""
    shared = instance_overrides(tmp_path / "instance", repository, model_sync_interval=0)
    return create_app(shared), create_app(shared)


def admin(app: Flask) -> dict:
    return Auth(app).headers("root", ("admin",))


def predict(app: Flask, path: str = "/predict/tiny", rows: dict = ROWS, subject: str = "alice"):
    auth = Auth(app)
    sealer = Sealer(*auth.payload_key(subject))
    answer = app.test_client().post(path, data=sealer.seal(rows), content_type=SEALED,
                                    headers=auth.headers(subject))
    return answer.status_code, (sealer.open(answer.data) if answer.status_code == 200 else
                                answer.json)


def test_a_version_loaded_on_one_worker_serves_on_the_other(workers, repository):
    first, second = workers
    seal_state(repository, "tiny", "2", tiny_mlp(seed=2).state_dict(), kek_id=KEK_ID, kek=KEK)
    assert predict(second, "/predict/tiny/versions/2")[0] == 404
    loaded = first.test_client().post("/models/tiny/versions/2/load", headers=admin(first))
    assert loaded.status_code == 200, loaded.json
    assert (loaded.json["action"], loaded.json["models"][0]["versions"]) == ("load", ["1", "2"])
    status, reply = predict(second, "/predict/tiny/versions/2")
    assert (status, reply["version"]) == (200, "2")
    assert predict(second)[1]["version"] == "2"  # no default_version pinned: the highest


def test_unload_stops_a_version_everywhere_and_a_new_worker_replays_it(workers, repository,
                                                                       tmp_path):
    first, second = workers
    seal_state(repository, "tiny", "2", tiny_mlp(seed=2).state_dict(), kek_id=KEK_ID, kek=KEK)
    assert first.test_client().post("/models/tiny/versions/2/load",
                                    headers=admin(first)).status_code == 200
    refused = first.test_client().delete("/models/tiny/versions/2", headers=admin(first))
    assert (refused.status_code, refused.json["type"]) == (
        400, "urn:torchgate:problem:invalid-request")  # the default of a model with others
    unloaded = first.test_client().delete("/models/tiny/versions/1", headers=admin(first))
    assert unloaded.status_code == 200, unloaded.json
    assert predict(second, "/predict/tiny/versions/1")[0] == 404
    later = create_app(instance_overrides(tmp_path / "instance", repository))
    assert predict(later, "/predict/tiny/versions/1")[0] == 404
    assert predict(later, "/predict/tiny/versions/2")[0] == 200


def test_reload_picks_up_a_new_model_on_every_worker(workers, repository):
    first, second = workers
    write_model(repository, "newcomer", kek_id=KEK_ID, kek=KEK)
    assert predict(second, "/predict/newcomer")[0] == 404
    reloaded = first.test_client().post("/models/reload", headers=admin(first))
    assert reloaded.status_code == 200
    assert [m["name"] for m in reloaded.json["models"]] == ["newcomer", "tiny"]
    assert predict(second, "/predict/newcomer")[0] == 200


@pytest.mark.parametrize(("method", "path", "status"), [
    ("post", "/models/tiny/versions/9/load", 404),
    ("delete", "/models/tiny/versions/9", 404),
    ("post", "/models/nope/versions/1/load", 404)])
def test_unknown_models_and_versions_are_404(workers, method, path, status):
    first, _ = workers
    assert getattr(first.test_client(), method)(path, headers=admin(first)).status_code == status


def test_a_version_that_does_not_load_is_503_with_the_reason(workers, repository):
    first, second = workers
    seal_state(repository, "tiny", "2", tiny_mlp().state_dict(), kek_id=KEK_ID, kek=bytes(32))
    failed = first.test_client().post("/models/tiny/versions/2/load", headers=admin(first))
    assert failed.status_code == 503
    assert "did not load" in failed.json["detail"]
    assert predict(second)[1]["version"] == "1"


@pytest.mark.parametrize(("roles", "status"), [(("analyst",), 403), (None, 401)])
def test_only_models_admin_may_change_models(workers, roles, status):
    first, _ = workers
    headers = Auth(first).headers("eve", roles) if roles else {}
    assert first.test_client().post("/models/reload", headers=headers).status_code == status


def test_a_change_is_audited_with_its_subject(workers):
    first, _ = workers
    first.test_client().post("/models/reload", headers=admin(first))
    with first.app_context():
        from app.gateway import current_gateway
        engine = current_gateway().engine
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT subject, action, status FROM audit_records "
            "WHERE action = 'management.reload_models'")).all()
    assert [tuple(r) for r in rows] == [("root", "management.reload_models", 200)]


def test_cli_load_is_applied_by_the_serving_workers(workers, repository):
    first, second = workers
    seal_state(repository, "tiny", "2", tiny_mlp(seed=2).state_dict(), kek_id=KEK_ID, kek=KEK)
    done = first.test_cli_runner().invoke(args=["model", "load", "tiny", "2"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["action"] == "load"
    assert predict(second, "/predict/tiny/versions/2")[0] == 200


def test_a_request_in_flight_finishes_on_the_version_it_started_with(tmp_path, monkeypatch):
    repository = tmp_path / "repository"
    old, new = Sleepy(), Sleepy()
    new.linear.bias.data += 100.0
    write_model(repository, "sleepy", kek_id=KEK_ID, kek=KEK, manifest=SLEEPY_MANIFEST,
                state=old.state_dict())
    app = create_app(instance_overrides(tmp_path / "instance", repository))
    slow = {"inputs": [[1.5, 0.0, 0.0, 0.0]]}
    results: list = []
    caller = threading.Thread(target=lambda: results.append(
        predict(app, "/predict/sleepy", slow)))
    started = tmp_path / "started"
    started.mkdir()
    monkeypatch.setenv(STARTED_DIR, str(started))
    caller.start()
    deadline = time.monotonic() + 20
    while not any(started.iterdir()) and time.monotonic() < deadline:  # the forward is running
        time.sleep(0.01)
    seal_state(repository, "sleepy", "1", new.state_dict(), kek_id=KEK_ID, kek=KEK)
    reloaded = app.test_client().post("/models/sleepy/versions/1/load", headers=admin(app))
    caller.join(timeout=30)
    assert reloaded.status_code == 200
    [(status, reply)] = results
    assert status == 200 and reply["outputs"][0][0] < 50  # the old weights answered
    assert predict(app, "/predict/sleepy", {"inputs": [[0.0] * 4]})[1]["outputs"][0][0] > 50
