"""audit verify and audit export: check the hash chains against their signed anchors, and hand
the anchors to an external archive (exit 1 at the first break)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from app.commands import emit, say
from app.gateway import Gateway, current_gateway
from errors import StoreUnavailable
from security.audit import audit_key
from security.audit_anchor import Anchor, AnchorInvalid, AnchorKey, anchor_key, read_anchors
from security.audit_verify import verify_trail
from security.receipt_audit import receipt_report
from security.receipt_files import read_jwks_file
from security.receipts import ReceiptError

audit_group = click.Group("audit", help="Check the tamper-evident audit trail; export its anchors.")
ARCHIVE = click.Path(exists=True, dir_okay=False, path_type=Path)


@audit_group.command("verify")
@click.option("--against", "archives", multiple=True, type=ARCHIVE,
              help="Check against anchors exported by `audit export` (instead of the store's).")
@click.option("--receipt", type=ARCHIVE,
              help="also match this saved receipt (or reply) to its record (docs/receipts.md)")
@click.option("--jwks", type=ARCHIVE,
              help="verify --receipt with this JWKS file, not the gateway's receipt keys")
@with_appcontext
def verify(archives: tuple[Path, ...], receipt: Path | None, jwks: Path | None) -> None:
    """Exit 0 when every chain is intact and reaches its anchors (and --receipt matches its
    record); else print the first break (or why the receipt does not match) and exit 1."""
    gateway = current_gateway()
    # Anchors first, then the trail's snapshot: an anchor is published after its commit, so
    # every anchor read here names a record the snapshot holds (read the other way round, a
    # live writer's newest anchor could look like a removed record).
    anchors = archive_anchors(gateway, archives) if archives else store_anchors(gateway)
    try:
        settings = gateway.settings
        verdict = verify_trail(gateway.engine, audit_key(settings.master_key), anchors,
                               [audit_key(key) for key in settings.previous_master_keys])
    except (SQLAlchemyError, TypeError, ValueError) as exc:  # a dropped table, a mangled row
        refuse(f"trail unreadable: {type(exc).__name__}")
    if verdict.broken is not None:
        broken = verdict.broken
        where = f"chain {broken.chain}" + ("" if broken.seq is None else f", seq {broken.seq}")
        say(f"audit trail broken at {where}: {broken.reason}")
        emit(verdict.to_json())
        sys.exit(1)
    say(f"audit trail intact: {verdict.chains} chains, {verdict.records} records, "
        f"{len(anchors)} anchors held")
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


@audit_group.command("export")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the anchors as JSON lines to this file (else one JSON object).")
@with_appcontext
def export(output: Path | None) -> None:
    """Every chain's newest signed anchor from the shared store, for an external archive."""
    gateway = current_gateway()
    anchors = sorted(store_anchors(gateway), key=Anchor.order)
    key = anchor_key(gateway.settings.master_key)
    summary = {"anchors": len(anchors), "key_id": key.key_id, "public_key": key.public_raw}
    if output is None:
        emit({**summary, "anchors": [json.loads(anchor.to_line()) for anchor in anchors]})
        return
    output.write_text("".join(f"{anchor.to_line()}\n" for anchor in anchors), encoding="utf-8")
    say(f"{len(anchors)} anchors written to {output}")
    emit({**summary, "output": str(output)})


def store_anchors(gateway: Gateway) -> list[Anchor]:
    """The shared store's anchors of this MASTER_KEY or an earlier one (PREVIOUS_MASTER_KEYS);
    another deployment's are skipped."""
    try:
        return read_anchors(gateway.store.anchors(), *anchor_keys(gateway), skip_foreign=True)
    except StoreUnavailable:
        refuse("anchors unreadable: the shared store is unreachable")
    except AnchorInvalid as exc:
        refuse(f"shared store anchors altered: {exc}")


def anchor_keys(gateway: Gateway) -> list[AnchorKey]:
    """The anchor keys of MASTER_KEY and of each PREVIOUS_MASTER_KEYS entry, current first."""
    settings = gateway.settings
    return [anchor_key(key) for key in (settings.master_key, *settings.previous_master_keys)]


def archive_anchors(gateway: Gateway, archives: tuple[Path, ...]) -> list[Anchor]:
    """Every anchor of the archives; any line that is not one of this key's refuses them all."""
    keys, anchors = anchor_keys(gateway), []
    for archive in archives:
        try:
            anchors += read_anchors(archive_lines(archive.read_text(encoding="utf-8")), *keys,
                                    skip_foreign=False)
        except (AnchorInvalid, OSError, UnicodeDecodeError) as exc:
            refuse(f"anchor archive {archive.name} refused: {exc}")
    return anchors


def archive_lines(text: str) -> list[str]:
    """An archive's anchor lines: JSON lines (`--output`), or the object export prints."""
    try:
        whole = json.loads(text)
    except ValueError:
        return text.splitlines()
    if isinstance(whole, dict) and isinstance(whole.get("anchors"), list):
        return [json.dumps(anchor) for anchor in whole["anchors"]]
    return text.splitlines()


def refuse(reason: str) -> NoReturn:
    """Exit 1 with one line on stderr and the verdict on stdout."""
    say(f"audit trail not verified: {reason}")
    emit({"intact": False, "reason": reason})
    sys.exit(1)
