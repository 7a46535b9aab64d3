"""JWT key rotation over HTTP: the kid, a previous key inside and after its window, refresh."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from app import create_app
from app.gateway import current_gateway
from config import ConfigError
from security.encoding import b64url_encode
from security.signing_keys import public_key_kid, secret_kid
from tests.conftest import Auth

OLD_SECRET = "o" * 16 + secrets.token_hex(16)
PASSWORD = "correct horse battery"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


IN_AN_HOUR, AN_HOUR_AGO = iso(time.time() + 3600), iso(time.time() - 3600)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def whoami(app, token: str):
    return app.test_client().get("/auth/whoami", headers=bearer(token))


def rotated(overrides: dict, until: str, **extra):
    """A gateway that switched from OLD_SECRET to the overrides' JWT_SECRET."""
    return create_app({**overrides, "jwt_previous_secret": OLD_SECRET,
                       "jwt_previous_keys_until": until, **extra})


@pytest.fixture
def old_app(overrides):
    """The same instance (database, store) before the switch, signing with OLD_SECRET."""
    return create_app({**overrides, "jwt_secret": OLD_SECRET})


def test_every_issued_token_names_its_signing_key(client, overrides, gateway):
    gateway.directory.create_user("alice", PASSWORD, ["analyst"])
    body = client.post("/auth/token", data={"grant_type": "password", "username": "alice",
                                            "password": PASSWORD}).json
    expected = secret_kid(overrides["jwt_secret"])
    for name in ("access_token", "refresh_token"):
        assert jwt.get_unverified_header(body[name])["kid"] == expected
    assert whoami(client.application, body["access_token"]).status_code == 200


@pytest.mark.parametrize(("until", "status", "detail"), [
    (IN_AN_HOUR, 200, None),
    (AN_HOUR_AGO, 401, "The token's signing key is no longer accepted."),
])
def test_previous_key_verifies_only_inside_its_window(overrides, old_app, until, status, detail):
    token = Auth(old_app).token("alice")
    response = whoami(rotated(overrides, until), token)
    assert response.status_code == status
    if detail is None:
        assert response.json["sub"] == "alice"
    else:
        assert response.json["type"] == "urn:torchgate:problem:unauthorized"
        assert response.json["detail"] == detail
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def forge(secret: str, kid: object) -> str:
    """An HS256 token signed by hand: PyJWT would refuse to write a kid that is not a string."""
    now = int(time.time())
    claims = {"sub": "carol", "roles": ["viewer"], "jti": secrets.token_hex(8), "type": "access",
              "iss": "torchgate", "aud": "torchgate", "iat": now, "nbf": now, "exp": now + 60}
    header = {"alg": "HS256", "typ": "JWT", **({} if kid is None else {"kid": kid})}
    signing_input = ".".join(b64url_encode(json.dumps(part).encode()) for part in (header, claims))
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(signature)}"


@pytest.mark.parametrize(("case", "status"), [
    ("current key, its kid", 200),
    ("current key, no kid (issued before kids)", 200),
    ("previous key, no kid", 401),
    ("current key, unknown kid", 401),
    ("current key, a number as kid", 401),
    ("current key, the previous key's kid", 401),
    ("unknown key, the current key's kid", 401),
])
def test_the_kid_picks_the_one_key_that_may_verify(overrides, case, status):
    current, kid = overrides["jwt_secret"], secret_kid(overrides["jwt_secret"])
    tokens = {
        "current key, its kid": forge(current, kid),
        "current key, no kid (issued before kids)": forge(current, None),
        "previous key, no kid": forge(OLD_SECRET, None),
        "current key, unknown kid": forge(current, "hs-unknown"),
        "current key, a number as kid": forge(current, 7),
        "current key, the previous key's kid": forge(current, secret_kid(OLD_SECRET)),
        "unknown key, the current key's kid": forge("x" * 48, kid),
    }
    response = whoami(rotated(overrides, IN_AN_HOUR), tokens[case])
    assert response.status_code == status
    if status == 401:
        assert response.json["type"] == "urn:torchgate:problem:unauthorized"
        assert response.json["detail"] == "The token is not valid."
    else:
        assert response.json["sub"] == "carol"


@pytest.mark.parametrize(("until", "status"), [(IN_AN_HOUR, 200), (AN_HOUR_AGO, 400)])
def test_refresh_token_of_the_previous_key(overrides, old_app, until, status):
    with old_app.app_context():
        current_gateway().directory.create_user("alice", PASSWORD, ["analyst"])
    login = old_app.test_client().post("/auth/token", data={
        "grant_type": "password", "username": "alice", "password": PASSWORD}).json
    new_app = rotated(overrides, until)
    response = new_app.test_client().post("/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": login["refresh_token"]})
    assert response.status_code == status
    if status == 400:
        assert response.json["error"] == "invalid_grant"
        return
    new_kid = secret_kid(overrides["jwt_secret"])
    assert jwt.get_unverified_header(response.json["refresh_token"])["kid"] == new_kid
    assert whoami(new_app, response.json["access_token"]).json["sub"] == "alice"


def pem_pair(kind: str) -> tuple[str, str, object]:
    private = {"RS256": lambda: rsa.generate_private_key(65537, 2048),
               "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
               "EdDSA": ed25519.Ed25519PrivateKey.generate}[kind]()
    private_pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private_pem, public_pem, private.public_key()


@pytest.mark.parametrize(("old", "new"), [("RS256", "RS256"), ("ES256", "EdDSA"),
                                          ("EdDSA", "ES256")])
def test_asymmetric_rotation_keeps_old_tokens_inside_the_window(overrides, old, new):
    old_private, old_public, old_key = pem_pair(old)
    new_private, new_public, _ = pem_pair(new)
    old_app = create_app({**overrides, "jwt_algorithm": old, "jwt_private_key": old_private,
                          "jwt_public_key": old_public})
    token = Auth(old_app).token("alice")
    assert jwt.get_unverified_header(token)["kid"] == public_key_kid(old_key)
    keys = {"jwt_algorithm": new, "jwt_private_key": new_private, "jwt_public_key": new_public,
            "jwt_previous_public_key": old_public}
    inside = create_app({**overrides, **keys, "jwt_previous_keys_until": IN_AN_HOUR})
    after = create_app({**overrides, **keys, "jwt_previous_keys_until": AN_HOUR_AGO})
    assert whoami(inside, token).json["sub"] == "alice"
    assert whoami(after, token).status_code == 401
    assert whoami(inside, Auth(inside).token("bob")).json["sub"] == "bob"


@pytest.mark.parametrize(("extra", "setting", "problem"), [
    ({"jwt_previous_secret": OLD_SECRET}, "JWT_PREVIOUS_KEYS_UNTIL", "required"),
    ({"jwt_previous_secret": OLD_SECRET, "jwt_previous_keys_until": "2026-12-01 12:00"},
     "JWT_PREVIOUS_KEYS_UNTIL", "not an ISO-8601 time with a zone"),
    ({"jwt_previous_keys_until": "next week"}, "JWT_PREVIOUS_KEYS_UNTIL", "not an ISO-8601"),
    ({"jwt_previous_secret": "short", "jwt_previous_keys_until": IN_AN_HOUR},
     "JWT_PREVIOUS_SECRET", "too weak"),
    ({"jwt_previous_secret": "same", "jwt_previous_keys_until": IN_AN_HOUR},
     "JWT_PREVIOUS_SECRET", "is the current signing key"),
    ({"jwt_previous_public_key": "not a pem", "jwt_previous_keys_until": IN_AN_HOUR},
     "JWT_PREVIOUS_PUBLIC_KEY", "not a PEM"),
])
def test_bad_previous_key_settings_stop_start_up(overrides, extra, setting, problem):
    if extra.get("jwt_previous_secret") == "same":
        extra = {**extra, "jwt_previous_secret": overrides["jwt_secret"]}
    with pytest.raises(ConfigError) as caught:
        create_app({**overrides, **extra})
    assert caught.value.name == setting
    assert problem in str(caught.value)
    assert OLD_SECRET not in str(caught.value) and overrides["jwt_secret"] not in str(caught.value)


def test_previous_secret_is_never_shown(overrides):
    app = rotated(overrides, IN_AN_HOUR)
    with app.app_context():
        signing = current_gateway().verifier.signing
        shown = repr(current_gateway().settings) + repr(signing.find(secret_kid(OLD_SECRET))) \
            + repr(signing.current)
    assert OLD_SECRET not in shown and overrides["jwt_secret"] not in shown


def test_nodes_on_either_step_of_a_roll_accept_each_others_tokens(overrides):
    """operations.md §4: step 1 nodes verify NEW in the previous slot; step 2 nodes sign with it."""
    new = overrides["jwt_secret"]
    step1 = create_app({**overrides, "jwt_secret": OLD_SECRET, "jwt_previous_secret": new,
                        "jwt_previous_keys_until": IN_AN_HOUR})
    step2 = rotated(overrides, IN_AN_HOUR)
    for signer, verifier in ((step1, step2), (step2, step1)):
        response = whoami(verifier, Auth(signer).token("alice"))
        assert response.status_code == 200 and response.json["sub"] == "alice"


def test_hs256_to_eddsa_keeps_hs256_tokens_inside_the_window(overrides, old_app):
    private_pem, public_pem, public_key = pem_pair("EdDSA")
    token = Auth(old_app).token("alice")
    eddsa = create_app({**overrides, "jwt_algorithm": "EdDSA", "jwt_private_key": private_pem,
                        "jwt_public_key": public_pem, "jwt_previous_secret": OLD_SECRET,
                        "jwt_previous_keys_until": IN_AN_HOUR})
    assert whoami(eddsa, token).json["sub"] == "alice"
    assert jwt.get_unverified_header(Auth(eddsa).token("bob"))["alg"] == "EdDSA"
    # Algorithm confusion: the public key's PEM as an HS256 secret, under the public key's kid.
    confused = whoami(eddsa, forge(public_pem, public_key_kid(public_key)))
    assert confused.status_code == 401
    assert confused.json["type"] == "urn:torchgate:problem:unauthorized"
