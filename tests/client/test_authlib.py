"""authlib's OAuth 2.0 client (an independent implementation) against a live /auth/token."""

from __future__ import annotations

import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials_grant(live, method) -> None:
    session = OAuth2Session(live.client.name, live.client.secret,
                            token_endpoint_auth_method=method, default_timeout=5)
    token = session.fetch_token(f"{live.url}/auth/token", grant_type="client_credentials")
    me = session.get(f"{live.url}/auth/whoami", timeout=5)
    assert (token["token_type"], token["expires_in"], "refresh_token" in token) == (
        "Bearer", 900, False)
    assert (me.status_code, me.json()["sub"]) == (200, "batch-job")
    assert live.recorder.grants() == ["client_credentials"]


def test_password_grant_then_refresh_rotates_the_refresh_token(live) -> None:
    session = OAuth2Session(token_endpoint_auth_method="none", default_timeout=5)
    first = session.fetch_token(f"{live.url}/auth/token", username="alice",
                                password=live.user.secret)
    second = session.refresh_token(f"{live.url}/auth/token")
    me = session.get(f"{live.url}/auth/whoami", timeout=5)
    assert first["refresh_token"] != second["refresh_token"]
    assert (me.status_code, me.json()["sub"]) == (200, "alice")
    assert live.recorder.grants() == ["password", "refresh_token"]


def test_reused_refresh_token_is_refused(live) -> None:
    session = OAuth2Session(token_endpoint_auth_method="none", default_timeout=5)
    first = session.fetch_token(f"{live.url}/auth/token", username="alice",
                                password=live.user.secret)
    session.refresh_token(f"{live.url}/auth/token")
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(f"{live.url}/auth/token", refresh_token=first["refresh_token"])
    assert caught.value.error == "invalid_grant"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_wrong_client_secret_is_invalid_client(live, method) -> None:
    session = OAuth2Session(live.client.name, "not the secret",
                            token_endpoint_auth_method=method, default_timeout=5)
    with pytest.raises(OAuthError) as caught:
        session.fetch_token(f"{live.url}/auth/token", grant_type="client_credentials")
    assert caught.value.error == "invalid_client"
    assert [s for _, s in live.recorder.paths()] == [401]


def test_wrong_password_is_invalid_grant(live) -> None:
    session = OAuth2Session(token_endpoint_auth_method="none", default_timeout=5)
    with pytest.raises(OAuthError) as caught:
        session.fetch_token(f"{live.url}/auth/token", username="alice", password="wrong one")
    assert (caught.value.error, [s for _, s in live.recorder.paths()]) == (
        "invalid_grant", [400])


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_revoke_token_authenticates_with_client_credentials(live, method) -> None:
    """RFC 7009: the client authenticates the revocation as at the token endpoint."""
    session = OAuth2Session(live.client.name, live.client.secret,
                            token_endpoint_auth_method=method,
                            revocation_endpoint_auth_method=method, default_timeout=5)
    token = session.fetch_token(f"{live.url}/auth/token", grant_type="client_credentials")
    revoked = session.revoke_token(f"{live.url}/auth/revoke", token["access_token"])
    me = session.get(f"{live.url}/auth/whoami", timeout=5)
    assert (revoked.status_code, me.status_code) == (200, 401)
    assert me.json()["type"] == "urn:torchgate:problem:token-revoked"


def test_revoke_with_a_wrong_client_secret_is_invalid_client(live) -> None:
    session = OAuth2Session(live.client.name, live.client.secret, default_timeout=5)
    token = session.fetch_token(f"{live.url}/auth/token", grant_type="client_credentials")
    wrong = OAuth2Session(live.client.name, "not the secret", default_timeout=5)
    refused = wrong.revoke_token(f"{live.url}/auth/revoke", token["access_token"])
    me = session.get(f"{live.url}/auth/whoami", timeout=5)
    assert (refused.status_code, refused.json()["error"], me.status_code) == (
        401, "invalid_client", 200)
