"""Fixtures of the app tests: two apps sharing a store and a database, as workers or nodes do."""

from __future__ import annotations

import pytest

from app import create_app
from tests.conftest import env_url


def store_url(kind: str) -> str:
    return "sqlite" if kind == "sqlite" else env_url("TORCHGATE_TEST_REDIS_URL")


def database_url(kind: str, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return env_url("TORCHGATE_TEST_DATABASE_URL")


@pytest.fixture(params=[("sqlite", "sqlite"), ("redis", "postgresql")],
                ids=["sqlite-store+sqlite-db", "redis-store+postgresql-db"])
def two_workers(request, overrides, tmp_path):
    store_kind, db_kind = request.param
    shared = {**overrides, "store_url": store_url(store_kind),
              "database_url": database_url(db_kind, tmp_path)}
    first = create_app(shared)
    second = create_app({**shared, "instance_dir": overrides["instance_dir"]})
    return first, second
