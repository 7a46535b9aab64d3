"""What an operator prepares before starting a gateway: secrets, instance dir, models, callers.

Settings go to a TOML file (TORCHGATE_CONFIG); secrets go to 0600 files named by
TORCHGATE_*_FILE, as Docker and Kubernetes secrets mount them.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from security.encoding import b64url_encode
from tests.conftest import write_tiny_model
from tests.fixtures import write_model
from tests.ops.slow_model import SLEEPY_MANIFEST, sleepy_state

Settings = dict[str, str | int]


@dataclass(frozen=True)
class Secrets:
    """Every secret one gateway (or a group of nodes) runs with."""

    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    master_key: str = field(default_factory=lambda: b64url_encode(secrets.token_bytes(32)))
    kek_id: str = "ops-kek"
    kek: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def model_keys(self) -> str:
        return f"{self.kek_id}:{b64url_encode(self.kek)}"


@dataclass(frozen=True)
class Identities:
    """The callers created in a gateway's database (secrets shown once, kept here)."""

    username: str
    password: str
    client_id: str
    client_secret: str
    kid: str
    key: bytes


def write_instance(root: Path, keys: Secrets, settings: Settings) -> tuple[Settings, dict]:
    """Instance dir, sealed models, TOML and secret files: (the TOML settings, the environment)."""
    instance, repository, secret_dir = root / "instance", root / "models", root / "secrets"
    for directory in (instance, repository, secret_dir, root / "metrics"):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_tiny_model(repository, "tiny", kek_id=keys.kek_id, kek=keys.kek)
    write_model(repository, "sleepy", kek_id=keys.kek_id, kek=keys.kek,
                manifest=SLEEPY_MANIFEST, state=sleepy_state())
    toml = {"env": "production", "instance_dir": str(instance),
            "model_repository": str(repository), "device": "cpu", **settings}
    config = instance / "torchgate.toml"
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in toml.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHGATE_")}
    env.update(TORCHGATE_CONFIG=str(config), PROMETHEUS_MULTIPROC_DIR=str(root / "metrics"))
    for name, value in (("JWT_SECRET", keys.jwt_secret), ("MASTER_KEY", keys.master_key),
                        ("MODEL_KEYS", keys.model_keys)):
        path = secret_dir / name.lower()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        env[f"TORCHGATE_{name}_FILE"] = str(path)
    return tomllib.loads(config.read_text()), env


def create_identities(keys: Secrets, toml: Settings) -> Identities:
    """A user, a client and the user's payload key, written through the gateway's own code."""
    from app import create_app
    from app.gateway import current_gateway

    app = create_app({**toml, "jwt_secret": keys.jwt_secret, "master_key": keys.master_key,
                      "model_keys": keys.model_keys})
    username, password = f"ops-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    with app.app_context():
        gateway = current_gateway()
        gateway.directory.create_user(username, password, ["analyst"])
        client, client_secret = gateway.directory.create_client(
            f"ops-client-{secrets.token_hex(4)}", ["analyst"])
        issued = gateway.keyring.issue(username)
        gateway.engine.dispose()
    return Identities(username, password, client.subject, client_secret, issued.kid, issued.key)
