"""A PRADA-style model-extraction monitor (Juuti et al., 2019): one stream per (subject, model).

Natural queries land at distances from a caller's earlier queries that are close to normally
distributed; synthetic ones (random probing, Jacobian-based augmentation, which steps a fixed
distance from a parent query) do not. For each query the monitor takes its smallest L2 distance
to the caller's kept queries of the same predicted class, keeps it, and keeps the query itself
when it is farther than that class's growing threshold (PRADA's G_c and T_c). Once a stream has
`min_queries` distances, the Shapiro–Wilk W of its latest ones is computed after every call; W
below `threshold` flags the stream, for good.

Memory is bounded: at most `streams` streams (least recently used forgotten first; a flagged
one is remembered apart, up to as many again), each keeping its latest `samples` queries and
distances, and a query wider than SKETCH_DIM values is kept as a CountSketch of that width,
which preserves L2 distances in expectation. A call with more rows than `samples` is judged on
its last `samples` rows, which bounds the time one call costs. Flask-free; one lock, held for
one observation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from security.normality import MIN_SIZE, shapiro_w

SKETCH_DIM = 128


@dataclass(frozen=True)
class MonitorPolicy:
    """How the monitor judges and how much it keeps (EXTRACTION_* settings)."""

    threshold: float = 0.90  # W below this flags (PRADA's delta)
    min_queries: int = 100  # distances a stream needs before it is judged
    streams: int = 1000  # (subject, model) streams kept per process
    samples: int = 256  # queries and distances kept per stream

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("the threshold must lie between 0 and 1")
        if self.min_queries < MIN_SIZE or self.samples < self.min_queries:
            raise ValueError(f"min_queries must be at least {MIN_SIZE} and at most samples")
        if self.streams < 1:
            raise ValueError("at least one stream must be kept")


@dataclass(frozen=True, slots=True)
class Verdict:
    """A stream after one observation: `raised` only on the call that flagged it."""

    flagged: bool
    raised: bool = False
    statistic: float | None = None
    queries: int = 0


class _Stream:
    """One caller's queries to one model: PRADA's growing set (a ring of rows with their
    classes), each class's threshold, and the latest distances (a ring)."""

    __slots__ = ("classes", "count", "distances", "flagged", "growth", "kept", "slot", "stored")

    def __init__(self, width: int, samples: int) -> None:
        self.kept = np.zeros((samples, width), dtype=np.float32)
        self.classes = np.full(samples, -1, dtype=np.int64)
        self.distances = np.zeros(samples, dtype=np.float64)
        self.growth: dict[int, tuple[int, float, float, float]] = {}  # n, sum, sum sq, T_c
        self.slot = self.stored = self.count = 0
        self.flagged = False

    def add(self, row: np.ndarray, label: int) -> None:
        """PRADA's step for one query."""
        same = self.classes == label
        if not same.any():
            self._keep(row, label)
            return
        gaps = self.kept[same] - row
        distance = float(np.sqrt(np.min(np.einsum("ij,ij->i", gaps, gaps))))
        self.distances[self.count % len(self.distances)] = distance
        self.count += 1
        n, total, squares, bar = self.growth.get(label, (0, 0.0, 0.0, 0.0))
        if distance > bar:
            self._keep(row, label)
            n, total, squares = n + 1, total + distance, squares + distance * distance
            mean = total / n
            bar = max(bar, mean - np.sqrt(max(0.0, squares / n - mean * mean)))
            self.growth[label] = (n, total, squares, bar)

    def latest(self) -> np.ndarray:
        return self.distances[:min(self.count, len(self.distances))]

    def _keep(self, row: np.ndarray, label: int) -> None:
        self.kept[self.slot], self.classes[self.slot] = row, label
        self.slot = (self.slot + 1) % len(self.classes)


class ExtractionMonitor:
    """Every stream this process watches."""

    def __init__(self, policy: MonitorPolicy) -> None:
        self.policy = policy
        self._streams: OrderedDict[tuple[str, str], _Stream] = OrderedDict()
        self._flagged: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._sketches: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def is_flagged(self, subject: str, model: str) -> bool:
        return (subject, model) in self._flagged

    def observe(self, subject: str, model: str, rows: np.ndarray,
                classes: np.ndarray) -> Verdict:
        """Add one call's queries (rows x values, and each row's predicted class)."""
        key = (subject, model)
        if key in self._flagged:
            return Verdict(flagged=True)
        if len(classes) > self.policy.samples:  # only the latest distances are ever tested
            rows, classes = rows[-self.policy.samples:], classes[-self.policy.samples:]
        rows = self._narrow(np.asarray(rows, dtype=np.float32).reshape(len(classes), -1))
        with self._lock:
            stream = self._stream(key, rows.shape[1])
            for row, label in zip(rows, classes.tolist(), strict=True):
                stream.add(row, label)
            if stream.count < self.policy.min_queries:
                return Verdict(flagged=False, queries=stream.count)
            statistic = shapiro_w(stream.latest())
            if statistic >= self.policy.threshold:
                return Verdict(flagged=False, statistic=statistic, queries=stream.count)
            self._flag(key)
        return Verdict(flagged=True, raised=True, statistic=statistic, queries=stream.count)

    def _stream(self, key: tuple[str, str], width: int) -> _Stream:
        stream = self._streams.get(key)
        if stream is None or stream.kept.shape[1] != width:  # a new version may change shape
            stream = self._streams[key] = _Stream(width, self.policy.samples)
            while len(self._streams) > self.policy.streams:
                self._streams.popitem(last=False)
        self._streams.move_to_end(key)
        return stream

    def _flag(self, key: tuple[str, str]) -> None:
        self._streams.pop(key, None)
        self._flagged[key] = None
        while len(self._flagged) > self.policy.streams:
            self._flagged.popitem(last=False)

    def _narrow(self, rows: np.ndarray) -> np.ndarray:
        """Rows wider than SKETCH_DIM as CountSketches: each value added, with a fixed random
        sign, to one of SKETCH_DIM buckets (the same hashing for every row of that width)."""
        width = rows.shape[1]
        if width <= SKETCH_DIM:
            return rows
        if width not in self._sketches:
            rng = np.random.default_rng(width)
            self._sketches[width] = (rng.integers(0, SKETCH_DIM, width),
                                     rng.choice(np.array([-1.0, 1.0], dtype=np.float32), width))
        buckets, signs = self._sketches[width]
        sketch = np.zeros((len(rows), SKETCH_DIM), dtype=np.float32)
        np.add.at(sketch, (slice(None), buckets), rows * signs)
        return sketch
