"""Readiness of the write path: can the database, and so the audit trail in it, take a write?

A full disk or a read-only volume still answers SELECT 1, while every audited request would
be refused; /readyz asks this instead, at most once per interval per process.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import sqlalchemy as sa

from security.schema import metadata

log = logging.getLogger(__name__)

write_probes = sa.Table(
    "write_probes", metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("written_at", sa.Float, nullable=False),
)


class WriteProbe:
    """One tiny committed write, under the same write turn the audit writer takes; the answer
    is kept for `interval` seconds so a busy /readyz costs one write a second per process."""

    def __init__(self, engine: sa.Engine, turn: AbstractContextManager, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine, self._turn = engine, turn
        self._interval, self._clock = interval, clock
        self._host = socket.gethostname()[:255]
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._writable = False

    def writable(self) -> bool:
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._interval:
                self._writable = self._write()
                self._checked_at = now
            return self._writable

    def _write(self) -> bool:
        row = {"host": self._host, "written_at": time.time()}
        try:
            with self._turn, self._engine.begin() as conn:
                updated = conn.execute(sa.update(write_probes)
                                       .where(write_probes.c.host == row["host"])
                                       .values(written_at=row["written_at"]))
                if updated.rowcount == 0:
                    conn.execute(sa.insert(write_probes).values(**row))
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            log.warning("readiness write probe failed: %s", type(exc).__name__)
            return False
        return True
