"""Shared security state in one SQLite file, shared by every worker process on the machine.

WAL mode lets readers (the per-request revocation check) run alongside the one writer; each
write is a single statement, so claims and counters are atomic across processes without an
explicit transaction. Rows carry their expiry, every read ignores expired rows, and expired rows
are deleted in small batches from the write path at most every ``cleanup_interval`` seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from errors import StoreUnavailable
from security.admission import Admission, AdmissionRequest, quota_answer, spent_counter
from security.private_files import private_file
from security.sqlite_writes import NO_AUTO_CHECKPOINT, CheckpointSchedule

log = logging.getLogger(__name__)

CLEANUP_BATCH = 1000
WAL_RETRY_DELAY = 0.005

SCHEMA = """
CREATE TABLE IF NOT EXISTS marks (key TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS marks_expires_at ON marks (expires_at);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY, count INTEGER NOT NULL, window_ends REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS failures_window_ends ON failures (window_ends);
CREATE TABLE IF NOT EXISTS anchors (
    chain_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, anchor TEXT NOT NULL) WITHOUT ROWID;
"""

# revoke: a revocation is only ever extended, so a late, shorter revoke cannot undo an earlier one.
REVOKE = """INSERT INTO marks (key, expires_at) VALUES (?, ?) ON CONFLICT (key)
DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)"""
# claim: inserts a new row or takes over an expired one; a live row is left alone (0 rows changed).
CLAIM = """INSERT INTO marks (key, expires_at) VALUES (?, ?) ON CONFLICT (key)
DO UPDATE SET expires_at = excluded.expires_at WHERE marks.expires_at <= ?"""
ANY_REVOKED = """SELECT 1 FROM marks
WHERE key IN (SELECT value FROM json_each(?)) AND expires_at > ? LIMIT 1"""
# Every SET expression reads the old row, so the window end is only replaced when it had passed.
RECORD_FAILURE = """INSERT INTO failures (key, count, window_ends) VALUES (?, 1, ?)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN window_ends > ? THEN count + 1 ELSE 1 END,
    window_ends = CASE WHEN window_ends > ? THEN window_ends ELSE excluded.window_ends END
RETURNING count"""
# Admission (security.admission) in ONE statement, so the file's write lock is held for a single
# step inside SQLite and never across a GIL hand-over. The rate counters and the replay claim are
# windows in `failures`: a claim is a window whose count must be 1 (a live second claim counts 2;
# an expired one restarts at 1, like the claim in `marks`). Nothing is written when a revocation
# matches, and the statement then returns no row.
ADMIT = """INSERT INTO failures (key, count, window_ends)
SELECT value ->> 0, 1, value ->> 1 FROM json_each(?)
WHERE NOT EXISTS (SELECT 1 FROM marks
                  WHERE key IN (SELECT value FROM json_each(?)) AND expires_at > ?)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN window_ends > ? THEN count + 1 ELSE 1 END,
    window_ends = CASE WHEN window_ends > ? THEN window_ends ELSE excluded.window_ends END
RETURNING key, count, window_ends"""
# A claim taken by a request that was then refused for its rate limit or quota is given back.
RELEASE_CLAIM = "DELETE FROM failures WHERE key = ? AND count = 1"
FAILURE_STATE = "SELECT count, window_ends FROM failures WHERE key = ? AND window_ends > ?"
CLEAR_FAILURES = "DELETE FROM failures WHERE key = ?"
RELEASE_FAILURE = "UPDATE failures SET count = count - 1 WHERE key = ? AND count > 0"
# An anchor only ever moves forward: a late publish of an older head leaves the newer one.
PUT_ANCHOR = """INSERT INTO anchors (chain_id, seq, anchor) VALUES (?, ?, ?) ON CONFLICT (chain_id)
DO UPDATE SET seq = excluded.seq, anchor = excluded.anchor WHERE excluded.seq > anchors.seq"""
CLEANUP_MARKS = """DELETE FROM marks WHERE key IN
(SELECT key FROM marks WHERE expires_at <= ? LIMIT ?)"""
CLEANUP_FAILURES = """DELETE FROM failures WHERE key IN
(SELECT key FROM failures WHERE window_ends <= ? LIMIT ?)"""


class SqliteStore:
    """SharedStore on one SQLite file: a connection per thread, re-opened in a forked child."""

    def __init__(self, path: Path, busy_timeout_ms: int = 2000, cleanup_interval: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._cleanup_interval = cleanup_interval
        self._clock = clock
        self._local = threading.local()
        # A worker's threads queue for writes here, where a release wakes the next at once;
        # contending inside SQLite instead, each waiter sleeps 1, 2, 5, 10... ms between tries.
        # Across processes every write is one statement, so SQLite's lock is held only inside it
        # (a machine-wide WriteTurn measured slower here: security/sqlite_writes.py).
        self._write_lock = threading.Lock()
        self._checkpoints = CheckpointSchedule()
        # Every connection opened, with its process id: close() closes this process's, and a
        # parent's, inherited through fork, stays referenced so it is never closed in the child.
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._generation = 0
        self._next_cleanup = 0.0

    def __reduce__(self) -> tuple:
        """Pickle as configuration, so a store can be handed to another process."""
        return (type(self), (self.path, self._busy_timeout_ms, self._cleanup_interval, self._clock))

    def revoke(self, key: str, ttl: int) -> None:
        """Mark key revoked for at least ttl seconds."""
        with self._writing() as conn:
            now = self._clock()
            conn.execute(REVOKE, (key, now + max(1, ttl)))
            self._cleanup(conn, now)

    def any_revoked(self, keys: Sequence[str]) -> bool:
        """Whether any of keys is revoked and unexpired: one indexed query."""
        if isinstance(keys, str):
            raise TypeError("any_revoked takes a sequence of keys, not one string")
        with self._connection() as conn:
            return self._revoked(conn, keys, self._clock())

    @staticmethod
    def _revoked(conn: sqlite3.Connection, keys: Sequence[str], now: float) -> bool:
        if not keys:
            return False
        return conn.execute(ANY_REVOKED, (json.dumps(list(keys)), now)).fetchone() is not None

    def claim_once(self, key: str, ttl: int) -> bool:
        """Claim key for ttl seconds; False when a live claim (or revocation) already holds it."""
        with self._writing() as conn:
            now = self._clock()
            claimed = conn.execute(CLAIM, (key, now + max(1, ttl), now)).rowcount == 1
            self._cleanup(conn, now)
        return claimed

    def admit(self, request: AdmissionRequest) -> Admission:
        """Revocation, rate counters, replay claim and quota in one statement (ADMIT)."""
        counted, claim = (*request.counters, *request.quota), request.claim_key
        if not counted and claim is None:  # nothing to count or claim: a read answers
            return Admission(revoked=self.any_revoked(request.revocation_keys))
        with self._writing() as conn:
            now = self._clock()
            rows = [[c.key, now + max(1, c.window)] for c in counted]
            if claim is not None:
                rows.append([claim, now + max(1, request.claim_ttl)])
            found = {key: (count, ends) for key, count, ends in conn.execute(ADMIT, (
                json.dumps(rows), json.dumps(list(request.revocation_keys)), now, now, now))}
            if not found:
                return Admission(revoked=True)
            answer = _judge(conn, request, found, now)
            if answer.spent is None and not answer.replayed:
                self._cleanup(conn, now)
        return answer

    def record_failure(self, key: str, window: int) -> int:
        """Count one failure in the fixed window opened by the first; return the count."""
        with self._writing() as conn:
            now = self._clock()
            rows = conn.execute(RECORD_FAILURE, (key, now + max(1, window), now, now)).fetchall()
            self._cleanup(conn, now)
        return int(rows[0][0])

    def failure_state(self, key: str) -> tuple[int, int]:
        """(count, whole seconds left in the window), or (0, 0) when no window is open."""
        with self._connection() as conn:
            now = self._clock()
            row = conn.execute(FAILURE_STATE, (key, now)).fetchone()
        if row is None:
            return 0, 0
        return int(row[0]), math.ceil(row[1] - now)

    def release_failure(self, key: str) -> None:
        """Give back one count, never below zero."""
        with self._writing() as conn:
            conn.execute(RELEASE_FAILURE, (key,))

    def clear_failures(self, key: str) -> None:
        """Forget key's failures."""
        with self._writing() as conn:
            conn.execute(CLEAR_FAILURES, (key,))

    def put_anchor(self, chain_id: str, seq: int, anchor: str) -> None:
        """Keep anchor as chain_id's, unless one of a later seq is kept already."""
        with self._writing() as conn:
            conn.execute(PUT_ANCHOR, (chain_id, seq, anchor))

    def anchors(self) -> list[str]:
        """Every chain's newest anchor."""
        with self._connection() as conn:
            return [row[0] for row in conn.execute("SELECT anchor FROM anchors ORDER BY chain_id")]

    def ping(self) -> None:
        """Open (or reuse) this thread's connection and run a trivial query."""
        with self._connection() as conn:
            conn.execute("SELECT 1 FROM marks LIMIT 1").fetchall()

    def close(self) -> None:
        """Close every connection this process opened; the next call opens fresh ones."""
        pid = os.getpid()
        self._generation += 1
        mine = [conn for owner, conn in self._connections if owner == pid]
        self._connections = [(owner, c) for owner, c in self._connections if owner != pid]
        for conn in mine:
            conn.close()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection; any SQLite failure becomes StoreUnavailable (fail closed)."""
        try:
            yield self._thread_connection()
        except sqlite3.Error as exc:
            log.warning("sqlite store failed: %s: %s", type(exc).__name__, exc)
            raise StoreUnavailable() from exc

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, holding the process's write turn; afterwards, outside
        it, a passive WAL checkpoint when one is due (security.sqlite_writes)."""
        with self._write_lock, self._connection() as conn:
            yield conn
        self._checkpoints.run_if_due(lambda sql: conn.execute(sql).fetchall())

    def _thread_connection(self) -> sqlite3.Connection:
        """Reuse this thread's connection unless it was opened in another process or closed."""
        owner = (os.getpid(), self._generation)
        if getattr(self._local, "owner", None) == owner:
            return self._local.conn
        conn = self._connect()
        self._connections.append((owner[0], conn))
        self._local.conn, self._local.owner = conn, owner
        return conn

    def _connect(self) -> sqlite3.Connection:
        """Open the file in autocommit mode, WAL journal, with a busy timeout, schema ensured."""
        with contextlib.suppress(OSError):  # then sqlite3 fails too, as StoreUnavailable
            private_file(self.path)
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_ms / 1000,
                               isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(NO_AUTO_CHECKPOINT)  # writers run it, outside the lock (_writing)
            conn.executescript(SCHEMA)
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL, retrying: SQLite's busy handler does not cover this switch."""
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                break
            except sqlite3.OperationalError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(WAL_RETRY_DELAY)
        if mode.lower() != "wal":  # e.g. a file system without shared memory: still correct
            log.warning("sqlite store runs in %s journal mode, not WAL; reads will block", mode)

    def _cleanup(self, conn: sqlite3.Connection, now: float) -> None:
        """Delete one batch of expired rows when due; keep going on later writes while full."""
        if now < self._next_cleanup:
            return
        try:
            marks = conn.execute(CLEANUP_MARKS, (now, CLEANUP_BATCH)).rowcount
            failures = conn.execute(CLEANUP_FAILURES, (now, CLEANUP_BATCH)).rowcount
        except sqlite3.OperationalError as exc:  # best effort: the caller's write already landed
            log.info("sqlite store cleanup postponed: %s", exc)
            self._next_cleanup = now + self._cleanup_interval
            return
        more = CLEANUP_BATCH in (marks, failures)
        self._next_cleanup = now if more else now + self._cleanup_interval


def _judge(conn: sqlite3.Connection, request: AdmissionRequest,
           found: dict[str, tuple[int, float]], now: float) -> Admission:
    """The answer from the rows ADMIT counted, in admission's order. A refused call gives back
    what the one statement made it count or claim; until then, for a moment, another worker may
    see one count too many on the refused caller's quota, never one too few."""
    counters, quota, claim = request.counters, request.quota, request.claim_key
    spent = spent_counter(counters, [found[c.key][0] for c in counters])
    replayed = claim is not None and found[claim][0] != 1
    if spent is not None or replayed:
        conn.executemany(RELEASE_FAILURE, [(counter.key,) for counter in quota])
    if spent is not None:
        if claim is not None:
            conn.execute(RELEASE_CLAIM, (claim,))
        return Admission(spent=counters[spent],
                         retry_after=max(1, math.ceil(found[counters[spent].key][1] - now)))
    if replayed:
        return Admission(replayed=True)
    answer = quota_answer(quota, [(found[q.key][0], found[q.key][1] - now) for q in quota])
    if answer.quota_spent and claim is not None:
        conn.execute(RELEASE_CLAIM, (claim,))
    return answer
