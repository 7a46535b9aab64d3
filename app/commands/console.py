"""`torchgate`: the project's console script (pyproject [project.scripts]).

Every `flask --app wsgi …` command (users, clients, keys, model, audit, demo), plus `serve`
(gunicorn with the project's gunicorn.conf.py) and `secrets generate`. The last two need no
configuration, so they run before any instance exists.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import click
from flask.cli import ScriptInfo

SECRET_FILES = ("jwt_secret", "master_key", "model_keys")


def project_root() -> Path:
    """Where wsgi.py and gunicorn.conf.py are (found without importing wsgi: it builds the app)."""
    spec = importlib.util.find_spec("wsgi")
    if spec is None or spec.origin is None:
        raise click.ClickException("wsgi.py not found: install the project (pip install -e .)")
    return Path(spec.origin).resolve().parent


def _create_app():
    from app import create_app
    return create_app()


torchgate = click.Group(
    name="torchgate",
    help="torchgate: serve sealed torch models behind JWT, roles and JWE payloads.\n\n"
         "Settings come from TORCHGATE_CONFIG (else instance/torchgate.toml) and TORCHGATE_* "
         "variables (docs/settings.md). Machine-readable results are one JSON object on stdout.")


@torchgate.command("serve", context_settings={"ignore_unknown_options": True})
@click.option("--bind", help="host:port (TORCHGATE_BIND; default 127.0.0.1:8000).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (TORCHGATE_WORKERS).")
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve(bind: str | None, workers: int | None, gunicorn_args: tuple[str, ...]) -> None:
    """Run the production server: gunicorn with the project's gunicorn.conf.py and wsgi:app.

    Further arguments go to gunicorn unchanged (e.g. `-- --timeout 60`)."""
    if bind:
        os.environ["TORCHGATE_BIND"] = bind
    if workers:
        os.environ["TORCHGATE_WORKERS"] = str(workers)
    root = project_root()
    # No --chdir: relative settings (instance/, model_repository/) mean the caller's directory.
    command = [sys.executable, "-m", "gunicorn", "-c", str(root / "gunicorn.conf.py"),
               *gunicorn_args, "wsgi:app"]
    os.execv(sys.executable, command)  # noqa: S606 (our own interpreter, fixed arguments)


secrets_group = click.Group("secrets", help="Production secrets.")
torchgate.add_command(secrets_group)


@secrets_group.command("generate")
@click.option("--format", "form", type=click.Choice(["toml", "env", "json"]), default="toml",
              show_default=True, help="TOML lines, TORCHGATE_*= lines, or one JSON object.")
@click.option("--kek-id", default="k1", show_default=True,
              help="Id of the new model key-encryption key (MODEL_KEYS).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Instead, write one 0600 file per secret there, for TORCHGATE_<X>_FILE.")
def generate(form: str, kek_id: str, directory: Path | None) -> None:
    """Print fresh JWT_SECRET, MASTER_KEY and MODEL_KEYS (never stored by this command)."""
    from app.commands import emit, say
    from security.generated_secrets import new_secrets
    from security.private_files import private_dir, write_private_file

    values = new_secrets()
    values["model_keys"] = f"{kek_id}:" + values["model_keys"].partition(":")[2]
    if directory is not None:
        private_dir(directory)
        for name in SECRET_FILES:
            write_private_file(directory / name, values[name] + "\n")
        say(f"wrote {', '.join(SECRET_FILES)} (mode 0600) in {directory}: set "
            + " ".join(f"TORCHGATE_{n.upper()}_FILE={directory / n}" for n in SECRET_FILES))
        emit({"directory": str(directory), "files": list(SECRET_FILES)})
    elif form == "json":
        emit({name.upper(): value for name, value in values.items()})
    elif form == "env":
        click.echo("".join(f"TORCHGATE_{n.upper()}={v}\n" for n, v in values.items()), nl=False)
    else:
        click.echo("".join(f'{n} = "{v}"\n' for n, v in values.items()), nl=False)


def _add_admin_commands() -> None:
    """The `flask --app wsgi` groups, the same objects: the app is built only when one runs."""
    from app.commands import admin_groups
    from app.commands.demo import demo_group
    for group in (*admin_groups(), demo_group):
        torchgate.add_command(group)


_add_admin_commands()


def main(args: list[str] | None = None) -> None:
    """The console script; with_appcontext builds the app (ScriptInfo) when a command needs it."""
    torchgate.main(args, prog_name="torchgate",
                   obj=ScriptInfo(create_app=_create_app, set_debug_flag=False))
