"""A view's state change and its audit record are not separable: the intent is committed first,
and when it cannot be, the change is not made and the answer is 503."""

from __future__ import annotations

import pytest
from flask import Flask

from app import create_app
from app.audit import EXTENSION as AUDIT
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


def test_a_refresh_whose_intent_cannot_be_recorded_does_not_use_the_token(
        app, client, alice, monkeypatch):
    tokens = login(client).json
    writer = FailingWriter(app, monkeypatch)
    assert refused(refresh(client, tokens["refresh_token"]))
    writer.heal()
    assert refresh(client, tokens["refresh_token"]).status_code == 200  # still unused


def test_a_reuse_whose_intent_cannot_be_recorded_does_not_revoke_the_family(
        app, client, alice, monkeypatch):
    first = login(client).json
    second = refresh(client, first["refresh_token"]).json
    writer = FailingWriter(app, monkeypatch)
    assert refused(refresh(client, first["refresh_token"]))  # a reuse
    writer.heal()
    assert refresh(client, second["refresh_token"]).status_code == 200  # family alive


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_a_revocation_whose_intent_cannot_be_recorded_revokes_nothing(
        app, client, alice, monkeypatch, kind):
    tokens = login(client).json
    writer = FailingWriter(app, monkeypatch)
    response = client.post("/auth/revoke", data={"token": tokens[kind]},
                           headers=bearer(tokens["access_token"]))
    assert refused(response)
    writer.heal()
    assert client.get("/auth/whoami", headers=bearer(tokens["access_token"])).status_code == 200
    assert refresh(client, tokens["refresh_token"]).status_code == 200


def test_a_model_load_whose_intent_cannot_be_recorded_loads_nothing(
        workers, repository, monkeypatch):
    first, second = workers
    seal_state(repository, "tiny", "2", tiny_mlp(seed=2).state_dict(), kek_id=KEK_ID, kek=KEK)
    writer = FailingWriter(first, monkeypatch)
    assert refused(first.test_client().post("/models/tiny/versions/2/load",
                                            headers=admin(first)))
    writer.heal()
    assert predict(first, "/predict/tiny/versions/2")[0] == 404
    assert predict(second, "/predict/tiny/versions/2")[0] == 404


def records_of(app: Flask, request_id: str) -> list[tuple]:
    rows = sorted((r for r in audit_rows(app) if r.request_id == request_id),
                  key=lambda r: r.seq)
    return [(r.subject, r.action, r.decision, r.status) for r in rows]


@pytest.mark.parametrize(("call", "expected"), [
    (lambda client, tokens: refresh(client, tokens["refresh_token"]),
     [("alice", "auth.token:refresh", "intent", 0), (None, "auth.token", "allow", 200)]),
    (lambda client, tokens: client.post("/auth/revoke", data={"token": tokens["access_token"]},
                                        headers=bearer(tokens["access_token"])),
     [("alice", "auth.revoke:revoke", "intent", 0), ("alice", "auth.revoke", "allow", 200)]),
], ids=["refresh", "revoke"])
def test_a_state_change_leaves_its_intent_before_its_answer(app, client, alice, call, expected):
    tokens = login(client).json
    response = call(client, tokens)
    assert response.status_code == 200
    assert records_of(app, response.headers["X-Request-ID"]) == expected
    assert verify(app)[0] == 0


def test_a_change_made_after_its_intent_is_recorded_even_when_the_answer_is_not(
        app, client, alice, monkeypatch):
    """The answer's record fails after the change: the change stands, recorded by its intent,
    and the client gets 503 instead of the new tokens."""
    tokens = login(client).json
    FailingWriter(app, monkeypatch, allowed=1)  # the intent, then nothing
    response = refresh(client, tokens["refresh_token"])
    assert refused(response)
    assert records_of(app, response.headers["X-Request-ID"]) == [
        ("alice", "auth.token:refresh", "intent", 0)]
    monkeypatch.undo()
    assert refresh(client, tokens["refresh_token"]).json["error"] == "invalid_grant"  # used
