"""Behind a reverse proxy: whose address the login lockout counts (TRUSTED_PROXIES)."""

from __future__ import annotations

import secrets

import pytest

from app import create_app

PROXY = "10.0.0.2"  # where every request comes from, as the gateway's socket sees it


def attempt(client, username: str, password: str, forwarded_for: str):
    return client.post("/auth/token", data={"grant_type": "password", "username": username,
                                            "password": password},
                       headers={"X-Forwarded-For": forwarded_for},
                       environ_base={"REMOTE_ADDR": PROXY})


def lock_out(client, forwarded_for: str) -> None:
    """LOGIN_MAX_FAILURES failures from one address, each for another unknown username."""
    for _ in range(5):
        response = attempt(client, f"nobody-{secrets.token_hex(4)}", "wrong", forwarded_for)
        assert response.status_code == 400


@pytest.fixture
def user(overrides) -> tuple[str, str]:
    name, password = f"alice-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    app = create_app(overrides)
    with app.app_context():
        app.extensions["torchgate"].directory.create_user(name, password, ["analyst"])
    return name, password


def test_behind_one_trusted_proxy_each_caller_address_is_locked_out_alone(overrides, user):
    client = create_app({**overrides, "trusted_proxies": 1}).test_client()
    lock_out(client, "203.0.113.7")

    locked = attempt(client, *user, forwarded_for="203.0.113.7")
    other = attempt(client, *user, forwarded_for="198.51.100.9")

    assert (locked.status_code, locked.json["type"]) == (
        429, "urn:torchgate:problem:rate-limited")
    assert other.status_code == 200
    assert other.json["token_type"] == "Bearer"


def test_without_trusted_proxies_x_forwarded_for_cannot_dodge_the_lockout(overrides, user):
    client = create_app(overrides).test_client()
    lock_out(client, "203.0.113.7")

    dodged = attempt(client, *user, forwarded_for="198.51.100.9")

    assert dodged.status_code == 429
    assert dodged.json["type"] == "urn:torchgate:problem:rate-limited"


@pytest.mark.parametrize(("proxies", "header"), [
    (1, "{forged}, {caller}"),  # the nginx front appends the address it saw
    (2, "{forged}, {caller}, 10.0.0.9"),  # an ingress controller, then the pod's nginx sidecar
], ids=["front", "ingress-and-sidecar"])
def test_behind_appending_proxies_a_forged_entry_neither_dodges_nor_causes_a_lockout(
        overrides, user, proxies, header):
    client = create_app({**overrides, "trusted_proxies": proxies}).test_client()
    lock_out(client, header.format(forged="192.0.2.1", caller="203.0.113.7"))

    locked = attempt(client, *user,
                     forwarded_for=header.format(forged="198.51.100.9", caller="203.0.113.7"))
    other = attempt(client, *user,
                    forwarded_for=header.format(forged="203.0.113.7", caller="198.51.100.9"))

    assert (locked.status_code, locked.json["type"]) == (
        429, "urn:torchgate:problem:rate-limited")
    assert other.status_code == 200
    assert other.json["token_type"] == "Bearer"
