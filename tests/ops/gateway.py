"""A real gateway for the operations tests: gunicorn on a prepared instance, always stoppable.

`launch` prepares an instance (tests/ops/instance.py), starts
`gunicorn -c gunicorn.conf.py wsgi:app` on a free 127.0.0.1 port in its own process group with
2 workers, and waits until /healthz answers and every worker is forked.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.ops.client import Caller, call
from tests.ops.instance import Identities, Secrets, Settings, create_identities, write_instance
from tests.ops.processes import children_of, free_port, send_signal, stop_group, stop_groups

REPO = Path(__file__).resolve().parents[2]
GUNICORN = REPO / ".venv" / "bin" / "gunicorn"
FLASK = REPO / ".venv" / "bin" / "flask"
START_TIMEOUT = 120.0


@dataclass
class GatewayProcess:
    """A running gunicorn master and what a test needs to talk to it and to stop it."""

    url: str
    master: subprocess.Popen
    root: Path
    env: dict[str, str]
    secrets: Secrets
    identities: Identities
    log_path: Path
    settings: Settings

    @property
    def database_url(self) -> str:
        default = f"sqlite:///{self.root / 'instance' / 'torchgate.db'}"
        return str(self.settings.get("database_url") or default)

    def audited_request_ids(self) -> set[str]:
        """Request ids of every audit record in this gateway's database."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT request_id FROM audit_records")).all()
        finally:
            engine.dispose()
        return {row.request_id for row in rows}

    def caller(self) -> Caller:
        ids = self.identities
        return Caller(self.url, ids.username, ids.password, ids.kid, ids.key)

    def worker_pids(self) -> list[int]:
        return children_of(self.master.pid)

    @contextmanager
    def only(self, pid: int) -> Iterator[None]:
        """Let only worker pid accept connections: every other worker is SIGSTOPped meanwhile."""
        others = [other for other in self.worker_pids() if other != pid]
        try:
            for other in others:
                send_signal(other, signal.SIGSTOP)
            yield
        finally:
            for other in others:
                send_signal(other, signal.SIGCONT)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def flask(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        """`flask --app wsgi …` with exactly this gateway's configuration and this checkout's code
        (flask imports its command plugins before the working directory is on sys.path)."""
        return subprocess.run([str(FLASK), "--app", "wsgi", *args], cwd=REPO,
                              env={**self.env, "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True, timeout=timeout, check=False)

    def stop(self) -> int:
        """SIGTERM to the process group, SIGKILL if it lingers; the master's exit status."""
        return stop_group(self.master)


def launch(root: Path, settings: Settings, *, keys: Secrets | None = None,
           identities: Identities | None = None, workers: int = 2,
           server_env: dict[str, str] | None = None,
           command: list[str] | None = None) -> GatewayProcess:
    """Prepare an instance under root and start gunicorn on it (or `command`, e.g. `torchgate
    serve`); raises with the log on failure."""
    keys = keys or Secrets()
    toml, env = write_instance(root, keys, settings)
    identities = identities or create_identities(keys, toml)
    port = free_port()
    # One shared listening socket (REUSE_PORT=no): `GatewayProcess.only` pins a worker by
    # stopping the others, which only works when a stopped worker has no socket of its own.
    env.update({"TORCHGATE_BIND": f"127.0.0.1:{port}", "TORCHGATE_WORKERS": str(workers),
                "TORCHGATE_THREADS": "2", "TORCHGATE_GRACEFUL_TIMEOUT": "15",
                "TORCHGATE_REUSE_PORT": "no", **(server_env or {})})
    log_path = root / "gunicorn.stderr"
    with log_path.open("wb") as log:
        master = subprocess.Popen(command or [str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"],
                                  cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=log, start_new_session=True)
    gateway = GatewayProcess(f"http://127.0.0.1:{port}", master, root, env, keys, identities,
                             log_path, toml)
    try:
        wait_until_serving(gateway, workers)
    except BaseException:
        gateway.stop()
        raise
    return gateway


def wait_until_serving(gateway: GatewayProcess, workers: int) -> None:
    """/healthz answers and every worker is forked; RuntimeError with the log tail if not."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if gateway.master.poll() is not None:
            raise RuntimeError(f"gunicorn exited {gateway.master.returncode}:\n"
                               + gateway.log_text()[-3000:])
        try:
            if (call(gateway.url, "GET", "/healthz", timeout=5).status == 200
                    and len(gateway.worker_pids()) == workers):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not serve in time:\n" + gateway.log_text()[-3000:])


@contextmanager
def gateways(tmp_path_factory) -> Iterator[Callable[..., GatewayProcess]]:
    """A launcher: start(name, settings, **launch options); every gateway stopped at the end."""
    started: list[GatewayProcess] = []

    def start(name: str = "gateway", settings: Settings | None = None,
              **options) -> GatewayProcess:
        gateway = launch(tmp_path_factory.mktemp(name), dict(settings or {}), **options)
        started.append(gateway)
        return gateway

    try:
        yield start
    finally:
        stop_groups([gateway.master for gateway in started])
