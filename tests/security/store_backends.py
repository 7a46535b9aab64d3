"""Shared-store backends for the store and admission tests: SQLite, and Redis when configured."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from security.store import RedisStore, SharedStore, SqliteStore

REDIS_URL = os.environ.get("TORCHGATE_TEST_REDIS_URL", "")
needs_redis = pytest.mark.skipif(
    not REDIS_URL,
    reason="Redis backend not tested: set TORCHGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/15)")
BACKENDS = ["sqlite", pytest.param("redis", marks=needs_redis)]
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
UNWRITABLE_SQLITE = Path("/proc/torchgate-no-such-dir/store.sqlite3")


class FakeClock:
    """A settable wall clock for SqliteStore, so expiry tests need not sleep."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    """Opens stores on one shared state (as separate workers would) and lets time pass."""

    opener: Callable[[], SharedStore]
    advance: Callable[[float], None]
    opened: list[SharedStore] = field(default_factory=list)

    def open(self) -> SharedStore:
        store = self.opener()
        self.opened.append(store)
        return store


def sqlite_backend(path: Path) -> Backend:
    clock = FakeClock()
    return Backend(lambda: SqliteStore(path, clock=clock), clock.advance)


def delete_namespace(namespace: str) -> None:
    """Remove every key a Redis test left behind."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{namespace}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def backend_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each test gets its own SQLite file or its own Redis namespace."""
    namespace = f"torchgate-test-{uuid.uuid4().hex}"
    if request.param == "sqlite":
        chosen = sqlite_backend(tmp_path / "store.sqlite3")
    else:
        chosen = Backend(lambda: RedisStore(REDIS_URL, namespace), time.sleep)
    yield chosen
    for store in chosen.opened:
        store.close()
    if request.param == "redis":
        delete_namespace(namespace)


def store_fixture(backend: Backend) -> SharedStore:
    return backend.open()


