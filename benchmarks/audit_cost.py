"""Cost of the audit trail per request (one INSERT + head UPDATE + commit), of its signed
chain-head anchors (security.audit_anchor) and of `audit verify`.

Uses the gateway's own engine set-up (SQLite in WAL mode; PostgreSQL with its pool) on a fresh
database or schema. Run:
    .venv/bin/python benchmarks/audit_cost.py [--database-url postgresql+psycopg://…/test]
PostgreSQL is skipped when it does not answer.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from app.gateway import create_database_engine
from security.audit import AuditRecord, audit_key, utc_now
from security.audit_anchor import AnchorPublisher, anchor_key
from security.audit_trail import AuditTrail
from security.audit_verify import verify_trail
from security.store import SqliteStore

MASTER_KEY = secrets.token_bytes(32)
KEY = audit_key(MASTER_KEY)


def record(i: int) -> AuditRecord:
    return AuditRecord(time=utc_now(), request_id=f"{i:032x}", subject="alice",
                       action="predict.predict", model="digits", version="1", decision="allow",
                       status=200, latency_us=1234, body_sha256=f"{i:064x}")


def append_us(trail: AuditTrail, n: int) -> list[float]:
    """µs of each of n appends by one thread, after a short warm-up."""
    for i in range(50):
        trail.append(record(-1 - i))
    samples = []
    for i in range(n):
        start = time.perf_counter_ns()
        trail.append(record(i))
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def threaded_us(trail: AuditTrail, threads: int, n: int) -> float:
    """Wall µs per record while `threads` threads of one worker append at once."""
    workers = [threading.Thread(target=lambda: [trail.append(record(i)) for i in range(n)])
               for _ in range(threads)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (time.perf_counter() - began) / (threads * n) * 1e6


def anchored_rows(name: str, engine: sa.Engine, store: SqliteStore, n: int) -> list[str]:
    """Appends of a trail that anchors its head in a SQLite store, every 1 s and every commit."""
    rows = []
    for interval in (1, 0):
        publisher = AnchorPublisher(store.put_anchor, anchor_key(MASTER_KEY), interval)
        trail = AuditTrail(engine, KEY, on_head=publisher.after_commit)
        samples = sorted(append_us(trail, n))
        rows.append(f"| {name} | append, 1 thread, anchor every {interval or 'commit'}"
                    f"{' s' if interval else ''} | {statistics.mean(samples):.0f} | "
                    f"{statistics.median(samples):.0f} | {samples[int(len(samples) * 0.99)]:.0f} |")
    return rows


def publish_rows(store: SqliteStore, n: int) -> list[str]:
    """One anchor publish alone (Ed25519 sign + one store write), and the check when not due."""
    from security.audit import ChainHead
    rows = []
    for interval, case in ((0, "anchor publish: sign + SQLite store write"),
                           (3600, "anchor check when not due")):
        publisher = AnchorPublisher(store.put_anchor, anchor_key(MASTER_KEY), interval)
        samples = []
        for i in range(n):
            head = ChainHead("bench:1:0", 1, i, f"{i:064x}")
            start = time.perf_counter_ns()
            publisher.after_commit(head)
            samples.append((time.perf_counter_ns() - start) / 1000)
        samples.sort()
        rows.append(f"| sqlite | {case} | {statistics.mean(samples):.1f} | "
                    f"{statistics.median(samples):.1f} | {samples[int(n * 0.99)]:.1f} |")
    return rows


def bench(name: str, engine: sa.Engine, n: int, store: SqliteStore) -> list[str]:
    trail = AuditTrail(engine, KEY)
    samples = sorted(append_us(trail, n))
    p99 = samples[int(len(samples) * 0.99)]
    rows = [f"| {name} | append, 1 thread, no anchors | {statistics.mean(samples):.0f} | "
            f"{statistics.median(samples):.0f} | {p99:.0f} |",
            *anchored_rows(name, engine, store, n),
            f"| {name} | append, 4 threads of one worker (wall per record) | "
            f"{threaded_us(trail, 4, n // 4):.0f} | | |"]
    began = time.perf_counter()
    verdict = verify_trail(engine, KEY)
    seconds = time.perf_counter() - began
    assert verdict.intact, verdict
    rows.append(f"| {name} | verify, {verdict.records} records | "
                f"{seconds / verdict.records * 1e6:.1f} | | |")
    return rows


def whoami_us(app, n: int) -> float:
    """Mean µs of an authenticated GET /auth/whoami through the Flask test client."""
    from flask_jwt_extended import create_access_token
    with app.app_context():
        token = create_access_token("alice", additional_claims={"roles": ["analyst"]})
    client, headers = app.test_client(), {"Authorization": f"Bearer {token}"}
    for _ in range(50):
        client.get("/auth/whoami", headers=headers)
    began = time.perf_counter()
    for _ in range(n):
        assert client.get("/auth/whoami", headers=headers).status_code == 200
    return (time.perf_counter() - began) / n * 1e6


def request_rows(tmp: str, n: int) -> list[str]:
    """One request with the audit hook, anchoring every 1 s (the default) and every commit,
    and without the hook (SQLite database and store)."""
    from app import audit, create_app
    from security.generated_secrets import new_secrets
    (Path(tmp) / "models").mkdir()
    rows = []
    for interval in (1, 0):
        app = create_app({**new_secrets(), "env": "testing", "model_repository": f"{tmp}/models",
                          "instance_dir": f"{tmp}/instance-{interval}",
                          "audit_anchor_interval": interval})
        every = f"{interval} s" if interval else "commit"
        rows.append(f"| sqlite | GET /auth/whoami, audit hook, anchor every {every} | "
                    f"{whoami_us(app, n):.0f} | | |")
    audited, audit.is_audited = audit.is_audited, lambda _request: False
    try:
        rows.append(f"| sqlite | GET /auth/whoami without the audit hook | {whoami_us(app, n):.0f}"
                    " | | |")
    finally:
        audit.is_audited = audited
    return rows


def postgres_schema(url: str) -> tuple[sa.Engine, sa.Engine, str] | None:
    """(admin engine, engine in a fresh schema, schema), or None when PostgreSQL is down."""
    admin = sa.create_engine(url)
    schema = f"audit_bench_{secrets.token_hex(4)}"
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError:
        print(f"postgresql at {url} does not answer: skipped", file=sys.stderr)
        return None
    scoped = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    return admin, create_database_engine(scoped), schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "TORCHGATE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("-n", type=int, default=4000, help="appends per case")
    args = parser.parse_args()
    rows = ["| database | case | mean µs | median µs | p99 µs |", "|---|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "store.sqlite3")
        engine = create_database_engine(f"sqlite:///{Path(tmp) / 'audit.db'}")
        rows += publish_rows(store, args.n)
        rows += bench("sqlite", engine, args.n, store)
        engine.dispose()
        rows += request_rows(tmp, args.n // 4)
        scoped = postgres_schema(args.database_url)
        if scoped is not None:
            rows += postgres_rows(*scoped, args.n, store)
    print("\n".join(rows))


def postgres_rows(admin: sa.Engine, engine: sa.Engine, schema: str, n: int,
                  store: SqliteStore) -> list[str]:
    try:
        return bench("postgresql", engine, n, store)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
