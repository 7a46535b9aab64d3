"""Signed chain-head anchors: signing, reading, publishing, keeping; verify held against them."""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa

from errors import StoreUnavailable
from security.audit import ChainHead, head_mac
from security.audit_anchor import (
    AnchorForeign,
    AnchorInvalid,
    AnchorPublisher,
    anchor_key,
    read_anchor,
    read_anchors,
    sign_anchor,
)
from security.audit_trail import AuditTrail
from security.audit_verify import (
    ANCHOR_MISMATCH,
    ANCHORED_CHAIN_GONE,
    BELOW_ANCHOR,
    Break,
    Verdict,
    verify_trail,
)
from security.store import SqliteStore
from tests.security.audit_fixtures import KEY, engine, write
from tests.security.test_audit_verify import delete_chain_entry, delete_records, rewind_head

__all__ = ["engine"]  # fixture

MASTER = bytes(range(32))  # the master key of audit_fixtures.KEY
ANCHOR_KEY = anchor_key(MASTER)
HEAD = ChainHead("node-a:1:abc", 1, 7, "ab" * 32)


def signed(head: ChainHead = HEAD) -> dict:
    return json.loads(sign_anchor(ANCHOR_KEY, head).to_line())


# ---- signing and reading

def test_a_signed_anchor_reads_back_as_signed():
    anchor = read_anchor(signed(), ANCHOR_KEY)
    assert (anchor.chain_id, anchor.seq, anchor.record_hash) == (HEAD.chain_id, 7, HEAD.record_hash)
    assert anchor.key_id == ANCHOR_KEY.key_id


def test_the_anchor_key_is_not_the_audit_key():
    assert ANCHOR_KEY.private.private_bytes_raw() != KEY


@pytest.mark.parametrize(("field", "value"), [
    ("chain_id", "node-b:1:abc"), ("seq", 8), ("record_hash", "cd" * 32),
    ("time", "2020-01-01T00:00:00.000000Z"), ("signature", "A" * 86),
])
def test_an_edited_anchor_is_invalid(field, value):
    with pytest.raises(AnchorInvalid) as caught:
        read_anchor({**signed(), field: value}, ANCHOR_KEY)
    assert not isinstance(caught.value, AnchorForeign)


@pytest.mark.parametrize("values", [
    [], "anchor", {"chain_id": "c"}, {**signed(), "extra": 1}, {**signed(), "seq": "7"},
    {**signed(), "seq": True}, {**signed(), "seq": -1}, {**signed(), "chain_id": None},
    {**signed(), "signature": "%%%"},
], ids=["list", "text", "missing fields", "extra field", "seq as text", "seq as bool",
        "negative seq", "null chain", "signature not base64url"])
def test_what_is_not_an_anchor_is_invalid(values):
    with pytest.raises(AnchorInvalid):
        read_anchor(values, ANCHOR_KEY)


def test_an_anchor_of_another_master_key_is_foreign():
    other = anchor_key(bytes(32))
    with pytest.raises(AnchorForeign):
        read_anchor(json.loads(sign_anchor(other, HEAD).to_line()), ANCHOR_KEY)


def test_a_foreign_key_id_on_our_signature_is_refused_unless_skipped():
    line = json.dumps({**signed(), "key_id": "0" * 16})
    assert read_anchors([line], ANCHOR_KEY, skip_foreign=True) == []
    with pytest.raises(AnchorInvalid, match="line 1: an anchor of another key"):
        read_anchors([line], ANCHOR_KEY, skip_foreign=False)


def test_read_anchors_names_the_first_bad_line():
    good = json.dumps(signed())
    with pytest.raises(AnchorInvalid, match="line 3: not a validly signed anchor"):
        read_anchors([good, "", "{not json", good], ANCHOR_KEY, skip_foreign=True)


# ---- publishing

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Kept:
    """A store's put_anchor that keeps what it was given, or fails when told to."""

    def __init__(self) -> None:
        self.anchors: list[tuple[str, int]] = []
        self.failing = False

    def __call__(self, chain_id: str, seq: int, line: str) -> None:
        if self.failing:
            raise StoreUnavailable()
        assert read_anchor(json.loads(line), ANCHOR_KEY).seq == seq
        self.anchors.append((chain_id, seq))


def head(seq: int, chain: str = "c1") -> ChainHead:
    return ChainHead(chain, 1, seq, f"{seq:064x}")


def test_publisher_anchors_a_new_chain_then_at_most_once_an_interval():
    kept, clock = Kept(), Clock()
    publisher = AnchorPublisher(kept, ANCHOR_KEY, interval=1, clock=clock)
    publisher.after_commit(head(0))
    publisher.after_commit(head(1))
    clock.now += 1
    publisher.after_commit(head(2))
    publisher.after_commit(head(0, chain="c2"))  # a forked child's chain: at once
    assert kept.anchors == [("c1", 0), ("c1", 2), ("c2", 0)]


def test_publisher_with_interval_zero_anchors_every_commit():
    kept = Kept()
    publisher = AnchorPublisher(kept, ANCHOR_KEY, interval=0, clock=Clock())
    for seq in range(3):
        publisher.after_commit(head(seq))
    assert kept.anchors == [("c1", 0), ("c1", 1), ("c1", 2)]


def test_a_failed_publish_is_retried_with_the_next_commit():
    kept = Kept()
    publisher = AnchorPublisher(kept, ANCHOR_KEY, interval=60, clock=Clock())
    kept.failing = True
    publisher.after_commit(head(0))  # logged, not raised: the records are committed
    kept.failing = False
    publisher.after_commit(head(1))
    publisher.after_commit(head(2))
    assert kept.anchors == [("c1", 1)]


# ---- keeping (each shared-store backend)

def test_store_keeps_each_chains_newest_anchor(backend):
    first, second = backend.open(), backend.open()
    lines = {seq: sign_anchor(ANCHOR_KEY, head(seq)).to_line() for seq in (3, 5)}
    first.put_anchor("c1", 5, lines[5])
    second.put_anchor("c1", 3, lines[3])  # a late publish of an older head
    second.put_anchor("c2", 0, sign_anchor(ANCHOR_KEY, head(0, "c2")).to_line())
    kept = read_anchors(first.anchors(), ANCHOR_KEY, skip_foreign=False)
    assert [(a.chain_id, a.seq) for a in kept] == [("c1", 5), ("c2", 0)]


# ---- verify held against anchors (SQLite and PostgreSQL)

def anchored_trail(engine: sa.Engine) -> tuple[list[str], list]:
    """Three chains (4, 3, 2 records), each anchored at its head, as the publisher leaves them."""
    anchors, chains = [], []
    for i, n in enumerate((4, 3, 2)):
        publisher = AnchorPublisher(lambda c, s, line: anchors.append(
            read_anchor(json.loads(line), ANCHOR_KEY)), ANCHOR_KEY, interval=0)
        trail = AuditTrail(engine, KEY, host=f"node-{i}", on_head=publisher.after_commit)
        chains.append(write(trail, n)[0])
    newest = {a.chain_id: a for a in anchors}  # as the store keeps them
    return chains, list(newest.values())


def test_an_untouched_trail_reaches_its_anchors(engine):
    _, anchors = anchored_trail(engine)
    assert [a.seq for a in anchors] == [3, 2, 1]
    assert verify_trail(engine, KEY, anchors) == Verdict(chains=3, records=9)


def empty_tables(conn: sa.Connection, _chains: list[str]) -> None:
    conn.exec_driver_sql("DELETE FROM audit_records")
    conn.exec_driver_sql("DELETE FROM audit_chains")


def delete_newest_chain(conn: sa.Connection, chains: list[str]) -> None:
    delete_records(2)(conn, chains)
    delete_chain_entry(2)(conn, chains)


@pytest.mark.parametrize(("tamper", "expected"), [
    (delete_newest_chain, (2, 1, ANCHORED_CHAIN_GONE)),
    (empty_tables, (0, 3, ANCHORED_CHAIN_GONE)),
], ids=["newest chain deleted", "both tables emptied"])
def test_what_the_chain_walk_cannot_see_an_anchor_finds(engine, tamper, expected):
    chains, anchors = anchored_trail(engine)
    with engine.begin() as conn:
        tamper(conn, chains)
    assert verify_trail(engine, KEY).broken is None  # the walk alone passes
    chain, seq, reason = expected
    assert verify_trail(engine, KEY, anchors).broken == Break(chains[chain], seq, reason)


def test_a_chain_cut_below_its_anchor_by_a_key_holder_is_found(engine):
    """With the audit key, the head can be rewound with a valid MAC; the anchor still holds."""
    chains, anchors = anchored_trail(engine)
    with engine.begin() as conn:
        rewind_head(0, 1)(conn, chains)
        remac = sa.text("UPDATE audit_chains SET head_mac = :mac WHERE chain_id = :chain")
        kept = conn.execute(sa.text("SELECT head_hash FROM audit_chains WHERE chain_id = :c"),
                            {"c": chains[0]}).scalar_one()
        conn.execute(remac, {"mac": head_mac(KEY, chains[0], 1, kept), "chain": chains[0]})
    assert verify_trail(engine, KEY).broken is None
    assert verify_trail(engine, KEY, anchors).broken == Break(chains[0], 2, BELOW_ANCHOR)


def test_an_anchor_whose_record_differs_is_found(engine):
    chains, anchors = anchored_trail(engine)
    other = read_anchor(json.loads(sign_anchor(
        ANCHOR_KEY, ChainHead(chains[1], 1, 1, "f" * 64)).to_line()), ANCHOR_KEY)
    assert verify_trail(engine, KEY, [*anchors, other]).broken == Break(
        chains[1], 1, ANCHOR_MISMATCH)


def test_verify_while_a_writer_anchors_every_commit_sees_one_consistent_moment(engine, tmp_path):
    """As `audit verify` does: the store's anchors first, then the trail's snapshot."""
    store = SqliteStore(tmp_path / "store.sqlite3")
    publisher = AnchorPublisher(store.put_anchor, ANCHOR_KEY, interval=0)
    trail = AuditTrail(engine, KEY, host="node-a", on_head=publisher.after_commit)
    write(trail, 1)
    writer = threading.Thread(target=write, args=(trail, 100, 1))
    writer.start()
    verdicts = []
    while writer.is_alive() or not verdicts:
        anchors = read_anchors(store.anchors(), ANCHOR_KEY, skip_foreign=False)
        verdicts.append(verify_trail(engine, KEY, anchors))
    writer.join()
    assert [v.broken for v in verdicts] == [None] * len(verdicts)
    final = read_anchors(store.anchors(), ANCHOR_KEY, skip_foreign=False)
    assert [a.seq for a in final] == [100]
    assert verify_trail(engine, KEY, final) == Verdict(chains=1, records=101)
    store.close()
