"""Anchors end to end: requests publish them, `audit verify` holds the database against them,
`audit export` hands them to an archive that `audit verify --against` checks."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from app import create_app
from security.audit import audit_chains, audit_key, audit_records, head_mac
from security.audit_verify import ANCHORED_CHAIN_GONE, BELOW_ANCHOR
from tests.app.test_audit import audit_rows
from tests.app.test_audit_resilience import database_url

__all__ = ["database_url"]  # fixture


@pytest.fixture
def served(overrides, database_url) -> Flask:
    """An app whose two workers (chains) each answered requests, anchored at every commit."""
    settings = {**overrides, "database_url": database_url, "audit_anchor_interval": 0}
    first, second = create_app(settings), create_app(settings)
    for app, calls in ((first, 3), (second, 2)):
        for _ in range(calls):
            assert app.test_client().get("/models").status_code == 401
    return second


def cli(app: Flask, *args: str) -> tuple[int, dict, str]:
    result = app.test_cli_runner().invoke(args=["audit", *args])
    return result.exit_code, json.loads(result.stdout), result.stderr


def run_sql(app: Flask, *statements: str) -> None:
    with app.app_context(), app.extensions["torchgate"].engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def write_store(app: Flask, statement: str) -> None:
    """Write the SQLite store file directly, as an attacker on the machine can."""
    with app.app_context():
        path = app.extensions["torchgate"].store.path
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(statement)


def chains(app: Flask) -> list[str]:
    return list(dict.fromkeys(row.chain_id for row in sorted(
        audit_rows(app), key=lambda row: row.time)))


def test_verify_checks_the_trail_against_the_stores_anchors(served):
    code, verdict, stderr = cli(served, "verify")
    assert (code, verdict) == (0, {"intact": True, "chains": 2, "records": 5})
    assert "2 anchors held" in stderr


@pytest.mark.parametrize(("statements", "chain", "seq"), [
    (["DELETE FROM audit_records WHERE chain_id = '{newest}'",
      "DELETE FROM audit_chains WHERE chain_id = '{newest}'"], "newest", 1),
    (["DELETE FROM audit_records", "DELETE FROM audit_chains"], "oldest", 2),
], ids=["newest chain deleted", "both tables emptied"])
def test_removal_the_chains_cannot_show_fails_verify(served, statements, chain, seq):
    oldest, newest = chains(served)
    run_sql(served, *(s.format(newest=newest) for s in statements))
    named = {"oldest": oldest, "newest": newest}[chain]
    code, verdict, stderr = cli(served, "verify")
    assert (code, verdict) == (1, {"intact": False, "chain": named, "seq": seq,
                                   "reason": ANCHORED_CHAIN_GONE})
    assert f"chain {named}" in stderr


def test_export_and_verify_against_the_archive_round_trip(served, tmp_path):
    archive = tmp_path / "anchors.jsonl"
    code, summary, _ = cli(served, "export", "--output", str(archive))
    assert code == 0
    assert (summary["anchors"], summary["output"]) == (2, str(archive))
    lines = archive.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [2, 1]
    assert cli(served, "verify", "--against", str(archive))[:2] == (
        0, {"intact": True, "chains": 2, "records": 5})


def test_export_to_stdout_is_one_object_usable_as_an_archive(served, tmp_path):
    code, printed, _ = cli(served, "export")
    assert code == 0
    assert [anchor["seq"] for anchor in printed["anchors"]] == [2, 1]
    archive = tmp_path / "printed.json"
    archive.write_text(json.dumps(printed))
    assert cli(served, "verify", "--against", str(archive))[0] == 0


def test_the_archive_finds_what_was_cut_from_database_and_store(served, tmp_path):
    """An attacker who empties the tables and the store's anchors is still held by the archive."""
    archive = tmp_path / "anchors.jsonl"
    cli(served, "export", "--output", str(archive))
    oldest, _ = chains(served)
    run_sql(served, "DELETE FROM audit_records", "DELETE FROM audit_chains")
    write_store(served, "DELETE FROM anchors")
    assert cli(served, "verify")[0] == 0  # nothing left to hold the database against…
    assert cli(served, "verify", "--against", str(archive))[:2] == (  # …but the archive
        1, {"intact": False, "chain": oldest, "seq": 2, "reason": ANCHORED_CHAIN_GONE})


@pytest.mark.parametrize("edit", [
    lambda anchor: {**anchor, "seq": anchor["seq"] - 1},
    lambda anchor: {**anchor, "record_hash": "0" * 64},
    lambda anchor: {**anchor, "key_id": "0" * 16},
    lambda anchor: "not an anchor",
], ids=["seq lowered", "hash replaced", "another key", "not an anchor"])
def test_a_tampered_archive_is_refused(served, tmp_path, edit):
    archive = tmp_path / "anchors.jsonl"
    cli(served, "export", "--output", str(archive))
    first, second = archive.read_text().splitlines()
    archive.write_text(f"{first}\n{json.dumps(edit(json.loads(second)))}\n")
    code, verdict, stderr = cli(served, "verify", "--against", str(archive))
    assert code == 1 and verdict["intact"] is False
    assert verdict["reason"].startswith("anchor archive anchors.jsonl refused: line 2")
    assert "line 2" in stderr


def test_an_altered_store_anchor_fails_verify(served):
    write_store(served, "UPDATE anchors SET anchor = replace(anchor, '\"seq\":2', '\"seq\":1')")
    code, verdict, _ = cli(served, "verify")
    assert code == 1
    assert verdict["reason"].startswith("shared store anchors altered")


def test_a_key_holder_who_cuts_a_chain_below_its_anchor_is_found(served):
    oldest, _ = chains(served)
    with served.app_context():
        key = audit_key(served.extensions["torchgate"].settings.master_key)
    kept = next(r.record_hash for r in audit_rows(served) if r.chain_id == oldest and r.seq == 0)
    with served.app_context(), served.extensions["torchgate"].engine.begin() as conn:
        conn.execute(sa.delete(audit_records).where(audit_records.c.chain_id == oldest,
                                                    audit_records.c.seq > 0))
        conn.execute(sa.update(audit_chains).where(audit_chains.c.chain_id == oldest).values(
            head_seq=0, head_hash=kept, head_mac=head_mac(key, oldest, 0, kept)))
    assert cli(served, "verify")[:2] == (1, {"intact": False, "chain": oldest, "seq": 1,
                                             "reason": BELOW_ANCHOR})


def test_verify_against_a_missing_archive_is_a_usage_error(served, tmp_path):
    result = served.test_cli_runner().invoke(
        args=["audit", "verify", "--against", str(tmp_path / Path("missing.jsonl"))])
    assert result.exit_code == 2
