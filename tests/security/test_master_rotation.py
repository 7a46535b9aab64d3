"""Rewrapping payload keys under a new MASTER_KEY: round trip, refusal, resumption, dry run.

On SQLite and, when TORCHGATE_TEST_DATABASE_URL is set, on PostgreSQL in a schema of its own: a
rewrap walks the whole payload_keys table, and the shared test database's belongs to every run.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
import sqlalchemy as sa

from errors import KeyNotAllowed
from security.envelope import open_envelope, seal_envelope
from security.gateway_keys import GatewayKeyStore, gateway_keys
from security.keys import PayloadKeyring, payload_keys
from security.master_rotation import RewrapError, RewrapReport, rewrap_master_secrets
from security.schema import metadata

OLD = bytes(range(100, 132))
NEW = bytes(range(1, 33))
WRONG = bytes(range(50, 82))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
        metadata.create_all(engine, tables=[payload_keys, gateway_keys])
        yield engine
        engine.dispose()
        return
    url = os.environ.get("TORCHGATE_TEST_DATABASE_URL")
    if not url:
        pytest.skip("TORCHGATE_TEST_DATABASE_URL is not set")
    schema = f"rewrap_{uuid.uuid4().hex}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    metadata.create_all(engine, tables=[payload_keys, gateway_keys])
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def stored(engine: sa.Engine) -> dict[str, bytes]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(payload_keys.c.kid, payload_keys.c.wrapped)).all()
    return {row.kid: bytes(row.wrapped) for row in rows}


def issue(engine: sa.Engine, master: bytes, count: int) -> dict[str, tuple[str, bytes]]:
    keyring = PayloadKeyring(engine, master)
    issued = [keyring.issue(f"subject-{n}") for n in range(count)]
    return {key.kid: (key.subject, key.key) for key in issued}


def test_rewrapped_keys_open_envelopes_under_the_new_master_only(engine):
    issued = issue(engine, OLD, 3)
    PayloadKeyring(engine, OLD).revoke(next(iter(issued)))  # revoked keys move too
    assert rewrap_master_secrets(engine, [OLD], NEW) == RewrapReport(rewrapped=3, already_current=0)
    new, old = PayloadKeyring(engine, NEW), PayloadKeyring(engine, OLD)
    for kid, (subject, key) in list(issued.items())[1:]:
        body = seal_envelope(b'{"x": 1}', key=key, kid=kid)
        opened = open_envelope(body, key_for=lambda k, s=subject: new.key_for(k, s),
                               now=time.time(), max_age=300)
        assert opened.plaintext == b'{"x": 1}'
        with pytest.raises(KeyNotAllowed):
            old.key_for(kid, subject)


def test_second_run_skips_every_key(engine):
    issue(engine, OLD, 2)
    rewrap_master_secrets(engine, [OLD], NEW)
    after_first = stored(engine)
    assert rewrap_master_secrets(engine, [OLD], NEW) == RewrapReport(rewrapped=0, already_current=2)
    assert stored(engine) == after_first


def test_keys_issued_under_the_new_master_are_skipped(engine):
    issue(engine, OLD, 2)
    issue(engine, NEW, 3)
    assert rewrap_master_secrets(engine, [OLD], NEW) == RewrapReport(rewrapped=2, already_current=3)


@pytest.mark.parametrize("already_new", [0, 2])
def test_wrong_old_key_changes_nothing(engine, already_new):
    issue(engine, OLD, 3)
    issue(engine, NEW, already_new)
    before = stored(engine)
    with pytest.raises(RewrapError) as caught:
        rewrap_master_secrets(engine, [WRONG], NEW)
    assert caught.value.kid in before
    assert "nothing was changed" in str(caught.value)
    assert stored(engine) == before


def test_dry_run_counts_and_changes_nothing(engine):
    issue(engine, OLD, 2)
    before = stored(engine)
    report = rewrap_master_secrets(engine, [OLD], NEW, dry_run=True)
    assert report.to_json() == {"rewrapped": 2, "already_current": 0, "total": 2,
                                "rewrapped_by_kind": {"payload_keys": 2, "gateway_keys": 0}}
    assert stored(engine) == before


def test_keyring_with_the_previous_master_reads_both_during_the_rotation(engine):
    issued = {**issue(engine, OLD, 1), **issue(engine, NEW, 1)}
    both = PayloadKeyring(engine, NEW, previous_master_keys=[OLD])
    for kid, (subject, key) in issued.items():
        assert both.key_for(kid, subject) == key
    new_only = PayloadKeyring(engine, NEW)
    with pytest.raises(KeyNotAllowed):
        new_only.key_for(*next((kid, subject) for kid, (subject, _) in issued.items()))


def test_keys_of_two_earlier_master_keys_move_in_one_run(engine):
    oldest = bytes(range(150, 182))
    issued = {**issue(engine, oldest, 1), **issue(engine, OLD, 2)}
    assert rewrap_master_secrets(engine, [OLD, oldest], NEW) == RewrapReport(3, 0)
    new = PayloadKeyring(engine, NEW)
    assert all(new.key_for(kid, subject) == key for kid, (subject, key) in issued.items())


def test_gateway_key_seeds_move_with_the_payload_keys(engine):
    old_store = GatewayKeyStore(engine, OLD, overlap=60)
    kids = {old_store.generate(use).kid for use in ("enc", "sig")}
    issue(engine, OLD, 1)
    report = rewrap_master_secrets(engine, [OLD], NEW)
    assert dict(report.by_kind) == {"payload_keys": 1, "gateway_keys": 2}
    assert {key.kid for key in GatewayKeyStore(engine, NEW, overlap=60).list()} >= kids
    assert not [kid for kid in kids if GatewayKeyStore(engine, OLD, overlap=60).by_kid(kid)]
