"""The world the OpenAPI conformance cases run in: the app, its accounts, a faulty repository."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from tests.app.fragile import Fragile
from tests.conftest import KEK, KEK_ID, SEALED, Auth, Sealer
from tests.fixtures import MLP_MANIFEST, write_model

PASSWORD = "correct horse battery"
FRAGILE_MANIFEST = MLP_MANIFEST.replace("models.zoo:MLP", "tests.app.fragile:Fragile").replace(
    "[arguments]\nin_features = 4\nhidden = [8]\nout_features = 3\n", "")


def write_faulty_repository(root: Path) -> Path:
    """tiny (good), broken (its weights missing: 503) and fragile (500 on a batch of two)."""
    write_model(root, "tiny", kek_id=KEK_ID, kek=KEK)
    write_model(root, "broken", kek_id=KEK_ID, kek=KEK)
    (root / "broken" / "1" / "model.safetensors.sealed").unlink()
    write_model(root, "fragile", kek_id=KEK_ID, kek=KEK, manifest=FRAGILE_MANIFEST,
                state=Fragile().state_dict())
    return root


@dataclass(frozen=True)
class World:
    """One app; accounts and other apps (sharing its secrets and database) made on demand."""

    app: Flask
    faulty_repository: Path
    overrides: dict
    auth: Auth
    sealer: Sealer

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    def client_with(self, **changes: str | int) -> FlaskClient:
        """A client of another app: these overrides changed, the same secrets and database."""
        return create_app({**self.overrides, **changes}).test_client()

    def faulty_client(self) -> FlaskClient:
        """The faulty repository, plain JSON accepted, bodies of at most 4 KiB."""
        return self.client_with(model_repository=str(self.faulty_repository),
                                payload_encryption="optional", max_body_bytes=4096)

    def with_alice(self) -> World:
        """The user alice (analyst), password PASSWORD."""
        with self.app.app_context():
            self.app.extensions["torchgate"].directory.create_user("alice", PASSWORD, ["analyst"])
        return self

    def robot_secret(self) -> str:
        """The client robot (viewer); its secret."""
        with self.app.app_context():
            _, secret = self.app.extensions["torchgate"].directory.create_client("robot",
                                                                                 ["viewer"])
        return secret

    def as_(self, roles: tuple[str, ...] = ("admin",), sub: str = "alice") -> dict:
        return self.auth.headers(sub, roles)

    def sealed_post(self, path: str, payload: dict, client: FlaskClient | None = None,
                    **headers: str) -> TestResponse:
        return (client or self.client).post(path, data=self.sealer.seal(payload),
                                            content_type=SEALED, headers={**self.as_(), **headers})


def make_world(overrides: dict, faulty_repository: Path, auth: Auth, sealer: Sealer) -> World:
    """The world of the test's app."""
    return World(auth.app, faulty_repository, overrides, auth, sealer)
