"""Requests refused before Flask (issue 10 §7): the nginx front answers them as problem+json.

gunicorn alone answers the same requests with its own HTML pages (docs/contract.md, "Errors
beyond the table"); each case is sent to both.
"""

from __future__ import annotations

import http.client
import re
import socket
from urllib.parse import urlsplit

import pytest

from tests.ops.client import PROBLEM, SEALED, Reply, bearer, call
from tests.ops.front import NginxFront
from tests.ops.gateway import GatewayProcess

pytestmark = pytest.mark.slow
NGINX_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
MANY_FIELDS = b"".join(b"X-Field-%d: 1\r\n" % n for n in range(70))  # gunicorn allows 64

REFUSED = [  # case, raw request, (front's status, slug), bare gunicorn's status
    ("malformed request line", b"GARBAGE\r\n\r\n", (400, "invalid-request"), 400),
    ("request line over 4094 bytes", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     (414, "uri-too-long"), 414),
    ("header field over 4k", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000
     + b"\r\n\r\n", (431, "header-fields-too-large"), 431),
    ("70 header fields", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + MANY_FIELDS + b"\r\n",
     (431, "header-fields-too-large"), 431),
]


def send_raw(url: str, request: bytes) -> Reply:
    """Bytes as sent, no client library in between; the answer as a Reply."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                     response.read())


def assert_front_problem(reply: Reply, status: int, slug: str) -> None:
    """nginx's own answer in the gateway's shape (CONTRACT §6), with nginx's request id."""
    assert (reply.status, reply.slug) == (status, slug), reply.body[:200]
    body = reply.json()
    assert set(body) == {"type", "title", "status", "detail", "request_id"}
    assert body["status"] == status
    assert NGINX_REQUEST_ID.fullmatch(body["request_id"])
    assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("case", "request_bytes", "problem", "bare_status"), REFUSED,
                         ids=[row[0] for row in REFUSED])
def test_the_front_answers_what_gunicorn_refuses_as_problem_json(
        nginx_front: NginxFront, production_gateway: GatewayProcess, case, request_bytes,
        problem, bare_status):
    bare = send_raw(production_gateway.url, request_bytes)
    front = send_raw(nginx_front.url, request_bytes)

    assert (bare.status, bare.headers["content-type"]) == (bare_status, "text/html")
    assert_front_problem(front, *problem)


def test_a_body_over_the_limit_is_refused_by_the_front(nginx_front: NginxFront):
    reply = send_raw(nginx_front.url, b"POST /predict/tiny HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 10485761\r\n\r\n")
    assert_front_problem(reply, 413, "payload-too-large")


def test_metrics_are_not_served_by_the_public_port(nginx_front: NginxFront):
    assert_front_problem(call(nginx_front.url, "GET", "/metrics"), 404, "not-found")
    scraped = call(nginx_front.metrics_url, "GET", "/metrics")
    assert scraped.status == 200
    assert b"torchgate_" in scraped.body


def test_gunicorn_down_is_a_502_problem(nginx_without_gateway: NginxFront):
    assert_front_problem(call(nginx_without_gateway.url, "GET", "/healthz"), 502, "bad-gateway")


def test_the_gateway_s_own_problems_pass_the_front_untouched(
        nginx_front: NginxFront, production_gateway: GatewayProcess):
    token = production_gateway.caller().login()
    reply = call(nginx_front.url, "POST", "/predict/tiny", b"{}",
                 {**bearer(token), "Content-Type": SEALED, "X-Request-ID": "front-test-1"})

    assert (reply.status, reply.slug) == (400, "invalid-envelope")
    assert reply.headers["content-type"] == PROBLEM
    assert reply.json()["request_id"] == reply.headers["x-request-id"]
    assert NGINX_REQUEST_ID.fullmatch(reply.json()["request_id"])  # nginx's id, replacing ours


def test_a_body_larger_than_nginx_s_memory_buffer_reaches_the_gateway_whole(
        nginx_front: NginxFront, production_gateway: GatewayProcess):
    token = production_gateway.caller().login()
    body = b'{"protected": "' + b"A" * (2 * 1024 * 1024) + b'"}'  # over client_body_buffer_size

    reply = call(nginx_front.url, "POST", "/predict/tiny", body,
                 {**bearer(token), "Content-Type": SEALED})

    assert (reply.status, reply.slug) == (400, "invalid-envelope")  # the gateway read it all
