"""The audit tests' world: a key, records, and a fresh database of each kind to write them to."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from security.audit import AuditRecord, audit_chains, audit_key, audit_records
from security.audit_trail import AuditTrail
from tests.conftest import env_url

KEY = audit_key(bytes(range(32)))
TABLES = [audit_chains, audit_records]


def make_record(i: int = 0, subject: str | None = "alice") -> AuditRecord:
    return AuditRecord(time=f"2025-01-01T00:00:00.{i:06d}Z", request_id=f"req-{i:08d}",
                       subject=subject, action="predict.predict", model="tiny", version="1",
                       decision="allow", status=200, latency_us=1500 + i,
                       body_sha256=f"{i:064x}")


def isolated_postgres_engine() -> Iterator[sa.Engine]:
    """The test PostgreSQL server, in a schema of this test's own (others write there too)."""
    url = env_url("TORCHGATE_TEST_DATABASE_URL")
    schema = f"audit_{secrets.token_hex(6)}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def wal_journal(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'audit.db'}",
                                  connect_args={"timeout": 5})
        sa.event.listen(engine, "connect", wal_journal)  # as the gateway's engine does
        audit_chains.metadata.create_all(engine, tables=TABLES)
        yield engine
        engine.dispose()
        return
    for engine in isolated_postgres_engine():
        audit_chains.metadata.create_all(engine, tables=TABLES)
        yield engine


@pytest.fixture
def trail(engine) -> AuditTrail:
    return AuditTrail(engine, KEY, host="node-a")


def write(trail: AuditTrail, n: int, start: int = 0) -> list[str]:
    """Append n records; the chain id they went to, once per record."""
    return [trail.append(make_record(start + i)).chain_id for i in range(n)]


def rows(engine: sa.Engine, chain_id: str) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(audit_records).where(audit_records.c.chain_id == chain_id)
                            .order_by(audit_records.c.seq)).all()
