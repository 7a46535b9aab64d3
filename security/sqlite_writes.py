"""SQLite files written by every worker on the machine: a shared write turn for multi-statement
transactions, and WAL checkpoints kept off the commit that happens to cross SQLite's threshold.

SQLite lets one writer at a time into a file and makes the others wait in its busy handler,
which sleeps 1, 2, 5, 10... ms between tries. A transaction of several statements (the audit
trail's insert, head update and commit) holds SQLite's lock across GIL hand-overs, so under load
most of a request's time went into those sleeps. Writers that first take a WriteTurn wait on a
lock file instead and get it within a fraction of a millisecond of its release. SQLite's own
locks stay in force underneath, so a process that does not take the turn (the sqlite3 shell) is
still safe. A single-statement write (the store's admission) holds SQLite's lock only inside
that statement and does better without a turn (benchmarks/README.md).

SQLite folds the WAL back into the database (a checkpoint, with an fsync) inside whichever commit
crosses 1,000 pages, while that writer still holds the lock. Connections opened with
NO_AUTO_CHECKPOINT leave it to their writers, who call CheckpointSchedule.run_if_due after their
write, outside any lock: a PASSIVE checkpoint, which never blocks other writers, at most once a
second per process and file. No thread does it: a thread inside SQLite during a fork would leave
the child a SQLite mutex that nobody releases.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from errors import ServiceUnavailable

NO_AUTO_CHECKPOINT = "PRAGMA wal_autocheckpoint = 0"
CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"
CHECKPOINT_INTERVAL = 1.0
FIRST_POLL, LAST_POLL = 0.0001, 0.002  # seconds between tries for a busy turn
log = logging.getLogger(__name__)


class TurnUnavailable(ServiceUnavailable):
    """The write turn was not free within the timeout: the write is refused, never forced."""

    def __init__(self) -> None:
        super().__init__("The database is busy; the request was refused.")


class WriteTurn:
    """`with turn:` holds the machine-wide write turn of one file, or raises TurnUnavailable
    after `timeout` seconds. The lock file is open only while the turn is held, so a forked
    child never inherits a held turn and an idle process holds no descriptor."""

    def __init__(self, path: Path, timeout: float = 2.0) -> None:
        self.path = Path(f"{path}.write-lock")
        self._timeout = timeout
        self._thread_lock = threading.Lock()  # threads of this process queue here first
        self._fd: int | None = None

    def acquire(self) -> None:
        """Wait for the turn; OSError when the lock file cannot be opened."""
        if not self._thread_lock.acquire(timeout=self._timeout):
            raise TurnUnavailable()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._wait_for_lock(self._fd)
        except BaseException:
            self._close()
            self._thread_lock.release()
            raise

    def release(self) -> None:
        self._close()  # closing the only descriptor of its open file releases the flock
        self._thread_lock.release()

    def __enter__(self) -> WriteTurn:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()

    def _wait_for_lock(self, fd: int) -> None:
        deadline, pause = time.monotonic() + self._timeout, FIRST_POLL
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TurnUnavailable() from None
                time.sleep(pause)
                pause = min(LAST_POLL, pause * 2)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class CheckpointSchedule:
    """When this process last checkpointed one file; `run_if_due` runs a PASSIVE checkpoint at
    most every CHECKPOINT_INTERVAL seconds, on the caller's connection, outside its locks."""

    def __init__(self, interval: float = CHECKPOINT_INTERVAL) -> None:
        self._interval = interval
        self._next = time.monotonic() + interval

    def run_if_due(self, execute: Callable[[str], object]) -> None:
        """`execute(sql)` runs a statement on a connection to the file, outside a transaction."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval  # claimed first: concurrent callers skip
        try:
            execute(CHECKPOINT)
        except Exception as exc:  # best effort, whatever the driver raised: the next one retries
            log.info("WAL checkpoint postponed: %s", type(exc).__name__)
