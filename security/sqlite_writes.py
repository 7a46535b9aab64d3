"""SQLite files written by every worker on the machine: a shared write turn, and WAL checkpoints
kept off the request path.

SQLite lets one writer at a time into a file and makes the others wait in its busy handler,
which sleeps 1, 2, 5, 10... ms between tries. A transaction of several statements (the audit
trail's insert, head update and commit) holds SQLite's lock across GIL hand-overs, so under load
most of a request's time went into those sleeps. Writers that first queue on a WriteTurn wait in
the kernel instead (flock(2) with the GIL released) and are woken the moment the turn is free.
SQLite's own locks stay in force underneath, so a process that does not take the turn (the
sqlite3 shell) is still safe. A single-statement write (the store's admission) holds SQLite's
lock only inside that statement and does better without a turn (benchmarks/README.md).

A WAL file is folded back into the database by a checkpoint, which fsyncs. SQLite runs one
inside whichever commit crosses 1,000 pages, and that request then waits for the disk while
holding the turn, so every other writer waits too. Connections opened with NO_AUTO_CHECKPOINT
leave it to a Checkpointer: one daemon thread per process that runs a PASSIVE checkpoint (never
blocking writers) every second. The last connection to close a file checkpoints it as well, so a
short-lived command leaves no WAL behind.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType

NO_AUTO_CHECKPOINT = "PRAGMA wal_autocheckpoint = 0"
CHECKPOINT_INTERVAL = 1.0
log = logging.getLogger(__name__)


class WriteTurn:
    """`with turn:` holds the machine-wide write turn of one file; re-opened after a fork. The
    first turn taken in a process also starts that process's checkpointer for the file."""

    def __init__(self, path: Path) -> None:
        self.database = Path(path)
        self.path = Path(f"{path}.write-lock")
        self._thread_lock = threading.Lock()  # threads of this process queue here first
        self._fd: int | None = None
        self._pid = 0
        _forget_in_child(self)

    def acquire(self) -> None:
        """Wait for the turn; OSError when the lock file cannot be opened."""
        self._thread_lock.acquire()
        try:
            fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def __enter__(self) -> WriteTurn:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()

    def _descriptor(self) -> int:
        """This process's own open file: a descriptor inherited through fork would share the
        parent's lock instead of taking one of its own."""
        if self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
            ensure_checkpointer(self.database)
        return self._fd


def _forget_in_child(turn: WriteTurn) -> None:
    """A forked child starts with its own thread lock (the parent's may be held by a thread
    that does not exist in the child) and opens its own descriptor on first use. Held weakly."""
    ref = weakref.ref(turn)

    def reset() -> None:
        child = ref()
        if child is not None:
            child._thread_lock = threading.Lock()
            child._pid = 0  # never unlock through the parent's descriptor: that frees its lock

    os.register_at_fork(after_in_child=reset)


_running: set[tuple[int, Path]] = set()
_running_lock = threading.Lock()


def ensure_checkpointer(database: Path) -> None:
    """Start this process's Checkpointer for `database` unless one runs already."""
    key = (os.getpid(), Path(database).resolve())
    with _running_lock:
        if key in _running:
            return
        _running.add(key)
    Checkpointer(key[1]).start()


class Checkpointer:
    """A daemon thread checkpointing one database file's WAL every CHECKPOINT_INTERVAL s."""

    def __init__(self, database: Path, interval: float = CHECKPOINT_INTERVAL) -> None:
        self._database = database
        self._interval = interval

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"checkpoint {self._database.name}",
                         daemon=True).start()

    def _run(self) -> None:
        """Until the database file is gone (a test's temporary instance, say)."""
        connection: sqlite3.Connection | None = None
        while True:
            time.sleep(self._interval)
            if not self._database.exists():
                _running.discard((os.getpid(), self._database))
                break
            try:
                if connection is None:
                    connection = sqlite3.connect(f"{self._database.resolve().as_uri()}?mode=rw",
                                                 uri=True,
                                                 timeout=0, isolation_level=None)
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # best effort: the next round tries again
                log.info("WAL checkpoint of %s postponed: %s", self._database.name, exc)
                connection = None
        if connection is not None:
            connection.close()
