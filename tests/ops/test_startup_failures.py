"""A gateway that cannot start says why in one line naming the setting, and exits non-zero:
no traceback, no misleading "schema creation raced" warning, preloaded or not."""

from __future__ import annotations

import subprocess

import pytest

from tests.ops.gateway import GUNICORN, REPO
from tests.ops.instance import Secrets, write_instance
from tests.ops.processes import free_port

pytestmark = pytest.mark.slow


def no_secrets(env: dict, root) -> None:
    for name in ("JWT_SECRET", "MASTER_KEY", "MODEL_KEYS"):
        del env[f"TORCHGATE_{name}_FILE"]


def unreachable_postgresql(env: dict, root) -> None:
    env["TORCHGATE_DATABASE_URL"] = f"postgresql+psycopg://torchgate@127.0.0.1:{free_port()}/db"


def unwritable_instance_dir(env: dict, root) -> None:
    (root / "occupied").write_text("a file where the instance dir should go\n")
    env["TORCHGATE_INSTANCE_DIR"] = str(root / "occupied" / "instance")


@pytest.mark.parametrize("preload", ["yes", "no"])
@pytest.mark.parametrize(("case", "setting"), [
    (no_secrets, "TORCHGATE_JWT_SECRET: missing"),
    (unreachable_postgresql, "TORCHGATE_DATABASE_URL: cannot use postgresql+psycopg://"),
    (unwritable_instance_dir, "TORCHGATE_INSTANCE_DIR: cannot create"),
])
def test_start_up_failure_is_one_line_naming_the_setting(tmp_path, case, setting, preload):
    _, env = write_instance(tmp_path, Secrets(), {})
    case(env, tmp_path)
    env.update(TORCHGATE_BIND=f"127.0.0.1:{free_port()}", TORCHGATE_WORKERS="1",
               TORCHGATE_PRELOAD=preload)
    done = subprocess.run([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output and "raced" not in output, output
    assert sum(setting in line for line in output.splitlines()) == 1, output
