"""A small keep-alive HTTP/1.1 load generator: processes x threads, one connection per thread.

Each connection sends ready-made request bytes (one per request, so sealed envelopes can all
be distinct) and reads the answer by Content-Length; no HTTP library on the hot path, so the
client spends as little of the shared CPUs as Python allows.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import socket
import threading
import time
from dataclasses import dataclass

_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Result:
    """What the load generator saw: latencies of 200 answers (s), other answers, elapsed time."""

    latencies: list[float]
    errors: int
    statuses: dict[int, int]
    seconds: float
    client_cpu_seconds: float


def build_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _read_response(sock: socket.socket, pending: bytes) -> tuple[int, bytes]:
    """(status, bytes left over after this response) from a keep-alive connection."""
    buffer = pending
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    match = _LENGTH.search(head)
    length = int(match.group(1)) if match else 0
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        rest += chunk
    return int(head[9:12]), rest[length:]


def _connection(port: int, requests: list[bytes], deadline: float, out: list) -> None:
    latencies, statuses, errors = [], {}, 0
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending = b""
    for request in requests:
        if time.monotonic() >= deadline:
            break
        started = time.perf_counter()
        try:
            sock.sendall(request)
            status, pending = _read_response(sock, pending)
        except OSError:
            errors += 1
            sock.close()
            sock, pending = socket.create_connection(("127.0.0.1", port)), b""
            continue
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            latencies.append(time.perf_counter() - started)
    sock.close()
    out.append((latencies, statuses, errors, time.time()))


def _process(port: int, batches: list[list[bytes]], start_at: float, seconds: float,
             queue: multiprocessing.Queue) -> None:
    time.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + seconds
    out: list = []
    threads = [threading.Thread(target=_connection, args=(port, batch, deadline, out))
               for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu = sum(os.times()[:2])
    queue.put((out, cpu))


def run(port: int, requests: list[list[bytes]], seconds: float, processes: int) -> Result:
    """Send requests[i] on connection i for `seconds`, connections spread over processes."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    start_at = time.time() + 0.5
    groups = [requests[i::processes] for i in range(processes)]
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_process, args=(port, group, start_at, seconds, queue))
               for group in groups]
    for worker in workers:
        worker.start()
    gathered = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    latencies, statuses, errors, cpu, ended = [], {}, 0, 0.0, start_at
    for out, used in gathered:
        cpu += used
        for lat, stat, err, last in out:
            ended = max(ended, last)
            latencies += lat
            errors += err
            for code, count in stat.items():
                statuses[code] = statuses.get(code, 0) + count
    return Result(latencies, errors, statuses, ended - start_at, cpu)
