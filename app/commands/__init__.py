"""`flask --app wsgi …` commands: JSON on stdout, messages on stderr."""

from __future__ import annotations

import getpass
import json
import sys
import uuid
from typing import Any

import click
from flask import Flask


def emit(value: dict[str, Any]) -> None:
    """The one machine-readable result of a command: one JSON object on stdout."""
    click.echo(json.dumps(value, default=str))  # a tampered value must print, not crash


def say(message: str) -> None:
    click.echo(message, err=True)


def fail(message: str, code: int = 1) -> None:
    say(f"error: {message}")
    sys.exit(code)


def cli_subject() -> str:
    """Who ran an administrative command, as its audit record names them."""
    return f"cli:{getpass.getuser()}"


def audit_cli_action(action: str, model: str | None = None, version: str | None = None) -> None:
    """Leave an audit record of an administrative command (action "cli.<action>"), like a
    request's."""
    from app.audit import audit_trail
    from security.audit import AuditRecord, utc_now

    audit_trail().append(AuditRecord(
        time=utc_now(), request_id=f"cli-{uuid.uuid4().hex}", subject=cli_subject(),
        action=f"cli.{action}", model=model, version=version, decision="allow",
        status=0, latency_us=None, body_sha256=None))


def init_app(app: Flask) -> None:
    for group in admin_groups():  # `demo`: a flask.commands plugin (pyproject)
        app.cli.add_command(group)


def admin_groups() -> tuple[click.Group, ...]:
    """The command groups of `flask --app wsgi` and `torchgate` (they import this module)."""
    from app.commands import audit, gateway_keys, identity, model
    return (*identity.GROUPS, model.model_group, audit.audit_group,
            gateway_keys.gateway_keys_group)
