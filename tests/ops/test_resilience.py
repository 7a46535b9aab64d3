"""A gateway under faults: a worker killed under load, a shutdown with a request in flight,
the shared store or the database gone and back."""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.ops.client import PROBLEM, Caller, Reply, bearer, call, token_request
from tests.ops.gateway import GatewayProcess, gateways
from tests.ops.slow_model import STARTED_DIR

pytestmark = pytest.mark.slow

ROWS = {"inputs": [[0.5, -1.0, 2.0, 0.25]]}
THREADS, PER_THREAD, KILL_AFTER = 2, 100, 30
RECOVERY_SECONDS = 15.0


@pytest.fixture(scope="module")
def fragile(tmp_path_factory, throwaway_redis, database_forwarder, module_database
            ) -> Iterator[GatewayProcess]:
    """A gateway whose Redis can be stopped and whose PostgreSQL path can be cut."""
    via_forwarder = make_url(module_database).set(host="127.0.0.1", port=database_forwarder.port)
    settings = {"store_url": throwaway_redis.url,
                "database_url": via_forwarder.render_as_string(hide_password=False)}
    with gateways(tmp_path_factory) as start:
        yield start("fragile", settings)


def _load(caller: Caller, token: str, answered: list, failed: list,
          on_request: Callable[[int], None]) -> None:
    """PER_THREAD sealed predictions on fresh connections, each with a request id of ours."""
    for i in range(PER_THREAD):
        on_request(i)
        request_id = f"load-{secrets.token_hex(8)}"
        try:
            reply = caller.predict(token, caller.seal(ROWS), **{"X-Request-ID": request_id})
        except OSError as exc:  # the connection the killed worker held
            failed.append(type(exc).__name__)
            continue
        answered.append((request_id, reply.status))


def _wait_for_workers(gateway: GatewayProcess, count: int, without: int) -> list[int]:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while time.monotonic() < deadline:
        pids = gateway.worker_pids()
        if len(pids) == count and without not in pids:
            return pids
        time.sleep(0.1)
    return gateway.worker_pids()


def test_a_worker_killed_under_load_is_replaced_and_every_answer_is_audited(fragile):
    caller = fragile.caller()
    token = caller.login()
    victim = fragile.worker_pids()[0]
    answered: list[tuple[str, int]] = []
    failed: list[str] = []

    def kill_once(i: int) -> None:
        if i == KILL_AFTER:
            os.kill(victim, signal.SIGKILL)

    threads = [threading.Thread(target=_load, args=(caller, token, answered, failed,
                                                     kill_once if n == 0 else lambda i: None))
               for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    workers = _wait_for_workers(fragile, 2, without=victim)
    assert fragile.master.poll() is None
    assert len(workers) == 2 and victim not in workers
    assert len(failed) <= THREADS, failed  # at most the requests the victim held
    assert len(answered) + len(failed) == THREADS * PER_THREAD
    assert {status for _, status in answered} == {200}
    assert {rid for rid, _ in answered} <= fragile.audited_request_ids()
    verify = fragile.flask("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["intact"] is True


def _retry_until(send: Callable[[], Reply], status: int) -> Reply:
    deadline = time.monotonic() + RECOVERY_SECONDS
    reply = send()
    while reply.status != status and time.monotonic() < deadline:
        time.sleep(0.2)
        reply = send()
    return reply


def _assert_unavailable(reply: Reply) -> None:
    assert reply.status == 503
    assert reply.headers["content-type"].startswith(PROBLEM)
    assert reply.slug == "service-unavailable"
    assert int(reply.headers["retry-after"]) > 0


def test_with_the_store_down_requests_fail_closed_and_serve_again_when_it_is_back(
        fragile, throwaway_redis):
    caller = fragile.caller()
    token = caller.login()
    throwaway_redis.stop()
    try:
        whoami = call(fragile.url, "GET", "/auth/whoami", headers=bearer(token))
        predicted = caller.predict(token, caller.seal(ROWS))
        ready = call(fragile.url, "GET", "/readyz")
    finally:
        throwaway_redis.start()

    _assert_unavailable(whoami)
    _assert_unavailable(predicted)
    assert ready.status == 503
    assert "store" in ready.json()["detail"]
    back = _retry_until(lambda: caller.predict(token, caller.seal(ROWS)), 200)
    assert back.status == 200
    assert caller.open(back.body)["model"] == "tiny"


def test_with_the_database_down_requests_fail_closed_and_serve_again_when_it_is_back(
        fragile, database_forwarder):
    ids = fragile.identities

    def login() -> Reply:
        return token_request(fragile.url, grant_type="password", username=ids.username,
                             password=ids.password)

    database_forwarder.cut()
    try:
        refused = login()
        ready = call(fragile.url, "GET", "/readyz")
    finally:
        database_forwarder.restore()

    _assert_unavailable(refused)
    assert ready.status == 503
    assert "database" in ready.json()["detail"]
    back = _retry_until(login, 200)
    assert back.status == 200
    assert back.json()["token_type"] == "Bearer"


@pytest.fixture
def slow_gateway(tmp_path_factory, tmp_path) -> Iterator[GatewayProcess]:
    with gateways(tmp_path_factory) as start:
        yield start("sigterm", server_env={STARTED_DIR: str(tmp_path)})


def _wait_for_file(directory: Path, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(directory.iterdir()):
            return True
        time.sleep(0.05)
    return False


def test_sigterm_lets_the_request_in_flight_finish_and_the_master_exit_0(slow_gateway):
    caller = slow_gateway.caller()
    token = caller.login()
    replies: list[tuple[Reply, float]] = []
    slow = caller.seal({"inputs": [[2.0, 0.0, 0.0, 0.0]]})  # Sleepy sleeps x[0][0] seconds
    request = threading.Thread(target=lambda: replies.append(
        (caller.predict(token, slow, model="sleepy"), time.monotonic())))
    request.start()
    assert _wait_for_file(Path(slow_gateway.env[STARTED_DIR])), "the slow request never started"

    terminated_at = time.monotonic()
    os.kill(slow_gateway.master.pid, signal.SIGTERM)
    request.join(timeout=30)
    exit_status = slow_gateway.master.wait(timeout=30)

    reply, answered_at = replies[0]
    assert answered_at > terminated_at
    assert reply.status == 200
    assert caller.open(reply.body)["model"] == "sleepy"
    assert exit_status == 0
