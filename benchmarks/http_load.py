"""HTTP load under gunicorn on 127.0.0.1: a bare Flask + torch app against the full gateway.

    .venv/bin/python benchmarks/http_load.py [--models small,medium] [--connections 1,8,32]
        [--cases bare,sealed,plain,sealed-batched,sealed-hpke,sealed-hpke-x25519] [--seconds 10]
        [--store-url ...]
        [--database-url ...] [--threads N] [--workers N]

Each (model, case) is its own gunicorn (`-c gunicorn.conf.py`, 2 workers): started, then for each
connection count warmed up for 1 s and measured for --seconds, then stopped. Models, one row per
request: small = models.zoo.MLP 64 -> 64 -> 10; medium = MLP 1024 -> 4096 -> 4096 -> 1000.
  bare            a script-local Flask app: JSON in, torch forward, JSON out; no auth, no logging
  sealed          the gateway's POST /predict/bench: JWT, permission, JWE envelope (every one
                  distinct, sealed beforehand), admission (revocation, rate count, replay claim),
                  inputs check, forward, sealed reply, audit record, access log, metrics
  plain           the same with PAYLOAD_ENCRYPTION=optional and a plain application/json body
  sealed-batched  sealed, with model.toml [batching] max_batch_size = 32, max_delay_ms = 2
  sealed-hpke     sealed, but to the gateway's X-Wing key (HPKE, docs/envelope-hpke.md): no
                  payload key; the reply under a key exported from the request's context
  sealed-hpke-x25519  the same to the gateway's X25519 key (HPKE-3)
`÷ bare` divides a row's req/s by the bare row's of the same model and connections, same run.
The load generator (benchmarks/loadgen.py) keeps one connection per thread alive and shares the
machine's CPUs with the server: the table gives both CPU shares and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
from gunicorn_server import group_cpu_seconds, start_server, stop

MODELS = {"small": {"in_features": 64, "hidden": [64], "out_features": 10},
          "medium": {"in_features": 1024, "hidden": [4096, 4096], "out_features": 1000}}
BATCHED = (32, 2)  # the sealed-batched case: max_batch_size, max_delay_ms
HPKE_CASES = {"sealed-hpke": "HPKE-XWING-SHA256-A256GCM", "sealed-hpke-x25519": "HPKE-3"}


def row_for(model: str) -> list[float]:
    return [round(0.001 * (i % 1000), 3) for i in range(MODELS[model]["in_features"])]


def manifest(model: str, batching: tuple[int, float] | None = None) -> str:
    """model.toml of one of MODELS, with a [batching] section when (rows, delay ms) is given."""
    arguments = MODELS[model]
    return (f'architecture = "models.zoo:MLP"\n[arguments]\n'
            f'in_features = {arguments["in_features"]}\nhidden = {arguments["hidden"]}\n'
            f'out_features = {arguments["out_features"]}\n'
            f'[[inputs]]\nname = "pixels"\nshape = [-1, {arguments["in_features"]}]\n'
            f'dtype = "float32"\n[[outputs]]\nname = "logits"\n'
            f'shape = [-1, {arguments["out_features"]}]\ndtype = "float32"\n'
            + ("" if batching is None else
               f"[batching]\nmax_batch_size = {batching[0]}\nmax_delay_ms = {batching[1]}\n"))


def bare_app():
    """The baseline: Flask + torch with the same weights, nothing else (gunicorn factory)."""
    import torch
    from flask import Flask, request
    from safetensors.torch import load_file

    from models.zoo import MLP

    model = MLP(**MODELS[os.environ.get("BENCH_MODEL", "small")])
    model.load_state_dict(load_file(os.environ["BENCH_WEIGHTS"]))
    model.eval().requires_grad_(False)
    app = Flask("bare")

    @app.post("/predict")
    def predict():
        x = torch.tensor(request.get_json()["inputs"], dtype=torch.float32)
        with torch.inference_mode():
            return {"outputs": model(x).tolist()}

    return app


def write_weights(root: Path, model: str = "small") -> Path:
    """The benchmark MLP's weights as plain safetensors (fixed seed)."""
    import torch
    from safetensors.torch import save_file

    from models.zoo import MLP
    torch.manual_seed(0)
    path = root / f"{model}.safetensors"
    save_file(MLP(**MODELS[model]).state_dict(), str(path))
    return path


def gateway_instance(root: Path, weights: Path, encryption: str, backends: dict[str, str],
                     model: str = "small",
                     batching: tuple[int, float] | None = None) -> tuple[dict, dict]:
    """A production instance serving the MLP sealed: (server environment, caller credentials)."""
    from app import create_app
    from app.gateway import current_gateway
    from security.encoding import b64url_encode
    from security.sealed import seal_file

    kek, repo, instance = secrets.token_bytes(32), root / "models", root / "instance"
    (repo / "bench" / "1").mkdir(parents=True)
    (repo / "bench" / "model.toml").write_text(manifest(model, batching))
    seal_file(weights, repo / "bench" / "1" / "model.safetensors.sealed", model="bench",
              version="1", kek_id="bench", kek=kek)
    settings = {"env": "production", "instance_dir": str(instance), "device": "cpu",
                "model_repository": str(repo), "payload_encryption": encryption,
                "rate_limit_predict": "100000000/minute",  # count every call, never refuse one
                "jwt_secret": secrets.token_urlsafe(48),
                "model_keys": f"bench:{b64url_encode(kek)}",
                "master_key": b64url_encode(secrets.token_bytes(32)), **backends}
    username, password = f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    app = create_app(settings)
    with app.app_context():
        gateway = current_gateway()
        gateway.directory.create_user(username, password, ["analyst"])
        issued = gateway.keyring.issue(username)
        gateway_keys = [gateway.gateway_keys.generate("enc", alg).public_jwk()
                        for alg in HPKE_CASES.values()]
        gateway.engine.dispose()
    env = {f"TORCHGATE_{k.upper()}": str(v) for k, v in settings.items()}
    return env, {"username": username, "password": password, "kid": issued.kid,
                 "key": issued.key, "gateway_keys": {k["alg"]: k for k in gateway_keys}}


def request_lists(case: str, port: int, creds: dict, connections: int, per_connection: int,
                  model: str = "small") -> list[list[bytes]]:
    """What each connection sends: the same plain bytes, or distinct sealed envelopes."""
    body = json.dumps({"inputs": [row_for(model)]}).encode()
    if case == "bare":
        return [[loadgen.build_request("/predict", body, {"Content-Type": "application/json"})]
                * per_connection for _ in range(connections)]
    form = (f"grant_type=password&username={creds['username']}"
            f"&password={creds['password']}").encode()
    login = urllib.request.Request(f"http://127.0.0.1:{port}/auth/token", data=form,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(login, timeout=30) as reply:  # noqa: S310
        token = json.loads(reply.read())["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    if case == "plain":
        request = loadgen.build_request("/predict/bench", body,
                                        {**headers, "Content-Type": "application/json"})
        return [[request] * per_connection for _ in range(connections)]
    sealed = {**headers, "Content-Type": "application/jose+json"}
    if case in HPKE_CASES:
        return [[loadgen.build_request("/predict/bench", hpke_body(
            body, creds["gateway_keys"][HPKE_CASES[case]], token), sealed)
            for _ in range(per_connection)] for _ in range(connections)]
    from security.envelope import seal_envelope
    return [[loadgen.build_request("/predict/bench", seal_envelope(body, key=creds["key"],
                                                                   kid=creds["kid"]), sealed)
             for _ in range(per_connection)] for _ in range(connections)]


def hpke_body(body: bytes, jwk: dict, token: str) -> bytes:
    """A distinct HPKE envelope of `body` to the gateway key `jwk`, bound to `token`."""
    from security.envelope_hpke import seal_hpke
    from security.gateway_key_algs import hpke_public_key
    algorithm, public_key = hpke_public_key(jwk)
    return seal_hpke(body, public_key=public_key, algorithm=algorithm, kid=jwk["kid"],
                     token=token).body


def serve(case: str, model: str, root: Path, weights: Path, backends: dict[str, str],
          server_env: dict[str, str]):
    """Start the case's server: (process, port, caller credentials)."""
    port = 18000 + secrets.randbelow(20000)
    env, creds = {"BENCH_WEIGHTS": str(weights), "BENCH_MODEL": model}, {}
    target = "http_load:bare_app()"
    if case != "bare":
        env, creds = gateway_instance(root / f"{model}-{case}", weights,
                                      "optional" if case == "plain" else "required", backends,
                                      model, BATCHED if case == "sealed-batched" else None)
        target = "wsgi:app"
    env.update(server_env, TORCHGATE_MAX_REQUESTS="0")  # no worker recycling while measured
    return start_server(target, env, port, root / f"{model}-{case}.log"), port, creds


def measure(server, port: int, case: str, model: str, creds: dict, connections: int,
            args: argparse.Namespace) -> dict:
    per_connection = max(200, min(args.per_connection, int(args.budget / connections)))
    warm = request_lists(case, port, creds, connections, 50, model)
    loadgen.run(port, warm, 1.0, min(args.processes, connections))
    plan = request_lists(case, port, creds, connections, per_connection, model)
    load_before, cpu_before = os.getloadavg()[0], group_cpu_seconds(server.pid)
    result = loadgen.run(port, plan, args.seconds, min(args.processes, connections))
    server_cpu = group_cpu_seconds(server.pid) - cpu_before
    done = len(result.latencies)
    ordered = sorted(result.latencies) or [float("nan")]
    return {"model": model, "case": case, "connections": connections, "requests": done,
            "rps": done / result.seconds, "p50_ms": statistics.median(ordered) * 1e3,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
            "non_200": result.errors + sum(n for s, n in result.statuses.items() if s != 200),
            "server_cores": server_cpu / result.seconds,
            "client_cores": result.client_cpu_seconds / result.seconds,
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "ran_out": done >= connections * per_connection}


@contextmanager
def database(server_url: str) -> Iterator[str]:
    """A fresh database on server_url for the run (dropped after), or "" for SQLite."""
    if not server_url:
        yield ""
        return
    from tests.ops.services import fresh_database
    with fresh_database(server_url) as url:
        yield url


def print_row(row: dict, bare: dict | None) -> None:
    note = " (ran out of prepared requests)" if row["ran_out"] else ""
    ratio = f"{row['rps'] / bare['rps']:.2f}" if bare else "–"
    print(f"| {row['model']} | {row['case']}{note} | {row['connections']} | {row['rps']:,.0f} | "
          f"{ratio} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['non_200']} | "
          f"{row['server_cores']:.2f} | {row['client_cores']:.2f} | "
          f"{row['load_before']:.1f} → {row['load_after']:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", default="8",
                        help="comma-separated keep-alive connection counts, e.g. 1,8,32")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--per-connection", type=int, default=40000,
                        help="requests prepared per connection (distinct sealed envelopes)")
    parser.add_argument("--budget", type=int, default=80000,
                        help="at most this many requests prepared per measurement")
    parser.add_argument("--models", default="small", help="small, medium or both")
    parser.add_argument("--cases", default="bare,sealed,plain")
    parser.add_argument("--store-url", default="sqlite",
                        help="STORE_URL of the gateway cases, e.g. redis://127.0.0.1:6379/14")
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server: the gateway cases get a fresh database on it")
    parser.add_argument("--threads", type=int, help="TORCHGATE_THREADS (gunicorn.conf.py's "
                        "default when not given)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="more gunicorn.conf.py settings, e.g. TORCHGATE_KEEPALIVE=10")
    args = parser.parse_args()
    connection_counts = [int(n) for n in args.connections.split(",")]
    server_env = {"TORCHGATE_WORKERS": str(args.workers),
                  **({"TORCHGATE_THREADS": str(args.threads)} if args.threads else {}),
                  **dict(item.split("=", 1) for item in args.server_env)}
    print(f"{os.cpu_count()} CPUs, {args.workers} workers, keep-alive connections "
          f"{args.connections} in up to {args.processes} client processes, {args.seconds:g} s "
          f"per case, store {args.store_url.split('@')[-1]}, database "
          f"{'postgresql' if args.database_url else 'sqlite'}", file=sys.stderr)
    print("| model | case | connections | req/s | ÷ bare | p50 ms | p99 ms | non-200 | "
          "server CPU (cores) | client CPU (cores) | load avg 1 min (before → after) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="http-load-") as tmp, \
            database(args.database_url) as database_url:
        root = Path(tmp)
        backends = {"store_url": args.store_url, **({"database_url": database_url}
                                                    if database_url else {})}
        for model in args.models.split(","):
            weights = write_weights(root, model)
            bare: dict[int, dict] = {}
            for case in args.cases.split(","):
                server, port, creds = serve(case, model, root, weights, backends, server_env)
                try:
                    for connections in connection_counts:
                        row = measure(server, port, case, model, creds, connections, args)
                        if case == "bare":
                            bare[connections] = row
                        print_row(row, bare.get(connections))
                finally:
                    stop(server)


if __name__ == "__main__":
    main()
