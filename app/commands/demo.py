"""demo init: a development instance with fresh secrets, the sealed digits model and callers.

A flask.commands plugin: it runs before any configuration exists, writes it, then builds the app.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click

DEMO_USER, DEMO_CLIENT, DEMO_MODEL, DEMO_VERSION = "demo", "demo-client", "digits", "1"
DEMO_ROLE = "analyst"
demo_group = click.Group("demo", help="A ready-to-call development instance.")


@demo_group.command("init")
def init() -> None:
    """Write instance/torchgate.toml (0600), seal the digits model, create demo callers."""
    from app import create_app
    from app.commands import emit, say
    from app.gateway import current_gateway

    config_path = _write_config_once()
    app = create_app()
    with app.app_context():
        gateway = current_gateway()
        accuracy = _seal_demo_model(gateway.settings)
        credentials = _demo_credentials(gateway)
    say(_instructions(config_path, credentials["path"]))
    emit({"config": str(config_path), "model": DEMO_MODEL, "version": DEMO_VERSION,
          "accuracy": accuracy, "credentials": str(credentials["path"])})


def _write_config_once() -> Path:
    from app.commands import say
    from security.generated_secrets import new_secrets
    from security.private_files import private_dir, write_private_file

    instance = Path(os.environ.get("TORCHGATE_INSTANCE_DIR", "instance"))
    path = Path(os.environ.get("TORCHGATE_CONFIG", instance / "torchgate.toml"))
    if path.exists():
        say(f"keeping {path}")
        return path
    secrets = new_secrets()
    secrets["model_keys"] = secrets["model_keys"].replace("dev:", "demo:", 1)
    private_dir(path.parent)
    write_private_file(path, "# torchgate development instance, written by `demo init`.\n"
                       'env = "development"\n'
                       + "".join(f'{k} = "{v}"\n' for k, v in secrets.items()))
    say(f"wrote {path} (mode 0600) with fresh secrets")
    return path


def _seal_demo_model(settings) -> float | None:
    """Train and seal digits v1 unless it is already there; the accuracy, or None if kept."""
    from app.commands import say
    from models.demo import train_digits
    from security.sealed import seal_file

    model_dir = settings.model_repository / DEMO_MODEL
    sealed = model_dir / DEMO_VERSION / "model.safetensors.sealed"
    if sealed.exists() and (model_dir / "model.toml").exists():
        say(f"keeping {sealed}")
        return None
    kek_id, kek = next(iter(settings.model_keys.items()))
    with tempfile.TemporaryDirectory() as tmp:
        result = train_digits(Path(tmp))
        sealed.parent.mkdir(parents=True, exist_ok=True)
        seal_file(result.safetensors_path, sealed, model=DEMO_MODEL, version=DEMO_VERSION,
                  kek_id=kek_id, kek=kek)
    (model_dir / "model.toml").write_text(result.manifest_text)
    say(f"trained the digits MLP: held-out accuracy {result.accuracy:.4f}; sealed {sealed}")
    return result.accuracy


def _demo_credentials(gateway) -> dict:
    """Create the demo user, client and payload keys once; keep them in instance/demo.json."""
    from security.encoding import b64url_encode
    from security.private_files import write_private_file

    path = gateway.settings.instance_dir / "demo.json"
    if path.exists():
        return {"path": path}
    password = b64url_encode(os.urandom(18))
    gateway.directory.create_user(DEMO_USER, password, [DEMO_ROLE])
    _, client_secret = gateway.directory.create_client(DEMO_CLIENT, [DEMO_ROLE])
    user_key = gateway.keyring.issue(DEMO_USER).to_json()
    client_key = gateway.keyring.issue(DEMO_CLIENT).to_json()
    write_private_file(path, json.dumps({
        "username": DEMO_USER, "password": password,
        "client_id": DEMO_CLIENT, "client_secret": client_secret,
        "user_key": user_key, "client_key": client_key}, indent=2))
    return {"path": path}


def _instructions(config_path: Path, credentials_path: Path) -> str:
    return (f"\nDemo instance ready ({config_path}); demo credentials in {credentials_path}"
            " (mode 0600).\nServe it:        make run"
            "\nCall it:         .venv/bin/python scripts/demo_request.py"
            " --url http://127.0.0.1:8000\n")
