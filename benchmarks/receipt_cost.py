"""Microseconds per receipt: signing and verifying as the gateway and client do, beside the bare
signature of each library that could do it (the figures that chose EdDSA through PyJWT).

Run from the repository root: `.venv/bin/python -m benchmarks.receipt_cost [--repeat 7]`.
Each figure is the best of `repeat` timeit runs, divided by the calls in a run.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable

import Crypto
import cryptography
import jwt
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

from benchmarks.envelope_cost import best_micros
from security.receipt_algorithms import EDDSA, ML_DSA_65, generate_signing_key
from security.receipts import ReceiptClaims, sha256_hex, sign_receipt, verify_receipt

CLAIMS = ReceiptClaims(iss="torchgate", iat=1_700_000_000, rid="0123456789abcdef" * 2,
                       sub="alice", model="digits", version="2",
                       weights_sha256=sha256_hex(b"w"), request_sha256=sha256_hex(b"q"),
                       body_sha256=sha256_hex(b"b"), reply_sha256=sha256_hex(b"r"))
MESSAGE = b"x" * 600  # about a receipt's signing input


def operations() -> dict[str, Callable[[], object]]:
    """What is timed: our receipt path per algorithm, then each library's bare signature."""
    timed: dict[str, Callable[[], object]] = {}
    for alg in (EDDSA, ML_DSA_65):
        key = generate_signing_key(alg, "bench")
        jwks = {"keys": [key.public_jwk()]}
        receipt = sign_receipt(CLAIMS, key)
        timed[f"sign_receipt {alg}"] = lambda key=key: sign_receipt(CLAIMS, key)
        timed[f"verify_receipt {alg}"] = lambda r=receipt, j=jwks: verify_receipt(r, j)
    ed_pycryptodome = ECC.generate(curve="Ed25519")
    timed["Ed25519 sign, pycryptodome"] = lambda: eddsa.new(
        ed_pycryptodome, "rfc8032").sign(MESSAGE)
    ed_cryptography = generate_signing_key(EDDSA, "bare").private
    timed["Ed25519 sign, cryptography (PyJWT's)"] = lambda: ed_cryptography.sign(MESSAGE)
    ml_pycryptodome = generate_signing_key(ML_DSA_65, "bare").private
    timed["ML-DSA-65 sign, pycryptodome"] = lambda: Crypto.Signature.mldsa.new(
        ml_pycryptodome).sign(MESSAGE)
    ml_cryptography = MLDSA65PrivateKey.generate()
    timed["ML-DSA-65 sign, cryptography"] = lambda: ml_cryptography.sign(MESSAGE)
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timeit runs; the best is kept")
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, pycryptodome {Crypto.__version__}, "
          f"cryptography {cryptography.__version__}, PyJWT {jwt.__version__}, "
          f"{platform.machine()}, best of {args.repeat}\n")
    print("| operation | µs |\n|---|---:|")
    for name, call in operations().items():
        print(f"| `{name}` | {best_micros(call, args.repeat):.1f} |")


if __name__ == "__main__":
    main()
