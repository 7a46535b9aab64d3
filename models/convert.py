"""torch.save files (a zip archive holding a pickle, or a bare pickle) to safetensors.

Only tensors are read (`torch.load(weights_only=True)`: no code of the file runs), and the result
is what `model seal` takes. A whole pickled module cannot be read that way; its owner saves
`model.state_dict()` instead.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTOCOL_OPCODE = 0x80


class ConversionError(Exception):
    """The file holds no state dict of tensors that can be read without running its code."""


def torch_save_kind(head: bytes) -> str | None:
    """"zip" or "pickle" when the first bytes are those of a torch.save file, else None."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head[:1] and head[0] == PICKLE_PROTOCOL_OPCODE:
        return "pickle"
    return None


def load_torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a torch.save'd state dict (or of a checkpoint's "state_dict" entry)."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ConversionError(
            f"{path}: not a state dict that loads with weights_only=True ({type(exc).__name__});"
            " if it is a whole pickled module, load it in your own code and "
            "torch.save(model.state_dict(), ...) instead") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not loaded:
        raise ConversionError(f"{path}: holds a {type(loaded).__name__}, not a state dict")
    tensors = {str(name): value for name, value in loaded.items()
               if isinstance(value, torch.Tensor)}
    if len(tensors) != len(loaded):
        raise ConversionError(f"{path}: the state dict holds values that are not tensors")
    return tensors


def convert_to_safetensors(source: Path, destination: Path) -> list[str]:
    """Write the state dict of `source` as safetensors; the tensor names written."""
    tensors = load_torch_state_dict(source)
    # Shared or strided storage (tied weights, views) is stored as separate contiguous copies.
    save_file({name: t.detach().clone().contiguous() for name, t in tensors.items()},
              str(destination))
    return sorted(tensors)
