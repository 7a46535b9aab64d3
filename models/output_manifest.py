"""model.toml's [output] table (docs/models.md) parsed strictly into OutputPolicies."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from models.manifest_fields import FieldError, check_keys, integer, string, table, type_name
from models.output_policy import (
    INDICES_SUFFIX,
    MODES,
    SCORE_DTYPES,
    OutputPolicies,
    OutputPolicy,
)

POLICY_KEYS = ("mode", "top_k", "decimals", "noise")
MAX_DECIMALS = 15  # a float64 holds 15 to 17 significant digits


def parse_output(value: Any, outputs: tuple) -> OutputPolicies:
    """[output] with its [output.roles.<role>] overrides; `outputs` are the declared TensorSpecs.

    An override is a whole policy: keys it leaves out take the built-in defaults, not [output]'s,
    so that a role can be given full, unrounded scores."""
    where = "output"
    data = table(value, where)
    check_keys(data, (*POLICY_KEYS, "roles"), (), where)
    default = _policy(data, where)
    roles = table(data.get("roles", {}), f"{where}.roles")
    policies = OutputPolicies(default, MappingProxyType({
        role: _override(override, f"{where}.roles.{role}") for role, override in roles.items()}))
    _check_outputs(policies, outputs)
    return policies


def _override(value: Any, where: str) -> OutputPolicy:
    data = table(value, where)
    check_keys(data, POLICY_KEYS, (), where)
    return _policy(data, where)


def _policy(data: Mapping[str, Any], where: str) -> OutputPolicy:
    mode = string(data.get("mode", "scores"), f"{where}.mode")
    if mode not in MODES:
        raise FieldError(f"{where}.mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
    if (mode == "top_k") != ("top_k" in data):
        raise FieldError(f"{where}.top_k", 'required with mode = "top_k", and only with it')
    if mode == "labels" and ("decimals" in data or "noise" in data):
        raise FieldError(f"{where}.mode", 'mode = "labels" carries no scores to round or blur')
    top_k = integer(data["top_k"], f"{where}.top_k", minimum=1) if "top_k" in data else None
    decimals = None
    if "decimals" in data:
        decimals = integer(data["decimals"], f"{where}.decimals", minimum=0)
        if decimals > MAX_DECIMALS:
            raise FieldError(f"{where}.decimals", f"at most {MAX_DECIMALS}, got {decimals}")
    noise = _noise(data["noise"], f"{where}.noise") if "noise" in data else None
    return OutputPolicy(mode=mode, top_k=top_k, decimals=decimals, noise=noise)


def _noise(value: Any, where: str) -> float:
    if type(value) not in (int, float):
        raise FieldError(where, f"expected a number, got {type_name(value)}")
    if not (math.isfinite(value) and value > 0):
        raise FieldError(where, f"expected a positive finite scale, got {value!r}")
    return float(value)


def _check_outputs(policies: OutputPolicies, outputs: tuple) -> None:
    """top_k and labels pick classes along the last dimension of every score output."""
    if not policies.modes() & {"top_k", "labels"}:
        return
    names = {spec.name for spec in outputs}
    for index, spec in enumerate(outputs):
        if spec.dtype in SCORE_DTYPES and len(spec.shape) < 2:
            raise FieldError(f"outputs[{index}].shape", "top_k and labels modes need scores of "
                             "at least 2 dimensions (rows x classes)")
        if spec.name + INDICES_SUFFIX in names:
            raise FieldError(f"outputs[{index}].name", f"{spec.name + INDICES_SUFFIX!r} is the "
                             "name a top_k reply gives this output's class indices")
