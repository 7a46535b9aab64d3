"""Slow clients (issue 10 §1): the nginx front holds them, so /healthz keeps answering.

gthread threads block while they read a request: 30 sockets that send half a header freeze bare
gunicorn (2 workers x 2 threads here). The shipped front (deploy/nginx) waits for them itself and
hands gunicorn only whole requests.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

from tests.ops.client import SEALED, call
from tests.ops.front import NginxFront
from tests.ops.gateway import GatewayProcess

pytestmark = pytest.mark.slow
ANSWER_WITHIN = 5.0  # seconds; an answer takes milliseconds, the margin is for a loaded machine
FROZEN_FOR = 3.0  # seconds bare gunicorn is given to answer while the slow sockets hold it
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


def healthz_in(url: str, timeout: float) -> tuple[int, dict, float]:
    """GET /healthz: status, body and seconds taken."""
    started = time.monotonic()
    reply = call(url, "GET", "/healthz", timeout=timeout)
    return reply.status, reply.json(), time.monotonic() - started


@pytest.mark.parametrize(("count", "kind"), [(30, "header-only GET"), (10, "partial-body POST")])
def test_slow_clients_leave_healthz_answering_through_the_front(
        nginx_front: NginxFront, production_gateway: GatewayProcess, count, kind):
    opening = (HEADER_ONLY if kind == "header-only GET"
               else partial_body(production_gateway.caller().login()))
    with slow_sockets(nginx_front.url, count, opening) as sockets:
        status, body, seconds = healthz_in(nginx_front.url, ANSWER_WITHIN)
        waiting = sum(still_waiting(sock) for sock in sockets)

    assert (status, body) == (200, {"status": "ok"})
    assert seconds < ANSWER_WITHIN
    assert waiting == count  # nginx still holds every slow socket open


def test_the_same_slow_clients_freeze_bare_gunicorn(production_gateway: GatewayProcess):
    """Why the front exists: without it the 30 header-only sockets hold every gthread thread."""
    with slow_sockets(production_gateway.url, 30, HEADER_ONLY), pytest.raises(TimeoutError):
        call(production_gateway.url, "GET", "/healthz", timeout=FROZEN_FOR)

    # Once they are gone, gunicorn answers again: the shared gateway is left as it was found.
    status, body, _ = healthz_in(production_gateway.url, 30)
    assert (status, body) == (200, {"status": "ok"})
