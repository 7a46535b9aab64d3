"""Checking the audit trail: every chain entry, every record, every head, first break reported."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa

from security.audit import (
    GENESIS,
    AuditRecord,
    audit_chains,
    audit_records,
    head_mac,
    key_id,
    link,
)
from security.audit_anchor import Anchor

CHAIN_FIELDS = ("chain_id", "ordinal", "host", "pid", "started_at", "key_id")
RECORD_FIELDS = ("chain_id", "seq", *(f.name for f in fields(AuditRecord)))
STREAM_BATCH = 2000

# The reasons `audit verify` gives; docs/audit.md says what each one means.
OTHER_KEY = "chain written under another audit key"
CHAIN_ALTERED = "chain entry altered"
CHAIN_REMOVED = "chain removed before this one"
HEAD_ALTERED = "chain head altered"
UNREGISTERED = "records of an unregistered chain"
RECORD_REMOVED = "record removed"
RECORD_ALTERED = "record altered or reordered"
RECORD_UNLINKED = "record not linked to the one before it"
TAIL_REMOVED = "last records removed"
BEYOND_HEAD = "records beyond the chain head"
ANCHORED_CHAIN_GONE = "anchored chain removed"
BELOW_ANCHOR = "chain shorter than its anchor"
ANCHOR_MISMATCH = "record differs from its anchor"


@dataclass(frozen=True)
class Break:
    """The first place the trail stops being what was written: a chain, a seq and why."""

    chain: str | None
    seq: int | None
    reason: str


@dataclass(frozen=True)
class Verdict:
    """What `audit verify` found."""

    chains: int
    records: int
    broken: Break | None = None

    @property
    def intact(self) -> bool:
        return self.broken is None

    def to_json(self) -> dict[str, Any]:
        if self.broken is None:
            return {"intact": True, "chains": self.chains, "records": self.records}
        return {"intact": False, "chain": self.broken.chain, "seq": self.broken.seq,
                "reason": self.broken.reason}


def verify_trail(engine: sa.Engine, key: bytes, anchors: Sequence[Anchor] = (),
                 previous_keys: Sequence[bytes] = ()) -> Verdict:
    """Walk every chain in start order and every record in seq order, then hold the trail
    against its signed anchors (security.audit_anchor); stop at the first break.

    A chain is checked with the key it names by key id: `key`, or one of `previous_keys` (the
    audit keys of earlier master keys, for chains started before a rotation)."""
    keys = {key_id(each): each for each in (*previous_keys, key)}
    with engine.connect() as conn:
        begin_snapshot(conn)
        chains = conn.execute(sa.select(audit_chains).order_by(audit_chains.c.ordinal)).all()
        broken = check_registry(chains, keys) or find_unregistered(conn)
        if broken:
            return Verdict(len(chains), 0, broken)
        total = 0
        for chain in chains:
            count, broken = check_chain(chain, stream_records(conn, chain.chain_id),
                                        keys[chain.key_id])
            total += count
            if broken:
                return Verdict(len(chains), total, broken)
        broken = check_anchors(conn, {chain.chain_id: chain for chain in chains}, anchors)
    return Verdict(len(chains), total, broken)


def begin_snapshot(conn: sa.Connection) -> None:
    """Read everything as of one moment, so records appended meanwhile do not look forged."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")  # pysqlite would run each SELECT in its own snapshot
    else:
        conn.execution_options(isolation_level="REPEATABLE READ")


def check_registry(chains: Iterable[Any], keys: Mapping[str, bytes]) -> Break | None:
    """Chains are numbered 0, 1, 2… and each entry links to the one started before it."""
    prev = GENESIS
    for ordinal, chain in enumerate(chains):
        key = keys.get(chain.key_id)
        if key is None:
            return Break(chain.chain_id, None, OTHER_KEY)
        entry = {name: getattr(chain, name) for name in CHAIN_FIELDS}
        if chain.chain_hash != link(key, "chain", chain.prev_chain_hash, entry):
            return Break(chain.chain_id, None, CHAIN_ALTERED)
        if chain.ordinal != ordinal or chain.prev_chain_hash != prev:
            return Break(chain.chain_id, None, CHAIN_REMOVED)
        if chain.head_mac != head_mac(key, chain.chain_id, chain.head_seq, chain.head_hash):
            return Break(chain.chain_id, chain.head_seq, HEAD_ALTERED)
        prev = chain.chain_hash
    return None


def find_unregistered(conn: sa.Connection) -> Break | None:
    """Records whose chain entry is gone (the entry of the newest chain, removed)."""
    registered = sa.select(audit_chains.c.chain_id)
    row = conn.execute(
        sa.select(audit_records.c.chain_id, sa.func.min(audit_records.c.seq).label("seq"))
        .where(audit_records.c.chain_id.not_in(registered))
        .group_by(audit_records.c.chain_id).order_by(audit_records.c.chain_id).limit(1)).first()
    return None if row is None else Break(row.chain_id, row.seq, UNREGISTERED)


def stream_records(conn: sa.Connection, chain_id: str) -> Iterator[Any]:
    """One chain's records in seq order, fetched in batches (a chain may be millions long)."""
    result = conn.execution_options(yield_per=STREAM_BATCH).execute(
        sa.select(audit_records).where(audit_records.c.chain_id == chain_id)
        .order_by(audit_records.c.seq))
    yield from result


def check_chain(chain: Any, records: Iterable[Any], key: bytes) -> tuple[int, Break | None]:
    """(records read, first break): seq 0, 1, 2… each hashing right and linking to the last."""
    expected, prev = 0, chain.chain_hash
    for row in records:
        if row.seq != expected:
            return expected, Break(chain.chain_id, expected, RECORD_REMOVED)
        values = {name: getattr(row, name) for name in RECORD_FIELDS}
        if row.record_hash != link(key, "record", row.prev_hash, values):
            return expected, Break(chain.chain_id, expected, RECORD_ALTERED)
        if row.prev_hash != prev:
            return expected, Break(chain.chain_id, expected, RECORD_UNLINKED)
        expected, prev = expected + 1, row.record_hash
    return expected, check_head(chain, expected, prev)


def check_head(chain: Any, count: int, last_hash: str) -> Break | None:
    """The chain must end exactly where its head (updated with every record) says it does."""
    if count - 1 < chain.head_seq:
        return Break(chain.chain_id, count, TAIL_REMOVED)
    if count - 1 > chain.head_seq:
        return Break(chain.chain_id, chain.head_seq + 1, BEYOND_HEAD)
    if last_hash != chain.head_hash:
        return Break(chain.chain_id, chain.head_seq, HEAD_ALTERED)
    return None


def check_anchors(conn: sa.Connection, chains: dict[str, Any],
                  anchors: Iterable[Anchor]) -> Break | None:
    """Each anchored chain is still there, at least as long, with the anchored record: what
    the walk cannot see (a whole chain, or every row, gone) is found here."""
    for anchor in sorted(anchors, key=Anchor.order):
        chain = chains.get(anchor.chain_id)
        if chain is None:
            return Break(anchor.chain_id, anchor.seq, ANCHORED_CHAIN_GONE)
        if chain.head_seq < anchor.seq:
            return Break(anchor.chain_id, chain.head_seq + 1, BELOW_ANCHOR)
        found = conn.execute(sa.select(audit_records.c.record_hash).where(
            audit_records.c.chain_id == anchor.chain_id,
            audit_records.c.seq == anchor.seq)).scalar()
        if found != anchor.record_hash:
            return Break(anchor.chain_id, anchor.seq, ANCHOR_MISMATCH)
    return None
