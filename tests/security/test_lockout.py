"""The login throttle holds its limit under a burst of concurrent guesses."""

from __future__ import annotations

import threading

import pytest

from errors import RateLimited
from security.lockout import LoginThrottle
from security.store_sqlite import SqliteStore


@pytest.fixture
def throttle(tmp_path) -> LoginThrottle:
    return LoginThrottle(SqliteStore(tmp_path / "store.sqlite3"), max_failures=5, window=900)


def test_a_concurrent_burst_gets_no_more_guesses_than_the_limit(throttle):
    checked, refused = [], []
    start = threading.Barrier(20)

    def guess(n: int) -> None:
        start.wait()
        try:
            throttle.attempt("user:victim", f"10.0.0.{n}", lambda: checked.append(n))
        except RateLimited:
            refused.append(n)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checked) == 5  # every other guess refused before the password was looked at
    assert len(refused) == 15


def test_a_success_gives_its_count_back(throttle):
    for _ in range(10):
        assert throttle.attempt("user:alice", "10.0.0.1", lambda: "alice") == "alice"
    assert throttle.store.failure_state("login:addr:10.0.0.1")[0] == 0


def test_users_and_clients_do_not_share_a_counter(throttle):
    for _ in range(5):
        throttle.attempt("user:shared-name", "10.0.0.1", lambda: None)
    assert throttle.attempt("client:shared-name", "10.0.0.2", lambda: "client") == "client"


def test_refusal_names_the_seconds_left(throttle):
    for _ in range(5):
        throttle.attempt("user:bob", "10.0.0.1", lambda: None)
    with pytest.raises(RateLimited) as refused:
        throttle.attempt("user:bob", "10.0.0.3", lambda: "bob")
    assert 0 < refused.value.retry_after <= 900
