"""A view's state change and its audit record are not separable: the request's own record is
committed before the change, and when it cannot be, the change is not made and the answer is
503. A request whose change succeeds leaves that one record; one whose answer turns out
otherwise leaves a second, correcting record."""

from __future__ import annotations

import pytest
from flask import Flask

from app import create_app
from app.audit import EXTENSION as AUDIT
from errors import StoreUnavailable
from security.audit import AuditUnavailable
from tests.app.test_audit import audit_rows, verify
from tests.app.test_audit_resilience import database_url
from tests.app.test_auth import alice, bearer, login, refresh
from tests.app.test_management import admin, predict, repository, workers
from tests.conftest import KEK, KEK_ID
from tests.fixtures import seal_state, tiny_mlp

__all__ = ["alice", "database_url", "repository", "workers"]  # fixtures

UNAVAILABLE = {"type": "urn:torchgate:problem:service-unavailable",
               "title": "Service unavailable", "status": 503,
               "detail": "The audit trail is unreachable; the request was refused."}


@pytest.fixture
def app(overrides, database_url) -> Flask:
    """The app on each database kind the audit tests cover (SQLite, PostgreSQL)."""
    return create_app({**overrides, "database_url": database_url})


class FailingWriter:
    """Lets the trail's first `allowed` appends through, then fails every one, as a lost
    database does."""

    def __init__(self, app: Flask, monkeypatch: pytest.MonkeyPatch, allowed: int = 0) -> None:
        self.allowed = allowed
        self._append = app.extensions[AUDIT].append
        monkeypatch.setattr(app.extensions[AUDIT], "append", self)
        self._undo = monkeypatch

    def __call__(self, record):
        if self.allowed <= 0:
            raise AuditUnavailable()
        self.allowed -= 1
        return self._append(record)

    def heal(self) -> None:
        self._undo.undo()


def refused(response) -> bool:
    return response.status_code == 503 and {
        key: response.json[key] for key in UNAVAILABLE} == UNAVAILABLE


def records_of(app: Flask, response) -> list[tuple]:
    """The records of the response's request, in the order they were written."""
    request_id = response.headers["X-Request-ID"]
    rows = sorted((r for r in audit_rows(app) if r.request_id == request_id),
                  key=lambda r: (r.time, r.seq))
    return [(r.subject, r.action, r.model, r.version, r.decision, r.status) for r in rows]


# ---- no change without its record

def test_a_refresh_whose_record_cannot_be_written_does_not_use_the_token(
        app, client, alice, monkeypatch):
    tokens = login(client).json
    writer = FailingWriter(app, monkeypatch)
    assert refused(refresh(client, tokens["refresh_token"]))
    writer.heal()
    assert refresh(client, tokens["refresh_token"]).status_code == 200  # still unused


def test_a_reuse_whose_record_cannot_be_written_does_not_revoke_the_family(
        app, client, alice, monkeypatch):
    first = login(client).json
    second = refresh(client, first["refresh_token"]).json
    writer = FailingWriter(app, monkeypatch)
    assert refused(refresh(client, first["refresh_token"]))  # a reuse
    writer.heal()
    assert refresh(client, second["refresh_token"]).status_code == 200  # family alive


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_a_revocation_whose_record_cannot_be_written_revokes_nothing(
        app, client, alice, monkeypatch, kind):
    tokens = login(client).json
    writer = FailingWriter(app, monkeypatch)
    response = client.post("/auth/revoke", data={"token": tokens[kind]},
                           headers=bearer(tokens["access_token"]))
    assert refused(response)
    writer.heal()
    assert client.get("/auth/whoami", headers=bearer(tokens["access_token"])).status_code == 200
    assert refresh(client, tokens["refresh_token"]).status_code == 200


def test_a_model_load_whose_record_cannot_be_written_loads_nothing(
        workers, repository, monkeypatch):
    first, second = workers
    seal_state(repository, "tiny", "2", tiny_mlp(seed=2).state_dict(), kek_id=KEK_ID, kek=KEK)
    writer = FailingWriter(first, monkeypatch)
    assert refused(first.test_client().post("/models/tiny/versions/2/load",
                                            headers=admin(first)))
    writer.heal()
    assert predict(first, "/predict/tiny/versions/2")[0] == 404
    assert predict(second, "/predict/tiny/versions/2")[0] == 404


# ---- one record per request that changed state

@pytest.mark.parametrize(("call", "expected"), [
    (lambda client, tokens: refresh(client, tokens["refresh_token"]),
     (None, "auth.token", None, None, "allow", 200)),
    (lambda client, tokens: client.post("/auth/revoke", data={"token": tokens["access_token"]},
                                        headers=bearer(tokens["access_token"])),
     ("alice", "auth.revoke", None, None, "allow", 200)),
    (lambda client, tokens: client.post("/auth/revoke", data={"token": tokens["refresh_token"]},
                                        headers=bearer(tokens["access_token"])),
     ("alice", "auth.revoke", None, None, "allow", 200)),
], ids=["refresh", "revoke-access", "revoke-refresh"])
def test_a_token_change_leaves_one_record(app, client, alice, call, expected):
    tokens = login(client).json
    response = call(client, tokens)
    assert response.status_code == 200
    assert records_of(app, response) == [expected]
    assert verify(app)[0] == 0


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("post", "/models/tiny/versions/2/load",
     ("root", "management.load_model", "tiny", "2", "allow", 200)),
    ("delete", "/models/tiny/versions/1",
     ("root", "management.unload_model", "tiny", "1", "allow", 200)),
    ("post", "/models/reload", ("root", "management.reload_models", None, None, "allow", 200)),
], ids=["load", "unload", "reload"])
def test_a_model_change_leaves_one_record(workers, repository, method, path, expected):
    first, _ = workers
    seal_state(repository, "tiny", "2", tiny_mlp(seed=2).state_dict(), kek_id=KEK_ID, kek=KEK)
    response = getattr(first.test_client(), method)(path, headers=admin(first))
    assert response.status_code == 200, response.json
    assert records_of(first, response) == [expected]


def test_a_recorded_change_answers_without_another_write(app, client, alice, monkeypatch):
    """The record committed before the change is the answer's: a trail lost after it neither
    withholds the new tokens nor leaves the token used without a record."""
    tokens = login(client).json
    FailingWriter(app, monkeypatch, allowed=1)  # the record ahead of the change, then nothing
    response = refresh(client, tokens["refresh_token"])
    assert response.status_code == 200
    assert set(response.json) >= {"access_token", "refresh_token"}
    monkeypatch.undo()
    assert records_of(app, response) == [(None, "auth.token", None, None, "allow", 200)]
    assert refresh(client, tokens["refresh_token"]).json["error"] == "invalid_grant"  # used


# ---- an answer other than the one recorded ahead: a correcting record, the later is the truth

def test_a_reused_refresh_token_is_recorded_ahead_then_corrected(app, client, alice):
    first = login(client).json
    second = refresh(client, first["refresh_token"]).json
    reuse = refresh(client, first["refresh_token"])
    assert (reuse.status_code, reuse.json["error"]) == (400, "invalid_grant")
    assert records_of(app, reuse) == [(None, "auth.token", None, None, "allow", 200),
                                      (None, "auth.token", None, None, "deny", 400)]
    assert refresh(client, second["refresh_token"]).status_code == 400  # family revoked
    assert verify(app)[0] == 0


def test_a_revocation_that_fails_after_its_record_is_corrected(
        app, client, alice, gateway, monkeypatch):
    tokens = login(client).json

    def unavailable(key: str, ttl: int) -> None:
        raise StoreUnavailable()

    monkeypatch.setattr(gateway.store, "revoke", unavailable)
    response = client.post("/auth/revoke", data={"token": tokens["access_token"]},
                           headers=bearer(tokens["access_token"]))
    assert response.status_code == 503
    assert records_of(app, response) == [("alice", "auth.revoke", None, None, "allow", 200),
                                         ("alice", "auth.revoke", None, None, "deny", 503)]


def test_a_model_load_that_fails_after_its_record_is_corrected(workers):
    first, _ = workers
    response = first.test_client().post("/models/tiny/versions/9/load", headers=admin(first))
    assert response.status_code == 404
    assert records_of(first, response) == [
        ("root", "management.load_model", "tiny", "9", "allow", 200),
        ("root", "management.load_model", "tiny", "9", "deny", 404)]
