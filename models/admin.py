"""Run-time model changes (load a version, unload one, reload the repository) on every worker.

The worker that takes the command applies it at once and records it in the `model_commands`
table of the gateway's database; every other worker of the machine (SQLite) or of every node
(the shared PostgreSQL) finds it at its next poll, at most `interval` seconds later, and applies
it too. A worker that starts later loads the repository, then replays the commands recorded
after the last reload, so it serves what the others serve. The registry swaps its mapping, so a
request in flight finishes on the runner it started with; none is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Column, Engine, Integer, String, Table, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from models.registry import ModelRegistry
from security.schema import metadata

ACTIONS = ("load", "unload", "reload")
logger = logging.getLogger(__name__)

model_commands = Table(
    "model_commands", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("action", String(16), nullable=False),
    Column("model", String(255), nullable=True),
    Column("version", String(32), nullable=True),
    Column("subject", String(255), nullable=False),
    Column("created_at", Integer, nullable=False),
)


@dataclass(frozen=True)
class ModelCommand:
    """One recorded change: what, to which model and version, by whom, when."""

    id: int
    action: str
    model: str | None
    version: str | None
    subject: str
    created_at: int

    def to_json(self) -> dict:
        return {"command": self.id, "action": self.action, "model": self.model,
                "version": self.version, "subject": self.subject, "created_at": self.created_at}


class ModelAdmin:
    """Applies commands to this process's registry and keeps it in step with the others."""

    def __init__(self, registry: ModelRegistry, engine: Engine, *, interval: float,
                 clock: Callable[[], float] = time.monotonic):
        self._registry = registry
        self._engine = engine
        self._interval = interval
        self._clock = clock
        self._applied = 0
        self._own: set[int] = set()  # applied when executed here: not again at the next poll
        self._next_poll = 0.0
        self._polling = threading.Lock()

    def execute(self, action: str, model: str | None, version: str | None,
                subject: str) -> ModelCommand:
        """Apply here (raising what the registry raises), then record it for every worker."""
        self._apply(action, model, version)
        command = self.record(action, model, version, subject)
        self._own.add(command.id)
        return command

    def record(self, action: str, model: str | None, version: str | None,
               subject: str) -> ModelCommand:
        """Record a command for every worker to apply (the CLI records without serving)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown model command {action!r}")
        created = int(time.time())
        with self._engine.begin() as conn:
            command_id = conn.execute(insert(model_commands).values(
                action=action, model=model, version=version, subject=subject,
                created_at=created)).inserted_primary_key[0]
        logger.info("model %s %s %s by %s (command %d)", action, model or "*", version or "*",
                    subject, command_id)
        return ModelCommand(command_id, action, model, version, subject, created)

    def catch_up_at_start(self) -> None:
        """After load_all: replay what was recorded since the last reload."""
        try:
            with self._engine.connect() as conn:
                last_reload = conn.execute(select(func.max(model_commands.c.id)).where(
                    model_commands.c.action == "reload")).scalar() or 0
        except SQLAlchemyError as exc:
            logger.error("model commands unreadable at start: %s", type(exc).__name__)
            return
        self._applied = last_reload
        self.poll()

    def poll_if_due(self) -> None:
        """Cheap on every request: a clock read; a query at most once per interval."""
        if self._clock() < self._next_poll:
            return
        if self._polling.acquire(blocking=False):  # one thread polls; the others go on
            try:
                self.poll()
            finally:
                self._polling.release()

    def poll(self) -> None:
        """Apply every command recorded since the last one applied here, in order."""
        self._next_poll = self._clock() + self._interval
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(select(model_commands).where(
                    model_commands.c.id > self._applied).order_by(model_commands.c.id)).all()
        except SQLAlchemyError as exc:
            logger.warning("model commands unreadable: %s", type(exc).__name__)
            return
        for row in rows:
            if row.id in self._own:
                self._own.discard(row.id)
                self._applied = row.id
                continue
            try:
                self._apply(row.action, row.model, row.version)
            except Exception as exc:  # one bad command must not stop the others
                logger.error("model command %d (%s %s %s) failed here: %s", row.id, row.action,
                             row.model, row.version, exc)
            self._applied = row.id

    def _apply(self, action: str, model: str | None, version: str | None) -> None:
        if action == "reload":
            self._registry.reload_all()
        elif action == "load":
            self._registry.load_version(model, version)
        elif action == "unload":
            self._registry.unload_version(model, version)
        else:
            raise ValueError(f"unknown model command {action!r}")
