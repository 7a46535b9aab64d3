"""Open Inference Protocol v2 tensors (KServe/Triton REST JSON) to and from a ModelRunner.

Flask-free. A request's `data` (flat row-major, or nested as the protocol allows) becomes the
nested lists that ModelRunner.prepare already checks for shape, dtype, limits and NaN, so the
gateway has one input validator whichever protocol a request came in by.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from errors import InvalidInput
from models.manifest import ModelManifest, TensorSpec
from models.output_policy import FULL_SCORES, INDICES_SUFFIX, OutputPolicy, ShapedOutputs
from models.outputs import flat_json_list
from models.runner import MAX_DEPTH, ModelRunner

PLATFORM = "pytorch"
DATATYPES: Mapping[str, str] = MappingProxyType({
    "bool": "BOOL", "uint8": "UINT8", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "bfloat16": "BF16", "float32": "FP32", "float64": "FP64",
})
REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
OUTPUT_KEYS = frozenset({"name", "parameters"})
# Triton's binary-data hints are accepted and answered in JSON: the reply then carries no
# `binary_data_size`, which is how a client (tritonclient included) tells JSON data apart.
REQUEST_PARAMETERS = frozenset({"binary_data_output"})
OUTPUT_PARAMETERS = frozenset({"binary_data"})


@dataclass(frozen=True)
class OipRequest:
    """A checked inference request: nested inputs for ModelRunner.prepare and what to return."""

    id: str | None
    inputs: Mapping[str, list]
    shapes: Mapping[str, tuple[int, ...]]
    outputs: tuple[str, ...]


def metadata_tensor(described: Mapping[str, Any]) -> dict[str, Any]:
    """One `$metadata_tensor` from a registry description {"name", "shape", "dtype"}."""
    return {"name": described["name"], "datatype": DATATYPES[described["dtype"]],
            "shape": list(described["shape"])}


def model_metadata(described: Mapping[str, Any],
                   policy: OutputPolicy = FULL_SCORES) -> dict[str, Any]:
    """`$metadata_model_response` from ModelRegistry.describe(): the outputs as a reply under
    the caller's output policy carries them."""
    return {"name": described["name"], "versions": list(described["versions"]),
            "platform": PLATFORM,
            "inputs": [metadata_tensor(spec) for spec in described["inputs"]],
            "outputs": [metadata_tensor(spec)
                        for spec in policy.reply_outputs(described["outputs"])]}


def infer(runner: ModelRunner, payload: Mapping[str, Any],
          policy: OutputPolicy = FULL_SCORES) -> dict[str, Any]:
    """`$inference_request` in, `$inference_response` out, cut to `policy`; InvalidInput (422)
    on a bad tensor."""
    request = parse_request(payload, runner.manifest)
    batch = runner.prepare({"inputs": dict(request.inputs)})
    for name, tensor in batch.items():
        if tuple(tensor.shape) != request.shapes[name]:
            raise InvalidInput(f"inputs.{name}: shape {list(request.shapes[name])} does not "
                               f"match the nested data ({list(tensor.shape)})")
    shaped = policy.apply(runner.run(batch), None)
    body: dict[str, Any] = {"model_name": runner.manifest.name, "model_version": runner.version}
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = render_outputs(shaped, request.outputs, runner.manifest)
    return body


def render_outputs(shaped: ShapedOutputs, names: Iterable[str],
                   manifest: ModelManifest) -> list[dict[str, Any]]:
    """`$response_output` objects, data flat and row-major, in the order `names` gives; a top_k
    output is followed by its `<name>.indices` (INT64)."""
    dtypes = {spec.name: spec.dtype for spec in manifest.outputs}
    rendered = []
    for name in names:
        rendered.append(_output_tensor(name, shaped.tensors[name], dtypes[name]))
        if name in shaped.indices:
            rendered.append(_output_tensor(name + INDICES_SUFFIX, shaped.indices[name], "int64"))
    return rendered


def _output_tensor(name: str, tensor: torch.Tensor, declared: str) -> dict[str, Any]:
    """Scores keep their declared datatype (rounding and noise run in float64 only so that
    they print short); a labels-mode output is the INT64 class index."""
    dtype = declared if tensor.is_floating_point() else str(tensor.dtype).removeprefix("torch.")
    return {"name": name, "datatype": DATATYPES[dtype], "shape": list(tensor.shape),
            "data": flat_json_list(tensor)}


def parse_request(payload: Mapping[str, Any], manifest: ModelManifest) -> OipRequest:
    """Check the request's structure, names and datatypes; shape each input's data."""
    _check_keys(payload, REQUEST_KEYS, "the request")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("id: expected a string")
    _check_parameters(payload.get("parameters"), "parameters", REQUEST_PARAMETERS)
    items = payload.get("inputs")
    if not isinstance(items, list):
        raise InvalidInput("inputs: required, an array of tensors")
    specs = {spec.name: spec for spec in manifest.inputs}
    inputs: dict[str, list] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for index, item in enumerate(items):
        spec = _input_spec(index, item, specs)
        if spec.name in inputs:
            raise InvalidInput(f"inputs.{spec.name}: given more than once")
        shapes[spec.name] = _shape(item.get("shape"), f"inputs.{spec.name}.shape")
        inputs[spec.name] = _nested(item.get("data"), shapes[spec.name], f"inputs.{spec.name}")
    return OipRequest(request_id, MappingProxyType(inputs), MappingProxyType(shapes),
                      _requested_outputs(payload.get("outputs"), manifest))


def _input_spec(index: int, item: Any, specs: Mapping[str, TensorSpec]) -> TensorSpec:
    """The declared input an `$request_input` names, its datatype checked against it."""
    where = f"inputs[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidInput(f"{where}: expected an object with name, shape, datatype and data")
    _check_keys(item, INPUT_KEYS, where)
    spec = specs.get(item.get("name")) if isinstance(item.get("name"), str) else None
    if spec is None:
        raise InvalidInput(f"{where}: unknown input name; this model takes {_listed(specs)}")
    expected = DATATYPES[spec.dtype]
    if item.get("datatype") != expected:
        raise InvalidInput(f"inputs.{spec.name}: datatype must be {expected!r}")
    _check_parameters(item.get("parameters"), f"inputs.{spec.name}.parameters", frozenset())
    return spec


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
            type(dim) is int and dim >= 0 for dim in value):
        raise InvalidInput(f"{where}: expected an array of non-negative integers")
    if len(value) > MAX_DEPTH:  # bounds the regrouping below, as the runner bounds nesting
        raise InvalidInput(f"{where}: at most {MAX_DEPTH} dimensions")
    return tuple(value)


def _nested(data: Any, shape: tuple[int, ...], where: str) -> list:
    """Flat row-major data regrouped by `shape`; nested data is passed on as it came."""
    if not isinstance(data, list):
        raise InvalidInput(f"{where}.data: expected an array")
    if data and isinstance(data[0], list):
        return data  # the runner measures it; infer() compares that with `shape`
    count = math.prod(shape)
    if count != len(data):
        raise InvalidInput(f"{where}: shape {list(shape)} holds {count} elements, "
                           f"data has {len(data)}")
    if count == 0 or len(shape) < 2:
        return data
    nodes: list = data
    for size in reversed(shape[1:]):
        nodes = [nodes[start:start + size] for start in range(0, len(nodes), size)]
    return nodes


def _requested_outputs(value: Any, manifest: ModelManifest) -> tuple[str, ...]:
    declared = [spec.name for spec in manifest.outputs]
    if value is None or value == []:
        return tuple(declared)
    if not isinstance(value, list):
        raise InvalidInput("outputs: expected an array of {\"name\"} objects")
    names: list[str] = []
    for index, item in enumerate(value):
        where = f"outputs[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{where}: expected an object with a name")
        _check_keys(item, OUTPUT_KEYS, where)
        name = item.get("name")
        if name not in declared:
            raise InvalidInput(f"{where}: unknown output name; this model produces "
                               f"{_listed(declared)}")
        if name in names:
            raise InvalidInput(f"outputs.{name}: requested more than once")
        _check_parameters(item.get("parameters"), f"outputs.{name}.parameters",
                          OUTPUT_PARAMETERS)
        names.append(name)
    return tuple(names)


def _check_keys(value: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    """Unknown members are refused by count: a client's own strings are never echoed."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}: expected a JSON object")
    if unknown := set(value) - allowed:
        raise InvalidInput(f"{where}: {len(unknown)} unknown member(s); "
                           f"expected {_listed(sorted(allowed))}")


def _check_parameters(value: Any, where: str, allowed: frozenset[str]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}: expected an object")
    if unknown := set(value) - allowed:
        raise InvalidInput(f"{where}: {len(unknown)} unsupported parameter(s)"
                           + (f"; supported: {_listed(sorted(allowed))}" if allowed else ""))
    if not all(isinstance(flag, bool) for flag in value.values()):
        raise InvalidInput(f"{where}: {_listed(sorted(value))} must be true or false")


def _listed(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)
