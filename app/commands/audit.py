"""audit verify: check every hash chain of the audit trail (exit 1 at the first break)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from app.commands import emit, say
from app.gateway import Gateway, current_gateway
from security.audit import audit_key
from security.audit_verify import verify_trail
from security.receipt_audit import receipt_report
from security.receipt_files import read_jwks_file
from security.receipts import ReceiptError

audit_group = click.Group("audit", help="Check the tamper-evident audit trail.")


@audit_group.command("verify")
@click.option("--receipt", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="also match this saved receipt (or reply) to its record (docs/receipts.md)")
@click.option("--jwks", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="verify --receipt with this JWKS file, not the gateway's receipt keys")
@with_appcontext
def verify(receipt: Path | None, jwks: Path | None) -> None:
    """Exit 0 when every chain is intact (and --receipt matches its record); else print the
    first broken record (or why the receipt does not match) and exit 1."""
    gateway = current_gateway()
    try:
        verdict = verify_trail(gateway.engine, audit_key(gateway.settings.master_key))
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
    if receipt is None:
        emit(verdict.to_json())
        return
    report = match_receipt_file(gateway, receipt, jwks)
    say(f"receipt {'matches' if report['matches'] else 'does not match'} its audit record")
    emit({**verdict.to_json(), "receipt": report})
    if not report["matches"]:
        sys.exit(1)


def match_receipt_file(gateway: Gateway, receipt: Path, jwks: Path | None) -> dict:
    try:
        keys = gateway.receipt_keys.public_jwks() if jwks is None else read_jwks_file(jwks)
    except ReceiptError as exc:
        return {"matches": False, "reason": str(exc)}
    return receipt_report(gateway.engine, receipt.read_bytes(), keys)
