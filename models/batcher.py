"""Dynamic batching: concurrent requests for one model version merged into one forward pass.

Leader/follower, no thread of its own: the first request thread to find no leader collects
batch-mates (up to `max_batch_size` rows, or until the oldest waiting request has waited
`max_delay_ms`), runs the merged forward, hands each follower its rows, and passes the lead to
the oldest request still waiting once its own request is answered. One batch runs at a time per
model version; requests arriving meanwhile gather into the next one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from models.manifest import Batching

logger = logging.getLogger(__name__)

Batch = Mapping[str, torch.Tensor]
Forward = Callable[[Batch], dict[str, torch.Tensor]]
BatchObserver = Callable[[int, int], None]
"""Called once per forward pass the batcher runs, with (rows, requests)."""

ShapeKey = tuple[tuple[str, tuple[int, ...], torch.dtype, torch.device], ...]


@dataclass(eq=False)
class _Waiter:
    """One request in the queue; `answered` is set when it is done or made leader."""

    batch: Batch
    rows: int
    key: ShapeKey
    arrived: float
    answered: threading.Event
    outputs: dict[str, torch.Tensor] | None = None
    error: BaseException | None = None
    done: bool = False

    def result(self) -> dict[str, torch.Tensor]:
        if self.error is not None:
            raise self.error
        assert self.outputs is not None
        return self.outputs


def shape_key(batch: Batch) -> ShapeKey:
    """What batch-mates must share to be concatenated on dim 0: trailing dims, dtype, device."""
    return tuple((name, tuple(t.shape[1:]), t.dtype, t.device) for name, t in batch.items())


def merge(batches: list[Batch]) -> Batch:
    """The batches concatenated along dim 0, on the device they are on (one is passed as is)."""
    if len(batches) == 1:
        return batches[0]
    return {name: torch.cat([batch[name] for batch in batches]) for name in batches[0]}


def split(outputs: Mapping[str, torch.Tensor], rows: list[int]) -> list[dict[str, torch.Tensor]]:
    """Merged outputs cut back into each request's rows, in order (views, no copies)."""
    parts = {name: tensor.split(rows) for name, tensor in outputs.items()}
    return [{name: chunks[i] for name, chunks in parts.items()} for i in range(len(rows))]


class Batcher:
    """Merges concurrent `submit` calls of one model version into shared `forward` calls."""

    def __init__(self, forward: Forward, settings: Batching,
                 on_batch: BatchObserver | None = None):
        self._forward = forward
        self.max_batch_size = settings.max_batch_size
        self.max_delay = settings.max_delay_ms / 1000
        self._on_batch = on_batch
        self._reset()
        # gunicorn forks after preload: the child gets a fresh queue, never a copy of the
        # parent's (whose threads do not exist there) nor a lock a parent thread held.
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reset_if_alive(reference))

    def submit(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The outputs for `batch` (rows on dim 0), computed in a forward shared with others."""
        rows = next(iter(batch.values())).shape[0]
        if rows >= self.max_batch_size:  # fills a batch alone: nothing to wait for
            return self._run_alone(batch, rows)
        me = _Waiter(batch, rows, shape_key(batch), time.monotonic(), threading.Event())
        with self._lock:
            self._pending.append(me)
            leading = self._leader is None
            if leading:
                self._leader = me
            elif self._full():
                self._arrival.notify()
        if not leading:
            me.answered.wait()
        while not me.done:  # the leader (always the oldest waiting, so its batch includes it)
            self._lead_one(me)
        return me.result()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._arrival = threading.Condition(self._lock)
        self._pending: list[_Waiter] = []
        self._leader: _Waiter | None = None

    def _full(self) -> bool:
        """Whether the oldest request's batch can take no more rows (call with the lock)."""
        head = self._pending[0]
        rows = sum(w.rows for w in self._pending if w.key == head.key)
        return rows >= self.max_batch_size

    def _lead_one(self, me: _Waiter) -> None:
        """Collect, run and answer one batch; hand the lead on once `me` is answered."""
        taken = self._collect()
        try:
            self._run(taken)
        finally:
            with self._lock:
                if me.done:
                    self._leader = self._pending[0] if self._pending else None
                    if self._leader is not None:
                        self._leader.answered.set()
        self._observe(sum(w.rows for w in taken), len(taken))  # after the hand-off: off the path

    def _collect(self) -> list[_Waiter]:
        """Wait until the oldest request's batch is full or its delay is up, then take it."""
        with self._lock:
            deadline = self._pending[0].arrived + self.max_delay
            while not self._full() and (left := deadline - time.monotonic()) > 0:
                self._arrival.wait(left)
            head, taken, rows = self._pending[0], [], 0
            for waiter in self._pending:
                if waiter.key == head.key and rows + waiter.rows <= self.max_batch_size:
                    taken.append(waiter)
                    rows += waiter.rows
            self._pending = [w for w in self._pending if w not in taken]
        return taken

    def _run(self, taken: list[_Waiter]) -> None:
        """One forward for `taken`; each gets its rows, or the error if the forward raised."""
        try:
            outputs = self._forward(merge([w.batch for w in taken]))
            for waiter, part in zip(taken, split(outputs, [w.rows for w in taken]), strict=True):
                waiter.outputs = part
        except BaseException as exc:  # every batch-mate is answered, even on KeyboardInterrupt
            for waiter in taken:
                waiter.error = exc
        for waiter in taken:
            waiter.done = True
            waiter.answered.set()

    def _run_alone(self, batch: Batch, rows: int) -> dict[str, torch.Tensor]:
        try:
            return self._forward(batch)
        finally:
            self._observe(rows, 1)

    def _observe(self, rows: int, requests: int) -> None:
        if self._on_batch is None:
            return
        try:
            self._on_batch(rows, requests)
        except Exception:  # a metrics hook never fails the requests it counts
            logger.exception("on_batch observer failed")


def _reset_if_alive(reference: weakref.ref[Batcher]) -> None:
    batcher = reference()
    if batcher is not None:
        batcher._reset()
