"""ModelRunner: request validation (422 table), dtype conversion, inference and rendering."""

from __future__ import annotations

import json

import pytest
import torch

from errors import InvalidInput
from models.runner import ModelOutputError
from tests.fixtures import MLP_MANIFEST, tiny_mlp
from tests.models.conftest import (
    TWO_INPUT_MANIFEST,
    Echo,
    SumAndConcat,
    echo_manifest,
    make_runner,
)

NAN, INF = json.loads("NaN"), json.loads("Infinity")
FLOAT = echo_manifest()
INT64 = echo_manifest("int64")
UINT8 = echo_manifest("uint8")
FLOAT16 = echo_manifest("float16")
BOOL = echo_manifest("bool")
SMALL = echo_manifest(limits="[limits]\nmax_elements = 6\n")
TWO_SMALL = TWO_INPUT_MANIFEST + "[limits]\nmax_elements = 5\n"

INVALID = [
    ("wrong inner size", FLOAT, {"inputs": [[1, 2]]},
     "inputs.x: expected shape [-1, 3], got [1, 2]"),
    ("ragged rows", FLOAT, {"inputs": [[1, 2, 3], [1, 2]]},
     "inputs.x: ragged nested list: dimension 1 has lengths from 2 to 3"),
    ("ragged nesting", FLOAT, {"inputs": [[1, 2, 3], 4]},
     "inputs.x: ragged nested list: lists and scalars mixed at dimension 1"),
    ("strings", FLOAT, {"inputs": [["1", "2", "3"]]}, "inputs.x: strings not accepted for float32"),
    ("null", FLOAT, {"inputs": [[1, None, 3]]}, "inputs.x: nulls not accepted for float32"),
    ("objects", FLOAT, {"inputs": [[1, {}, 3]]}, "inputs.x: objects not accepted"),
    ("bools into float", FLOAT, {"inputs": [[True, False, True]]},
     "inputs.x: booleans not accepted for float32"),
    ("one bool among floats", FLOAT, {"inputs": [[1.5, True, 2]]},
     "inputs.x: booleans not accepted for float32"),
    ("float into int", INT64, {"inputs": [[1.5, 2, 3]]},
     "inputs.x: non-integer numbers not accepted for int64"),
    ("integral float into int", INT64, {"inputs": [[1.0, 2, 3]]},
     "non-integer numbers not accepted for int64"),
    ("bools into int", INT64, {"inputs": [[True, 2, 3]]}, "booleans not accepted for int64"),
    ("numbers into bool", BOOL, {"inputs": [[1, 0, 1]]}, "integers not accepted for bool"),
    ("uint8 above range", UINT8, {"inputs": [[0, 256, 1]]},
     "inputs.x: a number is out of range for uint8 (0..255)"),
    ("uint8 below range", UINT8, {"inputs": [[0, -1, 1]]}, "out of range for uint8"),
    ("int64 overflow", INT64, {"inputs": [[2**63, 0, 0]]}, "out of range for int64"),
    ("float16 overflow", FLOAT16, {"inputs": [[1e6, 0, 0]]}, "out of range for float16"),
    ("huge integer into float", FLOAT, {"inputs": [[10**400, 0, 0]]}, "out of range for float32"),
    ("NaN", FLOAT, {"inputs": [[NAN, 0, 0]]}, "inputs.x: NaN and Infinity are not accepted"),
    ("Infinity", FLOAT, {"inputs": [[0, -INF, 0]]}, "inputs.x: NaN and Infinity are not accepted"),
    ("too deep", FLOAT, {"inputs": [[[1], [2], [3]]]},
     "inputs.x: expected shape [-1, 3], got [1, 3, 1]"),
    ("too shallow", FLOAT, {"inputs": [1, 2, 3]}, "inputs.x: expected shape [-1, 3], got [3]"),
    ("scalar inputs", FLOAT, {"inputs": 5},
     "inputs: expected a nested list or an object of named inputs"),
    ("named input not a list", FLOAT, {"inputs": {"x": "abc"}},
     "inputs.x: expected a nested list of float32, got a string"),
    ("too many elements", SMALL, {"inputs": [[1, 2, 3]] * 3},
     "inputs.x: too many elements; this model accepts at most 6"),
    ("too many elements together", TWO_SMALL, {"inputs": {"a": [[1, 2]] * 2, "b": [[1]] * 2}},
     "inputs.b: too many elements; this model accepts at most 5"),
    ("empty", FLOAT, {"inputs": []}, "inputs.x: empty (shape [0])"),
    ("empty rows", FLOAT, {"inputs": [[], []]}, "inputs.x: empty (shape [2, 0])"),
    ("inputs missing", FLOAT, {}, "inputs: required"),
    ("unknown top-level key", FLOAT, {"inputs": [[1, 2, 3]], "input": 1, "extra": 2},
     "2 unknown top-level key(s); expected 'inputs' and optionally 'parameters'"),
    ("unknown parameter", FLOAT, {"inputs": [[1, 2, 3]], "parameters": {"temperature": 0.5}},
     "parameters: 1 unknown parameter(s); this model understands none"),
    ("parameters not an object", FLOAT, {"inputs": [[1, 2, 3]], "parameters": [1]},
     "parameters: expected an object"),
    ("request not an object", FLOAT, [[1, 2, 3]], "the request must be a JSON object"),
    ("named form, missing input", TWO_INPUT_MANIFEST, {"inputs": {"a": [[1, 2]]}},
     "inputs: missing input(s) 'b'"),
    ("named form, extra input", TWO_INPUT_MANIFEST,
     {"inputs": {"a": [[1, 2]], "b": [[3]], "c": [[4]]}},
     "inputs: 1 unknown input(s); this model takes 'a', 'b'"),
    ("bare list for two inputs", TWO_INPUT_MANIFEST, {"inputs": [[1, 2]]},
     "inputs: this model takes 2 inputs (a, b)"),
    ("batch sizes differ", TWO_INPUT_MANIFEST, {"inputs": {"a": [[1, 2]] * 2, "b": [[3]]}},
     "inputs: the first dimension (batch) must be equal, got a=2, b=1"),
]


@pytest.mark.parametrize(("case", "manifest", "payload", "fragment"), INVALID,
                         ids=[row[0] for row in INVALID])
def test_invalid_input_is_422_naming_the_problem(case, manifest, payload, fragment):
    runner = make_runner(manifest, SumAndConcat() if "SumAndConcat" in manifest else Echo())
    with pytest.raises(InvalidInput) as caught:
        runner.prepare(payload)
    assert caught.value.status == 422
    assert fragment in caught.value.detail


@pytest.mark.parametrize("payload", [
    {"inputs": [[1, 2, 3]], "secret-key-name": 1},
    {"inputs": [[1, 2, 3]], "parameters": {"secret-key-name": 1}},
    {"inputs": {"x": [[1, 2, 3]], "secret-key-name": [[1]]}},
])
def test_client_sent_names_are_not_echoed(payload):
    # Problem details travel unencrypted (CONTRACT §4): no plaintext, key names included.
    with pytest.raises(InvalidInput) as caught:
        make_runner(FLOAT, Echo()).prepare(payload)
    assert "secret" not in caught.value.detail


CONVERSIONS = [
    ("float32 from ints", "float32", [[1, 2, 3]], torch.float32, [[1.0, 2.0, 3.0]]),
    ("float64 keeps precision", "float64", [[0.1, 1.0000000000000002, 1e300]], torch.float64,
     [[0.1, 1.0000000000000002, 1e300]]),
    ("float16", "float16", [[0.5, -2, 65504]], torch.float16, [[0.5, -2.0, 65504.0]]),
    ("bfloat16", "bfloat16", [[0.5, -2, 1]], torch.bfloat16, [[0.5, -2.0, 1.0]]),
    ("int64 extremes", "int64", [[2**63 - 1, -(2**63), 0]], torch.int64,
     [[2**63 - 1, -(2**63), 0]]),
    ("int32", "int32", [[2**31 - 1, -(2**31), 7]], torch.int32, [[2**31 - 1, -(2**31), 7]]),
    ("uint8 range", "uint8", [[0, 255, 17]], torch.uint8, [[0, 255, 17]]),
    ("bool", "bool", [[True, False, True]], torch.bool, [[True, False, True]]),
]


@pytest.mark.parametrize(("case", "dtype", "data", "expected_dtype", "expected"), CONVERSIONS,
                         ids=[row[0] for row in CONVERSIONS])
def test_inputs_convert_to_the_declared_dtype(case, dtype, data, expected_dtype, expected):
    batch = make_runner(echo_manifest(dtype), Echo()).prepare({"inputs": data})
    assert batch["x"].dtype == expected_dtype
    assert batch["x"].device == torch.device("cpu")
    assert batch["x"].tolist() == expected


def test_nonfinite_values_pass_when_the_model_allows_them():
    limits = "[limits]\nallow_nonfinite = true\n"
    runner = make_runner(echo_manifest(limits=limits), Echo())
    reply = runner.predict({"inputs": [[NAN, INF, -INF]]})
    assert reply["outputs"] == [["NaN", "Infinity", "-Infinity"]]  # ProtoJSON's spelling
    json.dumps(reply, allow_nan=False)  # strict JSON: no bare NaN reaches a client


def test_fixed_dimensions_are_enforced_and_free_ones_are_not():
    runner = make_runner(echo_manifest(shape="[2, -1]"), Echo())
    assert runner.prepare({"inputs": [[1] * 5, [2] * 5]})["x"].shape == (2, 5)
    with pytest.raises(InvalidInput, match=r"expected shape \[2, -1\], got \[3, 5\]"):
        runner.prepare({"inputs": [[1] * 5] * 3})


def test_bare_form_renders_bare_outputs_and_labels():
    runner = make_runner(MLP_MANIFEST, tiny_mlp())
    rows = [[0.1, 0.2, 0.3, 0.4], [-1, 0, 1, 2]]
    reply = runner.predict({"inputs": rows})
    expected = tiny_mlp()(torch.tensor(rows))
    assert torch.allclose(torch.tensor(reply["outputs"]), expected, atol=1e-6)
    assert reply["labels"] == [["a", "b", "c"][i] for i in expected.argmax(dim=1).tolist()]


def test_named_form_renders_outputs_by_name():
    runner = make_runner(MLP_MANIFEST, tiny_mlp())
    reply = runner.predict({"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}, "parameters": {}})
    assert set(reply) == {"outputs", "labels"}
    assert list(reply["outputs"]) == ["scores"]
    assert len(reply["outputs"]["scores"]) == 1 and len(reply["labels"]) == 1


def test_no_labels_key_without_declared_labels():
    reply = make_runner(FLOAT, Echo()).predict({"inputs": [[1, 2, 3]]})
    assert reply == {"outputs": [[1.0, 2.0, 3.0]]}


@pytest.mark.parametrize("returns", ["tuple", "list", "dict"])
def test_multiple_outputs_map_by_order_or_name(returns):
    runner = make_runner(TWO_INPUT_MANIFEST, SumAndConcat(returns))
    reply = runner.predict({"inputs": {"a": [[1, 2], [3, 4]], "b": [[10], [20]]}})
    assert reply == {"outputs": {"total": [[13.0], [27.0]],
                                 "both": [[1.0, 2.0, 10.0], [3.0, 4.0, 20.0]]}}


def test_forward_runs_in_inference_mode():
    runner = make_runner(MLP_MANIFEST, tiny_mlp())
    outputs = runner.forward(runner.prepare({"inputs": [[1, 2, 3, 4]]}))
    assert outputs["scores"].is_inference()


class Constant(torch.nn.Module):
    """Returns whatever it was built with, whatever the input."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        return self.value


MISMATCHES = [
    ("wrong dtype", torch.zeros(1, 3, dtype=torch.float64), "has dtype torch.float64"),
    ("wrong shape", torch.zeros(1, 4), "has shape [1, 4], declared [-1, 3]"),
    ("wrong rows", torch.zeros(2, 3), "with 1 rows"),
    ("too many outputs", (torch.zeros(1, 3), torch.zeros(1, 3)), "declared outputs ['y']"),
    ("not a tensor", [[1.0, 2.0, 3.0]], "is list, not a tensor"),
    ("wrong dict keys", {"z": torch.zeros(1, 3)}, "returned keys ['z'], declared ['y']"),
    ("none", None, "returned NoneType"),
]


@pytest.mark.parametrize(("case", "value", "fragment"), MISMATCHES,
                         ids=[row[0] for row in MISMATCHES])
def test_undeclared_outputs_are_a_server_fault(case, value, fragment):
    runner = make_runner(FLOAT, Constant(value))
    with pytest.raises(ModelOutputError) as caught:
        runner.predict({"inputs": [[1, 2, 3]]})
    assert not isinstance(caught.value, InvalidInput)
    assert "model 'test' version '1'" in str(caught.value)
    assert fragment in str(caught.value)


def test_warm_up_runs_zeros_through_the_model():
    make_runner(MLP_MANIFEST, tiny_mlp()).warm_up()
    with pytest.raises(ModelOutputError, match="has dtype"):
        make_runner(echo_manifest("float32"), Constant(torch.zeros(1, 3, dtype=torch.int64))
                    ).warm_up()

