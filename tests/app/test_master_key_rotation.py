"""A MASTER_KEY rotation from the command line: `keys rewrap`, sealed calls, `audit verify`."""

from __future__ import annotations

import getpass
import json

import pytest
import sqlalchemy as sa

from app import create_app
from app.gateway import current_gateway
from config import ConfigError
from security.encoding import b64url_encode
from tests.conftest import SEALED, Auth, Sealer

OLD = b64url_encode(bytes(range(100, 132)))
NEW = b64url_encode(bytes(range(1, 33)))
WRONG = b64url_encode(bytes(range(50, 82)))


def invoke(app, *args: str) -> tuple[int, dict | None, str]:
    result = app.test_cli_runner().invoke(args=list(args))
    out = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, out, result.stderr


def sealed_call(app, sealer: Sealer):
    """A sealed /predict/tiny call as alice; the reply opened with the same key."""
    response = app.test_client().post(
        "/predict/tiny", data=sealer.seal({"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}}),
        content_type=SEALED, headers=Auth(app).headers())
    return response.status_code, sealer.open(response.data) if response.status_code == 200 \
        else response.json


@pytest.fixture
def before(overrides):
    """The instance under the old master key, with alice's payload key and one audited call."""
    app = create_app({**overrides, "master_key": OLD})
    sealer = Sealer(*Auth(app).payload_key("alice"))
    assert sealed_call(app, sealer)[0] == 200
    return app, sealer


def test_rewrap_moves_keys_and_the_old_master_can_go(overrides, before):
    _, sealer = before
    rotating = create_app({**overrides, "master_key": NEW, "previous_master_keys": OLD})
    assert sealed_call(rotating, sealer)[0] == 200  # not yet rewrapped: the previous key opens it
    code, out, err = invoke(rotating, "keys", "rewrap")
    # alice's payload key and the gateway's three key pairs of a testing start-up
    assert (code, out) == (0, {"rewrapped": 4, "already_current": 0, "total": 4, "dry_run": False,
                               "rewrapped_by_kind": {"payload_keys": 1, "gateway_keys": 3}})
    assert "payload and gateway keys rewrapped under MASTER_KEY: 4; already under it: 0" in err
    assert sealer.kid not in err
    assert invoke(rotating, "keys", "rewrap")[1]["already_current"] == 4
    after = create_app({**overrides, "master_key": NEW})
    status, reply = sealed_call(after, sealer)
    assert status == 200 and "outputs" in reply


def test_wrong_previous_master_key_changes_nothing(overrides, before):
    _, sealer = before
    wrong = create_app({**overrides, "master_key": NEW, "previous_master_keys": WRONG})
    code, out, err = invoke(wrong, "keys", "rewrap")
    assert (code, out) == (1, None)
    assert f"payload key {sealer.kid} opens under neither" in err and "nothing was changed" in err
    still_old = create_app({**overrides, "master_key": OLD})
    assert sealed_call(still_old, sealer)[0] == 200


@pytest.mark.parametrize(("previous", "message"), [
    (None, "PREVIOUS_MASTER_KEYS is not set"),
    (f"{OLD},{NEW}", "PREVIOUS_MASTER_KEYS holds MASTER_KEY itself"),
])
def test_rewrap_refuses_without_a_distinct_previous_key(overrides, before, previous, message):
    extra = {} if previous is None else {"previous_master_keys": previous}
    code, out, err = invoke(create_app({**overrides, "master_key": NEW, **extra}),
                            "keys", "rewrap")
    assert (code, out) == (1, None)
    assert message in err and NEW not in err


def test_audit_verify_checks_chains_of_the_previous_master_key(overrides, before):
    _, sealer = before
    rotating = create_app({**overrides, "master_key": NEW, "previous_master_keys": OLD})
    assert sealed_call(rotating, sealer)[0] == 200  # a chain under the new key
    code, out, _ = invoke(rotating, "audit", "verify")
    assert (code, out["intact"], out["chains"]) == (0, True, 2)
    code, out, _ = invoke(create_app({**overrides, "master_key": NEW}), "audit", "verify")
    assert (code, out["intact"], out["reason"]) == (1, False,
                                                    "chain written under another audit key")


def test_audit_verify_after_two_rotations_needs_both_earlier_keys(overrides, before):
    _, sealer = before
    middle = create_app({**overrides, "master_key": WRONG, "previous_master_keys": OLD})
    assert sealed_call(middle, sealer)[0] == 200
    both = f"{WRONG},{OLD}"
    latest = create_app({**overrides, "master_key": NEW, "previous_master_keys": both})
    assert sealed_call(latest, sealer)[0] == 200
    assert invoke(latest, "audit", "verify")[:2] == (0, {"intact": True, "chains": 3,
                                                         "records": 3})
    code, out, _ = invoke(create_app({**overrides, "master_key": NEW,
                                      "previous_master_keys": WRONG}), "audit", "verify")
    assert (code, out["reason"]) == (1, "chain written under another audit key")


@pytest.mark.parametrize("value", ["not-base64!", f"{OLD},short", b64url_encode(b"x" * 31)])
def test_a_bad_previous_master_key_stops_start_up(overrides, value):
    with pytest.raises(ConfigError) as caught:
        create_app({**overrides, "previous_master_keys": value})
    assert caught.value.name == "PREVIOUS_MASTER_KEYS" and OLD not in str(caught.value)


def audited_actions(app) -> list[tuple]:
    with app.app_context():
        engine = current_gateway().engine
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(
            "SELECT subject, action, decision FROM audit_records WHERE action LIKE 'cli.%'"))]


def test_a_rewrap_is_audited_and_a_dry_run_is_not(overrides, before):
    rotating = create_app({**overrides, "master_key": NEW, "previous_master_keys": OLD})
    assert invoke(rotating, "keys", "rewrap", "--dry-run")[1]["dry_run"] is True
    assert audited_actions(rotating) == []
    assert invoke(rotating, "keys", "rewrap")[0] == 0
    assert invoke(rotating, "keys", "rewrap")[1]["rewrapped"] == 0  # changed nothing: no record
    assert audited_actions(rotating) == [(f"cli:{getpass.getuser()}", "cli.keys.rewrap", "allow")]
    assert invoke(rotating, "audit", "verify")[:2] == (0, {"intact": True, "chains": 2,
                                                           "records": 2})


def test_anchors_of_the_previous_master_key_still_find_a_removed_chain(overrides, before):
    app, _ = before
    with app.app_context():
        (old_chain,) = [row.chain_id for row in current_gateway().engine.connect().execute(
            sa.text("SELECT chain_id FROM audit_chains"))]
    rotating = create_app({**overrides, "master_key": NEW, "previous_master_keys": OLD})
    code, out, err = invoke(rotating, "audit", "verify")
    assert (code, out["intact"]) == (0, True)
    assert "1 anchors held" in err  # the old key's anchor, not skipped as foreign
    with rotating.app_context(), current_gateway().engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_records WHERE chain_id = :c"), {"c": old_chain})
        conn.execute(sa.text("DELETE FROM audit_chains WHERE chain_id = :c"), {"c": old_chain})
    code, out, _ = invoke(rotating, "audit", "verify")
    assert (code, out["intact"], out["chain"]) == (1, False, old_chain)
