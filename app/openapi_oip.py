"""OpenAPI path items and schemas of the Open Inference Protocol v2 REST routes (/v2...)."""

from __future__ import annotations

from typing import Any

from app.openapi_paths import CHECK_ORDER, path_parameter, sealed_reply, sealed_request_body
from app.openapi_responses import BEARER, body, operation, problem_responses, problems
from app.openapi_schemas import RECEIPT, Schema, ref
from models.oip_tensors import DATATYPES, PLATFORM

OIP_PROBLEM = "OipProblem"
OIP_STATUSES = (400, 401, 403, 404, 413, 415, 422, 429, 500, 503)


def _object(properties: Schema, required: tuple[str, ...], **extra: Any) -> Schema:
    return {"type": "object", "required": list(required), "properties": properties,
            "additionalProperties": False, **extra}


def _tensor(description: str, data: Schema | None, min_dim: int) -> Schema:
    properties: Schema = {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": min_dim}},
        "datatype": {"enum": sorted(set(DATATYPES.values()))},
    }
    if data is None:
        return _object(properties, ("name", "datatype", "shape"), description=description)
    return _object({**properties, "data": data, "parameters": _flags()},
                   ("name", "datatype", "shape", "data"), description=description)


def _flags(*names: str) -> Schema:
    """OIP parameters: only these boolean hints are understood (binary data is answered JSON)."""
    known = ", ".join(names) or "none"
    return _object({name: {"type": "boolean"} for name in names}, (),
                   description=f"Parameters understood: {known} (binary data is answered as JSON).")


def oip_schemas() -> dict[str, Schema]:
    """components.schemas of the /v2 bodies (OIP v2 REST as KServe and Triton define it)."""
    output_value = {"anyOf": [{"type": ["number", "boolean"]},
                              {"enum": ["NaN", "Infinity", "-Infinity"]}]}
    return {
        "OipServerLive": _object({"live": {"type": "boolean"}}, ("live",)),
        "OipServerReady": _object({"ready": {"type": "boolean"}}, ("ready",)),
        "OipServerMetadata": _object({"name": {"type": "string"}, "version": {"type": "string"},
                                      "extensions": {"type": "array",
                                                     "items": {"type": "string"}}},
                                     ("name", "version", "extensions")),
        "OipModelReady": _object({"name": {"type": "string"}, "ready": {"type": "boolean"}},
                                 ("name", "ready")),
        "OipTensorMetadata": _tensor("A declared tensor; -1 is any size.", None, -1),
        "OipModelMetadata": _object({
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"const": PLATFORM},
            "inputs": {"type": "array", "items": ref("OipTensorMetadata")},
            "outputs": {"type": "array", "items": ref("OipTensorMetadata")},
        }, ("name", "versions", "platform", "inputs", "outputs")),
        "OipRequestInput": _tensor(
            "One input: data flat row-major, or nested as shape says.",
            {"type": "array", "items": {"type": ["number", "boolean", "array"]}}, 0),
        "OipRequestOutput": _object({"name": {"type": "string"},
                                     "parameters": _flags("binary_data")},
                                    ("name",)),
        "OipInferenceRequest": _object({
            "id": {"type": "string"},
            "parameters": _flags("binary_data_output"),
            "inputs": {"type": "array", "items": ref("OipRequestInput")},
            "outputs": {"type": "array", "items": ref("OipRequestOutput")},
        }, ("inputs",), description="The plaintext of a sealed /v2 infer request."),
        "OipResponseOutput": _object({
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"enum": sorted(set(DATATYPES.values()))},
            "data": {"type": "array", "items": output_value,
                     "description": "Flat, row-major; non-finite floats as strings."},
        }, ("name", "datatype", "shape", "data")),
        "OipInferenceResponse": _object({
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": ref("OipResponseOutput")},
            "parameters": _object({"receipt": RECEIPT}, ("receipt",),
                                  additionalProperties=False),
        }, ("model_name", "model_version", "outputs", "parameters"),
            description="The plaintext of a sealed /v2 infer reply."),
        "OipError": {"type": "object", "required": ["error"],
                     "properties": {"error": {"type": "string",
                                              "description": "OIP's error member: the detail."}}},
    }


def oip_responses() -> dict[str, Any]:
    """components.responses: problem+json that also carries OIP's "error" member."""
    return problem_responses(OIP_PROBLEM, ref("OipError"), OIP_STATUSES)


def _model_operations(versioned: bool) -> dict[str, Any]:
    """Metadata, ready and infer of the default version, or of one version."""
    base = "/v2/models/{name}" + ("/versions/{version}" if versioned else "")
    params = [path_parameter("name", "The model name.")]
    if versioned:
        params.append(path_parameter("version", "A version directory name, e.g. 1."))
    key, where = ("Version", "one version") if versioned else ("", "the model")
    seen = problems(401, 403, 404, 500, 503, name=OIP_PROBLEM)
    return {
        base: {"get": operation(
            f"oipModelMetadata{key}", "oip", f"Metadata of {where}",
            {"200": body("Model metadata.", ref("OipModelMetadata")), **seen},
            security=BEARER, parameters=params,
            description="403 without `models:read` or `predict:<name>`, then 404 if unknown.")},
        base + "/ready": {"get": operation(
            f"oipModelReady{key}", "oip", f"Whether {where} is loaded",
            {"200": body("Loaded.", ref("OipModelReady")), **seen},
            security=BEARER, parameters=params,
            description="503 model-unavailable when it failed to load.")},
        base + "/infer": {"post": operation(
            f"oipInfer{key}", "oip", f"Infer with {where}",
            {"200": sealed_reply("OipInferenceResponse"),
             **problems(*OIP_STATUSES, name=OIP_PROBLEM)},
            security=BEARER, parameters=params,
            description=CHECK_ORDER + " 429 when the caller's RATE_LIMIT_PREDICT or the "
                                      "model's [quota] (both shared with /predict) is spent. "
                                      "Binary tensor data "
                                      "(Inference-Header-Content-Length) is refused with 415.",
            requestBody=sealed_request_body("OipInferenceRequest"))},
    }


def oip_paths() -> dict[str, Any]:
    """/v2, /v2/health/*, /v2/models/{name}[/versions/{version}][/ready|/infer]."""
    return {
        "/v2": {"get": operation("oipServerMetadata", "oip", "Server metadata", {
            "200": body("Name, version, extensions.", ref("OipServerMetadata")),
            **problems(401, 500, 503, name=OIP_PROBLEM)}, security=BEARER)},
        "/v2/health/live": {"get": operation("oipLive", "oip", "Server liveness (no token)", {
            "200": body("Live.", ref("OipServerLive")),
            **problems(500, name=OIP_PROBLEM)})},
        "/v2/health/ready": {"get": operation("oipReady", "oip", "Server readiness (no token)", {
            "200": body("Ready.", ref("OipServerReady")),
            **problems(500, 503, name=OIP_PROBLEM)},
            description="503 as /readyz when a model, the store or the database is not ready.")},
        **_model_operations(versioned=False),
        **_model_operations(versioned=True),
    }
