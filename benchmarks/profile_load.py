"""Where a gateway worker's time goes under HTTP load: py-spy on each worker, own time per function.

    .venv/bin/python benchmarks/profile_load.py [--case sealed] [--seconds 8] [--gil] [--top 25]

Starts the same server as benchmarks/http_load.py (the `sealed` or `plain` case, SQLite store),
drives it with 8 keep-alive connections, and meanwhile samples every gunicorn worker with
`py-spy record --format raw` (needs py-spy: `.venv/bin/pip install py-spy`). Prints the
functions holding the most samples as the innermost frame (own time), as a share of all samples;
`--gil` counts only samples where the thread held the GIL, i.e. Python work, not waiting.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_load
import loadgen
from gunicorn_server import _parent, start_server, stop

PY_SPY = Path(sys.executable).parent / "py-spy"


def workers_of(master: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and _parent(p) == master]


# Steps of a request, by a frame that only that step runs; a sample counts for the innermost
# step on its stack (so the envelope inside the dataplane counts as the envelope).
STEPS = (
    ("token (signature or cache, claims)", "guard.py"),
    ("shared store: revocation, replay, rate limit", "SqliteStore."),
    ("shared store: revocation, replay, rate limit", "RedisStore."),
    ("shared store: revocation, replay, rate limit", "flask_limiter"),
    ("envelope open (JWE, AES-GCM)", "open_envelope"),
    ("reply seal (JSON, AES-GCM)", "seal_envelope"),
    ("inputs, forward, outputs (runner)", "ModelRunner.predict"),
    ("audit record", "app/audit.py"),
    ("access log line", "requestlog.py"),
    ("metrics", "app/metrics.py"),
    ("request facts and record", "app/lifecycle.py"),
    ("Flask / werkzeug", "flask/app.py"),
    ("gunicorn (HTTP parsing, gthread)", "gunicorn/"),
    ("idle / other threads", "concurrent/futures/thread.py"),
)


def own_time(raw_files: list[Path], by_step: bool) -> tuple[collections.Counter, int]:
    """Samples per innermost frame ("function (file:line)") or per request step, and the
    total."""
    counts: collections.Counter = collections.Counter()
    total = 0
    for path in raw_files:
        for line in path.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            if not stack:
                continue
            frames = stack.split(";")
            counts[step_of(frames) if by_step else frames[-1]] += int(samples)
            total += int(samples)
    return counts, total


def step_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for step, marker in STEPS:
            if marker in frame:
                return step
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="sealed", choices=["sealed", "plain"])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    parser.add_argument("--by-step", action="store_true",
                        help="group samples by request step (inclusive) instead of function")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile-load-") as tmp:
        root = Path(tmp)
        weights = http_load.write_weights(root)
        env, creds = http_load.gateway_instance(
            root / args.case, weights, "optional" if args.case == "plain" else "required",
            {"store_url": "sqlite"})
        env["TORCHGATE_MAX_REQUESTS"] = "0"
        port = 18000 + (hash(tmp) % 20000)
        server = start_server("wsgi:app", env, port, root / "server.log")
        try:
            loadgen.run(port, http_load.request_lists(args.case, port, creds, 8, 50), 1.0, 2)
            plan = http_load.request_lists(args.case, port, creds, 8, 6000)
            outputs = [root / f"{pid}.txt" for pid in workers_of(server.pid)]
            spies = [subprocess.Popen(
                [str(PY_SPY), "record", "--pid", out.stem, "--duration", str(int(args.seconds)),
                 "--format", "raw", "--rate", "500", "--output", str(out), "--nonblocking",
                 *(["--gil"] if args.gil else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for out in outputs]
            result = loadgen.run(port, plan, args.seconds, 2)
            for spy in spies:
                spy.wait(60)
        finally:
            stop(server)
        counts, total = own_time([out for out in outputs if out.exists()], args.by_step)
    print(f"{args.case}: {len(result.latencies) / result.seconds:,.0f} req/s while sampled; "
          f"{total} samples{' holding the GIL' if args.gil else ''}")
    print(f"| share of samples | {'step' if args.by_step else 'function (own time)'} |\n|---:|---|")
    for leaf, samples in counts.most_common(args.top):
        print(f"| {100 * samples / max(1, total):.1f} % | `{leaf}` |")


if __name__ == "__main__":
    main()
