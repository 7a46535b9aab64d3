"""users, clients and keys: the identities that may call, and their payload keys.

Disabling or deleting a user or client, or changing its password or secret, ends its tokens at
once on every worker and node (security/identity_admin.py); disabling and deleting also revoke
its payload keys.
"""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from app.commands import emit, fail, say
from app.commands.master_key import rewrap_keys
from app.gateway import current_gateway
from security.attributes import Attributes, InvalidAttributes, as_claim, parse_attributes
from security.identity import IdentityError
from security.identity_admin import IdentityAdmin

users_group = click.Group("users", help="Manage users (password grant).")
clients_group = click.Group("clients", help="Manage OAuth clients (client_credentials grant).")
keys_group = click.Group("keys", help="Issue, list and revoke payload keys; rewrap them under "
                                      "a new MASTER_KEY.")
keys_group.add_command(rewrap_keys)
GROUPS = (users_group, clients_group, keys_group)
role_option = click.option("--role", "roles", multiple=True, required=True,
                           help="A role of the roles file; repeat for several roles.")
password_option = click.option("--password-stdin", is_flag=True,
                               help="Read the password from standard input.")
attr_option = click.option("--attr", "attrs", multiple=True, metavar="NAME=VALUE",
                           help="An attribute that role conditions compare (e.g. tenant=acme); "
                                "repeat a name for a list (docs/access-control.md).")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline()
        return password[:-1] if password.endswith("\n") else password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)


def _attributes(pairs: tuple[str, ...]) -> Attributes:
    """NAME=VALUE pairs as attributes; a name given twice or more holds a list."""
    values: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            fail(f"--attr {pair!r}: expected NAME=VALUE")
        values.setdefault(name, []).append(value)
    try:
        return parse_attributes({n: v[0] if len(v) == 1 else v for n, v in values.items()})
    except InvalidAttributes as exc:
        fail(f"--attr: {exc}")


def _known_roles(roles: tuple[str, ...]) -> list[str]:
    """The roles, each one the roles file defines; else fail naming the ones it does."""
    defined = current_gateway().policy.role_names()
    unknown = [role for role in roles if role not in defined]
    if unknown:
        fail(f"unknown role {unknown[0]!r}: the roles file defines {', '.join(defined)}")
    return list(roles)


def _admin() -> IdentityAdmin:
    gateway = current_gateway()
    settings = gateway.settings
    return IdentityAdmin(gateway.directory, gateway.keyring, gateway.store,
                         token_lifetime=settings.jwt_refresh_ttl + settings.jwt_access_ttl)


def _administer(action, *args):
    try:
        return action(*args)
    except IdentityError as exc:
        fail(str(exc))


@users_group.command("create")
@click.argument("name")
@role_option
@password_option
@attr_option
@with_appcontext
def create_user(name: str, roles: tuple[str, ...], password_stdin: bool,
                attrs: tuple[str, ...]) -> None:
    """Create a user; the password comes from --password-stdin or a prompt."""
    roles, attributes = _known_roles(roles), _attributes(attrs)
    password = _read_password(password_stdin)
    principal = _administer(current_gateway().directory.create_user, name, password, roles,
                            attributes)
    emit({"username": principal.subject, "roles": list(principal.roles),
          **({"attributes": as_claim(attributes)} if attributes else {})})


@clients_group.command("create")
@click.argument("client_id")
@role_option
@attr_option
@with_appcontext
def create_client(client_id: str, roles: tuple[str, ...], attrs: tuple[str, ...]) -> None:
    """Create a client; its secret is printed once."""
    roles, attributes = _known_roles(roles), _attributes(attrs)
    principal, secret = _administer(current_gateway().directory.create_client, client_id, roles,
                                    attributes)
    say("The client secret is shown once: store it now.")
    emit({"client_id": principal.subject, "client_secret": secret})


def _list_command(group: click.Group, kind: str, plural: str) -> None:
    @group.command("list", help=f"List {plural}: roles, creation time, disabled (no secrets).")
    @with_appcontext
    def list_identities() -> None:
        emit({plural: current_gateway().directory.list(kind)})


def _state_commands(group: click.Group, kind: str, argument: str) -> None:
    """disable, enable and delete, the same for users and clients."""
    @group.command("disable", help=f"Refuse the {kind}; end its tokens and payload keys now.")
    @click.argument(argument)
    @with_appcontext
    def disable(**kwargs) -> None:
        ended = _administer(_admin().disable, kind, kwargs[argument])
        say(f"{kind} {kwargs[argument]!r} disabled; its tokens and payload keys are revoked.")
        emit({**ended.to_json(), "disabled": True})

    @group.command("enable", help=f"Let the {kind} in again (old tokens and keys stay revoked).")
    @click.argument(argument)
    @with_appcontext
    def enable(**kwargs) -> None:
        _administer(_admin().enable, kind, kwargs[argument])
        emit({"subject": kwargs[argument], "disabled": False})

    @group.command("set-attributes", help=f"Replace the {kind}'s attributes (none: clear "
                   "them); its tokens end, so the new ones apply at once.")
    @click.argument(argument)
    @attr_option
    @with_appcontext
    def set_attributes(attrs: tuple[str, ...], **kwargs) -> None:
        attributes = _attributes(attrs)
        ended = _administer(_admin().set_attributes, kind, kwargs[argument], attributes)
        emit({**ended.to_json(), "attributes": as_claim(attributes)})

    @group.command("delete", help=f"Delete the {kind}; end its tokens and payload keys now.")
    @click.argument(argument)
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @with_appcontext
    def delete(yes: bool, **kwargs) -> None:
        name = kwargs[argument]
        if not yes:
            click.confirm(f"Delete {kind} {name!r}?", abort=True, err=True)
        ended = _administer(_admin().delete, kind, name)
        emit({**ended.to_json(), "deleted": True})


_list_command(users_group, "user", "users")
_list_command(clients_group, "client", "clients")
_state_commands(users_group, "user", "name")
_state_commands(clients_group, "client", "client_id")


@users_group.command("set-password")
@click.argument("name")
@password_option
@with_appcontext
def set_password(name: str, password_stdin: bool) -> None:
    """Set a new password; the user's tokens end (its payload keys stay)."""
    ended = _administer(_admin().set_password, name, _read_password(password_stdin))
    emit(ended.to_json())


@clients_group.command("rotate-secret")
@click.argument("client_id")
@with_appcontext
def rotate_secret(client_id: str) -> None:
    """A new secret, printed once; the old one and the client's tokens end now."""
    secret, ended = _administer(_admin().rotate_secret, client_id)
    say("The client secret is shown once: store it now.")
    emit({"client_id": client_id, "client_secret": secret,
          "tokens_revoked_generation": ended.generation})


@keys_group.command("issue")
@click.option("--subject", required=True, help="The user or client the key is for.")
@click.option("--ttl-days", type=click.IntRange(min=1), default=None, help="Expire after N days.")
@click.option("--external", is_flag=True,
              help="The subject is an identity provider's (JWT_JWKS_FILE), not a local one.")
@with_appcontext
def issue_key(subject: str, ttl_days: int | None, external: bool) -> None:
    """Issue a payload key for a user or client; printed once."""
    if not external and not current_gateway().directory.is_known(subject):
        fail(f"no user or client {subject!r} (an identity provider's subject: --external)")
    issued = current_gateway().keyring.issue(subject, ttl_days)
    say("The payload key is shown once: store it now.")
    emit(issued.to_json())


@keys_group.command("list")
@click.option("--subject", default=None, help="Only the keys of this user or client.")
@with_appcontext
def list_keys(subject: str | None) -> None:
    """List payload keys (never the keys themselves)."""
    emit({"keys": [record.to_json() for record in current_gateway().keyring.list(subject)]})


@keys_group.command("revoke")
@click.argument("kid")
@with_appcontext
def revoke_key(kid: str) -> None:
    """Revoke one payload key."""
    if not current_gateway().keyring.revoke(kid):
        fail(f"no payload key {kid!r}")
    say(f"Revoked; every worker refuses it within {current_gateway().settings.key_cache_ttl} s.")
    emit({"kid": kid, "revoked": True})
