"""A write turn shared by the threads of a process and by every process on the machine.

SQLite lets one writer at a time into a file and makes the others wait in its busy handler,
which sleeps 1, 2, 5, 10... ms between tries: under load most of a request's time went into
those sleeps. Writers that first queue here wait in the kernel instead (flock(2) with the GIL
released) and are woken the moment the turn is free. The lock file sits beside the database;
SQLite's own locks stay in force underneath, so a process that does not take this turn (an
older version, the sqlite3 shell) is still safe, merely slower.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType


class WriteTurn:
    """`with turn:` holds the machine-wide write turn for one file; re-opened after a fork."""

    def __init__(self, path: Path) -> None:
        self.path = Path(f"{path}.write-lock")
        self._thread_lock = threading.Lock()  # threads of this process queue here first
        self._fd: int | None = None
        self._pid = 0

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
        return self._fd
