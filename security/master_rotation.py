"""Moving every wrapped payload key from the previous MASTER_KEYs to the current one.

One transaction: either every key not yet under the new master key is rewrapped, or nothing
changes. A key that already opens under the new master key is skipped, so a run that was
interrupted, or keys issued meanwhile under the new key, need nothing but another run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from security.keys import payload_keys, unwrap_key, unwrap_with_any, wrap_key


class RewrapError(Exception):
    """A stored key opens under neither master key; the transaction was rolled back."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"payload key {kid} opens under neither MASTER_KEY nor "
                         "PREVIOUS_MASTER_KEYS; nothing was changed")
        self.kid = kid


@dataclass(frozen=True)
class RewrapReport:
    """How many keys this run moved, and how many were under the new master key already."""

    rewrapped: int
    already_current: int

    def to_json(self) -> dict[str, int]:
        return {"rewrapped": self.rewrapped, "already_current": self.already_current,
                "total": self.rewrapped + self.already_current}


def rewrap_payload_keys(engine: sa.Engine, old_masters: Sequence[bytes], new_master: bytes, *,
                        dry_run: bool = False) -> RewrapReport:
    """Rewrap every key under one of old_masters with new_master; revoked and expired ones
    too, so the old master keys open nothing once this has run."""
    table = payload_keys
    rewrapped = already_current = 0
    with engine.begin() as conn:
        rows = conn.execute(sa.select(table.c.kid, table.c.subject, table.c.wrapped)
                            .order_by(table.c.kid).with_for_update()).all()
        for row in rows:
            wrapped = bytes(row.wrapped)
            if opens(new_master, wrapped, row.kid, row.subject):
                already_current += 1
                continue
            try:
                key = unwrap_with_any(old_masters, wrapped, row.kid, row.subject)
            except ValueError:
                raise RewrapError(row.kid) from None
            if not dry_run:
                conn.execute(table.update().where(table.c.kid == row.kid).values(
                    wrapped=wrap_key(new_master, key, row.kid, row.subject)))
            rewrapped += 1
    return RewrapReport(rewrapped=rewrapped, already_current=already_current)


def opens(master_key: bytes, wrapped: bytes, kid: str, subject: str) -> bool:
    try:
        unwrap_key(master_key, wrapped, kid, subject)
    except ValueError:
        return False
    return True
