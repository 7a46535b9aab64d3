"""/auth/token grants, refresh rotation and reuse, revocation, lockout, whoami."""

from __future__ import annotations

import base64

import pytest

from app.gateway import current_gateway

PASSWORD = "correct horse battery"


@pytest.fixture
def alice(gateway):
    gateway.directory.create_user("alice", PASSWORD, ["analyst"])
    return "alice"


@pytest.fixture
def robot(gateway):
    _, secret = gateway.directory.create_client("robot", ["viewer"])
    return "robot", secret


def login(client, username="alice", password=PASSWORD, **kwargs):
    return client.post("/auth/token", data={"grant_type": "password", "username": username,
                                            "password": password}, **kwargs)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_password_grant_issues_access_and_refresh(client, alice):
    response = login(client)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    me = client.get("/auth/whoami", headers=bearer(body["access_token"])).json
    assert me["sub"] == "alice" and me["roles"] == ["analyst"]


def test_json_body_works_like_a_form(client, alice):
    response = client.post("/auth/token", json={"grant_type": "password",
                                                "username": "alice", "password": PASSWORD})
    assert response.status_code == 200


@pytest.mark.parametrize(("case", "username", "password"), [
    ("wrong password", "alice", "wrong password!"),
    ("unknown user", "nobody", PASSWORD),
])
def test_bad_credentials_get_the_same_answer(client, alice, case, username, password):
    response = login(client, username, password)
    assert response.status_code == 400
    assert response.json == {"error": "invalid_grant",
                             "error_description": "The username or password is wrong."}


@pytest.mark.parametrize(("data", "status", "error"), [
    ({}, 400, "invalid_request"),
    ({"grant_type": "password", "username": "alice"}, 400, "invalid_request"),
    ({"grant_type": "authorization_code", "code": "x"}, 400, "unsupported_grant_type"),
    ({"grant_type": "client_credentials", "client_id": "robot", "client_secret": "no"},
     401, "invalid_client"),
    ({"grant_type": "refresh_token", "refresh_token": "garbage"}, 400, "invalid_grant"),
])
def test_token_endpoint_errors_follow_rfc6749(client, robot, data, status, error):
    response = client.post("/auth/token", data=data)
    assert response.status_code == status
    assert response.json["error"] == error
    assert response.headers["Cache-Control"] == "no-store"


def test_client_credentials_in_body(client, robot):
    client_id, secret = robot
    response = client.post("/auth/token", data={"grant_type": "client_credentials",
                                                "client_id": client_id, "client_secret": secret})
    assert response.status_code == 200
    assert "refresh_token" not in response.json


def test_client_credentials_with_http_basic(client, robot):
    client_id, secret = robot
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    response = client.post("/auth/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200


def test_wrong_basic_secret_is_401_with_basic_challenge(client, robot):
    basic = base64.b64encode(b"robot:wrong").decode()
    response = client.post("/auth/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def refresh(client, token):
    return client.post("/auth/token", data={"grant_type": "refresh_token",
                                            "refresh_token": token})


def test_refresh_rotates_and_the_old_token_stops_working(client, alice):
    first = login(client).json
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200
    assert second.json["refresh_token"] != first["refresh_token"]
    assert refresh(client, first["refresh_token"]).json["error"] == "invalid_grant"


def test_reusing_a_refresh_token_revokes_the_family(client, alice):
    first = login(client).json
    second = refresh(client, first["refresh_token"]).json
    refresh(client, first["refresh_token"])  # reuse: a thief or a leak
    assert refresh(client, second["refresh_token"]).json["error"] == "invalid_grant"
    response = client.get("/auth/whoami", headers=bearer(second["access_token"]))
    assert response.status_code == 401
    assert response.json["type"] == "urn:torchgate:problem:token-revoked"


def test_revoked_access_token_is_refused(client, alice):
    access = login(client).json["access_token"]
    assert client.post("/auth/revoke", data={"token": access},
                       headers=bearer(access)).status_code == 200
    response = client.get("/auth/whoami", headers=bearer(access))
    assert response.status_code == 401
    assert response.json["type"] == "urn:torchgate:problem:token-revoked"


def test_revoking_a_refresh_token_ends_its_family(client, alice):
    tokens = login(client).json
    client.post("/auth/revoke", data={"token": tokens["refresh_token"]},
                headers=bearer(tokens["access_token"]))
    assert refresh(client, tokens["refresh_token"]).json["error"] == "invalid_grant"
    assert client.get("/auth/whoami", headers=bearer(tokens["access_token"])).status_code == 401


def test_revoke_answers_200_for_garbage(client, auth):
    response = client.post("/auth/revoke", data={"token": "garbage"}, headers=auth.headers())
    assert response.status_code == 200


def test_nobody_revokes_another_callers_token(client, auth):
    victim = auth.token("victim")
    client.post("/auth/revoke", data={"token": victim}, headers=auth.headers("mallory"))
    assert client.get("/auth/whoami", headers=bearer(victim)).status_code == 200


def test_lockout_after_max_failures_even_with_the_right_password(client, alice):
    for _ in range(5):
        assert login(client, password="wrong password!").status_code == 400
    response = login(client)
    assert response.status_code == 429
    assert response.json["type"] == "urn:torchgate:problem:rate-limited"
    assert int(response.headers["Retry-After"]) > 0


def test_lockout_counts_per_address_across_usernames(client, alice):
    for n in range(5):
        login(client, username=f"nobody{n}", password="whatever1")
    assert login(client).status_code == 429


def test_successful_login_clears_the_username_counter(client, alice):
    for _ in range(3):
        login(client, password="wrong password!")
    assert login(client).status_code == 200
    other = {"REMOTE_ADDR": "10.0.0.9"}
    for _ in range(4):
        login(client, password="wrong password!", environ_base=other)
    assert login(client, environ_base=other).status_code == 200


def test_revoke_without_a_token_parameter_is_a_problem(client, auth):
    response = client.post("/auth/revoke", data={}, headers=auth.headers())
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "urn:torchgate:problem:invalid-request"


def test_a_client_cannot_revoke_another_callers_token_with_its_credentials(client, app, auth):
    with app.app_context():
        _, secret = current_gateway().directory.create_client("batch-job", ["analyst"])
    victim = auth.token("alice")
    answer = client.post("/auth/revoke", data={"token": victim, "client_id": "batch-job",
                                               "client_secret": secret})
    assert answer.status_code == 200
    assert client.get("/auth/whoami",
                      headers={"Authorization": f"Bearer {victim}"}).status_code == 200


DEEP_JSON = "[" * 1000 + "]" * 1000


@pytest.mark.parametrize(("path", "error"), [
    ("/auth/token", {"error": "invalid_request"}),
    ("/auth/revoke", {"type": "urn:torchgate:problem:invalid-request"}),
])
def test_deeply_nested_json_is_a_bad_request(client, auth, caplog, path, error):
    body = '{"grant_type": ' + DEEP_JSON + ', "token": ' + DEEP_JSON + "}"
    response = client.post(path, data=body, content_type="application/json",
                           headers=auth.headers() if path == "/auth/revoke" else {})
    assert response.status_code == 400
    assert error.items() <= response.json.items()
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


@pytest.mark.parametrize(("case", "body", "content_type"), [
    ("form", "grant_type=password&grant_type=client_credentials&username=alice&password=x",
     "application/x-www-form-urlencoded"),
    ("json", '{"grant_type": "client_credentials", "grant_type": "password", '
     '"username": "alice", "password": "' + PASSWORD + '"}', "application/json"),
])
def test_a_repeated_parameter_is_invalid_request(client, alice, case, body, content_type):
    response = client.post("/auth/token", data=body, content_type=content_type)
    assert response.status_code == 400, case
    assert response.json["error"] == "invalid_request"


def test_a_token_with_an_empty_subject_is_refused(client, auth):
    response = client.get("/auth/whoami", headers=bearer(auth.token(sub="")))
    assert response.status_code == 401
    assert response.json["type"] == "urn:torchgate:problem:unauthorized"


def test_a_locked_out_user_cannot_refresh(client, alice):
    tokens = login(client).json
    for _ in range(5):
        login(client, password="wrong password!", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    response = refresh(client, tokens["refresh_token"])
    assert response.status_code == 429
    assert response.json["type"] == "urn:torchgate:problem:rate-limited"
