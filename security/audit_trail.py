"""The writer: this process's chain of audit records, appended under a lock, group-committed."""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from errors import ServiceUnavailable
from security.audit import (
    GENESIS,
    AuditRecord,
    AuditUnavailable,
    ChainHead,
    audit_chains,
    audit_records,
    head_mac,
    key_id,
    link,
    record_fields,
    record_values,
    utc_now,
)
from security.sqlite_writes import CheckpointSchedule, WriteTurn

log = logging.getLogger(__name__)

CHAIN_START_ATTEMPTS = 8
# The hot path's two statements go to the driver as plain SQL (one executemany for the batch's
# rows, one UPDATE of the head): SQLAlchemy's per-statement compile and parameter processing
# cost more than the SQLite write itself. Columns in table order, so the SQL is the schema's.
RECORD_COLUMNS = tuple(column.name for column in audit_records.columns)
# Our schema's own column names; every value is a bound parameter.
INSERT_RECORDS_SQL = (
    f"INSERT INTO audit_records ({', '.join(RECORD_COLUMNS)}) "  # noqa: S608  # nosec B608
    f"VALUES ({', '.join(['{p}'] * len(RECORD_COLUMNS))})")
ADVANCE_HEAD_SQL = ("UPDATE audit_chains SET head_seq = {p}, head_hash = {p}, head_mac = {p} "
                    "WHERE chain_id = {p} AND head_seq = {p}")


def driver_sql(engine: sa.Engine, template: str) -> str:
    """template with the driver's positional placeholder: ? (sqlite3) or %s (psycopg)."""
    marker = "?" if engine.dialect.paramstyle in ("qmark", "numeric") else "%s"
    return template.replace("{p}", marker)


def write_turn(engine: sa.Engine) -> AbstractContextManager:
    """The machine-wide write turn of a SQLite database file (security.file_lock); a server
    database (PostgreSQL) queues writers itself."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return nullcontext()
    return WriteTurn(Path(database))


class DriverWriter:
    """The audit writer's own connection, used through the database driver: one executemany of
    the rows, the head UPDATE, one commit. SQLAlchemy's statement layer and pool checkout cost
    ~60 µs a commit on top of a ~40 µs SQLite commit, so the connection is kept.

    A kept connection is not pre-pinged: one that died (a database restart) fails its first
    statement, before anything was written, and the batch is then retried once on a fresh
    connection. A forked child never touches its parent's connection (not even to close it:
    that would talk on the parent's socket) and opens its own."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self.errors: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._connection = None
        self._pid = 0
        self._inherited: list = []  # a parent's connections, kept referenced and never used

    def run(self, insert: str, rows: list[tuple], update: str, params: tuple) -> int:
        """Insert rows and run the update in one transaction; the update's rowcount (the
        transaction is rolled back unless it is 1)."""
        for attempt in (1, 2):
            connection = self._checked_out()
            written = False
            try:
                cursor = connection.cursor()
                cursor.executemany(insert, rows)
                written = True
                cursor.execute(update, params)
                moved = cursor.rowcount
                if moved == 1:
                    connection.commit()
                else:
                    connection.rollback()
                return moved
            except BaseException as exc:
                died = isinstance(exc, self.errors) and self._engine.dialect.is_disconnect(
                    exc, connection.dbapi_connection, None)
                self._give_up(connection)
                if attempt == 1 and died and not written:
                    continue
                raise
        raise AssertionError("unreachable")

    def _checked_out(self):
        if self._pid != os.getpid():
            if self._connection is not None:
                self._inherited.append(self._connection)
            self._connection, self._pid = None, os.getpid()
        if self._connection is None:
            self._connection = self._engine.raw_connection()
        return self._connection

    def _give_up(self, connection) -> None:
        """Close a connection whose transaction failed; the next write opens another."""
        self._connection = None
        connection.invalidate()


class ChainConflict(sa.exc.SQLAlchemyError):
    """The chain head is not where this writer left it: re-read it before the next record."""


@dataclass
class _Ticket:
    """One record waiting for its commit; settled by whichever thread wrote the batch."""

    record: AuditRecord
    pid: int
    head: ChainHead | None = None
    failed: bool = False


class AuditTrail:
    """Appends records to this process's chain; a forked child starts a chain of its own.

    Threads that arrive while a commit is in flight are written together in the next one (group
    commit): one multi-row INSERT and one head UPDATE, and each caller returns only once its own
    record is committed.
    """

    def __init__(self, engine: sa.Engine, key: bytes, host: str | None = None,
                 on_commit: Callable[[int], None] | None = None,
                 on_head: Callable[[ChainHead], None] | None = None):
        """on_commit(n) is called after each commit of n records (group-commit metrics);
        on_head(head) with the chain head each commit left (security.audit_anchor)."""
        self._engine = engine
        self._on_commit = on_commit
        self._on_head = on_head
        self._insert_sql = driver_sql(engine, INSERT_RECORDS_SQL)
        self._write_turn = write_turn(engine)
        self._writer = DriverWriter(engine)
        self._checkpoints = CheckpointSchedule() if engine.dialect.name == "sqlite" else None
        self._advance_sql = driver_sql(engine, ADVANCE_HEAD_SQL)
        self._key = key
        self._key_id = key_id(key)
        self._host = host or socket.gethostname()
        # Held across the write so this process's records commit in seq order. gunicorn forks
        # from a master that never serves, so a child never inherits it held.
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Ticket] = []
        self._head: ChainHead | None = None
        self._in_doubt = False

    @property
    def turn(self) -> AbstractContextManager:
        """The write turn its commits take (SQLite); a readiness probe writes under it too."""
        return self._write_turn

    def append(self, record: AuditRecord) -> ChainHead:
        """Return once record is committed with its chain head moved; AuditUnavailable if not."""
        ticket = _Ticket(record, os.getpid())
        with self._queue_lock:
            self._queue.append(ticket)
        committed, head = 0, None
        with self._lock:
            if ticket.head is None and not ticket.failed:
                committed, head = self._flush(), self._head
        if committed and head is not None:  # this thread wrote the batch: the follow-ups,
            self._after_commit(committed, head)  # outside every lock
        if ticket.head is None:
            raise AuditUnavailable()
        return ticket.head

    def _after_commit(self, records: int, head: ChainHead) -> None:
        """Report the group commit's size and its head; checkpoint a SQLite WAL when due. None
        may change the answer: the records are committed."""
        for report, value in ((self._on_commit, records), (self._on_head, head)):
            if report is not None:
                try:
                    report(value)
                except Exception:
                    log.warning("audit commit not reported", exc_info=True)
        if self._checkpoints is not None:
            self._checkpoints.run_if_due(self._checkpoint)

    def _checkpoint(self, sql: str) -> None:
        with self._engine.connect() as conn:
            conn.exec_driver_sql(sql).fetchall()

    def _flush(self) -> int:
        """Write every queued record of this process in one transaction (two after a fork);
        the number of records committed."""
        pid = os.getpid()
        with self._queue_lock:
            batch = [t for t in self._queue if t.pid == pid]  # a parent's tickets stay its own
            self._queue = []
        if not batch:
            return 0
        try:
            with self._write_turn:
                self._write(batch)
            self._in_doubt = False
        except (sa.exc.SQLAlchemyError, self._writer.errors, ServiceUnavailable, OSError) as exc:
            self._in_doubt = True  # a failed commit may still have landed: re-read the head
            log.error("audit write failed: %s", type(exc).__name__)
        for ticket in batch:
            ticket.failed = ticket.head is None
        return sum(not ticket.failed for ticket in batch)

    def _write(self, batch: list[_Ticket]) -> None:
        head = self._head
        if head is not None and head.pid != os.getpid():
            head = None  # forked: the parent's chain stays the parent's
        elif head is not None and self._in_doubt:
            head = self._reread(head)
        if head is None:
            batch[0].head = self._head = head = self._start_chain(batch[0].record)
            batch = batch[1:]
        if batch:
            heads = self._append(head, [t.record for t in batch])
            for ticket, ticket_head in zip(batch, heads, strict=True):
                ticket.head = ticket_head
            self._head = heads[-1]

    def _append(self, head: ChainHead, records: list[AuditRecord]) -> list[ChainHead]:
        """Link records after head; insert them and move the head, in one transaction."""
        rows, heads = [], []
        for record in records:
            seq = head.seq + 1
            fields = record_fields(head.chain_id, seq, record)
            record_hash = link(self._key, "record", head.record_hash, fields)
            fields.update(prev_hash=head.record_hash, record_hash=record_hash)
            rows.append(tuple(fields[name] for name in RECORD_COLUMNS))
            head = ChainHead(head.chain_id, head.pid, seq, record_hash)
            heads.append(head)
        advance = (head.seq, head.record_hash,
                   head_mac(self._key, head.chain_id, head.seq, head.record_hash),
                   head.chain_id, heads[0].seq - 1)
        if self._writer.run(self._insert_sql, rows, self._advance_sql, advance) != 1:
            raise ChainConflict(f"chain {head.chain_id} moved under this writer")
        return heads

    def _reread(self, head: ChainHead) -> ChainHead | None:
        """The head as committed (None: the chain never landed, start another)."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(audit_chains.c.head_seq, audit_chains.c.head_hash)
                               .where(audit_chains.c.chain_id == head.chain_id)).first()
        return None if row is None else ChainHead(head.chain_id, head.pid, row.head_seq,
                                                  row.head_hash)

    def _start_chain(self, record: AuditRecord) -> ChainHead:
        """Register a new chain after the newest one, retrying when another process won the race."""
        for attempt in range(1, CHAIN_START_ATTEMPTS):
            try:
                with self._engine.begin() as conn:
                    return self._register(conn, record)
            except sa.exc.IntegrityError:  # another process took this ordinal first
                time.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 (jitter)
        with self._engine.begin() as conn:
            return self._register(conn, record)

    def _register(self, conn: sa.Connection, record: AuditRecord) -> ChainHead:
        newest = conn.execute(sa.select(audit_chains.c.ordinal, audit_chains.c.chain_hash)
                              .order_by(audit_chains.c.ordinal.desc()).limit(1)).first()
        pid = os.getpid()
        entry = {"chain_id": f"{self._host}:{pid}:{secrets.token_hex(6)}",
                 "ordinal": newest.ordinal + 1 if newest else 0, "host": self._host,
                 "pid": pid, "started_at": utc_now(), "key_id": self._key_id}
        prev_chain_hash = newest.chain_hash if newest else GENESIS
        chain_hash = link(self._key, "chain", prev_chain_hash, entry)
        first_hash = link(self._key, "record", chain_hash,
                          record_fields(entry["chain_id"], 0, record))
        conn.execute(sa.insert(audit_chains).values(
            **entry, prev_chain_hash=prev_chain_hash, chain_hash=chain_hash, head_seq=0,
            head_hash=first_hash, head_mac=head_mac(self._key, entry["chain_id"], 0, first_hash)))
        conn.execute(sa.insert(audit_records).values(
            chain_id=entry["chain_id"], seq=0, **record_values(record), prev_hash=chain_hash,
            record_hash=first_hash))
        log.info("audit chain %s started", entry["chain_id"])
        return ChainHead(entry["chain_id"], pid, 0, first_hash)
