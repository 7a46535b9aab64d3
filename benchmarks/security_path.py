"""Cost of each security step on the /predict hot path, and of a whole request, in µs.

    .venv/bin/python benchmarks/security_path.py [--store redis://127.0.0.1:6379/15]

Steps are timed in isolation with timeit (best of 5 repeats, median-free: the minimum is the
least disturbed figure on a shared machine); the whole request goes through Flask's test client.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def build_app(tmp: Path, store_url: str):
    from app import create_app
    from tests.conftest import instance_overrides, write_tiny_model
    write_tiny_model(tmp / "repository")
    return create_app(instance_overrides(tmp / "instance", tmp / "repository",
                                         store_url=store_url))


def measure(store_url: str) -> list[tuple[str, float]]:
    from flask_jwt_extended import create_access_token, verify_jwt_in_request

    from app.gateway import current_gateway
    from security.admission import AdmissionRequest, RateLimit
    from security.envelope import open_envelope, seal_envelope

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        app = build_app(Path(tmp), store_url)
        with app.app_context():
            gw = current_gateway()
            token = create_access_token("alice", additional_claims={"roles": ["analyst"]})
            issued = gw.keyring.issue("alice")
            body = json.dumps({"inputs": [[0.1, 0.2, 0.3, 0.4]] * 4}).encode()
            sealed = seal_envelope(body, key=issued.key, kid=issued.kid)
            rows.append(("JWT authenticate, the token seen before (per-worker cache hit)",
                         best_us(lambda: gw.verifier.authenticate(token), 20000)))
            rows.append(("  a token's first time: signature and claims (PyJWT HS256)",
                         best_us(lambda: gw.verifier.verify_signature_and_claims(token), 2000)))
            headers = {"Authorization": f"Bearer {token}"}
            with app.test_request_context("/auth/whoami", headers=headers):
                rows.append(("  for comparison: flask-jwt-extended verify_jwt_in_request",
                             best_us(lambda: verify_jwt_in_request(skip_revocation_check=True),
                                     2000)))
            rows.append(("permission check (cached policy)",
                         best_us(lambda: gw.policy.allows(("analyst",), "predict:tiny"), 20000)))
            rows.append(("payload key lookup (per-worker cache hit)",
                         best_us(lambda: gw.keyring.key_for(issued.kid, "alice"), 20000)))
            rows.append(("envelope open (parse + AES-256-GCM decrypt, ~100 B)",
                         best_us(lambda: open_envelope(sealed, key_for=lambda k: issued.key,
                                                       now=time.time(), max_age=300), 2000)))
            counter = iter(range(10**9))
            counters = RateLimit.parse("predict", "100000000/minute").counters("alice")
            rows.append((f"admission: revocation + rate count + replay claim, one round trip "
                         f"(store={store_url.split(':')[0]})",
                         best_us(lambda: gw.store.admit(AdmissionRequest(
                             ["jti:bench", "fam:bench"], f"iv:bench:{next(counter)}", 660,
                             counters)), 500)))
            reply = json.dumps({"outputs": [[0.1, 0.2, 0.3]] * 4}).encode()
            rows.append(("response seal (AES-256-GCM encrypt + JSON)",
                         best_us(lambda: seal_envelope(reply, key=issued.key, kid=issued.kid),
                                 2000)))
        client = app.test_client()
        kid, key = issued.kid, issued.key

        def whole_request():
            data = seal_envelope(body, key=key, kid=kid)
            response = client.post("/predict/tiny", data=data, headers=headers,
                                   content_type="application/jose+json")
            assert response.status_code == 200, response.data

        rows.append(("whole sealed /predict, Flask test client (client sealing included)",
                     best_us(whole_request, 200)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="sqlite", help="sqlite or a redis:// URL")
    args = parser.parse_args()
    print(f"| step (store={args.store}) | µs per call |\n|---|---:|")
    for name, us in measure(args.store):
        print(f"| {name} | {us:,.1f} |")


if __name__ == "__main__":
    main()
