"""/v2: the Open Inference Protocol (KServe/Triton "V2", REST/JSON) on the same guarded path.

Inference passes the same checks, in the same order, as /predict: token 401, permission 403,
model and version 404, loaded 503, media type 415, size 413, envelope 400/403, tensors 422.
Errors stay RFC 9457 problem+json and also carry the OIP `"error"` member, which is what OIP
clients read.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, request

from app import health
from app.gateway import current_gateway
from app.guard import authenticate, token_required
from app.predict import call_model, caller_policy, require_visible
from errors import ModelNotFound
from models import oip_tensors
from models.output_policy import FULL_SCORES, OutputPolicy
from models.runner import ModelRunner

BINARY_DATA_HEADER = "Inference-Header-Content-Length"
SERVER_NAME = "torchgate"
RECEIPT_AT_OIP = ("parameters", "receipt")  # OIP replies carry extra members in parameters

bp = Blueprint("oip", __name__, url_prefix="/v2")


@bp.get("/health/live")
def server_live():
    """OIP server live, no token: 200 {"live": true} while the process answers."""
    return {"live": True}


@bp.get("/health/ready")
def server_ready():
    """OIP server ready, no token: 200 {"ready": true}; 503 problem as /readyz when not."""
    health.readyz()  # raises the same 503 as /readyz, naming what is not ready
    return {"ready": True}


@bp.get("")
@token_required
def server_metadata():
    """OIP server metadata (any valid token): {"name", "version", "extensions": []}."""
    return {"name": SERVER_NAME, "version": _server_version(), "extensions": []}


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None):
    """OIP model metadata: {"name", "versions", "platform", "inputs", "outputs"}; each tensor
    {"name", "datatype", "shape"} (-1 = any size). 403 without models:read or predict:<name>,
    then 404 for an unknown model or version."""
    identity = authenticate()
    require_visible(identity, name)
    described = current_gateway().registry.describe(name)
    if version is not None and version not in described["versions"]:
        raise ModelNotFound(name, version)
    return oip_tensors.model_metadata(described, caller_policy(identity, name) or FULL_SCORES)


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None):
    """OIP model ready: 200 {"name", "ready": true} when loaded; 503 model-unavailable when it
    failed to load; 403 and 404 as for the metadata."""
    require_visible(authenticate(), name)
    current_gateway().registry.get(name, version)
    return {"name": name, "ready": True}


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None):
    """OIP inference, sealed like /predict (plain application/json only when PAYLOAD_ENCRYPTION
    is optional). Plaintext in: {"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype",
    "data"}], "outputs"?: [{"name"}]}, data flat row-major or nested. Plaintext out:
    {"model_name", "model_version", "id"?, "outputs": [{"name", "shape", "datatype", "data"}],
    "parameters": {"receipt"}}, sealed with the request's key (docs/receipts.md). Binary
    tensor data is not supported (415)."""
    unsupported = ("Binary tensor data is not supported; send the tensors as JSON data."
                   if BINARY_DATA_HEADER in request.headers else None)
    return call_model(name, version, _infer, unsupported, RECEIPT_AT_OIP)


def _infer(runner: ModelRunner, payload: dict[str, Any], _request_id: str,
           policy: OutputPolicy) -> dict[str, Any]:
    return oip_tensors.infer(runner, payload, policy)


def _server_version() -> str:
    try:
        return version("torchgate")
    except PackageNotFoundError:  # running from a checkout that was never pip-installed
        return "unknown"
