"""`flask --app wsgi …` commands: JSON on stdout, messages on stderr."""

from __future__ import annotations

import json
import sys
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


def init_app(app: Flask) -> None:
    for group in admin_groups():  # `demo`: a flask.commands plugin (pyproject)
        app.cli.add_command(group)


def admin_groups() -> tuple[click.Group, ...]:
    """The command groups of `flask --app wsgi` and `torchgate` (they import this module)."""
    from app.commands import audit, gateway_keys, identity, model
    return (*identity.GROUPS, model.model_group, audit.audit_group,
            gateway_keys.gateway_keys_group)
