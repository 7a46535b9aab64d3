"""Safetensors weights: strict validation, and zero-copy tensors over a decrypted sealed buffer.

Our own parser, not safetensors.torch.load, so that the tensors view the one decrypted buffer
instead of copying it: peak memory stays near the model's size.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from security.sealed import open_sealed

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
MAX_HEADER_BYTES = 100_000_000  # the limit of the reference implementation
_TENSOR_KEYS = {"dtype", "shape", "data_offsets"}


class WeightsError(Exception):
    """Bytes that are not a well-formed safetensors file of supported dtypes."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the header; start and end are absolute offsets into the file's bytes."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int
    end: int


def validate_safetensors(data: bytes | bytearray | memoryview) -> None:
    """Raise WeightsError unless data is a well-formed safetensors file; `model seal` calls it."""
    # Released views and no reference to data in the traceback: the caller can close its mmap.
    with memoryview(data) as view, view.cast("B") as flat:
        del data
        parse_safetensors(flat)


def state_dict_from_buffer(buffer: bytearray, device: torch.device) -> dict[str, torch.Tensor]:
    """Tensors viewing buffer without copying (a misaligned one is copied); moved if not CPU."""
    entries = parse_safetensors(memoryview(buffer))
    tensors = {entry.name: _tensor_view(buffer, entry) for entry in entries}
    if torch.device(device).type != "cpu":
        tensors = {name: tensor.to(device) for name, tensor in tensors.items()}
    return tensors


def load_sealed_state_dict(path: Path, keks: Mapping[str, bytes], *, model: str, version: str,
                           device: torch.device) -> dict[str, torch.Tensor]:
    """Decrypt a sealed safetensors file and return its tensors on device."""
    return state_dict_from_buffer(open_sealed(path, keks, model=model, version=version), device)


def parse_safetensors(data: memoryview) -> list[TensorEntry]:
    """Every tensor of a strictly checked safetensors file, in file order."""
    if sys.byteorder != "little":
        raise WeightsError("safetensors data is little-endian; this host is not")
    if len(data) < 8:
        raise WeightsError(f"file is {len(data)} bytes, shorter than the 8-byte header length")
    header_length = int.from_bytes(data[:8], "little")
    if header_length > MAX_HEADER_BYTES:
        raise WeightsError(f"header length {header_length} exceeds {MAX_HEADER_BYTES} bytes")
    if 8 + header_length > len(data):
        raise WeightsError(f"header length {header_length} runs past the end of the file "
                           f"({len(data)} bytes)")
    header = _load_header(bytes(data[8:8 + header_length]))
    data_start = 8 + header_length
    entries = sorted((_entry(name, spec, data_start) for name, spec in header.items()),
                     key=lambda entry: (entry.start, entry.end))
    _check_layout(entries, data_start, len(data))
    for entry in (entry for entry in entries if entry.dtype == torch.bool):
        if bytes(data[entry.start:entry.end]).translate(None, b"\x00\x01"):
            raise WeightsError(f"tensor {entry.name!r}: BOOL bytes other than 0 and 1")
    return entries


def _load_header(raw: bytes) -> dict[str, object]:
    """The JSON header without __metadata__, which must map strings to strings."""
    if not raw.startswith(b"{"):
        raise WeightsError("header is not a JSON object")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WeightsError(f"header is not valid JSON: {exc}") from None
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(value, str) for value in metadata.values()):
        raise WeightsError("__metadata__ must map strings to strings")
    return header


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise WeightsError("header repeats a key")
    return dict(pairs)


def _entry(name: str, spec: object, data_start: int) -> TensorEntry:
    """One header entry, checked field by field; offsets made absolute."""
    if not isinstance(spec, dict) or set(spec) != _TENSOR_KEYS:
        raise WeightsError(f"tensor {name!r}: entry must have exactly dtype, shape, data_offsets")
    dtype = DTYPES.get(spec["dtype"]) if isinstance(spec["dtype"], str) else None
    if dtype is None:
        raise WeightsError(f"tensor {name!r}: unsupported dtype {spec['dtype']!r}")
    shape, offsets = spec["shape"], spec["data_offsets"]
    if not isinstance(shape, list) or not all(_is_count(size) for size in shape):
        raise WeightsError(f"tensor {name!r}: shape must be a list of non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_is_count(offset) for offset in offsets) or offsets[0] > offsets[1]):
        raise WeightsError(f"tensor {name!r}: data_offsets must be [begin, end], 0 <= begin <= end")
    needed = math.prod(shape) * dtype.itemsize
    if offsets[1] - offsets[0] != needed:
        raise WeightsError(f"tensor {name!r}: {spec['dtype']} shape {shape} needs {needed} "
                           f"bytes, data_offsets give {offsets[1] - offsets[0]}")
    return TensorEntry(name, dtype, tuple(shape), data_start + offsets[0], data_start + offsets[1])


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(entries: list[TensorEntry], data_start: int, total: int) -> None:
    """Sorted entries must tile the data section exactly: no gap, overlap or overrun."""
    position = data_start
    for entry in entries:
        if entry.end > total:
            raise WeightsError(f"tensor {entry.name!r}: data_offsets run past the end of the file")
        if entry.start < position:
            raise WeightsError(f"tensor {entry.name!r}: data_offsets overlap another tensor")
        if entry.start > position:
            raise WeightsError(f"tensor {entry.name!r}: {entry.start - position} unused bytes "
                               "before its data")
        position = entry.end
    if position != total:
        raise WeightsError(f"{total - position} bytes after the last tensor belong to none")


def _tensor_view(buffer: bytearray, entry: TensorEntry) -> torch.Tensor:
    """A view into buffer, or a copy when the bytes are misaligned for the dtype."""
    count = math.prod(entry.shape)
    if count == 0:
        return torch.empty(entry.shape, dtype=entry.dtype)
    tensor = torch.frombuffer(buffer, dtype=entry.dtype, count=count, offset=entry.start)
    if tensor.data_ptr() % entry.dtype.itemsize:
        raw = torch.frombuffer(buffer, dtype=torch.uint8, count=entry.end - entry.start,
                               offset=entry.start)
        tensor = raw.clone().view(entry.dtype)
    return tensor.view(entry.shape)
