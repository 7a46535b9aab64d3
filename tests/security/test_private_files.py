"""The instance directory and the files holding hashes, wrapped keys and the audit trail are
the owner's alone (0700 / 0600) on every path that creates them, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app import create_app
from app.commands.demo import _write_config_once
from tests.conftest import instance_overrides


@pytest.fixture
def open_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_demo_config_creates_a_private_instance_dir(tmp_path, monkeypatch, open_umask):
    instance = tmp_path / "deep" / "instance"
    monkeypatch.setenv("TORCHGATE_INSTANCE_DIR", str(instance))
    monkeypatch.delenv("TORCHGATE_CONFIG", raising=False)
    config = _write_config_once()
    assert (mode(instance), mode(config)) == (0o700, 0o600)


def test_gateway_creates_private_database_store_and_locks(tmp_path, tiny_repository, open_umask):
    instance = tmp_path / "instance"
    app = create_app(instance_overrides(instance, tiny_repository))
    client = app.test_client()
    assert client.post("/auth/token", data={"grant_type": "password", "username": "x",
                                            "password": "y"}).status_code == 400
    created = sorted(p.name for p in instance.iterdir())
    for name in ("torchgate.db", "store.sqlite3", "torchgate.db.write-lock"):
        assert name in created
    assert mode(instance) == 0o700
    assert {name: mode(instance / name) for name in created} == dict.fromkeys(created, 0o600)
