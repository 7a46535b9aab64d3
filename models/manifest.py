"""`model.toml` (CONTRACT §7) parsed strictly into frozen values; errors name file and field."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from models.device import is_device_setting
from models.manifest_fields import FieldError as _FieldError
from models.manifest_fields import check_keys as _check_keys
from models.manifest_fields import integer as _integer
from models.manifest_fields import string as _string
from models.manifest_fields import table as _table
from models.manifest_fields import type_name as _type_name
from models.output_manifest import parse_output
from models.output_policy import OutputPolicies
from security.admission import RateLimit
from security.attributes import NO_ATTRIBUTES, Attributes, InvalidAttributes, parse_attributes

DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool")
TENSOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
ARCHITECTURE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
VERSION = re.compile(r"0|[1-9][0-9]*")
T = TypeVar("T")
TOP_KEYS = ("architecture", "arguments", "default_version", "device", "labels",
            "inputs", "outputs", "limits", "batching", "quota", "output", "attributes")


class ManifestError(Exception):
    """A model.toml that cannot be served; the message names the file and the field."""


@dataclass(frozen=True)
class TensorSpec:
    """A declared input or output: -1 in `shape` means any size."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Limits:
    """Per-request input limits."""

    max_elements: int = 1048576
    allow_nonfinite: bool = False


@dataclass(frozen=True)
class Batching:
    """Dynamic batching settings, run by models.batcher.Batcher."""

    max_batch_size: int
    max_delay_ms: float


@dataclass(frozen=True)
class ModelManifest:
    """Everything model.toml says about one model."""

    name: str
    architecture: str
    arguments: Mapping[str, Any]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    default_version: str | None = None
    device: str | None = None
    labels: tuple[str, ...] | None = None
    limits: Limits = field(default_factory=Limits)
    batching: Batching | None = None
    quota: RateLimit | None = None  # [quota] per_subject: model calls per subject, all versions
    output: OutputPolicies = field(default_factory=OutputPolicies)
    attributes: Attributes = field(default_factory=lambda: NO_ATTRIBUTES)


def load_manifest(path: Path, name: str) -> ModelManifest:
    """Read and validate `path` as the manifest of model `name`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: invalid TOML: {exc}") from None
    try:
        return parse_manifest(data, name)
    except _FieldError as exc:
        raise ManifestError(f"{path}: {exc}") from None


def parse_manifest(data: Mapping[str, Any], name: str) -> ModelManifest:
    """Validate a decoded manifest table; raises _FieldError naming the field."""
    _check_keys(data, TOP_KEYS, ("architecture", "inputs", "outputs"), "")
    architecture = _string(data["architecture"], "architecture")
    if not ARCHITECTURE.fullmatch(architecture):
        raise _FieldError("architecture", f"expected 'package.module:Class', got {architecture!r}")
    arguments = data.get("arguments", {})
    if not isinstance(arguments, dict):
        raise _FieldError("arguments", "expected a table of keyword arguments")
    inputs = _tensor_specs(data["inputs"], "inputs")
    outputs = _tensor_specs(data["outputs"], "outputs")
    labels = _labels(data["labels"], outputs[0]) if "labels" in data else None
    return ModelManifest(
        name=name,
        architecture=architecture,
        arguments=MappingProxyType(dict(arguments)),
        inputs=inputs,
        outputs=outputs,
        default_version=_optional(data, "default_version", _default_version),
        device=_optional(data, "device", _device),
        labels=labels,
        limits=_limits(data.get("limits", {})),
        batching=_optional(data, "batching", _batching),
        quota=_optional(data, "quota", lambda value, where: _quota(value, where, name)),
        output=parse_output(data["output"], outputs) if "output" in data else OutputPolicies(),
        attributes=_optional(data, "attributes", _attributes) or NO_ATTRIBUTES,
    )


def _optional(data: Mapping[str, Any], key: str, parse: Callable[[Any, str], T]) -> T | None:
    return parse(data[key], key) if key in data else None


def _tensor_specs(value: Any, where: str) -> tuple[TensorSpec, ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _FieldError(where, f"expected an array of tables ([[{where}]])")
    if not value:
        raise _FieldError(where, "at least one entry is required")
    specs = tuple(_tensor_spec(item, f"{where}[{i}]") for i, item in enumerate(value))
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen:
            raise _FieldError(f"{where}[{i}].name", f"duplicate name {spec.name!r}")
        seen.add(spec.name)
    return specs


def _tensor_spec(table: dict[str, Any], where: str) -> TensorSpec:
    _check_keys(table, ("name", "shape", "dtype"), ("name", "shape", "dtype"), where)
    name = _string(table["name"], f"{where}.name")
    if not TENSOR_NAME.fullmatch(name):
        raise _FieldError(f"{where}.name", f"invalid name {name!r} (letters, digits, _ . -)")
    shape = table["shape"]
    if not isinstance(shape, list) or not shape:
        raise _FieldError(f"{where}.shape", "expected a non-empty array of dimensions")
    for i, dim in enumerate(shape):
        if type(dim) is not int or not (dim == -1 or dim > 0):
            raise _FieldError(f"{where}.shape[{i}]",
                              f"expected -1 or a positive integer, got {dim!r}")
    dtype = _string(table["dtype"], f"{where}.dtype")
    if dtype not in DTYPES:
        raise _FieldError(f"{where}.dtype", f"unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")
    return TensorSpec(name=name, shape=tuple(shape), dtype=dtype)


def _labels(value: Any, first_output: TensorSpec) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _FieldError("labels", "expected a non-empty array of strings")
    for i, label in enumerate(value):
        _string(label, f"labels[{i}]")
    if len(first_output.shape) < 2:
        raise _FieldError("labels", f"output {first_output.name!r} needs at least 2 dimensions "
                          "(rows x classes) to carry labels")
    classes = first_output.shape[-1]
    if classes not in (-1, len(value)):
        raise _FieldError("labels", f"{len(value)} labels, but output {first_output.name!r} "
                          f"has {classes} classes")
    return tuple(value)


def _default_version(value: Any, where: str) -> str:
    text = _string(value, where)
    if not VERSION.fullmatch(text):
        raise _FieldError(where, f"expected an integer version string like \"2\", got {text!r}")
    return text


def _device(value: Any, where: str) -> str:
    text = _string(value, where)
    if not is_device_setting(text):
        raise _FieldError(where, f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def _limits(value: Any) -> Limits:
    table = _table(value, "limits")
    _check_keys(table, ("max_elements", "allow_nonfinite"), (), "limits")
    limits = Limits()
    allow = table.get("allow_nonfinite", limits.allow_nonfinite)
    if not isinstance(allow, bool):
        raise _FieldError("limits.allow_nonfinite", f"expected a boolean, got {_type_name(allow)}")
    maximum = table.get("max_elements", limits.max_elements)
    return Limits(max_elements=_integer(maximum, "limits.max_elements", minimum=1),
                  allow_nonfinite=allow)


def _batching(value: Any, where: str) -> Batching:
    table = _table(value, where)
    _check_keys(table, ("max_batch_size", "max_delay_ms"), ("max_batch_size", "max_delay_ms"),
                where)
    delay = table["max_delay_ms"]
    if type(delay) not in (int, float) or not 0 <= delay <= 60_000:
        raise _FieldError(f"{where}.max_delay_ms", f"expected 0..60000 milliseconds, got {delay!r}")
    return Batching(max_batch_size=_integer(table["max_batch_size"], f"{where}.max_batch_size",
                                            minimum=1),
                    max_delay_ms=float(delay))


def _quota(value: Any, where: str, name: str) -> RateLimit:
    table = _table(value, where)
    _check_keys(table, ("per_subject",), ("per_subject",), where)
    text = _string(table["per_subject"], f"{where}.per_subject")
    try:
        quota = RateLimit.parse(f"quota:{name}", text)
    except ValueError:
        quota = None
    if quota is None or not quota.items:
        raise _FieldError(f"{where}.per_subject", f"expected a limit like '10000/day' or "
                          f"'1000/hour;10000/day', got {text!r}")
    return quota
def _attributes(value: Any, where: str) -> Attributes:
    try:
        return parse_attributes(_table(value, where))
    except InvalidAttributes as exc:
        raise _FieldError(where, str(exc)) from None
