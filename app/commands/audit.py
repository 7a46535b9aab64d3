"""audit verify: check every hash chain of the audit trail (exit 1 at the first break)."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from app.commands import emit, say
from app.gateway import current_gateway
from security.audit import audit_key
from security.audit_verify import verify_trail

audit_group = click.Group("audit", help="Check the tamper-evident audit trail.")


@audit_group.command("verify")
@with_appcontext
def verify() -> None:
    """Exit 0 when every chain is intact; else print the first broken record and exit 1."""
    gateway = current_gateway()
    try:
        settings = gateway.settings
        verdict = verify_trail(gateway.engine, audit_key(settings.master_key),
                               [audit_key(key) for key in settings.previous_master_keys])
    except (SQLAlchemyError, TypeError, ValueError) as exc:  # a dropped table, a mangled row
        say(f"audit trail unreadable: {type(exc).__name__}")
        emit({"intact": False, "reason": f"trail unreadable: {type(exc).__name__}"})
        sys.exit(1)
    if verdict.broken is not None:
        broken = verdict.broken
        where = f"chain {broken.chain}" + ("" if broken.seq is None else f", seq {broken.seq}")
        say(f"audit trail broken at {where}: {broken.reason}")
        emit(verdict.to_json())
        sys.exit(1)
    say(f"audit trail intact: {verdict.chains} chains, {verdict.records} records")
    emit(verdict.to_json())
