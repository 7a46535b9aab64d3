"""Cost of the shared store's hot-path calls, per backend: a markdown table of µs per call.

Every request checks two revocation keys (any_revoked) and every sealed request claims its
envelope IV (claim_once); a model call asks them, its rate limit and the model's [quota] in one
admission round trip (admit), so these calls are what the store adds to each request. Run:
    .venv/bin/python benchmarks/store_cost.py [--redis-url redis://127.0.0.1:6379/15]
Redis is skipped when it does not answer.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from errors import StoreUnavailable
from security.admission import AdmissionRequest, RateLimit
from security.store import RedisStore, SharedStore, SqliteStore

SEEDED_REVOCATIONS = 10_000
TOKEN_KEYS = ["jti:bench", "fam:live"]
RATE = RateLimit.parse("predict", "1000000000/minute").counters("bench")
QUOTA = RateLimit.parse("quota:bench", "1000000000/day").counters("bench")
Call = Callable[[SharedStore, int], object]
CASES: dict[str, Call] = {
    "any_revoked, 2 keys, none revoked": lambda s, i: s.any_revoked([f"jti:{i}", "fam:live"]),
    "any_revoked, 2 keys, family revoked": lambda s, i: s.any_revoked([f"jti:{i}", "fam:dead"]),
    "claim_once, new key": lambda s, i: s.claim_once(f"iv:bench:{i}", 600),
    "claim_once, replay": lambda s, i: s.claim_once("iv:bench:0", 600),
    "admit: revocation, rate limit, claim": lambda s, i: s.admit(
        AdmissionRequest(TOKEN_KEYS, f"iv:admit:{i}", 600, RATE)),
    "admit: the same and a model's [quota]": lambda s, i: s.admit(
        AdmissionRequest(TOKEN_KEYS, f"iv:quota:{i}", 600, RATE, QUOTA)),
}


def time_calls(store: SharedStore, call: Call, n: int) -> list[float]:
    """µs of each of n calls, after a short warm-up."""
    for i in range(min(200, n)):
        call(store, -1 - i)
    samples = []
    for i in range(n):
        start = time.perf_counter_ns()
        call(store, i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def seed(store: SharedStore) -> None:
    """A realistic table: many live revocations, one of them the family the 'hit' case asks for."""
    for i in range(SEEDED_REVOCATIONS):
        store.revoke(f"jti:seed:{i}", 600)
    store.revoke("fam:dead", 600)


def _claim_distinct(store: SharedStore, worker: int, n: int, start, results) -> None:
    """One worker process: claim n keys of its own as fast as it can."""
    start.wait(timeout=60)
    began = time.perf_counter()
    for i in range(n):
        store.claim_once(f"iv:w{worker}:{i}", 600)
    results.put(time.perf_counter() - began)


def concurrent_claim_us(store: SharedStore, processes: int, n: int) -> float:
    """µs per claim_once seen by each of several processes claiming at once (write contention)."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_claim_distinct, args=(store, w, n, start, results))
               for w in range(processes)]
    for worker in workers:
        worker.start()
    seconds = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join()
    return statistics.mean(seconds) / n * 1e6


def bench(name: str, store: SharedStore, n: int, processes: int) -> list[str]:
    """Table rows for one backend."""
    seed(store)
    rows = []
    for case, call in CASES.items():
        samples = sorted(time_calls(store, call, n))
        p99 = samples[int(len(samples) * 0.99)]
        rows.append(f"| {name} | {case} | {statistics.mean(samples):.1f} | "
                    f"{statistics.median(samples):.1f} | {p99:.1f} |")
    per_call = concurrent_claim_us(store, processes, n // 4)
    rows.append(f"| {name} | claim_once, new key, {processes} processes at once | "
                f"{per_call:.1f} | | |")
    return rows


def open_redis(url: str) -> RedisStore | None:
    """A RedisStore in a fresh namespace, or None when Redis does not answer."""
    store = RedisStore(url, f"torchgate-bench-{uuid.uuid4().hex}")
    try:
        store.ping()
    except StoreUnavailable:
        print(f"redis at {url} does not answer: skipped", file=sys.stderr)
        return None
    return store


def drop_namespace(store: RedisStore) -> None:
    """Delete the benchmark's keys."""
    client = redis.Redis.from_url(store.url)
    for batch in _batches(list(client.scan_iter(match=f"{store.namespace}:*", count=1000))):
        client.delete(*batch)
    client.close()


def _batches(keys: list, size: int = 1000) -> list[list]:
    return [keys[i:i + size] for i in range(0, len(keys), size)]


def main() -> None:
    """Measure both backends and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get(
        "TORCHGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument("-n", type=int, default=20_000, help="calls per case")
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    rows = ["| backend | call | mean µs | median µs | p99 µs |", "|---|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "store.sqlite3")
        rows += bench("sqlite", sqlite, args.n, args.processes)
        sqlite.close()
    store = open_redis(args.redis_url)
    if store is not None:
        try:
            rows += bench("redis", store, args.n, args.processes)
        finally:
            drop_namespace(store)
            store.close()
    print("\n".join(rows))


if __name__ == "__main__":
    main()
