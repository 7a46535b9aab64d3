"""What the rate limiter and the metrics hooks add to one request: a markdown table of µs.

Each case is timed inside a fresh Flask request context per call (the context itself untimed):
- limiter check: the per-subject guard a model call runs (flask-limiter + one counter hit in
  the store), per backend, the counter hit alone, and with the limit switched off
  (flask-limiter's own work only);
- limiter middleware: flask-limiter's before_request hook, run on every request;
- metrics hooks: before_request + after_request (counter and histogram) + teardown, with a
  per-app registry, and in multiprocess mode (a child process with PROMETHEUS_MULTIPROC_DIR set).
Run:
    .venv/bin/python benchmarks/ratelimit_metrics_cost.py [--redis-url redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flask import Flask, Response, g  # noqa: E402
from flask_jwt_extended import create_access_token  # noqa: E402

from app import create_app, metrics, ratelimit  # noqa: E402
from security.encoding import b64url_encode  # noqa: E402
from security.envelope import seal_envelope  # noqa: E402
from security.tokens import Identity  # noqa: E402
from tests.conftest import KEK, KEK_ID, write_tiny_model  # noqa: E402

UNLIMITED = "1000000000/hour"


def build_app(root: Path, **settings: str) -> Flask:
    repository = root / "models"
    if not repository.exists():
        write_tiny_model(repository)
    return create_app({"env": "testing", "instance_dir": str(root / f"i-{uuid.uuid4().hex}"),
                       "model_repository": str(repository), "device": "cpu",
                       "model_keys": f"{KEK_ID}:{b64url_encode(KEK)}", "log_level": "WARNING",
                       **settings})


def time_in_requests(app: Flask, step: Callable[[], object], n: int) -> list[float]:
    """µs of `step` in each of n POST /predict/tiny request contexts, after a warm-up."""
    samples = []
    for i in range(n + 200):
        with app.test_request_context("/predict/tiny", method="POST"):
            g.identity = Identity(f"bench-{i % 50}", ("analyst",), "jti", None, 0)
            g.model, g.model_version = "tiny", "1"
            start = time.perf_counter_ns()
            step()
            samples.append((time.perf_counter_ns() - start) / 1000)
    return samples[200:]


def row(name: str, samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[int(len(samples) * 0.99)]
    return (f"| {name} | {statistics.mean(samples):.1f} | {statistics.median(samples):.1f} | "
            f"{p99:.1f} |")


def limiter_rows(root: Path, redis_url: str, n: int) -> list[str]:
    rows = []
    for name, settings in (("limiter check, limit off", {"rate_limit_predict": ""}),
                           ("limiter check, sqlite", {"rate_limit_predict": UNLIMITED}),
                           ("limiter check, redis", {"rate_limit_predict": UNLIMITED,
                                                     "store_url": redis_url})):
        app = build_app(root, **settings)
        state = app.extensions[ratelimit.EXTENSION]
        rows.append(row(name, time_in_requests(app, state.guards["predict"], n)))
        if settings["rate_limit_predict"]:
            storage, key = state.limiter.storage, f"bench-{uuid.uuid4().hex}"
            rows.append(row(f"  of which the counter hit ({type(storage.store).__name__}.incr)",
                            time_in_requests(app, partial(storage.incr, key, 3600), n)))
    app = build_app(root)
    middleware = app.extensions[ratelimit.EXTENSION].limiter._check_request_limit
    rows.append(row("limiter middleware (every request)", time_in_requests(app, middleware, n)))
    return rows


def predict_row(root: Path, n: int) -> str:
    """For scale: a whole sealed POST /predict/tiny through the test client, hooks included."""
    app = build_app(root, rate_limit_predict=UNLIMITED)
    with app.app_context():
        issued = app.extensions["torchgate"].keyring.issue("bench")
        token = create_access_token("bench", additional_claims={"roles": ["analyst"]})
    client, headers = app.test_client(), {"Authorization": f"Bearer {token}"}
    samples = []
    for i in range(n // 5 + 50):
        body = seal_envelope(b'{"inputs": [[0.1, 0.2, 0.3, 0.4]]}', key=issued.key,
                             kid=issued.kid)
        start = time.perf_counter_ns()
        response = client.post("/predict/tiny", data=body, headers=headers,
                               content_type="application/jose+json")
        samples.append((time.perf_counter_ns() - start) / 1000)
        assert response.status_code == 200, (i, response.status_code)
    return row("for scale: whole sealed POST /predict/tiny", samples[50:])


def metrics_row(root: Path, n: int, label: str) -> str:
    app = build_app(root)

    def hooks() -> None:
        metrics._start()
        metrics._record(Response(status=200))
        metrics._finish(None)
    return row(label, time_in_requests(app, hooks, n))


def multiprocess_metrics_row(n: int) -> str:
    """The metrics row measured in a child process writing to a PROMETHEUS_MULTIPROC_DIR."""
    with tempfile.TemporaryDirectory() as metrics_dir:
        env = {**os.environ, metrics.MULTIPROC_ENV: metrics_dir}
        done = subprocess.run([sys.executable, __file__, "--metrics-only", "-n", str(n)],
                              env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("-n", type=int, default=5000, help="calls per case")
    parser.add_argument("--metrics-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.metrics_only:
            print(metrics_row(Path(tmp), args.n, "metrics hooks, multiprocess files"))
            return
        rows = ["| case | mean µs | median µs | p99 µs |", "|---|---:|---:|---:|"]
        rows += limiter_rows(Path(tmp), args.redis_url, args.n)
        rows.append(metrics_row(Path(tmp), args.n, "metrics hooks, per-app registry"))
        rows.append(predict_row(Path(tmp), args.n))
    rows.append(multiprocess_metrics_row(args.n))
    print("\n".join(rows))
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
