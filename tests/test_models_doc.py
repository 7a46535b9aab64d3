"""docs/models.md, run as written: a module of your own to a sealed, served, called model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from models.architecture import build_module
from models.manifest import parse_manifest
from tests.doc_blocks import ROOT, Block, snippets
from tests.ops.client import call
from tests.ops.processes import free_port, stop_group

DOC = ROOT / "docs" / "models.md"
DOC_URL = "127.0.0.1:8000"
STEPS = ("module", "train", "convert", "manifest", "seal", "caller")


@pytest.fixture
def workdir(tmp_path) -> tuple[Path, dict[str, str]]:
    """An empty directory, `torchgate` on PATH (the console script's entry point), dev settings."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "torchgate"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c '
                    '"from app.commands.console import main; main()" "$@"\n')
    shim.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "TORCHGATE_ENV": "development",
           "TORCHGATE_WORKERS": "2", "TORCHGATE_THREADS": "2"}
    work = tmp_path / "work"
    work.mkdir()
    return work, env


def run(block: Block, cwd: Path, env: dict[str, str], port: int | None = None,
        ) -> subprocess.CompletedProcess:
    code = block.code if port is None else block.code.replace(DOC_URL, f"127.0.0.1:{port}")
    command = ([sys.executable, "-c", code] if block.language == "python"
               else ["bash", "-euo", "pipefail", "-c", code])
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_builtin_manifest_builds_its_module():
    manifest = parse_manifest(tomllib.loads(snippets(DOC)["builtin-manifest"].code), "linear")
    module = build_module(manifest.architecture, manifest.arguments)
    assert type(module).__name__ == "Linear" and module.out_features == 2


@pytest.mark.slow
def test_the_worked_example_serves_and_answers(workdir):
    work, env = workdir
    blocks = snippets(DOC)
    for step in STEPS:
        done = run(blocks[step], work, env)
        assert done.returncode == 0, f"{step}: {done.stderr[-2000:]}"
    assert not (work / "regressor.safetensors").exists()
    port = free_port()
    code = blocks["serve"].code.replace(DOC_URL, f"127.0.0.1:{port}")
    with (work / "serve.log").open("wb") as log:
        server = subprocess.Popen(["bash", "-c", code], cwd=work, env=env, stdout=log,
                                  stderr=log, start_new_session=True)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", server, work / "serve.log")
        answered = run(blocks["call"], work, env, port)
    finally:
        stop_group(server)
    assert answered.returncode == 0, answered.stderr[-2000:]
    model, version, outputs = answered.stdout.split(" ", 2)
    assert (model, version) == ("regressor", "1")
    assert abs(float(outputs.strip("[]\n")) - 1.25) < 0.3
    assert "regressor/1@cpu" in (work / "serve.log").read_text()


def _wait_ready(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"torchgate serve exited:\n{log.read_text()[-3000:]}")
        try:
            if call(url, "GET", "/readyz", timeout=5).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not ready in time:\n{log.read_text()[-3000:]}")
