"""Microseconds per open_envelope / seal_envelope call, with bare AES-GCM as the floor.

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

from security.envelope import open_envelope, seal_envelope

KEY = os.urandom(32)
KID = "pk_benchmark"
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
    }


def render(rows: list[Row]) -> str:
    """A small markdown table, one column per plaintext size."""
    operations = list(dict.fromkeys(row.operation for row in rows))
    cells = {(row.operation, row.size): row.micros for row in rows}
    lines = ["| operation | " + " | ".join(f"{s} (µs)" for s in SIZES) + " |",
             "|---|" + "---:|" * len(SIZES)]
    for operation in operations:
        values = " | ".join(f"{cells[operation, size]:.1f}" for size in SIZES)
        lines.append(f"| `{operation}` | {values} |")
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


if __name__ == "__main__":
    main()
