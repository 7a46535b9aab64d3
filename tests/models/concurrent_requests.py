"""Concurrent clients of a batching runner: a recording module, threads released together."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from models.batcher import Batcher
from models.runner import ModelRunner
from tests.models.conftest import echo_manifest, make_runner

POISON = -7.0
PATIENT = 60_000  # ms: a batch then starts only when full, so which requests merge is certain


class Doubler(nn.Module):
    """Returns 2x its input; records every forward's input and thread; a POISON value raises
    (once `gate`, when given, is open)."""

    def __init__(self, gate: threading.Event | None = None):
        super().__init__()
        self.calls: list[torch.Tensor] = []
        self.threads: list[int] = []
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.clone())
        self.threads.append(threading.get_ident())
        if (x == POISON).any():
            if self.gate is not None:
                self.gate.wait(timeout=30)
            raise RuntimeError("poisoned batch")
        return x * 2

    def rows(self) -> list[int]:
        """Rows of each forward call, in call order."""
        return [call.shape[0] for call in self.calls]


@dataclass
class Observed:
    """An on_batch observer that keeps what it was told."""

    seen: list[tuple[Any, ...]] = field(default_factory=list)

    def __call__(self, *args: Any) -> None:
        self.seen.append(args)


def batching_runner(module: nn.Module, max_batch_size: int, max_delay_ms: float, *,
                    shape: str = "[-1, 3]", dtype: str = "float32",
                    on_batch: Callable[[int, int], None] | None = None,
                    manifest: str | None = None, device: str = "cpu") -> ModelRunner:
    """A runner whose manifest has [batching], with its batcher built as the registry does."""
    section = f"[batching]\nmax_batch_size = {max_batch_size}\nmax_delay_ms = {max_delay_ms}\n"
    text = echo_manifest(dtype, shape, limits=section) if manifest is None else manifest + section
    runner = make_runner(text, module, device=device)
    return replace(runner, batcher=Batcher(runner.forward, runner.manifest.batching, on_batch))


def concurrently(calls: list[Callable[[], Any]]) -> tuple[list[Any], set[int]]:
    """Each call in its own thread, released together: results (or raised errors) in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def work(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=work, args=item, daemon=True) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a request never returned"
    return results, {thread.ident for thread in threads}


def in_background(call: Callable[[], Any]) -> Callable[[], Any]:
    """Start `call` in a thread; the returned function joins it and gives its result."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
    thread.start()

    def join() -> Any:
        thread.join(timeout=30)
        assert box, "the background call never returned"
        return box[0]
    return join


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll `condition` (a state the test sets up, not a timing assumption) for up to 10 s."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the expected state never came"
        time.sleep(0.001)


def rows_of(index: int, count: int, width: int = 3) -> list[list[float]]:
    """`count` distinct rows for request `index`: no two requests send the same numbers."""
    return [[index * 100 + r * 10 + c for c in range(width)] for r in range(count)]


def submit(runner: ModelRunner, rows: list[list[float]]) -> Callable[[], torch.Tensor]:
    """A call that checks `rows` as one request and runs it as /predict and /v2 do."""
    return lambda: runner.run(runner.prepare({"inputs": rows}))["y"]
