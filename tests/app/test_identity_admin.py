"""users/clients list, disable, enable, delete, set-password, rotate-secret; keys per subject.

Ending an identity's tokens works on every worker and node at once: the tests run a command on
one app and call another that shares its store and database.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from flask import Flask

PASSWORD, NEW_PASSWORD = "a long passphrase", "another long passphrase"


def run(app: Flask, *args: str, input: str | None = None, code: int = 0) -> dict:
    result = app.test_cli_runner().invoke(args=list(args), input=input)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if code == 0 else {"error": result.stderr}


# The refused logins here count against the caller's address in the shared store, which outlives
# the test (Redis): they come from an address of their own, so no other test is locked out.
ADDRESS = {"REMOTE_ADDR": "192.0.2.9"}


def login(app: Flask, username: str, password: str = PASSWORD):
    return app.test_client().post("/auth/token", data={
        "grant_type": "password", "username": username, "password": password},
        environ_base=ADDRESS)


def client_login(app: Flask, client_id: str, secret: str):
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return app.test_client().post("/auth/token", data={"grant_type": "client_credentials"},
                                  headers={"Authorization": f"Basic {basic}"},
                                  environ_base=ADDRESS)


def whoami(app: Flask, token: str) -> int:
    return app.test_client().get(
        "/auth/whoami", headers={"Authorization": f"Bearer {token}"}).status_code


@pytest.fixture
def overrides(overrides) -> dict:
    """Refused logins are the point here: no lockout or token rate limit may interfere."""
    return {**overrides, "login_max_failures": 1000, "rate_limit_token": ""}


@pytest.fixture
def alice(two_workers) -> str:
    """A fresh user (a unique name: the PostgreSQL database outlives the test)."""
    name = f"alice-{uuid.uuid4().hex[:8]}"
    run(two_workers[0], "users", "create", name, "--role", "analyst", "--password-stdin",
        input=PASSWORD + "\n")
    return name


def test_disable_ends_tokens_and_keys_everywhere_and_enable_lets_new_tokens_in(two_workers, alice):
    first, second = two_workers
    tokens = login(second, alice).json
    kid = run(first, "keys", "issue", "--subject", alice)["kid"]
    ended = run(first, "users", "disable", alice)
    assert (ended["disabled"], ended["keys_revoked"]) == (True, [kid])
    assert whoami(second, tokens["access_token"]) == 401
    assert login(second, alice).status_code == 400
    refreshed = second.test_client().post("/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.json["error"] == "invalid_grant"
    run(first, "users", "enable", alice)
    fresh = login(second, alice).json["access_token"]
    assert (whoami(second, fresh), whoami(first, fresh)) == (200, 200)
    assert whoami(second, tokens["access_token"]) == 401
    assert run(first, "keys", "list", "--subject", alice)["keys"][0]["revoked"] is True


def test_delete_ends_tokens_and_a_recreated_user_starts_afresh(two_workers, alice):
    first, second = two_workers
    old = login(second, alice).json["access_token"]
    run(first, "users", "delete", alice, "--yes")
    assert whoami(second, old) == 401
    assert alice not in [u["username"] for u in run(first, "users", "list")["users"]]
    run(first, "users", "create", alice, "--role", "analyst", "--password-stdin",
        input=PASSWORD + "\n")
    assert whoami(second, login(second, alice).json["access_token"]) == 200
    assert whoami(second, old) == 401


def test_set_password_ends_the_old_password_and_tokens(two_workers, alice):
    first, second = two_workers
    old = login(second, alice).json["access_token"]
    run(first, "users", "set-password", alice, "--password-stdin", input=NEW_PASSWORD + "\n")
    assert whoami(second, old) == 401
    assert login(second, alice).status_code == 400
    assert whoami(second, login(second, alice, NEW_PASSWORD).json["access_token"]) == 200


def test_rotate_secret_ends_the_old_secret_and_tokens(two_workers):
    first, second = two_workers
    client_id = f"job-{uuid.uuid4().hex[:8]}"
    secret = run(first, "clients", "create", client_id, "--role", "analyst")["client_secret"]
    old = client_login(second, client_id, secret).json["access_token"]
    rotated = run(first, "clients", "rotate-secret", client_id)["client_secret"]
    assert whoami(second, old) == 401
    assert client_login(second, client_id, secret).status_code == 401
    assert whoami(second, client_login(second, client_id, rotated).json["access_token"]) == 200
    listed = {c["client_id"]: c for c in run(first, "clients", "list")["clients"]}
    assert set(listed[client_id]) == {"client_id", "roles", "created_at", "disabled", "attributes"}


def test_disabled_client_gets_no_token(two_workers):
    first, second = two_workers
    client_id = f"job-{uuid.uuid4().hex[:8]}"
    secret = run(first, "clients", "create", client_id, "--role", "analyst")["client_secret"]
    run(first, "clients", "disable", client_id)
    assert client_login(second, client_id, secret).json["error"] == "invalid_client"
    run(first, "clients", "delete", client_id, "--yes")
    assert client_id not in [c["client_id"] for c in run(first, "clients", "list")["clients"]]


def test_users_list_shows_no_secret(app):
    run(app, "users", "create", "carol", "--role", "viewer", "--password-stdin",
        input=PASSWORD + "\n")
    [carol] = run(app, "users", "list")["users"]
    assert carol == {"username": "carol", "roles": ["viewer"],
                     "created_at": carol["created_at"], "disabled": False, "attributes": {}}


@pytest.mark.parametrize("args", [
    ("users", "create", "dave", "--role", "analsyt", "--password-stdin"),
    ("clients", "create", "job", "--role", "root"),
])
def test_a_role_the_roles_file_does_not_define_is_refused(app, args):
    refused = run(app, *args, input=PASSWORD + "\n", code=1)
    assert "unknown role" in refused["error"] and "analyst" in refused["error"]


@pytest.mark.parametrize("command", ["disable", "enable", "delete", "set-password"])
def test_an_unknown_user_is_an_error(app, command):
    extra = {"delete": ["--yes"], "set-password": ["--password-stdin"]}.get(command, [])
    args = ["users", command, "nobody", *extra]
    assert "no user 'nobody'" in run(app, *args, input=PASSWORD + "\n", code=1)["error"]


def test_keys_issue_refuses_an_unknown_subject_unless_external(app):
    assert "--external" in run(app, "keys", "issue", "--subject", "stranger", code=1)["error"]
    issued = run(app, "keys", "issue", "--subject", "stranger", "--external")
    assert issued["subject"] == "stranger"
    assert [k["kid"] for k in run(app, "keys", "list", "--subject", "stranger")["keys"]] == [
        issued["kid"]]
    assert run(app, "keys", "list", "--subject", "somebody-else")["keys"] == []
