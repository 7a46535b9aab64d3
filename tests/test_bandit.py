"""bandit finds nothing of medium or higher severity in the served code; what it is told to
skip is explained where it is skipped ([tool.bandit] in pyproject.toml, `# nosec` lines)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = ["app", "dataplane", "models", "security", "config.py", "errors.py", "wsgi.py"]


@pytest.mark.timeout(120)
def test_bandit_finds_nothing_of_medium_or_higher_severity() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-c", "pyproject.toml", "-ll", "-r", *CODE],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
