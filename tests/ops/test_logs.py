"""The logs of a real production run: JSON lines with request ids, and no secret anywhere."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator

import pytest

from security.encoding import b64url_decode
from tests.ops.client import FORM, bearer, call, token_request
from tests.ops.gateway import GatewayProcess, gateways

pytestmark = pytest.mark.slow

MARKER = 7391.8264  # a plaintext input value no log line may show


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Iterator[tuple[GatewayProcess, list[str], set[str]]]:
    """A gateway driven through every kind of call, stopped: (gateway, secrets, request ids)."""
    with gateways(tmp_path_factory) as start:
        gateway = start("logs")
        used, request_ids = _exercise(gateway)
    yield gateway, used, request_ids


def _exercise(gateway: GatewayProcess) -> tuple[list[str], set[str]]:
    """Logins, refresh, predictions and errors; returns every secret in play and request ids."""
    ids = gateway.identities
    caller = gateway.caller()
    wrong_password = secrets.token_urlsafe(18)
    first = caller.login()
    refresh = caller.tokens["refresh_token"]
    refreshed = token_request(gateway.url, grant_type="refresh_token",
                              refresh_token=refresh).json()
    basic = base64.b64encode(f"{ids.client_id}:{ids.client_secret}".encode()).decode()
    client_token = call(gateway.url, "POST", "/auth/token", b"grant_type=client_credentials",
                        {"Content-Type": FORM, "Authorization": f"Basic {basic}"}).json()
    replies = [
        caller.predict(first, caller.seal({"inputs": [[MARKER, 0.0, 1.0, 2.0]]})),
        caller.predict(first, caller.seal({"inputs": [[MARKER, 1.0], [2.0]]})),  # 422
        caller.predict(first, caller.seal({"inputs": [[MARKER] * 4]})[:-12] + b'"}'),  # 400
        caller.predict(refreshed["access_token"], caller.seal({"inputs": [[MARKER] * 4]}),
                       model="missing"),  # 404
        call(gateway.url, "POST", "/predict/tiny", json.dumps({"inputs": [[MARKER] * 4]}).encode(),
             {**bearer(first), "Content-Type": "application/json"}),  # 415
        call(gateway.url, "GET", "/auth/whoami", headers=bearer(first[:-4] + "AAAA")),  # 401
        call(gateway.url, "GET", "/auth/whoami", headers=bearer(client_token["access_token"])),
        token_request(gateway.url, grant_type="password", username=ids.username,
                      password=wrong_password),  # 400 invalid_grant
        token_request(gateway.url, grant_type="refresh_token", refresh_token=refresh),  # reuse
    ]
    assert [r.status for r in replies] == [200, 422, 400, 404, 415, 401, 200, 400, 400]
    key = ids.key
    used = [gateway.secrets.jwt_secret, gateway.secrets.master_key,
            b64url_decode(gateway.secrets.master_key).hex(),
            base64.urlsafe_b64encode(gateway.secrets.kek).decode().rstrip("="),
            gateway.secrets.kek.hex(), ids.password, wrong_password, ids.client_secret,
            base64.urlsafe_b64encode(key).decode().rstrip("="), key.hex(), basic,
            first, refresh, refreshed["access_token"], refreshed["refresh_token"],
            client_token["access_token"], str(MARKER)]
    used += [token.rpartition(".")[2] for token in used if token.count(".") == 2]  # signatures
    return used, {r.headers["x-request-id"] for r in replies}


def test_the_run_left_log_lines(finished_run):
    gateway, _, request_ids = finished_run
    assert gateway.master.returncode == 0
    assert all(request_id in gateway.log_text() for request_id in request_ids)


def test_no_secret_token_key_or_plaintext_is_in_the_logs(finished_run):
    gateway, used, _ = finished_run
    text = gateway.log_text()
    leaked = [value[:6] + "…" for value in used if value in text]
    assert leaked == []


def test_every_log_line_is_a_json_object(finished_run):
    gateway, _, _ = finished_run
    lines = gateway.log_text().splitlines()
    not_json = [line for line in lines if not _is_json_object(line)]
    assert lines
    assert not_json == []


def test_every_line_logged_while_answering_a_request_has_its_request_id(finished_run):
    gateway, _, request_ids = finished_run
    lines = [json.loads(line) for line in gateway.log_text().splitlines()
             if _is_json_object(line)]
    app_lines = [line for line in lines  # gunicorn's and the start-up line answer no request
                 if not line["logger"].startswith(("gunicorn", "torchgate.startup"))]
    assert {line.get("request_id") for line in app_lines} >= request_ids
    assert [line for line in app_lines if not line.get("request_id")] == []


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def test_start_up_is_one_line_with_the_bind_address_and_the_models(finished_run):
    gateway, _, _ = finished_run
    lines = [json.loads(line) for line in gateway.log_text().splitlines()
             if '"torchgate.startup"' in line]
    assert len(lines) == 1  # preloaded (CPU): the master loads the models, once
    facts = lines[0]["startup"]
    assert (facts["env"], facts["bind"], facts["store"]) == (
        "production", gateway.url.removeprefix("http://"), "sqlite")
    assert {(m["name"], m["device"]) for m in facts["models"]} == {("tiny", "cpu"),
                                                                    ("sleepy", "cpu")}
