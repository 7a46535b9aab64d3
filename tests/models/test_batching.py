"""Dynamic batching: merged forwards, rows routed back, limits, failures isolated, fork, CUDA."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import torch
from torch import nn

from errors import InvalidInput
from models import oip_tensors
from models.batcher import Batcher
from models.registry import ModelRegistry
from models.runner import ModelRunner
from tests.fixtures import MLP_MANIFEST, tiny_mlp
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
        return [call.shape[0] for call in self.calls]


@dataclass
class Observed:
    """An on_batch observer that keeps what it was told."""

    seen: list[tuple[Any, ...]] = field(default_factory=list)

    def __call__(self, *args: Any) -> None:
        self.seen.append(args)


def batching_runner(module: nn.Module, max_batch_size: int, max_delay_ms: float,
                    shape: str = "[-1, 3]", on_batch: Callable[[int, int], None] | None = None,
                    manifest: str | None = None, device: str = "cpu") -> ModelRunner:
    """A runner whose manifest has [batching], with its batcher built as the registry does."""
    section = f"[batching]\nmax_batch_size = {max_batch_size}\nmax_delay_ms = {max_delay_ms}\n"
    text = echo_manifest(shape=shape, limits=section) if manifest is None else manifest + section
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
    return lambda: runner.run(runner.prepare({"inputs": rows}))["y"]


def test_concurrent_requests_share_one_forward_in_a_request_thread():
    module, observed = Doubler(), Observed()
    runner = batching_runner(module, max_batch_size=8, max_delay_ms=PATIENT, on_batch=observed)
    inputs = [rows_of(i, 1) for i in range(8)]
    results, request_threads = concurrently([submit(runner, rows) for rows in inputs])
    assert module.rows() == [8]
    assert observed.seen == [(8, 8)]
    assert set(module.threads) <= request_threads  # leader/follower: no thread of its own
    for rows, result in zip(inputs, results, strict=True):
        assert torch.equal(result, torch.tensor(rows) * 2)


def test_each_request_gets_its_rows_of_the_unbatched_forward():
    runner = batching_runner(tiny_mlp(), max_batch_size=9, max_delay_ms=PATIENT,
                             manifest=MLP_MANIFEST)
    inputs = [rows_of(i, count, width=4) for i, count in enumerate([1, 3, 2, 1, 2])]
    results, _ = concurrently([lambda rows=rows: runner.predict({"inputs": rows})
                               for rows in inputs])
    for rows, result in zip(inputs, results, strict=True):
        alone = runner.render(runner.forward(runner.prepare({"inputs": rows})), named=False)
        assert result["labels"] == alone["labels"]
        torch.testing.assert_close(torch.tensor(result["outputs"]), torch.tensor(alone["outputs"]))


@pytest.mark.parametrize(("case", "max_batch_size", "counts"), [
    ("single rows", 3, [1] * 7),
    ("mixed rows", 4, [1, 2, 3, 1, 2, 3, 1, 2]),
    ("rows that just fit", 5, [4, 1, 4, 1, 3, 2]),
])
def test_no_batch_exceeds_max_batch_size(case, max_batch_size, counts):
    module = Doubler()
    runner = batching_runner(module, max_batch_size=max_batch_size, max_delay_ms=20)
    inputs = [rows_of(i, count) for i, count in enumerate(counts)]
    results, _ = concurrently([submit(runner, rows) for rows in inputs])
    assert max(module.rows()) <= max_batch_size
    assert sum(module.rows()) == sum(counts)
    for rows, result in zip(inputs, results, strict=True):
        assert torch.equal(result, torch.tensor(rows) * 2)


def test_a_lone_request_waits_at_most_about_max_delay():
    module, observed = Doubler(), Observed()
    runner = batching_runner(module, max_batch_size=64, max_delay_ms=50, on_batch=observed)
    started = time.monotonic()
    results, _ = concurrently([submit(runner, rows_of(1, 2))])
    assert time.monotonic() - started < 20  # a batch that never fills still runs (loose bound)
    assert module.rows() == [2] and observed.seen == [(2, 1)]
    assert torch.equal(results[0], torch.tensor(rows_of(1, 2)) * 2)


def test_an_invalid_request_is_refused_alone_and_its_batch_mates_run():
    module = Doubler()
    runner = batching_runner(module, max_batch_size=4, max_delay_ms=PATIENT)
    payloads = [{"inputs": rows_of(i, 1)} for i in range(4)]
    payloads.insert(2, {"inputs": [[1, 2]]})
    results, _ = concurrently([lambda p=p: runner.predict(p) for p in payloads])
    assert isinstance(results[2], InvalidInput)
    assert str(results[2]) == "inputs.x: expected shape [-1, 3], got [1, 2]"
    assert module.rows() == [4]
    for payload, result in zip(payloads, results, strict=True):
        if payload is not payloads[2]:
            assert result == {"outputs": [[2 * v for v in payload["inputs"][0]]]}


def test_a_failing_forward_fails_its_batch_and_not_the_requests_queued_behind_it():
    gate = threading.Event()
    module = Doubler(gate)
    runner = batching_runner(module, max_batch_size=2, max_delay_ms=PATIENT)
    first = in_background(lambda: concurrently(
        [submit(runner, [[POISON, 0, 0]]), submit(runner, rows_of(1, 1))]))
    wait_until(lambda: len(module.calls) == 1)  # the poisoned batch runs, held at the gate
    second = in_background(lambda: concurrently(
        [submit(runner, rows_of(2, 1)), submit(runner, rows_of(3, 1))]))
    wait_until(lambda: len(runner.batcher._pending) == 2)  # queued behind it
    gate.set()
    failed, _ = first()
    answered, _ = second()
    assert module.rows() == [2, 2]
    assert all(isinstance(e, RuntimeError) and str(e) == "poisoned batch" for e in failed)
    assert [r.tolist() for r in answered] == [[[400, 402, 404]], [[600, 602, 604]]]


def test_a_request_over_max_batch_size_runs_alone():
    module, observed = Doubler(), Observed()
    runner = batching_runner(module, max_batch_size=2, max_delay_ms=PATIENT, on_batch=observed)
    inputs = [rows_of(0, 5), rows_of(1, 1), rows_of(2, 1)]
    results, _ = concurrently([submit(runner, rows) for rows in inputs])
    assert sorted(module.rows()) == [2, 5]
    assert sorted(observed.seen) == [(2, 2), (5, 1)]
    for rows, result in zip(inputs, results, strict=True):
        assert torch.equal(result, torch.tensor(rows) * 2)


def test_requests_whose_trailing_shapes_differ_never_share_a_batch():
    module = Doubler()
    runner = batching_runner(module, max_batch_size=3, max_delay_ms=PATIENT, shape="[-1, -1]")
    inputs = [rows_of(i, 1, width=2 + i % 2) for i in range(6)]
    results, _ = concurrently([submit(runner, rows) for rows in inputs])
    assert sorted((call.shape[0], call.shape[1]) for call in module.calls) == [(3, 2), (3, 3)]
    for rows, result in zip(inputs, results, strict=True):
        assert torch.equal(result, torch.tensor(rows) * 2)


def test_a_forked_child_batches_although_the_parent_was_mid_batch():
    module = Doubler()
    runner = batching_runner(module, max_batch_size=2, max_delay_ms=PATIENT)
    waiting = threading.Thread(target=submit(runner, rows_of(0, 1)), daemon=True)
    waiting.start()
    wait_until(lambda: len(runner.batcher._pending) == 1)  # the state that is forked
    pid = os.fork()
    if pid == 0:  # the child: the parent's waiting request and its thread are not here
        code = 1
        try:
            inputs = [rows_of(1, 1), rows_of(2, 1)]
            results, _ = concurrently([submit(runner, rows) for rows in inputs])
            merged = module.rows()[-1] == 2
            right = all(torch.equal(r, torch.tensor(rows) * 2) for rows, r in zip(
                inputs, results, strict=True))
            code = 0 if merged and right else 1
        finally:
            os._exit(code)
    runner.run(runner.prepare({"inputs": rows_of(3, 1)}))  # fills the parent's batch
    waiting.join(timeout=30)
    assert _exit_code(pid, timeout=30) == 0


def _exit_code(pid: int, timeout: float) -> int | None:
    """The child's exit status, or None (after killing it) when it hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def test_without_batching_forward_runs_directly_in_the_caller():
    module = Doubler()
    runner = make_runner(echo_manifest(), module)
    threads_before = threading.active_count()
    assert runner.batcher is None
    assert runner.predict({"inputs": rows_of(0, 2)}) == {"outputs": [[0, 2, 4], [20, 22, 24]]}
    assert module.threads == [threading.get_ident()]
    assert threading.active_count() == threads_before


def test_open_inference_protocol_requests_go_through_the_batcher():
    module, observed = Doubler(), Observed()
    runner = batching_runner(module, max_batch_size=4, max_delay_ms=0, on_batch=observed)
    body = oip_tensors.infer(runner, {"inputs": [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})
    assert body["outputs"][0]["data"] == [2, 4, 6]
    assert observed.seen == [(1, 1)]


def test_a_failing_observer_fails_no_request():
    def broken(rows: int, requests: int) -> None:
        raise ValueError("metrics are down")

    runner = batching_runner(Doubler(), max_batch_size=4, max_delay_ms=0, on_batch=broken)
    assert runner.predict({"inputs": [[1, 2, 3]]}) == {"outputs": [[2, 4, 6]]}


@pytest.mark.parametrize(("case", "section", "batches"), [
    ("with [batching]", "[batching]\nmax_batch_size = 4\nmax_delay_ms = 0\n", True),
    ("without", "", False),
])
def test_registry_builds_a_batcher_only_for_batching_models(repository, keks, case, section,
                                                            batches):
    repository.add("mlp", manifest=MLP_MANIFEST + section, state=tiny_mlp().state_dict())
    observed = Observed()
    registry = ModelRegistry(repository.root, keks, "cpu", on_batch=observed)
    registry.load_all()
    runner = registry.get("mlp")
    assert (runner.batcher is not None) is batches
    runner.predict({"inputs": [[1, 2, 3, 4], [5, 6, 7, 8]]})
    assert observed.seen == ([("mlp", "1", 2, 1)] if batches else [])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.cuda.is_available() is False")
def test_batches_merge_on_cuda_and_match_cpu():
    module = Doubler().to("cuda:0")
    runner = batching_runner(module, max_batch_size=4, max_delay_ms=PATIENT, device="cuda:0")
    inputs = [rows_of(i, 1) for i in range(4)]
    results, _ = concurrently([submit(runner, rows) for rows in inputs])
    assert module.rows() == [4] and module.calls[0].is_cuda
    for rows, result in zip(inputs, results, strict=True):
        assert result.is_cuda and torch.equal(result.cpu(), torch.tensor(rows) * 2.0)
