"""TorchgateClient against a live in-process gateway: sealed calls, tokens, typed errors."""

from __future__ import annotations

import json
import time

import pytest
import requests

from client import (
    TorchgateClient,
)
from security.encoding import b64url_decode

ROW = [0.1, 0.2, 0.3, 0.4]


def test_predict_round_trip_is_sealed_both_ways(live) -> None:
    with TorchgateClient(live.url, **live.user_kwargs()) as gateway:
        result = gateway.predict("tiny", [ROW, ROW])
    predict = next(s for s in live.recorder.seen if s.path == "/predict/tiny")
    assert b"0.1" not in predict.body and set(json.loads(predict.body)) == {
        "protected", "iv", "ciphertext", "tag"}
    assert (result["model"], result["version"], len(result["outputs"])) == ("tiny", "1", 2)
    assert len(result["outputs"][0]) == 3 and set(result["labels"]) <= {"a", "b", "c"}


@pytest.mark.parametrize(("inputs", "version", "outputs_type"), [
    ({"x": [ROW]}, None, dict),
    ([ROW], "1", list),
])
def test_predict_forms_and_versions(live, inputs, version, outputs_type) -> None:
    with TorchgateClient(live.url, **live.user_kwargs()) as gateway:
        result = gateway.predict("tiny", inputs, version=version)
    assert (result["version"], type(result["outputs"])) == ("1", outputs_type)


def test_predict_as_a_client_with_the_client_credentials_grant(live) -> None:
    with TorchgateClient(live.url, **live.client_kwargs()) as gateway:
        result = gateway.predict("tiny", [ROW])
    assert (result["model"], len(result["labels"])) == ("tiny", 1)
    assert live.recorder.grants() == ["client_credentials"]


def test_predict_in_plain_json_when_the_gateway_allows_it(start_live) -> None:
    live = start_live(payload_encryption="optional")
    with TorchgateClient(live.url, username="alice", password=live.user.secret) as gateway:
        result = gateway.predict("tiny", [ROW])
    assert (result["model"], len(result["outputs"])) == ("tiny", 1)


def test_catalogue_and_whoami(live) -> None:
    with TorchgateClient(live.url, **live.user_kwargs()) as gateway:
        names = [m["name"] for m in gateway.models()]
        tiny = gateway.model("tiny")
        me = gateway.whoami()
    assert (sorted(names), tiny["name"], tiny["versions"]) == (
        ["broken", "digits", "tiny"], "tiny", ["1"])
    assert (me["sub"], me["roles"]) == ("alice", ["analyst"])


def test_one_token_serves_many_calls(live) -> None:
    with TorchgateClient(live.url, **live.user_kwargs()) as gateway:
        for _ in range(3):
            gateway.predict("tiny", [ROW])
    assert live.recorder.grants() == ["password"]


def test_token_is_refreshed_before_it_expires(start_live) -> None:
    live = start_live(jwt_access_ttl=2)
    with TorchgateClient(live.url, **live.user_kwargs()) as gateway:
        first = gateway.token()
        second = _wait_for_new_token(gateway, first.access_token)
        me = gateway.whoami()
    assert second.refresh_token != first.refresh_token and me["sub"] == "alice"
    assert live.recorder.grants() == ["password", "refresh_token"]
    assert 401 not in [status for _, status in live.recorder.paths()]


def test_expired_token_is_renewed_once_after_a_401(start_live) -> None:
    live = start_live(jwt_access_ttl=1)
    # A frozen clock: the client believes its token is fresh, the gateway knows better.
    with TorchgateClient(live.url, **live.user_kwargs(clock=lambda: 1e9)) as gateway:
        gateway.whoami()
        _sleep_past_expiry()
        me = gateway.whoami()
    assert me["sub"] == "alice"
    assert live.recorder.paths() == [("/auth/token", 200), ("/auth/whoami", 200),
                                     ("/auth/whoami", 401), ("/auth/token", 200),
                                     ("/auth/whoami", 200)]
    assert live.recorder.grants() == ["password", "refresh_token"]


def test_client_without_refresh_token_authenticates_again(start_live) -> None:
    live = start_live(jwt_access_ttl=1)
    with TorchgateClient(live.url, **live.client_kwargs(clock=lambda: 1e9)) as gateway:
        gateway.whoami()
        _sleep_past_expiry()
        assert gateway.whoami()["sub"] == "batch-job"
    grants = live.recorder.grants()  # a third when a 1 s token expired again on a loaded machine
    assert grants[:2] == ["client_credentials", "client_credentials"]
    assert set(grants) == {"client_credentials"}


def test_expired_refresh_token_falls_back_to_the_password(start_live) -> None:
    live = start_live(jwt_access_ttl=1, jwt_refresh_ttl=1)
    with TorchgateClient(live.url, **live.user_kwargs(clock=lambda: 1e9)) as gateway:
        gateway.whoami()
        _sleep_past_expiry()
        assert gateway.whoami()["sub"] == "alice"
    assert live.recorder.grants() == ["password", "refresh_token", "password"]


def test_revoke_ends_both_tokens_and_the_next_call_signs_in_again(live) -> None:
    with TorchgateClient(live.url, **live.user_kwargs()) as gateway:
        old = gateway.token()
        gateway.revoke()
        me = gateway.whoami()
    answer = requests.get(f"{live.url}/auth/whoami", timeout=5,
                          headers={"Authorization": f"Bearer {old.access_token}"})
    assert (answer.status_code, answer.json()["type"]) == (
        401, "urn:torchgate:problem:token-revoked")
    assert me["sub"] == "alice" and live.recorder.grants() == ["password", "password"]


def test_token_repr_shows_no_secret(live) -> None:
    with TorchgateClient(live.url, **live.user_kwargs()) as gateway:
        token = gateway.token()
    assert token.access_token not in repr(token) and token.refresh_token not in repr(token)
    assert set(token.to_json()) == {"access_token", "token_type", "expires_in", "refresh_token"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"username": "alice"}, "username and password"),
    ({"username": "a", "password": "p", "client_id": "c", "client_secret": "s"}, "or client_id"),
    ({"username": "a", "password": "p", "kid": "k"}, "kid and key"),
    ({"username": "a", "password": "p", "kid": "k", "key": b"short"}, "32 bytes"),
])
def test_constructor_refuses_incomplete_settings(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        TorchgateClient("http://127.0.0.1:9", **kwargs)


def test_key_is_accepted_as_base64url_text(live) -> None:
    kwargs = live.user_kwargs(key=live.user.key_text + "=")  # padding optional
    with TorchgateClient(live.url, **kwargs) as gateway:
        assert gateway.predict("tiny", [ROW])["model"] == "tiny"
    assert b64url_decode(live.user.key_text) == live.user.key


def _wait_for_new_token(gateway: TorchgateClient, old: str):
    """Past half the 2-second lifetime the client refreshes before it calls."""
    time.sleep(1.1)
    token = gateway.token()
    assert token.access_token != old
    return token


def _sleep_past_expiry() -> None:
    time.sleep(1.1)  # a 1-second token (exp rounded down) is expired by then
