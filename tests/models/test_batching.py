"""Dynamic batching: merged forwards, rows routed back, limits, shapes, failures isolated."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from errors import InvalidInput
from models.output_policy import FULL_SCORES
from tests.fixtures import MLP_MANIFEST, tiny_mlp
from tests.models.concurrent_requests import (
    PATIENT,
    POISON,
    Doubler,
    Observed,
    batching_runner,
    concurrently,
    in_background,
    rows_of,
    submit,
    wait_until,
)


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
        alone = runner.render(FULL_SCORES.apply(
            runner.forward(runner.prepare({"inputs": rows})), "scores"), named=False)
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


@pytest.mark.parametrize(("dtype", "torch_dtype"), [
    ("int64", torch.int64), ("float64", torch.float64), ("uint8", torch.uint8),
])
def test_merged_batches_keep_the_declared_dtype(dtype, torch_dtype):
    module = Doubler()
    runner = batching_runner(module, max_batch_size=3, max_delay_ms=PATIENT, dtype=dtype)
    inputs = [[[i, i + 1, i + 2]] for i in range(3)]
    results, _ = concurrently([submit(runner, rows) for rows in inputs])
    assert module.rows() == [3] and module.calls[0].dtype == torch_dtype
    for rows, result in zip(inputs, results, strict=True):
        assert result.dtype == torch_dtype and result.tolist() == [[2 * v for v in rows[0]]]


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
