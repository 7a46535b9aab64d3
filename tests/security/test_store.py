"""The shared store: each scenario on SQLite, and on Redis when TORCHGATE_TEST_REDIS_URL is set."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from errors import StoreUnavailable
from security.admission import AdmissionRequest, RateLimit
from security.store import RedisStore, SharedStore, SqliteStore, open_store
from tests.security.store_backends import (
    REDIS_URL,
    UNREACHABLE_REDIS,
    UNWRITABLE_SQLITE,
    Backend,
    delete_namespace,
    needs_redis,
    sqlite_backend,
)


@pytest.mark.parametrize(("url", "kind"), [
    ("sqlite", SqliteStore), ("redis://127.0.0.1:6379/15", RedisStore),
    ("rediss://cache.example:6380/0", RedisStore)])
def test_open_store_picks_the_backend_from_the_url(tmp_path: Path, url: str, kind: type) -> None:
    store = open_store(url, tmp_path / "store.sqlite3")
    assert isinstance(store, kind)
    assert isinstance(store, SharedStore)


def test_open_store_refuses_an_unknown_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="STORE_URL"):
        open_store("memcached://127.0.0.1", tmp_path / "store.sqlite3")


def test_revoked_key_is_found_among_several(store: SharedStore) -> None:
    store.revoke("fam:1", 60)
    assert store.any_revoked(["jti:1", "fam:1"]) is True
    assert store.any_revoked(["jti:1", "fam:2"]) is False


def test_no_keys_are_never_revoked(store: SharedStore) -> None:
    assert store.any_revoked([]) is False


def test_any_revoked_refuses_a_bare_string(store: SharedStore) -> None:
    with pytest.raises(TypeError):
        store.any_revoked("jti:1")


def test_revocation_expires_after_its_ttl(backend: Backend, store: SharedStore) -> None:
    store.revoke("jti:1", 1)
    backend.advance(1.2)
    assert store.any_revoked(["jti:1"]) is False


def test_a_shorter_revoke_keeps_the_longer_one(backend: Backend, store: SharedStore) -> None:
    store.revoke("fam:1", 60)
    store.revoke("fam:1", 1)
    backend.advance(1.2)
    assert store.any_revoked(["fam:1"]) is True


def test_claim_once_refuses_a_replay(store: SharedStore) -> None:
    assert store.claim_once("iv:k1:aaaa", 60) is True
    assert store.claim_once("iv:k1:aaaa", 60) is False
    assert store.claim_once("iv:k1:bbbb", 60) is True


def test_claim_is_free_again_after_its_ttl(backend: Backend, store: SharedStore) -> None:
    assert store.claim_once("iv:k1:aaaa", 1) is True
    backend.advance(1.2)
    assert store.claim_once("iv:k1:aaaa", 1) is True
    assert store.claim_once("iv:k1:aaaa", 1) is False


def test_failures_are_counted_per_key(store: SharedStore) -> None:
    counts = [store.record_failure("user:alice", 60) for _ in range(3)]
    assert counts == [1, 2, 3]
    assert store.record_failure("addr:10.0.0.1", 60) == 1


def test_failure_state_reports_count_and_time_left(store: SharedStore) -> None:
    store.record_failure("user:alice", 60)
    store.record_failure("user:alice", 60)
    count, left = store.failure_state("user:alice")
    assert count == 2
    assert 58 <= left <= 60


def test_failure_state_without_failures_is_empty(store: SharedStore) -> None:
    assert store.failure_state("user:nobody") == (0, 0)


def test_failure_window_is_fixed_at_the_first_failure(backend: Backend, store: SharedStore) -> None:
    assert store.record_failure("user:alice", 1) == 1
    backend.advance(0.6)
    assert store.record_failure("user:alice", 1) == 2
    backend.advance(0.6)
    assert store.failure_state("user:alice") == (0, 0)
    assert store.record_failure("user:alice", 1) == 1


def test_clear_failures_forgets_the_count(store: SharedStore) -> None:
    store.record_failure("user:alice", 60)
    store.clear_failures("user:alice")
    assert store.failure_state("user:alice") == (0, 0)
    assert store.record_failure("user:alice", 60) == 1


def test_another_worker_sees_a_revocation(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    first.revoke("jti:1", 60)
    assert second.any_revoked(["jti:1"]) is True


def test_another_worker_sees_a_claim(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    assert first.claim_once("iv:k1:aaaa", 60) is True
    assert second.claim_once("iv:k1:aaaa", 60) is False


def test_another_worker_sees_the_failure_count(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    first.record_failure("user:alice", 60)
    assert second.record_failure("user:alice", 60) == 2


def test_store_is_usable_again_after_close(store: SharedStore) -> None:
    store.revoke("jti:1", 60)
    store.close()
    assert store.any_revoked(["jti:1"]) is True


def test_threads_claim_each_key_exactly_once(store: SharedStore) -> None:
    keys = [f"iv:k1:{i}" for i in range(100)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(pool.map(lambda _: [k for k in keys if store.claim_once(k, 60)], range(8)))
    assert Counter(k for won in wins for k in won) == Counter(keys)


def _claim_all(store: SharedStore, keys: list[str], start: threading.Barrier,
               results: multiprocessing.Queue) -> None:
    """Run in a worker process: wait for the others, then claim every key."""
    start.wait(timeout=60)
    results.put([key for key in keys if store.claim_once(key, 60)])


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_processes_claim_each_key_exactly_once(store: SharedStore, method: str) -> None:
    store.ping()  # the parent has a live connection: a forked child must not reuse it
    context = multiprocessing.get_context(method)
    keys = [f"iv:k1:{i}" for i in range(200)]
    start, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_claim_all, args=(store, keys, start, results))
               for _ in range(4)]
    for worker in workers:
        worker.start()
    wins = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert Counter(k for won in wins for k in won) == Counter(keys)


@needs_redis
def test_redis_namespaces_do_not_see_each_other() -> None:
    first, second = (RedisStore(REDIS_URL, f"torchgate-test-{uuid.uuid4().hex}") for _ in "ab")
    first.revoke("jti:1", 60)
    assert second.any_revoked(["jti:1"]) is False
    delete_namespace(first.namespace)


UNREACHABLE = {"sqlite": lambda: SqliteStore(UNWRITABLE_SQLITE),
               "redis": lambda: RedisStore(UNREACHABLE_REDIS, timeout=0.2)}
OPERATIONS = {
    "ping": lambda s: s.ping(),
    "revoke": lambda s: s.revoke("jti:1", 60),
    "any_revoked": lambda s: s.any_revoked(["jti:1", "fam:1"]),
    "claim_once": lambda s: s.claim_once("iv:k1:aaaa", 60),
    "record_failure": lambda s: s.record_failure("user:alice", 60),
    "failure_state": lambda s: s.failure_state("user:alice"),
    "clear_failures": lambda s: s.clear_failures("user:alice"),
    "admit": lambda s: s.admit(AdmissionRequest(["jti:1"], "iv:k1:aa", 60,
                                                RateLimit.parse("p", "5/minute").counters("a"))),
    "admit (revocation only)": lambda s: s.admit(AdmissionRequest(["jti:1"])),
}


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_unreachable_backend_fails_closed(kind: str, operation: str) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        OPERATIONS[operation](UNREACHABLE[kind]())
    assert raised.value.status == 503


def test_sqlite_workers_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    for round_ in range(40):  # the race (who switches the file to WAL) is lost only sometimes
        store = SqliteStore(tmp_path / f"store-{round_}.sqlite3")
        start = threading.Barrier(16)

        def claim(_: int, store: SqliteStore = store, start: threading.Barrier = start) -> bool:
            start.wait(timeout=10)
            return store.claim_once("iv:k1:aaaa", 60)

        with ThreadPoolExecutor(max_workers=16) as pool:
            assert sorted(pool.map(claim, range(16))) == [False] * 15 + [True]
        store.close()


def _lock_writes(path: Path) -> sqlite3.Connection:
    """Take the database's write lock from another connection, as a stuck writer would."""
    SqliteStore(path).ping()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_locked_sqlite_fails_closed_after_the_busy_timeout(tmp_path: Path) -> None:
    holder = _lock_writes(tmp_path / "store.sqlite3")
    store = SqliteStore(tmp_path / "store.sqlite3", busy_timeout_ms=50)
    with pytest.raises(StoreUnavailable):
        store.claim_once("iv:k1:aaaa", 60)
    holder.close()


def test_sqlite_reads_are_not_blocked_by_a_writer(tmp_path: Path) -> None:
    holder = _lock_writes(tmp_path / "store.sqlite3")
    store = SqliteStore(tmp_path / "store.sqlite3", busy_timeout_ms=50)
    assert store.any_revoked(["jti:1"]) is False
    holder.close()


def test_sqlite_deletes_expired_rows(tmp_path: Path) -> None:
    backend = sqlite_backend(tmp_path / "store.sqlite3")
    store = backend.open()
    for i in range(50):
        store.revoke(f"jti:{i}", 1)
        store.record_failure(f"user:{i}", 1)
    backend.advance(60)
    store.claim_once("iv:k1:aaaa", 60)
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        counts = [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                  for t in ("marks", "failures")]
    assert counts == [1, 0]


def test_release_failure_gives_back_one_count_and_never_goes_below_zero(store: SharedStore) -> None:
    store.record_failure("login:addr:x", 60)
    store.record_failure("login:addr:x", 60)
    store.release_failure("login:addr:x")
    assert store.failure_state("login:addr:x")[0] == 1
    store.release_failure("login:addr:x")
    store.release_failure("login:addr:x")
    assert store.failure_state("login:addr:x")[0] == 0
