"""The extraction monitor (security.extraction): natural streams pass, synthetic ones flag,
memory stays bounded."""

from __future__ import annotations

import numpy as np
import pytest

from security.extraction import SKETCH_DIM, ExtractionMonitor, MonitorPolicy

POLICY = MonitorPolicy(threshold=0.9, min_queries=50, streams=3, samples=128)


def natural(count: int, width: int = 16, seed: int = 0) -> np.ndarray:
    """Rows as varied as natural data: a wide cloud, classes drawn at random."""
    return np.random.default_rng(seed).normal(size=(count, width)).astype(np.float32)


def synthetic(count: int, width: int = 16, seed: int = 0, step: float = 0.1) -> np.ndarray:
    """Jacobian-style augmentation: a few seeds, then rounds of x + step * sign(direction)."""
    rng = np.random.default_rng(seed)
    known = rng.normal(size=(4, width)).astype(np.float32)
    while len(known) < count:
        signs = np.sign(rng.normal(size=known.shape)).astype(np.float32)
        known = np.concatenate([known, known + step * signs])
    return known[:count]


def feed(monitor: ExtractionMonitor, rows: np.ndarray, subject: str = "alice",
         model: str = "digits", classes: int = 3, per_call: int = 1) -> list:
    labels = np.arange(len(rows)) % classes
    return [monitor.observe(subject, model, rows[i:i + per_call], labels[i:i + per_call])
            for i in range(0, len(rows), per_call)]


@pytest.mark.parametrize("seed", range(5))
def test_a_natural_stream_is_not_flagged(seed):
    verdicts = feed(ExtractionMonitor(POLICY), natural(400, seed=seed))
    assert not any(v.flagged for v in verdicts)
    assert min(v.statistic for v in verdicts if v.statistic is not None) >= 0.9


@pytest.mark.parametrize(("case", "width", "per_call"), [
    ("one query per call", 16, 1),
    ("a batch per call", 16, 25),
    ("rows wider than the sketch", 4 * SKETCH_DIM, 1),
])
def test_a_synthetic_stream_is_flagged_once(case, width, per_call):
    monitor = ExtractionMonitor(POLICY)
    verdicts = feed(monitor, synthetic(300, width), per_call=per_call)
    raised = [n for n, v in enumerate(verdicts) if v.raised]
    assert len(raised) == 1
    assert all(v.flagged for v in verdicts[raised[0]:])
    assert verdicts[raised[0]].statistic < 0.9
    assert monitor.is_flagged("alice", "digits")


def test_a_call_with_more_rows_than_kept_is_judged_on_its_last_ones():
    (verdict,) = feed(ExtractionMonitor(POLICY), synthetic(5000), per_call=5000)
    assert verdict.raised and verdict.queries < POLICY.samples


def test_a_flag_holds_for_one_subject_on_one_model():
    monitor = ExtractionMonitor(POLICY)
    feed(monitor, synthetic(300))
    assert monitor.is_flagged("alice", "digits")
    assert not monitor.is_flagged("bob", "digits")
    assert not monitor.is_flagged("alice", "other")


def test_no_stream_is_judged_before_its_minimum():
    verdicts = feed(ExtractionMonitor(POLICY), synthetic(50))
    assert all(v.statistic is None and not v.flagged for v in verdicts)


def test_the_least_recent_stream_is_forgotten_and_flags_are_kept_apart():
    monitor = ExtractionMonitor(POLICY)  # three streams
    feed(monitor, synthetic(300), subject="mallory")
    for subject in ("a", "b", "c"):
        feed(monitor, natural(20), subject=subject)
    assert feed(monitor, natural(1, seed=9), subject="d")[0].queries == 0  # a new stream
    assert feed(monitor, natural(1, seed=9), subject="a")[0].queries == 0  # "a" was forgotten
    assert feed(monitor, natural(1, seed=9), subject="c")[0].queries > 15  # "c" was kept
    assert monitor.is_flagged("mallory", "digits")


@pytest.mark.parametrize("arguments", [
    {"threshold": 0.0}, {"threshold": 1.0}, {"min_queries": 5},
    {"min_queries": 300, "samples": 256}, {"streams": 0},
])
def test_a_policy_that_cannot_judge_is_refused(arguments):
    with pytest.raises(ValueError):
        MonitorPolicy(**arguments)
