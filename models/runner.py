"""One loaded model version: request inputs checked into tensors, inference, replies rendered."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import torch
from torch import nn

from errors import InvalidInput
from models.batcher import Batcher
from models.manifest import ModelManifest, TensorSpec
from models.output_policy import FULL_SCORES, OutputPolicy, ShapedOutputs
from models.outputs import json_list

TORCH_DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
    "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32,
    "uint8": torch.uint8, "bool": torch.bool,
}
Observer = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], None]
FLOAT_DTYPES = frozenset({"float32", "float64", "float16", "bfloat16"})
INTEGER_DTYPES = frozenset({"int64", "int32", "uint8"})
MAX_DEPTH = 32
TOP_LEVEL_KEYS = ("inputs", "parameters")
ELEMENT_NAMES = {bool: "booleans", float: "non-integer numbers", int: "integers", str: "strings",
                 type(None): "nulls", dict: "objects"}
JSON_TYPES = {bool: "a boolean", float: "a number", int: "a number", str: "a string",
              type(None): "null", dict: "an object"}


class ModelOutputError(RuntimeError):
    """The model returned something its manifest does not declare: a server-side fault."""


def _accepted(dtype: str) -> frozenset[type]:
    if dtype in FLOAT_DTYPES:
        return frozenset({int, float})
    return frozenset({int}) if dtype in INTEGER_DTYPES else frozenset({bool})


def _declared(names: Iterable[str]) -> str:
    """Declared (public) names for an error detail; client-sent names are never echoed."""
    return ", ".join(repr(name) for name in names)


def _measure(data: list, where: str, budget: int,
             limit: int) -> tuple[list[int], list[Any], set[type]]:
    """Shape, flat leaves and leaf types of a regular nested list, walked level by level in C."""
    shape: list[int] = []
    nodes: list[Any] = [data]
    for _ in range(MAX_DEPTH + 1):
        kinds = set(map(type, nodes))
        if list not in kinds:
            return shape, nodes, kinds
        if len(kinds) > 1:
            raise InvalidInput(f"{where}: ragged nested list: lists and scalars mixed at "
                               f"dimension {len(shape)}")
        lengths = set(map(len, nodes))
        if len(lengths) > 1:
            raise InvalidInput(f"{where}: ragged nested list: dimension {len(shape)} has lengths "
                               f"from {min(lengths)} to {max(lengths)}")
        shape.append(lengths.pop())
        if shape[-1] * len(nodes) > budget:  # checked before the next level is built
            raise InvalidInput(f"{where}: too many elements; this model accepts at most "
                               f"{limit} for all inputs together")
        nodes = list(chain.from_iterable(nodes))
    raise InvalidInput(f"{where}: nested more than {MAX_DEPTH} levels deep")


def _convert(leaves: list[Any], spec: TensorSpec, allow_nonfinite: bool,
             where: str) -> torch.Tensor:
    """Flat JSON numbers to a tensor of the declared dtype, refusing values it cannot hold."""
    kind, target = spec.dtype, TORCH_DTYPES[spec.dtype]
    if kind == "bool":
        return torch.from_numpy(np.array(leaves, dtype=np.bool_))
    try:  # numpy converts a flat list of Python numbers in C, about 3x faster than torch.tensor
        wide = np.array(leaves, dtype=np.float64 if kind in FLOAT_DTYPES else np.int64)
    except (OverflowError, ValueError):
        raise InvalidInput(f"{where}: a number is out of range for {kind}") from None
    # The checks stay in numpy: on request-sized arrays a torch op costs ~10x a numpy one.
    if kind in INTEGER_DTYPES:
        info = torch.iinfo(target)
        if wide.size and (wide.min() < info.min or wide.max() > info.max):
            raise InvalidInput(f"{where}: a number is out of range for {kind} "
                               f"({info.min}..{info.max})")
        return torch.from_numpy(wide).to(target)
    finite = np.isfinite(wide)
    if not allow_nonfinite and not finite.all():
        raise InvalidInput(f"{where}: NaN and Infinity are not accepted by this model")
    narrow = torch.from_numpy(wide).to(target)
    if target != torch.float64:
        view = (narrow.float() if target == torch.bfloat16 else narrow).numpy()  # exact widening
        if (np.isinf(view) & finite).any():
            raise InvalidInput(f"{where}: a number is out of range for {kind}")
    return narrow


def _label_rows(indices: Any, labels: tuple[str, ...]) -> Any:
    """Class indices (nested lists of ints) to labels, keeping the nesting."""
    if isinstance(indices, list):
        return [_label_rows(item, labels) for item in indices]
    return labels[indices]


def _lists(tensors: Mapping[str, torch.Tensor], bare: bool) -> Any:
    lists = {name: json_list(tensor) for name, tensor in tensors.items()}
    return next(iter(lists.values())) if bare else lists


@dataclass(frozen=True, eq=False)
class ModelRunner:
    """A loaded model version; `forward` is a pure function of one batch (for the batcher)."""

    manifest: ModelManifest
    module: nn.Module
    device: torch.device
    version: str
    batcher: Batcher | None = field(default=None, repr=False)
    # Sees every call's inputs and outputs after inference, before any reply is rendered; may
    # raise a GatewayError to withhold the reply (dataplane.watch, the extraction monitor).
    observe: Observer | None = field(default=None, repr=False)
    weights_sha256: str | None = None  # of the safetensors bytes; receipts name the weights by it

    def predict(self, payload: Mapping[str, Any],
                policy: OutputPolicy = FULL_SCORES) -> dict[str, Any]:
        """Checked inputs, inference and the reply body, cut to `policy`, for one request."""
        batch = self.prepare(payload)
        shaped = policy.apply(self.run(batch), self.labelled_output)
        return self.render(shaped, named=not isinstance(payload["inputs"], list))

    @property
    def labelled_output(self) -> str | None:
        """The output whose top class per row the reply labels, when the model has labels."""
        return self.manifest.outputs[0].name if self.manifest.labels is not None else None

    def run(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One request's `forward`, shared with concurrent requests when the model batches."""
        outputs = self.forward(batch) if self.batcher is None else self.batcher.submit(batch)
        if self.observe is not None:
            self.observe(batch, outputs)
        return outputs

    def prepare(self, payload: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The request's inputs as tensors on this runner's device, or InvalidInput (422)."""
        given = self._inputs_by_name(payload)
        budget = self.manifest.limits.max_elements
        batch: dict[str, torch.Tensor] = {}
        for spec in self.manifest.inputs:
            batch[spec.name] = self._tensor(given[spec.name], spec, budget)
            budget -= batch[spec.name].numel()
        rows = {name: tensor.shape[0] for name, tensor in batch.items()}
        if len(set(rows.values())) > 1:
            sizes = ", ".join(f"{name}={size}" for name, size in rows.items())
            raise InvalidInput(f"inputs: the first dimension (batch) must be equal, got {sizes}")
        return {name: tensor.to(self.device) for name, tensor in batch.items()}

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run the module on one batch; outputs are checked against the manifest."""
        args = [batch[spec.name] for spec in self.manifest.inputs]
        with torch.inference_mode():
            result = self.module(*args)
        outputs = self._outputs_by_name(result)
        for spec in self.manifest.outputs:
            self._check_output(spec, outputs[spec.name], rows=args[0].shape[0])
        return outputs

    def render(self, shaped: ShapedOutputs, named: bool) -> dict[str, Any]:
        """The reply body: bare outputs (and indices) for the one-input form of a one-output
        model; `indices` only under a top_k policy."""
        bare = not named and len(shaped.tensors) == 1
        body: dict[str, Any] = {"outputs": _lists(shaped.tensors, bare)}
        if shaped.indices:
            body["indices"] = _lists(shaped.indices, bare)
        if self.manifest.labels is not None and shaped.top_class is not None:
            body["labels"] = _label_rows(shaped.top_class.cpu().tolist(), self.manifest.labels)
        return body

    def warm_up(self) -> None:
        """One all-zeros batch through `forward`, proving weights, dtypes and outputs agree."""
        rows = next((s.shape[0] for s in self.manifest.inputs if s.shape[0] != -1), 1)
        batch = {
            spec.name: torch.zeros([rows, *(1 if d == -1 else d for d in spec.shape[1:])],
                                   dtype=TORCH_DTYPES[spec.dtype], device=self.device)
            for spec in self.manifest.inputs
        }
        self.forward(batch)

    def _inputs_by_name(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(payload, Mapping):
            raise InvalidInput("the request must be a JSON object")
        unknown = set(payload) - set(TOP_LEVEL_KEYS)
        if unknown:
            raise InvalidInput(f"{len(unknown)} unknown top-level key(s); "
                               "expected 'inputs' and optionally 'parameters'")
        parameters = payload.get("parameters", {})
        if not isinstance(parameters, Mapping):
            raise InvalidInput("parameters: expected an object")
        if parameters:
            raise InvalidInput(f"parameters: {len(parameters)} unknown parameter(s); "
                               "this model understands none")
        if "inputs" not in payload:
            raise InvalidInput("inputs: required")
        inputs, specs = payload["inputs"], self.manifest.inputs
        names = [spec.name for spec in specs]
        if isinstance(inputs, list):
            if len(specs) != 1:
                raise InvalidInput(f"inputs: this model takes {len(specs)} inputs "
                                   f"({', '.join(names)}); send an object of named inputs")
            return {names[0]: inputs}
        if not isinstance(inputs, Mapping):
            raise InvalidInput("inputs: expected a nested list or an object of named inputs")
        if missing := [name for name in names if name not in inputs]:
            raise InvalidInput(f"inputs: missing input(s) {_declared(missing)}")
        if extra := set(inputs) - set(names):
            raise InvalidInput(f"inputs: {len(extra)} unknown input(s); "
                               f"this model takes {_declared(names)}")
        return dict(inputs)

    def _tensor(self, data: Any, spec: TensorSpec, budget: int) -> torch.Tensor:
        where = f"inputs.{spec.name}"
        if not isinstance(data, list):
            raise InvalidInput(f"{where}: expected a nested list of {spec.dtype}, "
                               f"got {JSON_TYPES.get(type(data), type(data).__name__)}")
        limits = self.manifest.limits
        shape, leaves, kinds = _measure(data, where, budget, limits.max_elements)
        expected = list(spec.shape)
        if 0 in shape:
            raise InvalidInput(f"{where}: empty (shape {shape}); at least one element is needed")
        if len(shape) != len(expected) or any(e not in (-1, g) for e, g in zip(
                expected, shape, strict=True)):
            raise InvalidInput(f"{where}: expected shape {expected}, got {shape}")
        refused = kinds - _accepted(spec.dtype)
        if refused:
            kinds = sorted(ELEMENT_NAMES.get(kind, kind.__name__) for kind in refused)
            raise InvalidInput(f"{where}: {', '.join(kinds)} not accepted for {spec.dtype}")
        return _convert(leaves, spec, limits.allow_nonfinite, where).reshape(shape)

    def _outputs_by_name(self, result: Any) -> dict[str, torch.Tensor]:
        names = [spec.name for spec in self.manifest.outputs]
        if isinstance(result, Mapping):
            if set(result) != set(names):
                raise self._fault(f"returned keys {sorted(result)}, declared {names}")
            return {name: result[name] for name in names}
        values = (result,) if isinstance(result, torch.Tensor) else result
        if not isinstance(values, tuple | list) or len(values) != len(names):
            raise self._fault(f"returned {type(result).__name__}, declared outputs {names}")
        return dict(zip(names, values, strict=True))

    def _check_output(self, spec: TensorSpec, tensor: Any, rows: int) -> None:
        if not isinstance(tensor, torch.Tensor):
            raise self._fault(f"output {spec.name!r} is {type(tensor).__name__}, not a tensor")
        if tensor.dtype != TORCH_DTYPES[spec.dtype]:
            raise self._fault(f"output {spec.name!r} has dtype {tensor.dtype}, "
                              f"declared {spec.dtype}")
        shape = list(tensor.shape)
        fits = len(shape) == len(spec.shape) and all(
            e in (-1, g) for e, g in zip(spec.shape, shape, strict=True))
        if not fits or shape[0] != rows:
            raise self._fault(f"output {spec.name!r} has shape {shape}, declared "
                              f"{list(spec.shape)} with {rows} rows")
        labels = self.manifest.labels
        if labels is not None and spec is self.manifest.outputs[0] and shape[-1] != len(labels):
            raise self._fault(f"output {spec.name!r} has {shape[-1]} classes, "
                              f"but {len(labels)} labels")

    def _fault(self, problem: str) -> ModelOutputError:
        return ModelOutputError(f"model {self.manifest.name!r} version {self.version!r}: {problem}")
