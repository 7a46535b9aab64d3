"""gateway-keys: the gateway's own key pairs (HPKE `enc`, receipt `sig`), published at
/.well-known/jwks.json. Private halves never leave the database, where MASTER_KEY wraps them."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.commands import emit, fail
from app.gateway import current_gateway
from security.gateway_key_algs import ALGORITHMS, ENC, SIG
from security.gateway_keys import GatewayKey

gateway_keys_group = click.Group("gateway-keys", help="Generate, list and rotate the "
                                 "gateway's HPKE and receipt-signing keys.")
use_option = click.option("--use", type=click.Choice([ENC, SIG]), required=True,
                          help="enc: HPKE request keys; sig: receipt-signing keys.")
alg_option = click.option("--alg", type=click.Choice(sorted(ALGORITHMS)), default=None,
                          help="Default: HPKE-XWING-SHA256-A256GCM for enc, EdDSA for sig.")


def _made(action, use: str, alg: str | None) -> GatewayKey:
    try:
        return action(use, alg)
    except ValueError as exc:  # an algorithm of the other use
        fail(str(exc))


@gateway_keys_group.command("generate")
@use_option
@alg_option
@with_appcontext
def generate(use: str, alg: str | None) -> None:
    """Add a key; it becomes the current one of its use and algorithm."""
    emit(_made(current_gateway().gateway_keys.generate, use, alg).to_json())


@gateway_keys_group.command("rotate")
@use_option
@alg_option
@with_appcontext
def rotate(use: str, alg: str | None) -> None:
    """A new current key; the previous ones keep working for GATEWAY_KEY_OVERLAP seconds."""
    emit(_made(current_gateway().gateway_keys.rotate, use, alg).to_json())


@gateway_keys_group.command("list")
@with_appcontext
def list_keys() -> None:
    """Every key with its use, algorithm and dates; never a private key."""
    emit({"keys": [key.to_json() for key in current_gateway().gateway_keys.list()]})
