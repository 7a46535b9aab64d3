"""/v2 (Open Inference Protocol): probes, metadata, and sealed inference in /predict's order."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from app import create_app
from tests.conftest import KEK, KEK_ID, SEALED, Auth, Sealer
from tests.fixtures import MLP_MANIFEST, write_model

PAIR_MANIFEST = """
architecture = "tests.app.test_oip:Pair"
[[inputs]]
name = "a"
shape = [-1, 2]
dtype = "float32"
[[inputs]]
name = "b"
shape = [-1, 2]
dtype = "int64"
[[outputs]]
name = "sum"
shape = [-1, 2]
dtype = "float32"
[[outputs]]
name = "greater"
shape = [-1, 2]
dtype = "bool"
"""
FRAGILE_MANIFEST = MLP_MANIFEST.replace("models.zoo:MLP", "tests.app.fragile:Fragile").replace(
    "in_features = 4\nhidden = [8]\nout_features = 3\n", "")
X = {"name": "x", "shape": [2, 4], "datatype": "FP32",
     "data": [0.1, 0.2, 0.3, 0.4, 1, 2, 3, 4]}
INFER = {"id": "req-42", "inputs": [X]}
PAIR = {"inputs": [{"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [1.5, 2, 0, -1]},
                   {"name": "b", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 0, -3]}]}
TINY_METADATA = {"name": "tiny", "versions": ["1"], "platform": "pytorch",
                 "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                 "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}]}
PAIR_METADATA = {"name": "pair", "versions": ["1"], "platform": "pytorch",
                 "inputs": [{"name": "a", "datatype": "FP32", "shape": [-1, 2]},
                            {"name": "b", "datatype": "INT64", "shape": [-1, 2]}],
                 "outputs": [{"name": "sum", "datatype": "FP32", "shape": [-1, 2]},
                             {"name": "greater", "datatype": "BOOL", "shape": [-1, 2]}]}
PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id", "error"}


class Pair(nn.Module):
    """Two inputs, two outputs and no weights: `a + b` (float32) and `a > b` (bool)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"sum": a + b.to(a.dtype), "greater": a > b}


@pytest.fixture(scope="module")
def zoo_repository(tmp_path_factory):
    """tiny and pair serve; bad is sealed under another key; fragile breaks on two rows."""
    from tests.app.fragile import Fragile

    root = tmp_path_factory.mktemp("zoo")
    write_model(root, "tiny", kek_id=KEK_ID, kek=KEK)
    write_model(root, "pair", kek_id=KEK_ID, kek=KEK, manifest=PAIR_MANIFEST, state={})
    write_model(root, "bad", kek_id=KEK_ID, kek=bytes(32))
    write_model(root, "fragile", kek_id=KEK_ID, kek=KEK, manifest=FRAGILE_MANIFEST,
                state=Fragile().state_dict())
    return root


@pytest.fixture
def build(overrides):
    """A client, auth and sealer (as alice) for an app built from changed settings."""
    def make(**changes):
        app = create_app({**overrides, **changes})
        auth = Auth(app)
        return app.test_client(), auth, Sealer(*auth.payload_key("alice"))
    return make


@pytest.fixture
def zoo(build, zoo_repository):
    return build(model_repository=str(zoo_repository))


def post(client, auth, sealer, request, path="/v2/models/tiny/infer", roles=("analyst",)):
    return client.post(path, data=sealer.seal(request), content_type=SEALED,
                       headers=auth.headers("alice", roles))


def infer(client, auth, sealer, request, path="/v2/models/tiny/infer") -> dict:
    response = post(client, auth, sealer, request, path)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == SEALED
    return sealer.open(response.data)


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    problem = response.json
    assert set(problem) == PROBLEM_KEYS
    assert problem["type"] == f"urn:torchgate:problem:{slug}"
    assert problem["error"] == problem["detail"]
    return problem


def with_input(**changes) -> dict:
    return {"inputs": [{**X, **changes}]}


# Health and metadata


def test_server_live_needs_no_token(client):
    response = client.get("/v2/health/live")
    assert response.status_code == 200 and response.json == {"live": True}


def test_server_ready_when_every_model_is_loaded(client):
    response = client.get("/v2/health/ready")
    assert response.status_code == 200 and response.json == {"ready": True}


def test_server_ready_is_503_naming_the_model_that_failed(zoo):
    client, _, _ = zoo
    problem = assert_problem(client.get("/v2/health/ready"), 503, "model-unavailable")
    assert "bad" in problem["error"] and "tiny" not in problem["error"]


def test_server_metadata_for_any_valid_token(client, auth):
    response = client.get("/v2", headers=auth.headers("v", ("viewer",)))
    assert response.status_code == 200
    assert response.json == {"name": "torchgate", "version": "0.1.0", "extensions": []}


def test_server_metadata_needs_a_token(client):
    assert_problem(client.get("/v2"), 401, "unauthorized")


@pytest.mark.parametrize(("path", "expected"), [
    ("/v2/models/tiny", TINY_METADATA),
    ("/v2/models/tiny/versions/1", TINY_METADATA),
    ("/v2/models/pair", PAIR_METADATA),
])
def test_model_metadata_in_oip_datatypes(zoo, path, expected):
    client, auth, _ = zoo
    response = client.get(path, headers=auth.headers("v", ("viewer",)))
    assert response.status_code == 200 and response.json == expected


@pytest.mark.parametrize(("roles", "path", "status", "slug"), [
    (None, "/v2/models/tiny", 401, "unauthorized"),
    (("nobody",), "/v2/models/tiny", 403, "forbidden"),
    (("nobody",), "/v2/models/ghost", 403, "forbidden"),
    (("viewer",), "/v2/models/ghost", 404, "not-found"),
    (("viewer",), "/v2/models/tiny/versions/9", 404, "not-found"),
])
def test_model_metadata_checks(client, auth, roles, path, status, slug):
    headers = auth.headers("x", roles) if roles else {}
    assert_problem(client.get(path, headers=headers), status, slug)


@pytest.mark.parametrize("path", ["/v2/models/tiny/ready", "/v2/models/tiny/versions/1/ready"])
def test_model_ready_when_loaded(client, auth, path):
    response = client.get(path, headers=auth.headers("v", ("viewer",)))
    assert response.status_code == 200 and response.json == {"name": "tiny", "ready": True}


@pytest.mark.parametrize(("roles", "path", "status", "slug"), [
    (None, "/v2/models/tiny/ready", 401, "unauthorized"),
    (("nobody",), "/v2/models/tiny/ready", 403, "forbidden"),
    (("viewer",), "/v2/models/ghost/ready", 404, "not-found"),
    (("viewer",), "/v2/models/tiny/versions/9/ready", 404, "not-found"),
    (("viewer",), "/v2/models/bad/ready", 503, "model-unavailable"),
])
def test_model_ready_checks(zoo, roles, path, status, slug):
    client, auth, _ = zoo
    headers = auth.headers("x", roles) if roles else {}
    assert_problem(client.get(path, headers=headers), status, slug)


# Inference


def test_sealed_infer_matches_predict(client, auth, sealer, predict):
    reply = infer(client, auth, sealer, INFER)
    expected = sealer.open(predict({"inputs": [X["data"][:4], X["data"][4:]]}).data)
    assert reply["model_name"] == "tiny" and reply["model_version"] == "1"
    assert reply["id"] == "req-42"
    assert reply["outputs"] == [{"name": "scores", "datatype": "FP32", "shape": [2, 3],
                                 "data": expected["outputs"][0] + expected["outputs"][1]}]


def test_nested_data_gives_the_same_outputs_as_flat(client, auth, sealer):
    nested = with_input(data=[X["data"][:4], X["data"][4:]])
    assert (infer(client, auth, sealer, nested)["outputs"]
            == infer(client, auth, sealer, INFER)["outputs"])


def test_reply_has_no_id_when_the_request_had_none(client, auth, sealer):
    assert "id" not in infer(client, auth, sealer, {"inputs": [X]})


def test_explicit_version_route(client, auth, sealer):
    reply = infer(client, auth, sealer, INFER, path="/v2/models/tiny/versions/1/infer")
    assert reply["model_version"] == "1"


def test_two_inputs_two_outputs_with_int64_and_bool(zoo):
    reply = infer(*zoo, PAIR, path="/v2/models/pair/infer")
    assert reply["outputs"] == [
        {"name": "sum", "datatype": "FP32", "shape": [2, 2], "data": [2.5, 4.0, 0.0, -4.0]},
        {"name": "greater", "datatype": "BOOL", "shape": [2, 2],
         "data": [True, False, False, True]}]


@pytest.mark.parametrize(("requested", "names"), [
    ([{"name": "greater"}], ["greater"]),
    ([{"name": "greater"}, {"name": "sum"}], ["greater", "sum"]),
    ([], ["sum", "greater"]),
])
def test_outputs_member_selects_and_orders_outputs(zoo, requested, names):
    reply = infer(*zoo, {**PAIR, "outputs": requested}, path="/v2/models/pair/infer")
    assert [output["name"] for output in reply["outputs"]] == names


def test_triton_binary_hints_are_answered_in_json(client, auth, sealer):
    request = {**INFER, "parameters": {"binary_data_output": True},
               "outputs": [{"name": "scores", "parameters": {"binary_data": True}}]}
    output = infer(client, auth, sealer, request)["outputs"][0]
    assert len(output["data"]) == 6 and "parameters" not in output


def test_optional_encryption_answers_plain_json(build):
    client, auth, _ = build(payload_encryption="optional")
    response = client.post("/v2/models/tiny/infer", json=INFER, headers=auth.headers())
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.json["id"] == "req-42" and response.json["outputs"][0]["shape"] == [2, 3]


def _call(client, auth, sealer, *, roles=("analyst",), path="/v2/models/tiny/infer",
          content_type=SEALED, body=None):
    headers = auth.headers("alice", roles) if roles is not None else {}
    data = sealer.seal(INFER) if body is None else body(sealer) if callable(body) else body
    return client.post(path, data=data, content_type=content_type, headers=headers)


@pytest.mark.parametrize(("case", "kwargs", "status", "slug"), [
    ("no token beats everything", dict(roles=None, path="/v2/models/nope/infer",
                                       content_type="text/plain"), 401, "unauthorized"),
    ("no permission, unknown model", dict(roles=("viewer",), path="/v2/models/nope/infer"),
     403, "forbidden"),
    ("no permission, known model", dict(roles=("viewer",)), 403, "forbidden"),
    ("permission, unknown model", dict(path="/v2/models/nope/infer", content_type="text/plain"),
     404, "not-found"),
    ("permission, unknown version", dict(path="/v2/models/tiny/versions/9/infer"),
     404, "not-found"),
    ("failed model before media type", dict(path="/v2/models/bad/infer",
                                            content_type="text/plain"), 503, "model-unavailable"),
    ("media type before body size", dict(content_type="text/plain", body=b"x" * 4096),
     415, "unsupported-media-type"),
    ("plain JSON while encryption is required", dict(content_type="application/json",
                                                     body=json.dumps(INFER).encode()),
     415, "unsupported-media-type"),
    ("garbage envelope", dict(body=b"{}"), 400, "invalid-envelope"),
    ("sealed non-JSON", dict(body=lambda sealer: sealer.seal(b"not json")), 400,
     "invalid-request"),
])
def test_infer_checks_answer_in_contract_order(zoo, case, kwargs, status, slug):
    client, auth, sealer = zoo
    assert_problem(_call(client, auth, sealer, **kwargs), status, slug)


def test_body_over_the_limit_is_413(build):
    client, auth, sealer = build(max_body_bytes=256)
    response = _call(client, auth, sealer, body=b"{" + b" " * 1024 + b"}")
    assert_problem(response, 413, "payload-too-large")


def test_infer_shares_the_predict_rate_limit(build):
    client, auth, sealer = build(rate_limit_predict="1/minute")
    first = client.post("/predict/tiny", data=sealer.seal({"inputs": [X["data"][:4]]}),
                        content_type=SEALED, headers=auth.headers())
    assert first.status_code == 200
    problem = assert_problem(_call(client, auth, sealer), 429, "rate-limited")
    assert "retry after" in problem["error"]


def test_binary_tensor_data_is_415(client, auth, sealer):
    response = client.post("/v2/models/tiny/infer", data=sealer.seal(INFER), content_type=SEALED,
                           headers={**auth.headers(), "Inference-Header-Content-Length": "10"})
    problem = assert_problem(response, 415, "unsupported-media-type")
    assert "Binary tensor data" in problem["error"]


@pytest.mark.parametrize(("case", "request_", "detail"), [
    ("wrong datatype", with_input(datatype="FP64"), "inputs.x: datatype must be 'FP32'"),
    ("unsupported datatype", with_input(datatype="BYTES"), "inputs.x: datatype must be 'FP32'"),
    ("data shorter than shape", with_input(data=X["data"][:7]),
     "inputs.x: shape [2, 4] holds 8 elements, data has 7"),
    ("shape against declared", with_input(shape=[4, 2]), "expected shape [-1, 4], got [4, 2]"),
    ("nested data against shape", with_input(shape=[1, 8], data=[[1, 2, 3, 4]] * 2),
     "inputs.x: shape [1, 8] does not match the nested data ([2, 4])"),
    ("ragged nested data", with_input(data=[[1, 2, 3, 4], [1, 2]]), "ragged nested list"),
    ("strings in data", with_input(shape=[1, 4], data=["1", "2", "3", "4"]),
     "strings not accepted for float32"),
    ("negative dimension", with_input(shape=[-1, 4]), "non-negative integers"),
    ("too many dimensions", with_input(shape=[1] * 33 + [8]), "at most 32 dimensions"),
    ("data not an array", with_input(data="0.1 0.2"), "inputs.x.data: expected an array"),
    ("unknown input name", {"inputs": [X, {**X, "name": "y"}]},
     "inputs[1]: unknown input name; this model takes 'x'"),
    ("input given twice", {"inputs": [X, X]}, "inputs.x: given more than once"),
    ("missing input", {"inputs": []}, "inputs: missing input(s) 'x'"),
    ("inputs not an array", {"inputs": {"x": X}}, "inputs: required, an array of tensors"),
    ("unknown member", {**INFER, "extra": 1}, "the request: 1 unknown member(s)"),
    ("unknown parameter", {**INFER, "parameters": {"priority": 1}},
     "parameters: 1 unsupported parameter(s)"),
    ("id not a string", {**INFER, "id": 42}, "id: expected a string"),
    ("unknown output", {**INFER, "outputs": [{"name": "logits"}]},
     "outputs[0]: unknown output name; this model produces 'scores'"),
])
def test_bad_oip_tensors_are_422(client, auth, sealer, case, request_, detail):
    problem = assert_problem(post(client, auth, sealer, request_), 422, "invalid-input")
    assert detail in problem["error"], case


def test_unequal_batches_across_inputs_are_422(zoo):
    request = copy.deepcopy(PAIR)
    request["inputs"][1].update(shape=[1, 2], data=[1, 2])
    problem = assert_problem(post(*zoo, request, path="/v2/models/pair/infer"), 422,
                             "invalid-input")
    assert "the first dimension (batch) must be equal" in problem["error"]


# The OIP error member


@pytest.mark.parametrize(("method", "path", "status", "slug"), [
    ("get", "/v2/models/tiny/infer", 405, "method-not-allowed"),
    ("get", "/v2/no/such/route", 404, "not-found"),
])
def test_routing_errors_under_v2_carry_the_error_member(client, method, path, status, slug):
    assert_problem(getattr(client, method)(path), status, slug)


def test_model_that_breaks_at_inference_is_500_with_the_error_member(zoo):
    request = with_input(shape=[2, 4])
    problem = assert_problem(post(*zoo, request, path="/v2/models/fragile/infer"), 500,
                             "internal-error")
    assert problem["error"] == "An internal error occurred."


def test_problems_outside_v2_keep_their_shape(client):
    response = client.get("/models/tiny")
    assert response.status_code == 401 and "error" not in response.json
