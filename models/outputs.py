"""Output tensors as JSON lists, nested or flat, with NaN and infinities spelled as strings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

_NONFINITE_JSON = {math.inf: "Infinity", -math.inf: "-Infinity"}


def json_list(tensor: torch.Tensor) -> Any:
    """Nested lists for JSON; NaN and ±Inf become "NaN"/"Infinity" strings as ProtoJSON does.

    JSON has no NaN; Python would write a bare NaN that strict parsers reject. The check is one
    vectorised isfinite, so finite outputs (nearly all of them) pay nothing more.
    """
    tensor = tensor.detach().cpu()
    values = tensor.tolist()
    if not tensor.is_floating_point() or _all_finite(tensor):
        return values
    return _replace_nonfinite(values)


def flat_json_list(tensor: torch.Tensor) -> list[Any]:
    """A tensor's elements as one row-major JSON list (the OIP `data` form), same NaN rules."""
    return json_list(tensor.reshape(-1))


def _all_finite(tensor: torch.Tensor) -> bool:
    """Vectorised finiteness; numpy's view is ~10x cheaper than a torch op on small tensors."""
    if tensor.dtype in (torch.float32, torch.float64, torch.float16):
        return bool(np.isfinite(tensor.numpy()).all())
    return bool(torch.isfinite(tensor).all())  # bfloat16: numpy has no such dtype


def _replace_nonfinite(value: Any) -> Any:
    if isinstance(value, list):
        return [_replace_nonfinite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _NONFINITE_JSON[value]
    return value
