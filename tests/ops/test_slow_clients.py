"""Slow clients (issue 10 §1): the nginx front holds them, so /healthz keeps answering.

gthread threads block while they read a request: 30 sockets that send half a header freeze bare
gunicorn (2 workers x 2 threads here). The shipped front (deploy/nginx) waits for them itself and
hands gunicorn only whole requests.
"""

from __future__ import annotations

import time

import pytest

from tests.ops.client import call
from tests.ops.front import NginxFront
from tests.ops.gateway import GatewayProcess
from tests.ops.slow_clients import HEADER_ONLY, partial_body, slow_sockets, still_waiting

pytestmark = pytest.mark.slow
ANSWER_WITHIN = 5.0  # seconds; an answer takes milliseconds, the margin is for a loaded machine
FROZEN_FOR = 3.0  # seconds bare gunicorn is given to answer while the slow sockets hold it


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
    """Why the front exists: without it the 30 header-only sockets hold every gthread thread.

    One worker takes every connection meanwhile: on the harness's one shared socket the kernel
    may hand a worker fewer than its 2 threads' worth of the 30, and leave it free to answer.
    """
    worker = production_gateway.worker_pids()[0]
    with (production_gateway.only(worker),
          slow_sockets(production_gateway.url, 30, HEADER_ONLY),
          pytest.raises(TimeoutError)):
        call(production_gateway.url, "GET", "/healthz", timeout=FROZEN_FOR)

    # Once they are gone, gunicorn answers again: the shared gateway is left as it was found.
    status, body, _ = healthz_in(production_gateway.url, 30)
    assert (status, body) == (200, {"status": "ok"})
