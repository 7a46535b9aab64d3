"""`torchgate serve` is the production server: gunicorn with the project's gunicorn.conf.py."""

from __future__ import annotations

import json
import sys

import pytest

from tests.ops.client import call
from tests.ops.gateway import launch

pytestmark = pytest.mark.slow

# The console script's entry point, run as the installed `torchgate` script runs it.
TORCHGATE = [sys.executable, "-c", "from app.commands.console import main; main()"]


def test_torchgate_serve_runs_gunicorn_with_the_project_config(tmp_path):
    gateway = launch(tmp_path, {}, command=[*TORCHGATE, "serve"], workers=2)
    try:
        health = call(gateway.url, "GET", "/healthz", timeout=5)
        assert (health.status, len(gateway.worker_pids())) == (200, 2)
    finally:
        assert gateway.stop() == 0
    startup = [json.loads(line) for line in gateway.log_text().splitlines()
               if '"torchgate.startup"' in line]
    assert startup[0]["startup"]["bind"] == gateway.url.removeprefix("http://")
