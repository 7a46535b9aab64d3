"""The audit writer: records link in order, threads and processes append safely, failures heal."""

from __future__ import annotations

import os
import threading
import time

import pytest
import sqlalchemy as sa

from security.audit import AuditRecord, AuditUnavailable, audit_chains
from security.audit_trail import AuditTrail
from security.audit_verify import Verdict, verify_trail
from tests.security.audit_fixtures import KEY, engine, make_record, rows, trail, write

__all__ = ["engine", "trail"]  # fixtures


def test_empty_trail_is_intact(engine):
    assert verify_trail(engine, KEY) == Verdict(chains=0, records=0)


def test_one_process_writes_one_chain_of_consecutive_records(engine, trail):
    chain_ids = write(trail, 4)
    assert len(set(chain_ids)) == 1
    assert [r.seq for r in rows(engine, chain_ids[0])] == [0, 1, 2, 3]


def test_each_record_links_to_the_one_before(engine, trail):
    chain_id = write(trail, 3)[0]
    records = rows(engine, chain_id)
    assert [r.prev_hash for r in records[1:]] == [r.record_hash for r in records[:-1]]


def test_first_record_links_to_its_chain_entry(engine, trail):
    chain_id = write(trail, 1)[0]
    with engine.connect() as conn:
        entry = conn.execute(sa.select(audit_chains)).one()
    assert (entry.chain_id, entry.head_seq) == (chain_id, 0)
    assert rows(engine, chain_id)[0].prev_hash == entry.chain_hash


def test_record_fields_are_stored_as_given(engine, trail):
    record = make_record(7, subject=None)
    chain_id = trail.append(record).chain_id
    stored = rows(engine, chain_id)[0]
    assert AuditRecord(**{k: getattr(stored, k) for k in record.__dataclass_fields__}) == record


def test_two_writers_verify_intact(engine):
    write(AuditTrail(engine, KEY, host="node-a"), 3)
    write(AuditTrail(engine, KEY, host="node-b"), 2)
    assert verify_trail(engine, KEY) == Verdict(chains=2, records=5)


def test_chain_ids_name_host_and_process(trail):
    host, pid, suffix = trail.append(make_record()).chain_id.split(":")
    assert (host, pid, len(suffix)) == ("node-a", str(os.getpid()), 12)


def test_threads_of_one_writer_append_in_order(engine, trail):
    threads = [threading.Thread(target=write, args=(trail, 25, 100 * t)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verify_trail(engine, KEY) == Verdict(chains=1, records=200)


def test_records_queued_during_a_commit_share_the_next_one(engine):
    commits = []
    trail = AuditTrail(engine, KEY, on_commit=commits.append)
    write(trail, 1)
    commits.clear()
    threads = [threading.Thread(target=write, args=(trail, 1, 1 + t)) for t in range(5)]
    with trail._lock:  # white box: as if a commit were in flight while five requests arrive
        for thread in threads:
            thread.start()
        while len(trail._queue) < 5:
            time.sleep(0.001)
    for thread in threads:
        thread.join()
    assert commits == [5]
    assert verify_trail(engine, KEY) == Verdict(chains=1, records=6)


def test_unreachable_database_raises_audit_unavailable(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'audit.db'}")
    with pytest.raises(AuditUnavailable) as caught:
        AuditTrail(engine, KEY).append(make_record())
    assert (caught.value.status, caught.value.slug) == (503, "service-unavailable")


def test_writer_resumes_its_chain_after_a_failed_write(engine, trail):
    chain_id = write(trail, 2)[0]
    with engine.begin() as conn:  # a concurrent change the writer does not expect
        conn.execute(sa.update(audit_chains).values(head_seq=99))
    with pytest.raises(AuditUnavailable):
        trail.append(make_record(2))
    with engine.begin() as conn:
        conn.execute(sa.update(audit_chains).values(head_seq=1))
    assert trail.append(make_record(3)).chain_id == chain_id
    assert verify_trail(engine, KEY) == Verdict(chains=1, records=3)


def test_forked_child_starts_a_chain_of_its_own(engine, trail):
    write(trail, 2)
    pid = os.fork()
    if pid == 0:  # the child: fresh pool connections, as a gunicorn worker's engine must have
        engine.dispose(close=False)
        try:
            write(trail, 3)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    write(trail, 1)
    assert verify_trail(engine, KEY) == Verdict(chains=2, records=6)


def test_the_writer_reconnects_when_its_kept_connection_died(engine, trail):
    """A database restart drops the writer's connection: the next record still lands."""
    write(trail, 2)  # the chain's start, then a record through the writer's kept connection
    if engine.dialect.name != "postgresql":
        pytest.skip("closing a server-side session is PostgreSQL's (SQLite has no server)")
    writer_pid = trail._writer._connection.dbapi_connection.info.backend_pid  # white box
    with engine.connect() as conn:  # as a server restart would, for that session alone
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": writer_pid})
    write(trail, 1, start=2)
    assert verify_trail(engine, KEY) == Verdict(chains=1, records=3)
