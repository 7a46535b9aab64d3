"""Model classes named `module:Class`: built on the meta device, then given their real weights."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class ArchitectureError(Exception):
    """The architecture cannot be imported, built or given these weights."""


def import_architecture(spec: str) -> type[nn.Module]:
    """Import the class named by `module:Class` and check that it is a torch module."""
    module_name, _, attribute = spec.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ArchitectureError(f"cannot import {module_name!r} for {spec!r}: {exc}") from None
    for part in attribute.split("."):
        found = getattr(found, part, None)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise ArchitectureError(f"{spec!r} is not a torch.nn.Module subclass")
    return found


def build_module(spec: str, arguments: Mapping[str, Any]) -> nn.Module:
    """Instantiate the architecture on the meta device: shapes only, no memory, no random init."""
    cls = import_architecture(spec)
    kwargs = {key: copy.deepcopy(value) for key, value in arguments.items()}
    try:
        with torch.device("meta"):
            return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ArchitectureError(f"{spec}(**arguments) failed: {exc}") from None


def load_weights(module: nn.Module, state: Mapping[str, torch.Tensor],
                 device: torch.device) -> nn.Module:
    """Adopt `state` as the module's tensors (strict, no copies), move to `device`, eval mode."""
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ArchitectureError(f"weights do not fit {type(module).__name__}: {exc}") from None
    tensors = [*module.named_parameters(), *module.named_buffers()]
    unset = sorted(name for name, tensor in tensors if tensor.is_meta)
    if unset:
        raise ArchitectureError(
            f"{type(module).__name__} has tensors that are not in the weights file "
            f"(non-persistent buffers cannot be restored): {', '.join(unset)}"
        )
    module.requires_grad_(False)
    return module.to(device).eval()
