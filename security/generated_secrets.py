"""Fresh secrets in the form the settings take them: for development instances, `demo init`
and `torchgate secrets generate`."""

from __future__ import annotations

import secrets
import tomllib
from pathlib import Path

from security.encoding import b64url_encode
from security.private_files import private_dir, write_private_file


def new_secrets() -> dict[str, str]:
    """A fresh JWT secret, master key and model KEK, in the form the settings take them."""
    return {
        "jwt_secret": secrets.token_urlsafe(48),
        "master_key": b64url_encode(secrets.token_bytes(32)),
        "model_keys": "dev:" + b64url_encode(secrets.token_bytes(32)),
    }


def development_secrets(path: Path) -> dict[str, str]:
    """The secrets kept at `path` (TOML, 0600), created there the first time."""
    if path.is_file():
        with path.open("rb") as handle:
            return tomllib.load(handle)
    values = new_secrets()
    private_dir(path.parent)
    write_private_file(path, "".join(f'{k} = "{v}"\n' for k, v in values.items()))
    return values
