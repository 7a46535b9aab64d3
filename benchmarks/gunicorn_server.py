"""The server side of benchmarks/http_load.py: start gunicorn, find its CPU time, stop it."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def start_server(target: str, env: dict, port: int, log: Path) -> subprocess.Popen:
    """gunicorn -c gunicorn.conf.py TARGET on 127.0.0.1:port (2 workers unless env says); returns
    once it answers."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TORCHGATE_")}
    base.update({"TORCHGATE_WORKERS": "2", **env, "TORCHGATE_BIND": f"127.0.0.1:{port}"})
    command = [str(REPO / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py",
               "--pythonpath", "benchmarks", target]
    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=REPO, env=base, stdout=out, stderr=out,
                                  start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited {server.returncode}; see {log}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return server
        except OSError as exc:
            if getattr(exc, "code", None) == 404:  # the bare app has no /healthz: it is up
                return server
            time.sleep(0.2)
    raise RuntimeError(f"server did not start; see {log}")


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds of pid and of its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(master: int) -> float:
    pids = [master] + [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                       and _parent(p) == master]
    return sum(process_cpu_seconds(pid) for pid in pids if Path(f"/proc/{pid}").exists())


def _parent(entry: Path) -> int:
    try:
        return int(entry.joinpath("stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError):
        return -1


def stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL after 30 s."""
    os.killpg(server.pid, 15)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, 9)
        server.wait(30)
