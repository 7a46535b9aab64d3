"""Every code block of README.md and docs/ is either run here as written or marked not-run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.doc_blocks import ROOT, Block, blocks, documents, snippets

README = ROOT / "README.md"
DEMO_URL = "http://127.0.0.1:8000"  # what the README's blocks call; the test's gateway is elsewhere


@pytest.mark.parametrize("document", documents(), ids=lambda p: p.name)
def test_every_code_block_is_run_or_says_why_not(document: Path) -> None:
    unmarked = [b.code.splitlines()[0] for b in blocks(document) if b.marker is None]
    assert unmarked == []


def checkout(root: Path, live) -> Path:
    """A working directory like the repository root after `make run`: .venv, scripts, demo.json."""
    root.mkdir(parents=True, exist_ok=True)
    for name in (".venv", "scripts"):
        (root / name).symlink_to(ROOT / name)
    (root / "instance").mkdir()
    (root / "instance" / "demo.json").write_text(json.dumps({
        "username": live.user.name, "password": live.user.secret,
        "client_id": live.client.name, "client_secret": live.client.secret,
        "user_key": {"kid": live.user.kid, "key": live.user.key_text}}))
    return root


def run_block(block: Block, cwd: Path, environ: dict[str, str], url: str | None = None,
              ) -> subprocess.CompletedProcess:
    code = block.code if url is None else block.code.replace(DEMO_URL, url)
    command = ([sys.executable, "-c", code] if block.language == "python"
               else ["bash", "-euo", "pipefail", "-c", code])
    env = {"PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(ROOT), **environ}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=180, env=env)


@pytest.mark.parametrize(("name", "expected"), [
    ("demo-request", '"model": "digits"'),
    ("client-cli", '"model": "digits"'),
    ("client-library", "digits ["),
    ("seal-request", "digits 1 ["),
])
def test_readme_caller_blocks_run_against_a_gateway(live, tmp_path, name, expected) -> None:
    done = run_block(snippets(README)[name], checkout(tmp_path / "clone", live),
                     {"TORCHGATE_URL": live.url}, url=live.url)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout


def test_readme_identity_commands_and_audit_verify_run(tmp_path) -> None:
    (tmp_path / "models").mkdir()
    environ = {"TORCHGATE_ENV": "development", "TORCHGATE_INSTANCE_DIR": str(tmp_path / "i"),
               "TORCHGATE_MODEL_REPOSITORY": str(tmp_path / "models")}
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    done = run_block(snippets(README)["identity-commands"], tmp_path, environ)
    assert done.returncode == 0, done.stderr
    issued = [json.loads(line) for line in done.stdout.splitlines()]
    assert [sorted(i) for i in issued] == [
        ["roles", "username"], ["client_id", "client_secret"],
        ["expires_at", "key", "kid", "subject"]]
    verified = run_block(snippets(ROOT / "docs" / "audit.md")["audit-verify"], tmp_path, environ)
    assert (verified.returncode, json.loads(verified.stdout)["intact"]) == (0, True)
    archived = run_block(snippets(ROOT / "docs" / "audit.md")["audit-export"], tmp_path, environ)
    assert archived.returncode == 0, archived.stderr
    exported, verdict = map(json.loads, archived.stdout.splitlines())
    assert (exported["output"], verdict["intact"]) == ("anchors.jsonl", True)


def test_mtls_client_ca_block_issues_a_client_certificate(tmp_path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    done = run_block(snippets(ROOT / "docs" / "mtls.md")["client-ca"], tmp_path, {})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "batch-job.crt").is_file()
