"""users, clients and keys: the identities that may call, and their payload keys."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from app.commands import emit, fail, say
from app.gateway import current_gateway
from security.identity import IdentityError

users_group = click.Group("users", help="Manage users (password grant).")
clients_group = click.Group("clients", help="Manage OAuth clients (client_credentials grant).")
keys_group = click.Group("keys", help="Issue, list and revoke payload keys.")
GROUPS = (users_group, clients_group, keys_group)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline()
        return password[:-1] if password.endswith("\n") else password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)


@users_group.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="Repeat for several roles.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def create_user(name: str, roles: tuple[str, ...], password_stdin: bool) -> None:
    password = _read_password(password_stdin)
    try:
        principal = current_gateway().directory.create_user(name, password, list(roles))
    except IdentityError as exc:
        fail(str(exc))
    emit({"username": principal.subject, "roles": list(principal.roles)})


@clients_group.command("create")
@click.argument("client_id")
@click.option("--role", "roles", multiple=True, required=True, help="Repeat for several roles.")
@with_appcontext
def create_client(client_id: str, roles: tuple[str, ...]) -> None:
    try:
        principal, secret = current_gateway().directory.create_client(client_id, list(roles))
    except IdentityError as exc:
        fail(str(exc))
    say("The client secret is shown once: store it now.")
    emit({"client_id": principal.subject, "client_secret": secret})


@keys_group.command("issue")
@click.option("--subject", required=True, help="The user or client the key is for.")
@click.option("--ttl-days", type=click.IntRange(min=1), default=None, help="Expire after N days.")
@with_appcontext
def issue_key(subject: str, ttl_days: int | None) -> None:
    issued = current_gateway().keyring.issue(subject, ttl_days)
    say("The payload key is shown once: store it now.")
    emit(issued.to_json())


@keys_group.command("list")
@with_appcontext
def list_keys() -> None:
    emit({"keys": [record.to_json() for record in current_gateway().keyring.list()]})


@keys_group.command("revoke")
@click.argument("kid")
@with_appcontext
def revoke_key(kid: str) -> None:
    if not current_gateway().keyring.revoke(kid):
        fail(f"no payload key {kid!r}")
    say(f"Revoked; every worker refuses it within {current_gateway().settings.key_cache_ttl} s.")
    emit({"kid": kid, "revoked": True})
