"""Requests per second and latency of ModelRunner.predict with and without dynamic batching.

Run from the repository root: `.venv/bin/python benchmarks/batching.py [--seconds 5]`.
One process: N threads each call `predict` on one row of a medium MLP (1024 -> 4096 -> 4096 ->
1000, random weights) in a loop, for each N and each setting, after a warm-up. It measures and
prints; it asserts nothing. torch keeps its own intra-op thread count (printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_load  # the medium MLP's model.toml, shared with the HTTP benchmark

from models.batcher import Batcher
from models.manifest import parse_manifest
from models.runner import ModelRunner
from models.zoo import MLP


@dataclass(frozen=True)
class Result:
    """One line of the table: a setting under N client threads."""

    setting: str
    threads: int
    requests: int
    seconds: float
    latencies: list[float]
    batch_rows: list[int]

    def line(self) -> str:
        ordered = sorted(self.latencies)
        p50 = ordered[len(ordered) // 2] * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        mean_rows = statistics.fmean(self.batch_rows) if self.batch_rows else 1.0
        return (f"| {self.setting} | {self.threads} | {self.requests / self.seconds:,.1f} | "
                f"{p50:.2f} | {p99:.2f} | {mean_rows:.1f} |")


def build_runner(batching: tuple[int, float] | None, rows_seen: list[int]) -> ModelRunner:
    """The MLP runner, with a batcher as the registry builds it when `batching` is given."""
    manifest = parse_manifest(tomllib.loads(http_load.manifest("medium", batching)), "bench")
    torch.manual_seed(0)
    module = MLP(**manifest.arguments).eval()
    runner = ModelRunner(manifest, module, torch.device("cpu"), "1")
    runner.warm_up()
    if manifest.batching is None:
        return runner
    observe = lambda rows, requests: rows_seen.append(rows)  # noqa: E731
    return replace(runner, batcher=Batcher(runner.forward, manifest.batching, observe))


def drive(runner: ModelRunner, threads: int, seconds: float) -> tuple[int, list[float]]:
    """`threads` clients calling predict back to back for `seconds`: count and latencies."""
    width = runner.manifest.inputs[0].shape[1]
    payloads = [{"inputs": [[random.uniform(-1, 1) for _ in range(width)]]} for _ in range(64)]
    latencies: list[list[float]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def client(index: int) -> None:
        mine = latencies[index]
        start.wait()
        n = index
        while not stop.is_set():
            began = time.perf_counter()
            runner.predict(payloads[n % len(payloads)])
            mine.append(time.perf_counter() - began)
            n += 1

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    every = [latency for mine in latencies for latency in mine]
    return len(every), every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per case")
    parser.add_argument("--threads", default="1,8,32", help="client thread counts")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-delay-ms", type=float, default=2.0)
    args = parser.parse_args()
    settings: dict[str, tuple[int, float] | None] = {
        "no batching": None,
        f"batching {args.max_batch_size} rows / {args.max_delay_ms:g} ms":
            (args.max_batch_size, args.max_delay_ms),
    }
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, torch {torch.__version__} with "
          f"{torch.get_num_threads()} intra-op threads, Python {platform.python_version()}")
    print("\n| setting | client threads | req/s | p50 ms | p99 ms | mean rows per forward |")
    print("|---|---|---|---|---|---|")
    for threads in (int(n) for n in args.threads.split(",")):
        for setting, batching in settings.items():
            rows_seen: list[int] = []
            runner = build_runner(batching, rows_seen)
            drive(runner, threads, min(1.0, args.seconds))  # warm-up
            rows_seen.clear()
            count, latencies = drive(runner, threads, args.seconds)
            print(Result(setting, threads, count, args.seconds, latencies, rows_seen).line(),
                  flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
