"""gunicorn with the project's gunicorn.conf.py on a free 127.0.0.1 port, for the TLS tests."""

from __future__ import annotations

import http.client
import os
import secrets
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from security.encoding import b64url_encode
from tests.conftest import KEK, KEK_ID, write_tiny_model
from tests.ops.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
GUNICORN = REPO / ".venv" / "bin" / "gunicorn"
START_TIMEOUT = 90.0


@dataclass(frozen=True)
class Server:
    """A running gunicorn master, its port and its log."""

    process: subprocess.Popen
    port: int
    log: Path


def instance_environment(root: Path, port: int) -> dict[str, str]:
    """A testing instance with a tiny sealed model and fresh secrets, as TORCHGATE_* variables."""
    repository = root / "models"
    write_tiny_model(repository)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TORCHGATE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        TORCHGATE_ENV="testing", TORCHGATE_INSTANCE_DIR=str(root / "instance"),
        TORCHGATE_MODEL_REPOSITORY=str(repository), TORCHGATE_DEVICE="cpu",
        TORCHGATE_MODEL_KEYS=f"{KEK_ID}:{b64url_encode(KEK)}",
        TORCHGATE_JWT_SECRET=secrets.token_urlsafe(48),
        TORCHGATE_MASTER_KEY=b64url_encode(secrets.token_bytes(32)),
        TORCHGATE_BIND=f"127.0.0.1:{port}", TORCHGATE_WORKERS="1", TORCHGATE_THREADS="2",
        TORCHGATE_GRACEFUL_TIMEOUT="5")
    return env


def start(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as handle:
        return subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=REPO,
                                env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle,
                                start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL if it lingers; always reaped."""
    stop_group(process)


def https_get(port: int, path: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until_serving(server: Server, context: ssl.SSLContext) -> None:
    """/healthz answers over TLS with this client context; raises with the log otherwise."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited {server.process.returncode}:\n"
                               + server.log.read_text(errors="replace")[-3000:])
        try:
            if https_get(server.port, "/healthz", context)[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not serve in time:\n"
                       + server.log.read_text(errors="replace")[-3000:])
