"""Dynamic batching wired in: after fork, without [batching], /v2 tensors, observer, registry."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from models import oip_tensors
from models.registry import ModelRegistry
from tests.fixtures import MLP_MANIFEST, tiny_mlp
from tests.models.concurrent_requests import (
    PATIENT,
    Doubler,
    Observed,
    batching_runner,
    concurrently,
    rows_of,
    submit,
    wait_until,
)
from tests.models.conftest import echo_manifest, make_runner


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


