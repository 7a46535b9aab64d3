"""Moving every secret wrapped by MASTER_KEY from the previous master keys to the current one:
payload keys (security.keys) and the gateway's own key pairs' seeds (security.gateway_keys).

One transaction: either every secret not yet under the new master key is rewrapped, or nothing
changes. A secret that already opens under the new master key is skipped, so a run that was
interrupted, or keys made meanwhile under the new key, need nothing but another run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from security.gateway_key_algs import SEED_BYTES
from security.gateway_keys import gateway_keys, seed_context
from security.keys import (
    KEY_BYTES,
    payload_key_context,
    payload_keys,
    unwrap_secret,
    unwrap_secret_with_any,
    wrap_secret,
)


@dataclass(frozen=True)
class WrappedSecrets:
    """A table whose rows each hold one secret wrapped by MASTER_KEY, bound to its row."""

    kind: str
    table: sa.Table
    context: Callable[[Any], bytes]
    length: int


WRAPPED = (
    WrappedSecrets("payload_keys", payload_keys,
                   lambda row: payload_key_context(row.kid, row.subject), KEY_BYTES),
    WrappedSecrets("gateway_keys", gateway_keys,
                   lambda row: seed_context(row.kid, row.use, row.alg), SEED_BYTES),
)


class RewrapError(Exception):
    """A stored secret opens under neither master key; the transaction was rolled back."""

    def __init__(self, kind: str, kid: str) -> None:
        super().__init__(f"{kind.replace('_', ' ')[:-1]} {kid} opens under neither MASTER_KEY "
                         "nor PREVIOUS_MASTER_KEYS; nothing was changed")
        self.kid = kid


@dataclass(frozen=True)
class RewrapReport:
    """How many secrets this run moved, and how many were under the new master key already."""

    rewrapped: int
    already_current: int
    # (kind, rewrapped) for each table: a breakdown of `rewrapped`, left out of equality
    by_kind: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"rewrapped": self.rewrapped, "already_current": self.already_current,
                "total": self.rewrapped + self.already_current,
                "rewrapped_by_kind": dict(self.by_kind)}


def rewrap_master_secrets(engine: sa.Engine, old_masters: Sequence[bytes], new_master: bytes, *,
                        dry_run: bool = False) -> RewrapReport:
    """Rewrap every secret under one of old_masters with new_master; revoked, expired and
    retired ones too, so the old master keys open nothing once this has run."""
    rewrapped = already_current = 0
    by_kind = []
    with engine.begin() as conn:
        for wrapped in WRAPPED:
            moved, current = _rewrap_table(conn, wrapped, old_masters, new_master, dry_run)
            rewrapped, already_current = rewrapped + moved, already_current + current
            by_kind.append((wrapped.kind, moved))
    return RewrapReport(rewrapped, already_current, tuple(by_kind))


def _rewrap_table(conn: sa.Connection, wrapped: WrappedSecrets, old_masters: Sequence[bytes],
                  new_master: bytes, dry_run: bool) -> tuple[int, int]:
    table, moved, current = wrapped.table, 0, 0
    for row in conn.execute(sa.select(table).order_by(table.c.kid).with_for_update()).all():
        blob, context = bytes(row.wrapped), wrapped.context(row)
        if opens(new_master, blob, context, wrapped.length):
            current += 1
            continue
        try:
            secret = unwrap_secret_with_any(old_masters, blob, context, wrapped.length)
        except ValueError:
            raise RewrapError(wrapped.kind, row.kid) from None
        if not dry_run:
            conn.execute(table.update().where(table.c.kid == row.kid).values(
                wrapped=wrap_secret(new_master, secret, context)))
        moved += 1
    return moved, current


def opens(master_key: bytes, wrapped: bytes, context: bytes, length: int) -> bool:
    try:
        unwrap_secret(master_key, wrapped, context, length)
    except ValueError:
        return False
    return True
