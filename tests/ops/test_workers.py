"""Two gunicorn workers of one gateway share revocations, seen envelopes and login failures.

Each scenario sends its requests on fresh connections to one worker at a time (the other one is
SIGSTOPped meanwhile), so "every worker" is a fact of the test, not a matter of luck.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest

from tests.ops.client import FORM, Reply, bearer, call, token_request
from tests.ops.gateway import GatewayProcess

pytestmark = pytest.mark.slow

ROWS = {"inputs": [[0.5, -1.0, 2.0, 0.25]]}
PER_WORKER = 10


def on_each_worker(gateway: GatewayProcess, send: Callable[[], Reply],
                   times: int = PER_WORKER) -> dict[int, list[Reply]]:
    """`times` fresh-connection requests answered by each worker alone, by worker pid."""
    replies: dict[int, list[Reply]] = {}
    for pid in gateway.worker_pids():
        with gateway.only(pid):
            replies[pid] = [send() for _ in range(times)]
    return replies


def test_two_workers_serve(production_gateway):
    assert len(production_gateway.worker_pids()) == 2


def test_a_revoked_token_is_refused_by_every_worker(production_gateway):
    caller = production_gateway.caller()
    token = caller.login()
    revoked = call(caller.base_url, "POST", "/auth/revoke", f"token={token}".encode(),
                   {**bearer(token), "Content-Type": FORM})
    assert (revoked.status, revoked.body) == (200, b"")

    replies = on_each_worker(production_gateway, lambda: call(
        caller.base_url, "GET", "/auth/whoami", headers=bearer(token)))

    assert len(replies) == 2
    for answers in replies.values():
        assert {(r.status, r.slug) for r in answers} == {(401, "token-revoked")}


def test_a_replayed_envelope_is_refused_by_every_worker(production_gateway):
    caller = production_gateway.caller()
    token = caller.login()
    body = caller.seal(ROWS)
    first = caller.predict(token, body)
    assert first.status == 200
    assert caller.open(first.body)["model"] == "tiny"

    replies = on_each_worker(production_gateway, lambda: caller.predict(token, body))

    assert len(replies) == 2
    for answers in replies.values():
        assert {(r.status, r.slug) for r in answers} == {(400, "replayed-envelope")}


def test_login_failures_on_both_workers_lock_the_account(gateway_process):
    gateway = gateway_process("lockout")  # its own: the lockout also blocks 127.0.0.1 for 900 s
    ids = gateway.identities
    first, second = gateway.worker_pids()

    def fail() -> Reply:
        return token_request(gateway.url, grant_type="password", username=ids.username,
                             password=secrets.token_urlsafe(12))

    with gateway.only(first):
        failures = [fail() for _ in range(3)]
    with gateway.only(second):
        failures += [fail() for _ in range(2)]
        locked = token_request(gateway.url, grant_type="password", username=ids.username,
                               password=ids.password)

    assert [(r.status, r.json()["error"]) for r in failures] == [(400, "invalid_grant")] * 5
    assert locked.status == 429
    assert locked.slug == "rate-limited"
    assert int(locked.headers["retry-after"]) > 0


def whoami_answers(gateway: GatewayProcess) -> float:
    """torchgate_http_requests_total for GET /auth/whoami 200, as /metrics reports it."""
    from prometheus_client.parser import text_string_to_metric_families

    reply = call(gateway.url, "GET", "/metrics")
    assert reply.status == 200
    wanted = {"method": "GET", "route": "/auth/whoami", "status": "200"}
    return sum(sample.value
               for family in text_string_to_metric_families(reply.body.decode())
               for sample in family.samples
               if sample.name == "torchgate_http_requests_total"
               and all(sample.labels.get(k) == v for k, v in wanted.items()))


def test_metrics_count_the_requests_of_every_worker_whichever_worker_answers(
        production_gateway):
    token = production_gateway.caller().login()
    before = whoami_answers(production_gateway)

    replies = on_each_worker(production_gateway, lambda: call(
        production_gateway.url, "GET", "/auth/whoami", headers=bearer(token)), times=5)
    scraped = {}
    for pid in production_gateway.worker_pids():
        with production_gateway.only(pid):
            scraped[pid] = whoami_answers(production_gateway)

    assert [r.status for answers in replies.values() for r in answers] == [200] * 10
    assert list(scraped.values()) == [before + 10, before + 10]
