"""audit verify: every kind of tampering is found where it happened; live writers are not."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from security.audit import audit_chains, audit_key, audit_records
from security.audit_trail import AuditTrail
from security.audit_verify import (
    CHAIN_ALTERED,
    CHAIN_REMOVED,
    HEAD_ALTERED,
    OTHER_KEY,
    RECORD_ALTERED,
    RECORD_REMOVED,
    TAIL_REMOVED,
    UNREGISTERED,
    Break,
    Verdict,
    verify_trail,
)
from tests.security.audit_fixtures import KEY, engine, trail, write

__all__ = ["engine", "trail"]  # fixtures


# ---- tampering: three chains (A: 4 records, B: 3, C: 2), one edit, the first break reported.

Tamper = Callable[[sa.Connection, list[str]], None]


def edit_record(chain: int, seq: int, **values) -> Tamper:
    def tamper(conn, chains):
        conn.execute(sa.update(audit_records).values(**values).where(
            audit_records.c.chain_id == chains[chain], audit_records.c.seq == seq))
    return tamper


def delete_records(chain: int, *seqs: int) -> Tamper:
    def tamper(conn, chains):
        where = audit_records.c.chain_id == chains[chain]
        if seqs:
            where = where & audit_records.c.seq.in_(seqs)
        conn.execute(sa.delete(audit_records).where(where))
    return tamper


def edit_chain(chain: int, **values) -> Tamper:
    def tamper(conn, chains):
        conn.execute(sa.update(audit_chains).values(**values)
                     .where(audit_chains.c.chain_id == chains[chain]))
    return tamper


def delete_chain_entry(chain: int) -> Tamper:
    def tamper(conn, chains):
        conn.execute(sa.delete(audit_chains).where(audit_chains.c.chain_id == chains[chain]))
    return tamper


def swap_seq(chain: int, a: int, b: int) -> Tamper:
    def tamper(conn, chains):
        on_chain = audit_records.c.chain_id == chains[chain]
        conn.execute(sa.update(audit_records).values(seq=-1)
                     .where(on_chain, audit_records.c.seq == a))
        conn.execute(sa.update(audit_records).values(seq=a)
                     .where(on_chain, audit_records.c.seq == b))
        conn.execute(sa.update(audit_records).values(seq=b)
                     .where(on_chain, audit_records.c.seq == -1))
    return tamper


def rewind_head(chain: int, seq: int) -> Tamper:
    """Drop the records after seq and point the head at seq, as an attacker without the key can."""
    def tamper(conn, chains):
        on_chain = audit_records.c.chain_id == chains[chain]
        kept = conn.execute(sa.select(audit_records.c.record_hash)
                            .where(on_chain, audit_records.c.seq == seq)).scalar_one()
        conn.execute(sa.delete(audit_records).where(on_chain, audit_records.c.seq > seq))
        edit_chain(chain, head_seq=seq, head_hash=kept)(conn, chains)
    return tamper


def forge_next(chain: int) -> Tamper:
    """Copy the last record as a new one after it, hash and all (without the key)."""
    def tamper(conn, chains):
        on_chain = audit_records.c.chain_id == chains[chain]
        last = conn.execute(sa.select(audit_records).where(on_chain)
                            .order_by(audit_records.c.seq.desc()).limit(1)).one()
        conn.execute(sa.insert(audit_records).values(
            {**last._asdict(), "seq": last.seq + 1, "prev_hash": last.record_hash}))
    return tamper


TAMPERING = [
    ("edit status", edit_record(0, 1, status=403), (0, 1, RECORD_ALTERED)),
    ("edit decision", edit_record(0, 2, decision="deny"), (0, 2, RECORD_ALTERED)),
    ("erase subject", edit_record(1, 0, subject=None), (1, 0, RECORD_ALTERED)),
    ("edit body hash", edit_record(2, 1, body_sha256="0" * 64), (2, 1, RECORD_ALTERED)),
    ("edit record hash", edit_record(0, 1, record_hash="f" * 64), (0, 1, RECORD_ALTERED)),
    ("edit prev hash", edit_record(1, 2, prev_hash="f" * 64), (1, 2, RECORD_ALTERED)),
    ("delete middle record", delete_records(0, 2), (0, 2, RECORD_REMOVED)),
    ("delete first record", delete_records(1, 0), (1, 0, RECORD_REMOVED)),
    ("delete last record", delete_records(0, 3), (0, 3, TAIL_REMOVED)),
    ("delete every record of a chain", delete_records(1), (1, 0, TAIL_REMOVED)),
    ("delete last record, rewind head", rewind_head(0, 2), (0, 2, HEAD_ALTERED)),
    ("swap two records' seq", swap_seq(0, 1, 2), (0, 1, RECORD_ALTERED)),
    ("forge a record after the last", forge_next(1), (1, 3, RECORD_ALTERED)),
    ("edit head seq only", edit_chain(1, head_seq=1), (1, 1, HEAD_ALTERED)),
    ("edit chain host", edit_chain(1, host="elsewhere"), (1, None, CHAIN_ALTERED)),
    ("delete a whole chain", lambda c, ids: (delete_records(1)(c, ids),
                                             delete_chain_entry(1)(c, ids)),
     (2, None, CHAIN_REMOVED)),
    ("delete the newest chain's entry", delete_chain_entry(2), (2, 0, UNREGISTERED)),
    ("renumber chains over a removed one", lambda c, ids: (
        delete_records(1)(c, ids), delete_chain_entry(1)(c, ids),
        edit_chain(2, ordinal=1)(c, ids)), (2, None, CHAIN_ALTERED)),
]


@pytest.fixture
def three_chains(engine) -> list[str]:
    return [write(AuditTrail(engine, KEY, host=f"node-{i}"), n)[0]
            for i, n in enumerate((4, 3, 2))]


def test_untouched_trail_is_intact(engine, three_chains):
    assert verify_trail(engine, KEY) == Verdict(chains=3, records=9)


@pytest.mark.parametrize(("tamper", "expected"), [t[1:] for t in TAMPERING],
                         ids=[t[0] for t in TAMPERING])
def test_tampering_is_found_where_it_happened(engine, three_chains, tamper, expected):
    with engine.begin() as conn:
        tamper(conn, three_chains)
    chain, seq, reason = expected
    assert verify_trail(engine, KEY).broken == Break(three_chains[chain], seq, reason)


def test_verify_with_another_key_names_the_key(engine, three_chains):
    other = audit_key(bytes(32))
    assert verify_trail(engine, other).broken == Break(three_chains[0], None, OTHER_KEY)


def test_verify_while_a_writer_appends_sees_one_consistent_moment(engine, trail):
    write(trail, 1)
    writer = threading.Thread(target=write, args=(trail, 100, 1))
    writer.start()
    verdicts = [verify_trail(engine, KEY)]
    while writer.is_alive():
        verdicts.append(verify_trail(engine, KEY))
    writer.join()
    assert [v.broken for v in verdicts] == [None] * len(verdicts)
    assert verify_trail(engine, KEY) == Verdict(chains=1, records=101)
