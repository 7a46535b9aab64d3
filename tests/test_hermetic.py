"""The suite's outcome does not depend on the developer's instance dir or TORCHGATE_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POISON = {"TORCHGATE_ENV": "development", "TORCHGATE_JWT_ISSUER": "poisoned",
          "TORCHGATE_ENVELOPE_MAX_AGE": "1", "TORCHGATE_PAYLOAD_ENCRYPTION": "optional",
          "TORCHGATE_LOGIN_MAX_FAILURES": "1"}


def test_suite_ignores_the_instance_and_variables_of_the_developer(tmp_path):
    """What `make run` leaves behind (instance/torchgate.toml) plus stray variables."""
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "torchgate.toml").write_text(
        'env = "development"\njwt_issuer = "from-make-run"\nenvelope_max_age = 1\n'
        'login_window = 1\njwt_audience = "from-make-run"\n')
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
         str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), str(ROOT / "tests/test_config.py"),
         str(ROOT / "tests/app/test_auth.py")],
        cwd=tmp_path, env={**os.environ, **POISON}, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:]
