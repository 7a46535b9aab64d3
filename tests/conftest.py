"""Shared fixtures: a tiny sealed model repository, the app, a client, tokens and sealing."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token, create_refresh_token

from app import create_app
from app.gateway import Gateway, current_gateway
from security.encoding import b64url_encode
from security.envelope import open_envelope, request_digest, seal_envelope
from tests.fixtures import write_model

KEK_ID = "test-kek"
KEK = bytes(range(32))


def write_tiny_model(repository: Path, name: str = "tiny", version: str = "1",
                     kek_id: str = KEK_ID, kek: bytes = KEK) -> Path:
    """Seal the real 4 -> 8 -> 3 MLP of MLP_MANIFEST into repository/name/version."""
    return write_model(repository, name, kek_id=kek_id, kek=kek, versions=(version,))


TEST_VARIABLE_PREFIX = "TORCHGATE_TEST_"  # the suite's own (server URLs); every other one goes


@pytest.fixture(scope="session", autouse=True)
def hermetic(tmp_path_factory) -> Iterator[Path]:
    """No TORCHGATE_* variable, instance dir or config file of the developer's reaches a test.

    The suite runs in an empty working directory (so `instance/torchgate.toml` written by
    `make run` is not there) with the gateway's variables removed; both come back at the end.
    """
    saved = {k: v for k, v in os.environ.items()
             if k.startswith("TORCHGATE_") and not k.startswith(TEST_VARIABLE_PREFIX)}
    for name in saved:
        del os.environ[name]
    previous = Path.cwd()
    workdir = tmp_path_factory.mktemp("cwd")
    os.chdir(workdir)
    try:
        yield workdir
    finally:
        os.chdir(previous)
        os.environ.update(saved)


@pytest.fixture(scope="session")
def tiny_repository(tmp_path_factory) -> Path:
    repository = tmp_path_factory.mktemp("repository")
    write_tiny_model(repository)
    return repository


def instance_overrides(instance_dir: Path, repository: Path, **extra) -> dict:
    """Settings of a testing instance: the tiny repository's KEK and fresh secrets."""
    return {
        "env": "testing",
        "instance_dir": str(instance_dir),
        "model_repository": str(repository),
        "model_keys": f"{KEK_ID}:{b64url_encode(KEK)}",
        "jwt_secret": "t" * 16 + secrets.token_hex(16),
        "master_key": b64url_encode(secrets.token_bytes(32)),
        **extra,
    }


@pytest.fixture
def overrides(tmp_path, tiny_repository) -> dict:
    return instance_overrides(tmp_path / "instance", tiny_repository)


@pytest.fixture
def app(overrides) -> Flask:
    return create_app(overrides)


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def gateway(app) -> Gateway:
    with app.app_context():
        return current_gateway()


@dataclass
class Auth:
    """Mints real tokens and payload keys through the app's own machinery."""

    app: Flask

    def token(self, sub: str = "alice", roles: tuple[str, ...] = ("analyst",),
              refresh: bool = False, **claims) -> str:
        with self.app.app_context():
            make = create_refresh_token if refresh else create_access_token
            return make(sub, additional_claims={"roles": list(roles), **claims})

    def headers(self, sub: str = "alice", roles: tuple[str, ...] = ("analyst",)) -> dict:
        return {"Authorization": f"Bearer {self.token(sub, roles)}"}

    def payload_key(self, sub: str = "alice") -> tuple[str, bytes]:
        with self.app.app_context():
            issued = current_gateway().keyring.issue(sub)
        return issued.kid, issued.key


@pytest.fixture
def auth(app) -> Auth:
    return Auth(app)


@dataclass
class Sealer:
    """Seals request bodies and opens sealed replies, as a client would."""

    kid: str
    key: bytes
    sent: list[bytes] = field(default_factory=list)

    def seal(self, payload: dict | bytes, **kwargs) -> bytes:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        body = seal_envelope(data, key=self.key, kid=self.kid, **kwargs)
        self.sent.append(body)
        return body

    def open(self, body: bytes, request: bytes | None = None) -> dict:
        """The reply to `request`, by default the last request sealed here."""
        opened = open_envelope(body, key_for=lambda kid: self.key, now=time.time(), max_age=300,
                               reply_to=request_digest(request or self.sent[-1]))
        return json.loads(opened.plaintext)


@pytest.fixture
def sealer(auth) -> Sealer:
    return Sealer(*auth.payload_key("alice"))


SEALED = "application/jose+json"


@pytest.fixture
def predict(client, auth, sealer) -> Callable:
    """POST a sealed request as alice (analyst) to /predict/tiny."""
    def call(payload: dict, path: str = "/predict/tiny", **headers):
        return client.post(path, data=sealer.seal(payload), content_type=SEALED,
                           headers={**auth.headers(), **headers})
    return call


def env_url(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        pytest.skip(f"{name} is not set: this test needs that server (.ci/run sets it)")
    return url
