"""The audit trail under several workers and databases, and when its database goes away."""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from app import create_app
from security.audit import audit_records
from tests.app.test_audit import verify
from tests.conftest import Auth, env_url

# ---- several workers, threads, databases

def schema_isolated(url: str) -> Iterator[str]:
    """The test PostgreSQL database, seen through a schema of this test's own."""
    schema = f"audit_{secrets.token_hex(6)}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        yield from schema_isolated(env_url("TORCHGATE_TEST_DATABASE_URL"))


def test_two_workers_with_threads_leave_one_record_per_request(overrides, database_url):
    workers = [create_app({**overrides, "database_url": database_url}) for _ in range(2)]
    headers = Auth(workers[0]).headers()

    def call(app: Flask) -> None:
        client = app.test_client()
        for _ in range(10):
            assert client.get("/auth/whoami", headers=headers).status_code == 200

    threads = [threading.Thread(target=call, args=(app,)) for app in workers for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verify(workers[1]) == (0, {"intact": True, "chains": 2, "records": 80})


# ---- fail closed

@pytest.fixture
def movable_db_app(overrides, tmp_path) -> Flask:
    """An app whose database directory a test can take away and give back."""
    (tmp_path / "db").mkdir()
    return create_app({**overrides, "database_url": f"sqlite:///{tmp_path / 'db' / 'g.db'}"})


def cut_database(app: Flask, tmp_path, present: bool) -> None:
    here, away = tmp_path / "db", tmp_path / "gone"
    if present:
        shutil.move(away, here)
    else:
        shutil.move(here, away)
    with app.app_context():
        app.extensions["torchgate"].engine.dispose()


def test_unwritable_audit_trail_turns_the_answer_into_503(movable_db_app, tmp_path):
    app = movable_db_app
    cut_database(app, tmp_path, present=False)
    response = app.test_client().get("/auth/whoami", headers=Auth(app).headers())
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.json == {
        "type": "urn:torchgate:problem:service-unavailable", "title": "Service unavailable",
        "status": 503, "detail": "The audit trail is unreachable; the request was refused.",
        "request_id": response.headers["X-Request-ID"]}
    assert response.headers["Retry-After"]


def test_trail_continues_intact_once_the_database_is_back(movable_db_app, tmp_path):
    app, client = movable_db_app, movable_db_app.test_client()
    headers = Auth(app).headers()
    assert client.get("/auth/whoami", headers=headers).status_code == 200
    cut_database(app, tmp_path, present=False)
    assert client.get("/auth/whoami", headers=headers).status_code == 503
    cut_database(app, tmp_path, present=True)
    assert client.get("/auth/whoami", headers=headers).status_code == 200
    assert verify(app) == (0, {"intact": True, "chains": 1, "records": 2})


# ---- hostile text from the URL

def test_a_nul_in_the_url_is_stored_escaped_and_fails_no_one(overrides, database_url):
    """PostgreSQL refuses NUL in text; one such row once failed every record of its group."""
    app = create_app({**overrides, "database_url": database_url})
    client = app.test_client()
    assert client.get("/models/a%00b").status_code == 401
    assert client.get("/models").status_code == 401
    code, verdict = verify(app)
    assert (code, verdict["records"]) == (0, 2)
    with app.app_context():
        engine = app.extensions["torchgate"].engine
    with engine.connect() as conn:
        models = conn.execute(sa.select(audit_records.c.model)).scalars().all()
    assert "a\\x00b" in models


def test_verify_reports_an_unreadable_trail_as_json(app, client):
    client.get("/models")
    with app.app_context():
        engine = app.extensions["torchgate"].engine
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE audit_records")
    code, verdict = verify(app)
    assert code == 1 and verdict["intact"] is False
    assert verdict["reason"].startswith("trail unreadable")


def refuse_writes(app: Flask) -> None:
    """Every new connection refuses writes, as a full or read-only disk does (root ignores
    file modes, so a read-only instance dir is played by SQLite's query_only)."""
    engine = app.extensions["torchgate"].engine
    sa.event.listen(engine, "connect",
                    lambda conn, _record: conn.execute("PRAGMA query_only = ON"))
    engine.dispose()


def test_readyz_is_503_naming_the_write_path_when_nothing_can_be_written(movable_db_app):
    app, client = movable_db_app, movable_db_app.test_client()
    assert client.get("/readyz").status_code == 200
    refuse_writes(app)
    time.sleep(1.1)  # past the probe's one-second cache
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["detail"] == "Not ready: audit trail, database."
    assert ready.headers["Retry-After"]
    assert client.get("/auth/whoami", headers=Auth(app).headers()).status_code == 503


def test_readyz_probes_writes_at_most_once_a_second(movable_db_app):
    app, client = movable_db_app, movable_db_app.test_client()
    assert client.get("/readyz").status_code == 200
    refuse_writes(app)
    assert client.get("/readyz").status_code == 200  # the answer of the last second
