"""The extraction monitor (security/extraction.py) against benign traffic and two attacks.

Run from the repository root: `.venv/bin/python benchmarks/extraction.py [--subjects 20]`.
It trains the demo digits model (models/demo.py, scikit-learn's bundled digits, no download),
then replays, one query per call, through the model's runner watched as the gateway watches it
(dataplane.watch: after inference, before the reply), with the monitor's default settings:

- benign: each of N subjects sends its own random order of held-out digits rows (the 25% the
  model never saw), `--queries` of them;
- random: uniformly random pixels in [0, 1] (probing with no natural data at all);
- jacobian: Papernot et al.'s Jacobian-based augmentation (the attack PRADA was built against):
  10 seed rows, one per digit, then rounds of x + step * sign(grad of the oracle's label),
  every new point queried; the demo model's own gradients stand in for the attacker's
  substitute, which only makes the attack's steps better aimed.

It prints the queries each attack took until its stream was flagged, the share of benign
subjects flagged (the false-positive rate: measured, not asserted) and what the watch adds to a
one-row call (a watched call's time less an unwatched call's on the same row). No HTTP, no
store: the monitor is per worker process, so this is what one worker sees.
benchmarks/README.md holds the figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataplane.watch import ExtractionWatch, Flag
from models import demo
from models.manifest import parse_manifest
from models.runner import ModelRunner
from models.zoo import MLP
from security.extraction import ExtractionMonitor, MonitorPolicy

MODEL = "digits"
FLAGS: list[Flag] = []


def trained_model() -> tuple[MLP, np.ndarray]:
    """The demo model as `flask demo init` trains it, and the held-out rows it never saw."""
    from safetensors.torch import load_file
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    with tempfile.TemporaryDirectory() as tmp:
        result = demo.train_digits(Path(tmp))
        state = load_file(str(result.safetensors_path))
    model = MLP(64, list(demo.HIDDEN), 10)
    model.load_state_dict(state)
    digits = load_digits()
    _, held_out = train_test_split(digits.data / 16.0, test_size=demo.TEST_FRACTION,
                                   random_state=0, stratify=digits.target)
    return model.eval(), held_out.astype(np.float32)


def labels(model: MLP, rows: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(rows)).argmax(dim=1).numpy()


def jacobian_queries(model: MLP, seeds: np.ndarray, count: int, step: float) -> np.ndarray:
    """Seeds, then each round's augmented points, in the order the attacker queries them."""
    known = seeds
    queried = [seeds]
    while sum(len(q) for q in queried) < count:
        x = torch.from_numpy(known).requires_grad_(True)
        scores = model(x)
        picked = scores.gather(1, scores.argmax(dim=1, keepdim=True)).sum()
        (gradient,) = torch.autograd.grad(picked, x)
        fresh = np.clip(known + step * np.sign(gradient.numpy()), 0.0, 1.0).astype(np.float32)
        queried.append(fresh)
        known = np.concatenate([known, fresh])
    return np.concatenate(queried)[:count]


def runner_of(model: MLP) -> ModelRunner:
    manifest = parse_manifest(tomllib.loads(demo.manifest_text()), MODEL)
    return ModelRunner(manifest, model, torch.device("cpu"), "1")


def replay(watch: ExtractionWatch, runner: ModelRunner, subject: str, rows: np.ndarray,
           costs: list[float]) -> int | None:
    """Queries sent until the stream was flagged, or None."""
    flagged_before = len(FLAGS)
    for sent, row in enumerate(rows, start=1):
        batch = {"pixels": torch.from_numpy(row[None, :])}
        started = time.perf_counter()
        runner.run(batch)
        plain = time.perf_counter() - started
        started = time.perf_counter()
        watch.watched(runner, subject, f"bench-{sent}").run(batch)
        costs.append(time.perf_counter() - started - plain)
        if len(FLAGS) > flagged_before:
            return sent
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20, help="benign subjects")
    parser.add_argument("--queries", type=int, default=400, help="queries per stream")
    parser.add_argument("--step", type=float, default=0.1, help="Jacobian augmentation step")
    parser.add_argument("--threshold", type=float, default=MonitorPolicy.threshold)
    args = parser.parse_args()
    model, held_out = trained_model()
    runner = runner_of(model)
    monitor = ExtractionMonitor(MonitorPolicy(threshold=args.threshold))
    watch = ExtractionWatch(monitor, refuse=False, on_flag=FLAGS.append)
    rng = np.random.default_rng(0)
    timings: list[float] = []
    benign = [replay(watch, runner, f"benign-{n}", rng.permutation(held_out)[:args.queries],
                     timings) for n in range(args.subjects)]
    flagged = [n for n in benign if n is not None]
    print(f"policy: {monitor.policy}")
    print(f"benign: {len(flagged)} of {args.subjects} subjects flagged "
          f"(false-positive rate {len(flagged) / args.subjects:.0%}), after {flagged} queries")
    attacks = {
        "random": rng.uniform(0, 1, (args.queries, 64)).astype(np.float32),
        "jacobian": jacobian_queries(model, _seeds(model, held_out), args.queries, args.step),
    }
    for name, rows in attacks.items():
        sent = replay(watch, runner, f"attacker-{name}", rows, timings)
        print(f"{name}: flagged after {sent} queries" if sent else
              f"{name}: not flagged in {len(rows)} queries")
    micros = sorted(t * 1e6 for t in timings)
    print(f"watch cost added to a one-row call: median {statistics.median(micros):.0f} µs, "
          f"p99 {micros[int(len(micros) * 0.99)]:.0f} µs over {len(micros)} calls")


def _seeds(model: MLP, rows: np.ndarray) -> np.ndarray:
    """One held-out row per predicted digit: the attacker's few natural samples."""
    classes = labels(model, rows)
    return np.stack([rows[np.flatnonzero(classes == digit)[0]] for digit in range(10)])


if __name__ == "__main__":
    main()
