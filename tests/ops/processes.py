"""Process plumbing for the operations tests: free ports, children, signals, stopping groups."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children_of(pid: int) -> list[int]:
    """Live (not zombie) child processes of pid, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, parent = stat.rpartition(")")[2].split()[:2]
        if int(parent) == pid and state != "Z":
            found.append(int(entry.name))
    return sorted(found)


def send_signal(pid: int, sig: signal.Signals) -> None:
    """Signal pid; a process that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stop_group(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> int:
    """Stop a process started with start_new_session: SIGTERM, then SIGKILL; always reaped."""
    return stop_groups([proc], timeout)[0]


def stop_groups(procs: list[subprocess.Popen], timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGTERM every group at once, wait for each, SIGKILL what lingers; the exit statuses."""
    for proc in procs:
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers of the group, if any
    return [proc.returncode for proc in procs]


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
