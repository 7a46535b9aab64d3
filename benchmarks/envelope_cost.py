"""Microseconds per envelope open / seal (dir, HPKE X25519, HPKE X-Wing) and bytes added.

The floor is bare AES-GCM; the size table gives what each envelope adds to the plaintext.

Run from the repository root: `.venv/bin/python -m benchmarks.envelope_cost [--repeat 7]`.
Each figure is the best of `repeat` timeit runs, divided by the calls in a run.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass

import Crypto
from Crypto.Cipher import AES

from security.envelope import open_envelope, parse_envelope, seal_envelope
from security.envelope_hpke import open_hpke, seal_hpke, token_binding
from security.gateway_key_algs import ALGORITHMS, X25519, XWING, hpke_public_key

KEY = os.urandom(32)
KID = "pk_benchmark"
TOKEN = "header." + "p" * 400 + ".signature"  # about an access token's length
HPKE_LABELS = {X25519: "HPKE-3 (X25519)", XWING: "X-Wing"}
SIZES = {"1 KiB": 1024, "64 KiB": 65536}


@dataclass(frozen=True)
class Row:
    """One line of the table: an operation on one plaintext size."""

    operation: str
    size: str
    micros: float


def best_micros(call: Callable[[], object], repeat: int) -> float:
    """Best-of-`repeat` µs per call, with the loop count chosen for ~0.2 s runs."""
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def measure(size: int, repeat: int) -> dict[str, float]:
    """Time sealing, opening and the bare AES-GCM under them for one plaintext size."""
    plaintext = os.urandom(size)
    now = time.time()
    body = seal_envelope(plaintext, key=KEY, kid=KID, now=now)
    nonce = os.urandom(12)
    ciphertext, tag = AES.new(KEY, AES.MODE_GCM, nonce=nonce).encrypt_and_digest(plaintext)

    def bare_decrypt() -> bytes:
        return AES.new(KEY, AES.MODE_GCM, nonce=nonce).decrypt_and_verify(ciphertext, tag)

    return {
        "seal_envelope": best_micros(
            lambda: seal_envelope(plaintext, key=KEY, kid=KID, now=now), repeat),
        "open_envelope": best_micros(
            lambda: open_envelope(body, key_for=lambda kid: KEY, now=now, max_age=300),
            repeat),
        "AES-GCM decrypt alone": best_micros(bare_decrypt, repeat),
        **{name: micros for alg in HPKE_LABELS for name, micros in
           measure_hpke(plaintext, alg, now, repeat).items()},
    }


def hpke_pair(alg: str):
    """(private key, public JWK-derived key, algorithm) of a fresh gateway key of `alg`."""
    private, public = ALGORITHMS[alg].derive(os.urandom(32))
    jwk = {**ALGORITHMS[alg].jwk_members(public), "alg": alg, "kid": "gk_bench"}
    algorithm, public_key = hpke_public_key(jwk)
    return private, public_key, algorithm


def seal_hpke_body(plaintext: bytes, alg: str, now: float) -> bytes:
    _, public_key, algorithm = hpke_pair(alg)
    return seal_hpke(plaintext, public_key=public_key, algorithm=algorithm, kid="gk_bench",
                     token=TOKEN, now=now).body


def measure_hpke(plaintext: bytes, alg: str, now: float, repeat: int) -> dict[str, float]:
    """Sealing to a gateway key (the client's cost) and opening it (the gateway's)."""
    private, public_key, algorithm = hpke_pair(alg)
    body = seal_hpke(plaintext, public_key=public_key, algorithm=algorithm, kid="gk_bench",
                     token=TOKEN, now=now).body
    ath = token_binding(TOKEN)
    label = HPKE_LABELS[alg]
    return {
        f"seal {label}": best_micros(lambda: seal_hpke(
            plaintext, public_key=public_key, algorithm=algorithm, kid="gk_bench", token=TOKEN,
            now=now), repeat),
        f"open {label} (+ reply key export)": best_micros(lambda: open_hpke(
            parse_envelope(body), private_key_for=lambda kid, alg: private, ath=ath, now=now,
            max_age=300), repeat),
    }


def overhead_table() -> str:
    """Bytes each request envelope adds to a 1 KiB plaintext (replies are dir in every mode)."""
    plaintext, now = os.urandom(1024), time.time()
    bodies = {"dir (A256GCM)": seal_envelope(plaintext, key=KEY, kid=KID, now=now),
              **{label: seal_hpke_body(plaintext, alg, now) for alg, label in HPKE_LABELS.items()}}
    lines = ["| request envelope | body bytes (1 KiB plaintext) | added |", "|---|---:|---:|"]
    lines += [f"| {name} | {len(body):,} | {len(body) - len(plaintext):,} |"
              for name, body in bodies.items()]
    return "\n".join(lines)


def render(rows: list[Row]) -> str:
    """A small markdown table, one column per plaintext size."""
    operations = list(dict.fromkeys(row.operation for row in rows))
    cells = {(row.operation, row.size): row.micros for row in rows}
    lines = ["| operation | " + " | ".join(f"{s} (µs)" for s in SIZES) + " |",
             "|---|" + "---:|" * len(SIZES)]
    for operation in operations:
        values = " | ".join(f"{cells[operation, size]:.1f}" for size in SIZES)
        lines.append(f"| {operation} | {values} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timeit runs; the best is kept")
    args = parser.parse_args()
    rows = [Row(operation, label, micros)
            for label, size in SIZES.items()
            for operation, micros in measure(size, args.repeat).items()]
    print(f"Python {platform.python_version()}, pycryptodome {Crypto.__version__}, "
          f"{platform.machine()}, best of {args.repeat}\n")
    print(render(rows))
    print()
    print(overhead_table())


if __name__ == "__main__":
    main()
