"""keys rewrap: move every payload key and gateway key seed from PREVIOUS_MASTER_KEYS to MASTER_KEY
(one transaction).

The old keys come from the PREVIOUS_MASTER_KEYS setting (environment, its _FILE form, or the TOML
file), never from the command line, where it would show in process lists and shell history.
"""

from __future__ import annotations

import hmac

import click
from flask.cli import with_appcontext

from app.commands import audit_cli_action, emit, fail, say
from app.gateway import current_gateway
from security.master_rotation import RewrapError, rewrap_master_secrets


@click.command("rewrap")
@click.option("--dry-run", is_flag=True, help="Count what would be rewrapped; change nothing.")
@with_appcontext
def rewrap_keys(dry_run: bool) -> None:
    """Rewrap every payload key and gateway key from PREVIOUS_MASTER_KEYS to MASTER_KEY; safe
    to run again."""
    gateway = current_gateway()
    old, new = gateway.settings.previous_master_keys, gateway.settings.master_key
    if not old:
        fail("PREVIOUS_MASTER_KEYS is not set: give the old master key as "
             "TORCHGATE_PREVIOUS_MASTER_KEYS_FILE (or TORCHGATE_PREVIOUS_MASTER_KEYS)")
    if any(hmac.compare_digest(key, new) for key in old):
        fail("PREVIOUS_MASTER_KEYS holds MASTER_KEY itself: set MASTER_KEY to the new key")
    try:
        report = rewrap_master_secrets(gateway.engine, old, new, dry_run=dry_run)
    except RewrapError as exc:
        fail(str(exc))
    if report.rewrapped and not dry_run:
        audit_cli_action("keys.rewrap")
    done = "would be rewrapped" if dry_run else "rewrapped"
    say(f"payload and gateway keys {done} under MASTER_KEY: {report.rewrapped}; "
        f"already under it: {report.already_current}")
    emit({**report.to_json(), "dry_run": dry_run})
