"""Admission: revocation, rate counters and replay claim answered in one store round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from security.admission import Admission, AdmissionRequest, RateLimit
from security.store import SharedStore, SqliteStore
from tests.security.store_backends import Backend

REPO = Path(__file__).resolve().parents[2]
TOKEN = ["jti:t1", "fam:f1"]


def admit(store: SharedStore, claim: str | None = None, rate: str = "",
          keys: list[str] = TOKEN, claim_ttl: int = 60) -> Admission:
    counters = RateLimit.parse("predict", rate).counters("alice")
    return store.admit(AdmissionRequest(keys, claim, claim_ttl, counters))


def test_a_new_envelope_is_admitted(store: SharedStore) -> None:
    assert admit(store, "iv:k1:01", "5/minute") == Admission()


def test_the_same_envelope_again_is_a_replay(backend: Backend, store: SharedStore) -> None:
    admit(store, "iv:k1:01")
    assert admit(backend.open(), "iv:k1:01").replayed  # another worker sees the claim


def test_a_claim_is_free_again_after_its_window(backend: Backend, store: SharedStore) -> None:
    admit(store, "iv:k1:01", claim_ttl=1)
    backend.advance(1.1)  # Redis: a real second
    assert admit(store, "iv:k1:01", claim_ttl=1) == Admission()


def test_a_revoked_token_is_refused_and_counts_nothing(store: SharedStore) -> None:
    store.revoke("fam:f1", 60)
    assert admit(store, "iv:k1:01", "1/minute") == Admission(revoked=True)
    assert store.failure_state(RateLimit.parse("predict", "1/minute").counters("alice")[0].key) \
        == (0, 0)
    assert admit(store, "iv:k1:01", keys=["jti:other"]) == Admission()  # nothing was claimed


def test_revocation_is_answered_without_anything_to_count(store: SharedStore) -> None:
    assert admit(store) == Admission()
    store.revoke("jti:t1", 60)
    assert admit(store) == Admission(revoked=True)


def test_the_call_after_the_limit_is_spent_and_says_when_to_retry(store: SharedStore) -> None:
    assert [admit(store, f"iv:k1:{n}", "2/minute").spent for n in range(2)] == [None, None]
    refused = admit(store, "iv:k1:2", "2/minute")
    assert refused.spent is not None and refused.spent.text == "2 per 1 minute"
    assert 55 <= refused.retry_after <= 60


def test_a_refused_call_does_not_claim_its_envelope(store: SharedStore) -> None:
    admit(store, "iv:k1:0", "1/minute")
    assert admit(store, "iv:k1:1", "1/minute").spent is not None
    assert admit(store, "iv:k1:1") == Admission()  # the same envelope, once budget is back


def test_every_limit_of_a_setting_must_hold(store: SharedStore) -> None:
    answers = [admit(store, None, "100/second;3/minute") for _ in range(4)]
    assert [a.spent.text if a.spent else None for a in answers] == [None] * 3 + ["3 per 1 minute"]


def test_a_window_opens_again_after_its_period(backend: Backend, store: SharedStore) -> None:
    admit(store, None, "1/second")
    assert admit(store, None, "1/second").spent is not None
    backend.advance(1.1)  # Redis: a real second
    assert admit(store, None, "1/second") == Admission()


def test_an_unreadable_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimit.parse("predict", "lots")
    assert RateLimit.parse("predict", "  ").counters("alice") == ()


COUNT_HITS = """
import sys
from pathlib import Path
from security.admission import AdmissionRequest, RateLimit
from security.store import SqliteStore
store, counters = SqliteStore(Path(sys.argv[1])), RateLimit.parse("p", "1000/hour").counters("a")
claims = [f"iv:{sys.argv[2]}:{n}" for n in range(150)]
print(sum(not store.admit(AdmissionRequest([], claim, 60, counters)).replayed
          for claim in claims + claims[:50]))
"""


def test_processes_on_one_machine_count_and_claim_in_one_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    workers = [subprocess.Popen([sys.executable, "-c", COUNT_HITS, str(path), name], cwd=REPO,
                                stdout=subprocess.PIPE, text=True) for name in ("a", "b")]
    assert [int(w.communicate(timeout=60)[0]) for w in workers] == [150, 150]
    counter = RateLimit.parse("p", "1000/hour").counters("a")[0]
    assert SqliteStore(path).failure_state(counter.key)[0] == 400


def test_a_limit_written_twice_counts_once(store: SharedStore) -> None:
    answers = [admit(store, None, "2/minute;2/minute") for _ in range(3)]
    assert [a.spent is None for a in answers] == [True, True, False]


def admit_quota(store: SharedStore, claim: str | None, quota: str = "2/minute",
                rate: str = "") -> Admission:
    counters = RateLimit.parse("predict", rate).counters("alice")
    budget = RateLimit.parse("quota:tiny", quota).counters("alice")
    return store.admit(AdmissionRequest(TOKEN, claim, 60, counters, budget))


def test_a_quota_counts_admitted_calls_and_says_what_is_left(store: SharedStore) -> None:
    answers = [admit_quota(store, f"iv:k1:{n}") for n in range(2)]
    assert [(a.usage[0].used, a.usage[0].remaining, a.spent) for a in answers] == [
        (1, 1, None), (2, 0, None)]
    assert all(55 <= a.usage[0].reset <= 60 for a in answers)


def test_the_call_over_its_quota_is_refused_and_claims_nothing(store: SharedStore) -> None:
    admit_quota(store, "iv:k1:0", "1/minute")
    refused = admit_quota(store, "iv:k1:1", "1/minute")
    assert refused.quota_spent and refused.spent is not None
    assert refused.spent.text == "1 per 1 minute" and 55 <= refused.retry_after <= 60
    assert (refused.usage[0].used, refused.usage[0].remaining) == (2, 0)
    assert admit(store, "iv:k1:1") == Admission()  # the same envelope is still new


@pytest.mark.parametrize(("case", "claims", "rate", "refusal"), [
    ("over the rate limit", ["iv:k1:0", "iv:k1:1"], "1/minute", "spent"),
    ("a replay", ["iv:k1:0", "iv:k1:0"], "", "replayed"),
])
def test_a_call_refused_before_its_quota_spends_none(store: SharedStore, case, claims, rate,
                                                     refusal) -> None:
    first, second = (admit_quota(store, claim, "5/minute", rate) for claim in claims)
    assert first.usage[0].used == 1
    assert getattr(second, refusal) and second.usage == () and not second.quota_spent
    assert admit_quota(store, "iv:k1:9", "5/minute").usage[0].used == 2


def test_a_revoked_token_spends_no_quota(store: SharedStore) -> None:
    store.revoke("jti:t1", 60)
    assert admit_quota(store, "iv:k1:0") == Admission(revoked=True)
    assert store.failure_state(RateLimit.parse("quota:tiny", "2/minute").counters("alice")[0]
                               .key) == (0, 0)
