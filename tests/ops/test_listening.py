"""Listening sockets: keep-alive connections spread over the workers; a busy port is refused."""

from __future__ import annotations

import collections
import re
import shutil
import socket
import subprocess
from urllib.parse import urlsplit

import pytest

from tests.ops.gateway import GUNICORN, REPO, GatewayProcess

pytestmark = pytest.mark.slow
CONNECTIONS = 32


def sockets_by_process(port: int, state: str) -> collections.Counter:
    """How many TCP sockets of local `port` in `state` each process holds (ss -p)."""
    listing = subprocess.run(["ss", "-tnpH", "state", state, f"( sport = :{port} )"],
                             capture_output=True, text=True, check=True).stdout
    return collections.Counter(int(pid) for pid in re.findall(r"pid=(\d+)", listing))


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to see sockets")
def test_keep_alive_connections_spread_over_the_workers(gateway_process):
    gateway: GatewayProcess = gateway_process("spread", server_env={"TORCHGATE_REUSE_PORT": "yes"})
    port = urlsplit(gateway.url).port
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
    try:
        for sock in sockets:  # one request each, and the connection is kept
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        held = sockets_by_process(port, "established")
        listening = sockets_by_process(port, "listening")
    finally:
        for sock in sockets:
            sock.close()
    workers = gateway.worker_pids()
    assert sorted(listening) == sorted(workers)  # a socket per worker, none in the master
    assert sum(held[pid] for pid in workers) == CONNECTIONS
    # With one shared socket, 28 or 30 of 32 were seen on one worker; the kernel's spread over
    # per-worker sockets puts fewer than 6 on a worker with a probability of about 4e-4.
    assert min(held[pid] for pid in workers) >= 6, held


def test_a_second_server_on_a_busy_port_stops_with_one_clear_line(production_gateway):
    bind = urlsplit(production_gateway.url).netloc
    second = subprocess.run([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=REPO,
                            env={**production_gateway.env, "TORCHGATE_BIND": bind,
                                 "TORCHGATE_REUSE_PORT": "yes"},
                            capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode != 0
    assert f"cannot listen on {bind}: Address already in use" in second.stderr
