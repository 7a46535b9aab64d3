"""The gateway's shared security state: revocations, seen envelope IVs, rate and failure counters.

Every worker process of every node must agree on this state, so it lives outside the process:
in one SQLite file per machine (``STORE_URL=sqlite``) or in Redis (``STORE_URL=redis://…``).
Both backends fail closed: any backend failure raises ``errors.StoreUnavailable`` (503).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from security.admission import Admission, AdmissionRequest
from security.store_redis import DEFAULT_NAMESPACE, RedisStore
from security.store_sqlite import SqliteStore

__all__ = ["RedisStore", "SharedStore", "SqliteStore", "open_store"]

REDIS_SCHEMES = ("redis://", "rediss://")


@runtime_checkable
class SharedStore(Protocol):
    """Security state shared by all workers; every method raises StoreUnavailable on failure."""

    def revoke(self, key: str, ttl: int) -> None:
        """Mark key revoked for at least ttl seconds; an earlier, longer revocation is kept."""

    def any_revoked(self, keys: Sequence[str]) -> bool:
        """Whether any of keys is revoked, in one round trip (the per-request hot path)."""

    def admit(self, request: AdmissionRequest) -> Admission:
        """Revocation, rate counters and replay claim for one request, in one round trip."""

    def claim_once(self, key: str, ttl: int) -> bool:
        """Atomically claim key for ttl seconds: True the first time, False on a replay."""

    def record_failure(self, key: str, window: int) -> int:
        """Count one failure in a fixed window opened by the first one; return the count."""

    def failure_state(self, key: str) -> tuple[int, int]:
        """(failures in the current window, whole seconds until it ends); (0, 0) without one."""

    def release_failure(self, key: str) -> None:
        """Give back one count (an attempt counted up front that turned out to succeed)."""

    def clear_failures(self, key: str) -> None:
        """Forget key's failures (e.g. after a successful login)."""

    def put_anchor(self, chain_id: str, seq: int, anchor: str) -> None:
        """Keep a signed audit chain head (security.audit_anchor) unless a later one is kept."""

    def anchors(self) -> list[str]:
        """Every audit chain's newest anchor, as kept: never expired, never checked here."""

    def ping(self) -> None:
        """Check that the backend answers."""

    def close(self) -> None:
        """Release this process's connections; a later call opens fresh ones."""


def open_store(url: str, sqlite_path: Path, *, namespace: str = DEFAULT_NAMESPACE) -> SharedStore:
    """Open the backend named by STORE_URL; nothing is connected until the first call."""
    if url == "sqlite":
        return SqliteStore(sqlite_path)
    if url.startswith(REDIS_SCHEMES):
        return RedisStore(url, namespace)
    raise ValueError("STORE_URL must be 'sqlite' or a redis:// or rediss:// URL")
