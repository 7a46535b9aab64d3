"""Access tokens of an external identity provider (JWT_JWKS_FILE) beside the gateway's own."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from app import create_app
from config import ConfigError
from errors import Unauthorized
from tests.conftest import SEALED, Sealer
from tests.external_idp import (
    AUDIENCE,
    ISSUER,
    b64,
    hand_made,
    idp_claims,
    new_signing_key,
    write_jwks,
)

ALGORITHMS = ("RS256", "ES256", "EdDSA")


@pytest.fixture(scope="module")
def idp_keys() -> dict:
    return {algorithm: new_signing_key(algorithm) for algorithm in ALGORITHMS}


@pytest.fixture
def overrides(overrides, tmp_path, idp_keys) -> dict:
    jwks = write_jwks(tmp_path / "jwks.json", [k.public_jwk() for k in idp_keys.values()])
    return {**overrides, "jwt_jwks_file": str(jwks), "jwt_roles_claim": "realm_access.roles",
            "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_external_token_is_accepted_with_roles_from_the_claim_path(client, idp_keys, algorithm):
    token = idp_keys[algorithm].sign(idp_claims())
    response = client.get("/auth/whoami", headers=bearer(token))
    assert response.status_code == 200
    assert response.json["sub"] == "f3a1c2d4-user"
    assert response.json["roles"] == ["analyst"]
    assert response.json["permissions"] == ["models:read", "predict:*"]


@pytest.mark.parametrize(("case", "changes"), [
    ("without jti", {"jti": None}),
    ("RFC 9068 header typ at+jwt", {"header": {"typ": "at+jwt"}}),
    ("no typ claim", {"typ": None}),
    ("type access", {"type": "access", "typ": None}),
    ("audience list", {"aud": ["account", AUDIENCE]}),
    ("nbf in the past", {"nbf": int(time.time()) - 10}),
    ("iat a few seconds ahead (clock skew)", {"iat": int(time.time()) + 10}),
])
def test_external_token_variant_is_accepted(client, idp_keys, case, changes):
    header = changes.pop("header", {})
    token = idp_keys["ES256"].sign(idp_claims(**changes), **header)
    response = client.get("/auth/whoami", headers=bearer(token))
    assert response.status_code == 200, case
    assert response.json["roles"] == ["analyst"]


@pytest.mark.parametrize(("realm_access", "roles"), [
    ({"roles": ["analyst", "offline_access"]}, ["analyst", "offline_access"]),
    (None, []),
    ({}, []),
    ({"roles": "analyst"}, []),
    ({"roles": ["analyst", 7]}, []),
    ("analyst", []),
])
def test_missing_or_malformed_roles_claim_means_no_roles(client, idp_keys, realm_access, roles):
    token = idp_keys["RS256"].sign(idp_claims(realm_access=realm_access))
    response = client.get("/auth/whoami", headers=bearer(token))
    assert response.status_code == 200
    assert response.json["roles"] == roles


@pytest.mark.parametrize(("roles", "status"), [
    (["analyst"], 200),
    (["viewer"], 403),
    (None, 403),
])
def test_predict_permission_follows_the_external_roles(client, auth, idp_keys, roles, status):
    sealer = Sealer(*auth.payload_key("f3a1c2d4-user"))
    realm_access = {"roles": roles} if roles is not None else None
    token = idp_keys["EdDSA"].sign(idp_claims(realm_access=realm_access))
    response = client.post("/predict/tiny", data=sealer.seal({"inputs": [[1, 2, 3, 4]]}),
                           content_type=SEALED, headers=bearer(token))
    assert response.status_code == status
    if status == 200:
        assert sealer.open(response.data)["model"] == "tiny"
    else:
        assert response.json["type"] == "urn:torchgate:problem:forbidden"
        assert response.json["detail"] == "Permission 'predict:tiny' is required."


def forge(keys: dict, case: str) -> str:
    rs, es = keys["RS256"], keys["ES256"]
    now = int(time.time())
    if case == "RS256 key, header alg PS256":
        return rs.sign(idp_claims(), algorithm="PS256")
    if case == "RS256 key, HS256 with the public PEM as secret":
        pem = rs.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hand_made({"alg": "HS256", "kid": rs.kid, "typ": "JWT"}, idp_claims(),
                        lambda data: hmac.new(pem, data, hashlib.sha256).digest())
    if case == "EC key's kid on an RS256 signature":
        return jwt.encode(idp_claims(), rs.private, algorithm="RS256", headers={"kid": es.kid})
    if case == "deeply nested header":
        return f"{b64(b'[' * 5000)}.{b64(json.dumps(idp_claims()).encode())}.c2ln"
    if case == "alg none":
        return hand_made({"alg": "none", "kid": rs.kid}, idp_claims())
    if case == "tampered payload":
        header, _, signature = rs.sign(idp_claims()).split(".")
        edited = b64(json.dumps(idp_claims(realm_access={"roles": ["admin"]})).encode())
        return f"{header}.{edited}.{signature}"
    if case == "unknown kid":
        return new_signing_key("ES256", "rotated-away").sign(idp_claims())
    if case == "IdP refresh token":
        return es.sign(idp_claims(typ="Refresh"))
    if case == "IdP ID token":
        return es.sign(idp_claims(typ="ID"))
    if case == "type refresh":
        return es.sign(idp_claims(typ=None, type="refresh"))
    if case == "header typ of another token kind":
        return es.sign(idp_claims(), typ="logout+jwt")
    table = {
        "wrong issuer": idp_claims(iss="https://evil.example/realms/torchgate"),
        "wrong audience": idp_claims(aud="account"),
        "expired": idp_claims(iat=now - 900, exp=now - 120),
        "nbf ahead": idp_claims(nbf=now + 600),
        "missing sub": idp_claims(sub=None),
        "empty sub": idp_claims(sub=""),
        "missing exp": idp_claims(exp=None),
        "missing iat": idp_claims(iat=None),
        "missing aud": idp_claims(aud=None),
    }
    return es.sign(table[case])


@pytest.mark.parametrize(("case", "slug"), [
    ("wrong issuer", "unauthorized"),
    ("wrong audience", "unauthorized"),
    ("expired", "token-expired"),
    ("nbf ahead", "unauthorized"),
    ("unknown kid", "unauthorized"),
    ("RS256 key, header alg PS256", "unauthorized"),
    ("RS256 key, HS256 with the public PEM as secret", "unauthorized"),
    ("EC key's kid on an RS256 signature", "unauthorized"),
    ("alg none", "unauthorized"),
    ("deeply nested header", "unauthorized"),
    ("tampered payload", "unauthorized"),
    ("missing sub", "unauthorized"),
    ("empty sub", "unauthorized"),
    ("missing exp", "unauthorized"),
    ("missing iat", "unauthorized"),
    ("missing aud", "unauthorized"),
    ("IdP refresh token", "unauthorized"),
    ("IdP ID token", "unauthorized"),
    ("type refresh", "unauthorized"),
    ("header typ of another token kind", "unauthorized"),
])
def test_forged_or_misused_external_token_is_refused(client, idp_keys, case, slug):
    response = client.get("/auth/whoami", headers=bearer(forge(idp_keys, case)))
    assert response.status_code == 401
    assert response.json["type"] == f"urn:torchgate:problem:{slug}"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_own_token_still_accepted_beside_the_jwks(client, auth):
    response = client.get("/auth/whoami", headers=auth.headers("bob", ("viewer",)))
    assert response.status_code == 200
    assert response.json["sub"] == "bob"
    assert response.json["roles"] == ["viewer"]


@pytest.mark.parametrize(("kid", "status"), [("gateway-hs256", 401), (None, 200)])
def test_own_secret_signs_only_for_no_kid_or_its_own(client, overrides, kid, status):
    """A kid that names neither a JWKS key nor one of the gateway's is refused (no fallback to
    the own key); a token without a kid predates kids and is the current key's."""
    now = int(time.time())
    claims = {"sub": "carol", "roles": ["viewer"], "jti": "own-1", "type": "access",
              "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 60}
    token = jwt.encode(claims, overrides["jwt_secret"], algorithm="HS256",
                       headers=None if kid is None else {"kid": kid})
    response = client.get("/auth/whoami", headers=bearer(token))
    assert response.status_code == status
    assert response.json.get("sub", "") == ("carol" if status == 200 else "")


def test_own_secret_cannot_sign_for_a_jwks_kid(client, idp_keys, overrides):
    token = jwt.encode(idp_claims(), overrides["jwt_secret"], algorithm="HS256",
                       headers={"kid": idp_keys["RS256"].kid})
    response = client.get("/auth/whoami", headers=bearer(token))
    assert response.status_code == 401
    assert response.json["type"] == "urn:torchgate:problem:unauthorized"


def test_revoked_external_token_is_refused(client, idp_keys):
    token = idp_keys["RS256"].sign(idp_claims())
    revoked = client.post("/auth/revoke", data={"token": token}, headers=bearer(token))
    response = client.get("/auth/whoami", headers=bearer(token))
    assert revoked.status_code == 200
    assert response.status_code == 401
    assert response.json["type"] == "urn:torchgate:problem:token-revoked"


def test_external_token_is_not_a_refresh_grant(client, idp_keys):
    token = idp_keys["ES256"].sign(idp_claims())
    response = client.post("/auth/token", data={"grant_type": "refresh_token",
                                                "refresh_token": token})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


def test_verifier_never_reads_an_external_token_as_a_refresh_token(gateway, idp_keys):
    token = idp_keys["ES256"].sign(idp_claims())
    with pytest.raises(Unauthorized) as caught:
        gateway.verifier.verify(token, expected_type="refresh")
    assert caught.value.detail == "An refresh token is required."
    assert caught.value.status == 401


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    ('{"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]}', "kid 'k1' holds private"),
])
def test_bad_jwks_file_stops_start_up_naming_the_setting(overrides, tmp_path, content, message):
    path = tmp_path / "bad-jwks.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        create_app({**overrides, "jwt_jwks_file": str(path)})
    text = str(caught.value)
    assert text.startswith(f"TORCHGATE_JWT_JWKS_FILE: {path}" if content else
                           f"TORCHGATE_JWT_JWKS_FILE: cannot read {path}")
    assert message in text
    assert "\n" not in text
