"""Slow clients as issue 10 §1 describes them: sockets that start a request and never finish it."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from tests.ops.client import SEALED

HEADER_ONLY = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"


def partial_body(token: str) -> bytes:
    """A valid /predict header announcing 1000 bytes of body, and then 10 of them."""
    return (f"POST /predict/tiny HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {SEALED}\r\nContent-Length: 1000\r\n\r\n").encode() + b"{" * 10


@contextmanager
def slow_sockets(url: str, count: int, opening: bytes) -> Iterator[list[socket.socket]]:
    """count connections that each send `opening` and then nothing more; closed afterwards."""
    parts = urlsplit(url)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
            sock.sendall(opening)
            sockets.append(sock)
        time.sleep(0.5)  # let the server take them all in before the probe
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def still_waiting(sock: socket.socket) -> bool:
    """The server neither answered nor closed the connection: it is still waiting for more."""
    sock.setblocking(False)
    try:
        sock.recv(1)  # an answer, or b"" when closed
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
    return False
