"""`torchgate`, the console script: every command with --help, serve, secrets generate."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo

from app import create_app
from app.commands import console
from config import load_settings
from tests.doc_blocks import ROOT


def invoke(args: list[str], overrides: dict | None = None, **kwargs):
    info = ScriptInfo(create_app=lambda: create_app(overrides), set_debug_flag=False)
    return CliRunner().invoke(console.torchgate, args, obj=info, **kwargs)


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def test_the_console_script_is_declared_in_pyproject():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"torchgate": "app.commands.console:main"}


@pytest.mark.parametrize("path", command_paths(console.torchgate), ids=" ".join)
def test_every_command_has_help(path):
    done = invoke([*path, "--help"])
    assert done.exit_code == 0, done.output
    assert done.output.startswith(f"Usage: torchgate {' '.join(path)}".rstrip())
    summary = done.output.split("\n\n")[1].strip()
    assert summary, f"torchgate {' '.join(path)} has no help text"


@pytest.mark.parametrize("command", [
    "users create", "users list", "users disable", "users enable", "users delete",
    "users set-password", "clients list", "clients rotate-secret", "clients delete",
    "clients create", "keys issue", "keys list", "keys revoke",
    "model seal", "model inspect", "model rewrap", "audit verify", "audit export", "demo init",
    "serve", "secrets generate"])
def test_every_documented_command_exists(command):
    assert invoke([*command.split(), "--help"]).exit_code == 0


def test_admin_commands_run_against_the_configured_instance(overrides):
    created = invoke(["users", "create", "alice", "--role", "analyst", "--password-stdin"],
                     overrides, input="a long passphrase\n")
    issued = invoke(["keys", "issue", "--subject", "alice"], overrides)
    assert created.exit_code == 0, created.output
    assert issued.exit_code == 0, issued.output
    assert json.loads(issued.stdout.splitlines()[-1])["subject"] == "alice"


@pytest.mark.parametrize("form", ["toml", "env", "json"])
def test_secrets_generate_prints_secrets_production_accepts(form):
    done = invoke(["secrets", "generate", "--format", form, "--kek-id", "kek-2026-11"])
    assert done.exit_code == 0, done.output
    if form == "toml":
        values = {f"TORCHGATE_{k.upper()}": v for k, v in tomllib.loads(done.stdout).items()}
    elif form == "env":
        values = dict(line.split("=", 1) for line in done.stdout.splitlines())
    else:
        values = {f"TORCHGATE_{k}": v for k, v in json.loads(done.stdout).items()}
    settings = load_settings(environ=values)
    assert (settings.env, list(settings.model_keys)) == ("production", ["kek-2026-11"])


def test_secrets_generate_twice_differs():
    first, second = (invoke(["secrets", "generate"]).stdout for _ in range(2))
    assert first != second


def test_secrets_generate_dir_writes_private_files_for_the_file_variables(tmp_path):
    done = invoke(["secrets", "generate", "--dir", str(tmp_path / "s")])
    assert done.exit_code == 0, done.output
    files = {n: tmp_path / "s" / n for n in console.SECRET_FILES}
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files.values())
    settings = load_settings(environ={f"TORCHGATE_{n.upper()}_FILE": str(f)
                                      for n, f in files.items()})
    assert settings.env == "production"


def test_serve_execs_gunicorn_with_the_project_config(monkeypatch):
    seen = {}
    monkeypatch.setattr(console.os, "execv", lambda path, argv: seen.update(argv=argv))
    monkeypatch.delenv("TORCHGATE_BIND", raising=False)
    done = invoke(["serve", "--bind", "127.0.0.1:8123", "--workers", "3", "--timeout", "60"])
    assert done.exit_code == 0, done.output
    argv = seen["argv"]
    assert argv[1:5] == ["-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")]
    assert argv[-3:] == ["--timeout", "60", "wsgi:app"]
    assert console.os.environ["TORCHGATE_BIND"] == "127.0.0.1:8123"
    assert console.os.environ["TORCHGATE_WORKERS"] == "3"
    monkeypatch.delenv("TORCHGATE_WORKERS")
    monkeypatch.delenv("TORCHGATE_BIND")


def test_the_project_root_is_where_gunicorn_conf_is():
    assert (console.project_root() / "gunicorn.conf.py") == Path(ROOT / "gunicorn.conf.py")
