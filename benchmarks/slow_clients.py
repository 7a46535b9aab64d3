"""/healthz latency under slow clients (issue 10 §1), bare gunicorn against the shipped nginx front.

Starts one production gateway (tests/ops harness: gunicorn, 2 workers x 2 threads, 127.0.0.1,
REUSE_PORT=yes as in production) and the nginx front of deploy/nginx in front of it, then for
each kind of slow client opens the sockets and times sequential GET /healthz requests, a
request that gets no answer within the timeout counting as timed out.

    .venv/bin/python benchmarks/slow_clients.py --requests 20 --timeout 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ops.client import call
from tests.ops.front import NginxFront
from tests.ops.gateway import GatewayProcess, launch
from tests.ops.slow_clients import HEADER_ONLY, partial_body, slow_sockets


def latencies(url: str, requests: int, timeout: float) -> tuple[list[float], int]:
    """Milliseconds of each answered /healthz, and how many timed out."""
    answered, timed_out = [], 0
    for _ in range(requests):
        started = time.monotonic()
        try:
            call(url, "GET", "/healthz", timeout=timeout)
        except TimeoutError:
            timed_out += 1
        else:
            answered.append((time.monotonic() - started) * 1000)
    return answered, timed_out


def row(target: str, load: str, answered: list[float], timed_out: int) -> str:
    if not answered:
        return f"| {target} | {load} | – | – | {timed_out} |"
    p50 = statistics.median(answered)
    worst = max(answered)
    return f"| {target} | {load} | {p50:.1f} | {worst:.1f} | {timed_out} |"


def measure(gateway: GatewayProcess, front: NginxFront, requests: int, timeout: float) -> None:
    token = gateway.caller().login()
    loads = [("none", 0, b""), ("30 header-only GETs", 30, HEADER_ONLY),
             ("10 partial-body POSTs", 10, partial_body(token))]
    print("| target | slow sockets | p50 ms | max ms | timed out |\n|---|---|---:|---:|---:|")
    for target, url in (("bare gunicorn", gateway.url), ("nginx front", front.url)):
        for load, count, opening in loads:
            with slow_sockets(url, count, opening):
                print(row(target, load, *latencies(url, requests, timeout)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        gateway = launch(Path(root) / "gateway", {},
                         server_env={"TORCHGATE_REUSE_PORT": "yes"})
        try:
            (Path(root) / "nginx").mkdir()
            front = NginxFront.start(Path(root) / "nginx", urlsplit(gateway.url).port)
            try:
                measure(gateway, front, args.requests, args.timeout)
            finally:
                front.stop()
        finally:
            gateway.stop()


if __name__ == "__main__":
    main()
