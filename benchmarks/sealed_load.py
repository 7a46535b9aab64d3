"""Sealed weights load: decrypt throughput, load time against plain safetensors, and peak RSS.

Run from the repository root: `.venv/bin/python benchmarks/sealed_load.py [--sizes 64,512]`.
Every load runs in a fresh subprocess; its peak RSS is ru_maxrss after the load minus ru_maxrss
after the imports. Both files are in the page cache first, so disk speed is not measured.
The parent never imports torch: a child's ru_maxrss starts at its parent's peak (exec keeps it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIB = 1024 * 1024
MODEL, VERSION, KEK_ID = "bench", "1", "bench"
# mode -> the file it reads
MODES = {"mmap": "plain", "mmap+page-in": "plain", "read+load": "plain", "sealed": "sealed",
         "open_sealed": "sealed", "allocate": "sealed"}


@dataclass(frozen=True)
class Load:
    """One measured load: wall seconds and peak RSS above the post-import baseline."""

    seconds: float
    peak_rss: int


def loaders(keks: dict[str, bytes]) -> dict[str, Callable[[Path], object]]:
    """What each mode does to its file: the timed part of a child."""
    import safetensors.torch
    import torch
    from safetensors.torch import load as load_safetensors_bytes  # safetensors, never pickle

    from models.weights import load_sealed_state_dict
    from security.sealed import open_sealed, read_header

    def sealed(path: Path) -> None:
        touch(load_sealed_state_dict(path, keks, model=MODEL, version=VERSION,
                                     device=torch.device("cpu")))

    return {
        "mmap": safetensors.torch.load_file,
        "mmap+page-in": lambda path: touch(safetensors.torch.load_file(path)),
        "read+load": lambda path: touch(load_safetensors_bytes(path.read_bytes())),
        "sealed": sealed,
        "open_sealed": lambda path: open_sealed(path, keks, model=MODEL, version=VERSION),
        "allocate": lambda path: bytearray(read_header(path).plaintext_length),
    }


def child(mode: str, path: Path) -> None:
    """Load path once the way mode says and print a Load as JSON (runs in a subprocess)."""
    load = loaders({KEK_ID: bytes.fromhex(sys.stdin.read().strip())})[mode]
    reset_peak_rss()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    load(path)
    seconds = time.perf_counter() - started
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) * 1024
    print(json.dumps({"seconds": seconds, "peak_rss": peak}))


def reset_peak_rss() -> None:
    """Bring the peak down to the current RSS, so the imports' transient peak hides nothing."""
    with contextlib.suppress(OSError):  # Linux only; elsewhere the imports' peak stays
        Path("/proc/self/clear_refs").write_text("5")


def touch(state: dict) -> None:
    """Read one byte per page of every tensor, so an mmap-backed load is really in memory."""
    import torch

    for tensor in state.values():
        tensor.reshape(-1).view(torch.uint8)[::4096].sum()


def prepare(size_mib: int, directory: Path, chunk_size: int) -> None:
    """Write random F32 weights as plain and sealed safetensors; print the seal seconds."""
    import safetensors.torch
    import torch

    from security.sealed import seal_file

    kek = bytes.fromhex(sys.stdin.read().strip())
    tensors = {f"layer{i}.weight": torch.randn(1024, 1024) for i in range(size_mib // 4)}
    plain, sealed = directory / "model.safetensors", directory / "model.safetensors.sealed"
    safetensors.torch.save_file(tensors, plain)
    del tensors
    started = time.perf_counter()
    seal_file(plain, sealed, model=MODEL, version=VERSION, kek_id=KEK_ID, kek=kek,
              chunk_size=chunk_size)
    print(json.dumps({"seconds": time.perf_counter() - started}))


def run_child(arguments: list[str], kek: bytes) -> dict:
    """Run this script with arguments in a fresh interpreter; the KEK goes in on stdin."""
    result = subprocess.run([sys.executable, __file__, *arguments], input=kek.hex(),
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def warm_page_cache(*paths: Path) -> None:
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(16 * MIB):
                pass


def measure(size_mib: int, chunk_size: int, repeats: int) -> dict[str, object]:
    """Best seconds and largest peak RSS of every mode for one model size."""
    kek = os.urandom(32)
    with tempfile.TemporaryDirectory() as tmp:
        seal = run_child(["--prepare", str(size_mib), tmp, str(chunk_size)], kek)
        files = {"plain": Path(tmp, "model.safetensors"),
                 "sealed": Path(tmp, "model.safetensors.sealed")}
        warm_page_cache(*files.values())
        row: dict[str, object] = {"size_mib": size_mib, "bytes": files["plain"].stat().st_size}
        for mode, kind in MODES.items():
            runs = [Load(**run_child(["--child", mode, str(files[kind])], kek))
                    for _ in range(repeats)]
            row[mode] = Load(min(run.seconds for run in runs), max(run.peak_rss for run in runs))
    row["seal_gbps"] = row["bytes"] / seal["seconds"] / 1e9
    return row


def ratio(load: Load, size: int) -> str:
    return f"{load.peak_rss / size:.2f}x"


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| model | seal GB/s | open_sealed GB/s | AES-GCM GB/s | load_file (mmap) "
        "| load_file + page-in | read + load | **sealed load** | sealed ÷ page-in "
        "| sealed ÷ read+load | peak RSS: page-in / read+load / **sealed** |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = row["bytes"]
        mmap, paged, read, sealed, opened, allocate = (row[mode] for mode in MODES)
        lines.append(
            f"| {row['size_mib']} MiB | {row['seal_gbps']:.2f} "
            f"| {size / opened.seconds / 1e9:.2f} "
            f"| {size / (opened.seconds - allocate.seconds) / 1e9:.2f} "
            f"| {mmap.seconds:.3f} s | {paged.seconds:.3f} s | {read.seconds:.3f} s "
            f"| **{sealed.seconds:.3f} s** | {sealed.seconds / paged.seconds:.1f}x "
            f"| {sealed.seconds / read.seconds:.2f}x "
            f"| {ratio(paged, size)} / {ratio(read, size)} / **{ratio(sealed, size)}** |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,512", help="model sizes in MiB, comma-separated")
    parser.add_argument("--chunk-size", type=int, default=4 * MIB,
                        help="bytes (default 4 MiB, security.sealed.DEFAULT_CHUNK_SIZE)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh subprocesses per mode")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
    elif args.prepare:
        prepare(int(args.prepare[0]), Path(args.prepare[1]), int(args.prepare[2]))
    else:
        rows = [measure(int(size), args.chunk_size, args.repeats)
                for size in args.sizes.split(",")]
        load = os.getloadavg()[0]
        print(f"Sealed weights load: {platform.machine()}, {os.cpu_count()} CPUs, load average "
              f"{load:.1f}, chunk size {args.chunk_size // 1024} KiB, best of {args.repeats} "
              "fresh processes per time, largest peak RSS of them\n")
        print(table(rows))


if __name__ == "__main__":
    main()
