"""Every forged, stale or misused token gets 401 with the right slug and challenge."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

ALICE = {"sub": "alice", "roles": ["analyst"], "jti": "j1", "type": "access",
         "iss": "torchgate", "aud": "torchgate"}


def claims(**changes) -> dict:
    now = int(time.time())
    base = {**ALICE, "iat": now, "nbf": now, "exp": now + 600}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forge(secret: str, case: str) -> str:
    now = int(time.time())
    if case == "alg none":
        return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    if case == "wrong key":
        return jwt.encode(claims(), "x" * 48, algorithm="HS256")
    if case == "HS512 with the right secret":
        return jwt.encode(claims(), secret, algorithm="HS512")
    if case == "edited claims":
        header, _, signature = jwt.encode(claims(), secret, algorithm="HS256").split(".")
        return f"{header}.{b64(claims(roles=['admin']))}.{signature}"
    if case == "garbage":
        return "not.a.jwt"
    table = {
        "expired": claims(iat=now - 900, nbf=now - 900, exp=now - 60),
        "nbf ahead": claims(nbf=now + 600),
        "wrong issuer": claims(iss="someone-else"),
        "wrong audience": claims(aud="someone-else"),
        "no type claim": claims(type=None),
        "no jti": claims(jti=None),
        "no exp": claims(exp=None),
    }
    return jwt.encode(table[case], secret, algorithm="HS256")


@pytest.mark.parametrize(("case", "slug"), [
    ("alg none", "unauthorized"),
    ("wrong key", "unauthorized"),
    ("HS512 with the right secret", "unauthorized"),
    ("edited claims", "unauthorized"),
    ("garbage", "unauthorized"),
    ("expired", "token-expired"),
    ("nbf ahead", "unauthorized"),
    ("wrong issuer", "unauthorized"),
    ("wrong audience", "unauthorized"),
    ("no type claim", "unauthorized"),
    ("no jti", "unauthorized"),
    ("no exp", "unauthorized"),
])
def test_forged_or_stale_token_is_refused(client, overrides, case, slug):
    token = forge(overrides["jwt_secret"], case)
    response = client.get("/auth/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json["type"] == f"urn:torchgate:problem:{slug}"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_refresh_token_is_not_an_access_token(client, auth):
    token = auth.token(refresh=True)
    response = client.get("/auth/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json["detail"] == "An access token is required."


def test_token_in_query_string_is_ignored(client, auth):
    response = client.get(f"/auth/whoami?access_token={auth.token()}&jwt={auth.token()}")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="torchgate"'


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer a b", "bearer"])
def test_malformed_authorization_header_is_refused(client, header):
    response = client.get("/auth/whoami", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json["type"] == "urn:torchgate:problem:unauthorized"


def test_valid_token_is_accepted(client, auth):
    response = client.get("/auth/whoami", headers=auth.headers("bob", ("viewer",)))
    assert response.status_code == 200
    assert response.json["sub"] == "bob"
    assert response.json["roles"] == ["viewer"]
    assert response.json["permissions"] == ["models:read"]
