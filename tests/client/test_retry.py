"""Retries: 429 and 503 with backoff and Retry-After, bounded, and never the same envelope twice."""

from __future__ import annotations

import json
import random
import socket
import time

import pytest
import requests

from client import (
    ModelUnavailable,
    RateLimited,
    RetryPolicy,
    TorchgateClient,
    TransportError,
    Unavailable,
)
from tests.client.conftest import Fault

ROW = [0.1, 0.2, 0.3, 0.4]
FAST = RetryPolicy(attempts=3, backoff=0.01)


def test_503_is_retried_with_a_fresh_envelope(live) -> None:
    # The gateway handled the first envelope (and remembers its IV) before the 503 came back.
    live.recorder.fail("/predict/tiny", Fault(503, after_app=True))
    with TorchgateClient(live.url, **live.user_kwargs(retries=FAST)) as gateway:
        result = gateway.predict("tiny", [ROW])
        token = gateway.token().access_token
    tries = [s for s in live.recorder.seen if s.path == "/predict/tiny"]
    first, second = (json.loads(s.body) for s in tries)
    assert [s.status for s in tries] == [503, 200] and result["model"] == "tiny"
    assert first["iv"] != second["iv"]
    replay = requests.post(f"{live.url}/predict/tiny", data=tries[0].body, timeout=5, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/jose+json"})
    assert (replay.status_code, replay.json()["type"]) == (
        400, "urn:torchgate:problem:replayed-envelope")


def test_retry_after_is_waited_for(live) -> None:
    live.recorder.fail("/auth/whoami", Fault(429, retry_after="1"))
    with TorchgateClient(live.url, **live.user_kwargs(retries=FAST)) as gateway:
        gateway.token()
        started = time.monotonic()
        me = gateway.whoami()
        waited = time.monotonic() - started
    assert me["sub"] == "alice" and 1.0 <= waited < 2.0
    assert [st for p, st in live.recorder.paths() if p == "/auth/whoami"] == [429, 200]


@pytest.mark.parametrize(("policy", "fault", "error", "tries"), [
    (FAST, Fault(503), Unavailable, 3),
    (RetryPolicy(attempts=1), Fault(503), Unavailable, 1),
    (RetryPolicy(attempts=3, backoff=0.01, max_delay=0.5), Fault(429, "1"), RateLimited, 1),
    (RetryPolicy(attempts=3, backoff=0.01, budget=0), Fault(503), Unavailable, 1),
])
def test_retries_are_bounded(live, policy, fault, error, tries) -> None:
    live.recorder.fail("/auth/whoami", *[fault] * 5)
    with TorchgateClient(live.url, **live.user_kwargs(retries=policy)) as gateway, \
            pytest.raises(error) as caught:
        gateway.whoami()
    assert (caught.value.status, caught.value.retry_after) == (
        fault.status, float(fault.retry_after))
    assert [p for p, _ in live.recorder.paths()].count("/auth/whoami") == tries


def test_a_failed_model_answers_503_that_is_not_waited_for(live) -> None:
    with TorchgateClient(live.url, **live.user_kwargs()) as gateway, \
            pytest.raises(ModelUnavailable) as caught:
        gateway.predict("broken", [ROW])
    error = caught.value
    assert (error.status, error.slug, error.retry_after) == (503, "model-unavailable", 30.0)
    assert "broken" in error.detail and error.request_id
    assert [p for p, _ in live.recorder.paths()].count("/predict/broken") == 1


def test_retries_as_an_int_counts_retries(live) -> None:
    live.recorder.fail("/auth/whoami", *[Fault(503)] * 5)
    with TorchgateClient(live.url, **live.user_kwargs(retries=0)) as gateway, \
            pytest.raises(Unavailable):
        gateway.whoami()
    assert [p for p, _ in live.recorder.paths()].count("/auth/whoami") == 1


def test_unreachable_gateway_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the client connects
    gateway = TorchgateClient(f"http://127.0.0.1:{port}", username="a", password="p",
                              retries=RetryPolicy(attempts=2, backoff=0.01))
    with gateway, pytest.raises(TransportError) as caught:
        gateway.whoami()
    assert (caught.value.status, caught.value.slug) == (None, "error")


@pytest.mark.parametrize(("retry", "retry_after", "low", "high"), [
    (0, None, 0.0, 0.5),
    (3, None, 0.0, 4.0),
    (10, None, 0.0, 10.0),  # capped at max_delay
    (0, 2.0, 2.0, 2.05),  # Retry-After, plus at most a tenth of the backoff ceiling
])
def test_backoff_delays(retry, retry_after, low, high) -> None:
    rng = random.Random(7)
    delays = [RetryPolicy().delay(retry, retry_after, rng) for _ in range(200)]
    assert low <= min(delays) and max(delays) <= high
    assert len(set(delays)) > 1  # jittered


def test_policy_refuses_no_attempts() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)



def test_a_lost_refresh_answer_falls_back_to_signing_in_not_to_reusing_the_token(start_live):
    """Retrying a refresh the server already used would read as theft and end the family."""
    live = start_live(jwt_access_ttl=2)
    with TorchgateClient(live.url, **live.user_kwargs(retries=FAST)) as gateway:
        first = gateway.token()
        live.recorder.fail("/auth/token", Fault(503, after_app=True))  # used, answer lost
        time.sleep(1.2)  # within the refresh leeway (half of a 2 s lifetime)
        second = gateway.token()
        me = gateway.whoami()
    assert live.recorder.grants() == ["password", "refresh_token", "password"]
    assert second.access_token != first.access_token and me["sub"] == "alice"
