"""GET /openapi.json: the OpenAPI 3.1 description of every route, built from the path modules."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app import openapi_schemas as schemas
from app.gateway import current_gateway
from app.openapi_management import TAG as MANAGEMENT_TAG
from app.openapi_management import management_paths, management_schemas
from app.openapi_oip import oip_paths, oip_responses, oip_schemas
from app.openapi_paths import (
    auth_paths,
    docs_paths,
    model_paths,
    operations_paths,
    predict_paths,
)
from app.openapi_responses import headers, problem_responses, problem_schema

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"

bp = Blueprint("openapi", __name__)

DESCRIPTION = """\
torchgate serves torch models. Every model call passes JWT authentication, a role permission \
check and AES-256-GCM payload encryption: request and reply bodies are JWE (RFC 7516) in \
Flattened JSON Serialization, `alg` `dir`, `enc` `A256GCM`, media type `application/jose+json`, \
whose plaintexts are `PredictRequest` and `PredictReply` (`OipInferenceRequest` and \
`OipInferenceResponse` under `/v2`). With \
`PAYLOAD_ENCRYPTION=optional` the plaintext may also be sent as `application/json` and is \
answered the same way.

Errors are RFC 9457 `application/problem+json` with `type` `urn:torchgate:problem:<slug>`, \
except the RFC 6749 §5.2 JSON errors (`{"error": ...}`) of `/auth/token` and `/auth/revoke`; \
under `/v2` a problem also carries OIP's `error` member. A 401 carries \
`WWW-Authenticate`; 429 and 503 carry `Retry-After`. A method a path does not have gets 405 \
`method-not-allowed` with `Allow`; an unknown path gets 404 `not-found`. Every response carries \
`X-Request-ID`."""

TAGS = [
    {"name": "auth", "description": "OAuth 2.0 tokens (RFC 6749, RFC 7009) and the caller."},
    {"name": "models", "description": "What the caller may call."},
    {"name": "predict", "description": "Sealed model calls."},
    {"name": "oip", "description": "Open Inference Protocol v2 REST (KServe, Triton)."},
    {"name": "operations", "description": "Probes, metrics and this document; no auth."},
    MANAGEMENT_TAG,
]

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "An access token from POST /auth/token."},
    "basicAuth": {"type": "http", "scheme": "basic",
                  "description": "client_id and client_secret of the client_credentials grant, "
                                 "form-url-encoded (RFC 6749 §2.3.1)."},
}


def component_schemas() -> dict[str, Any]:
    """components.schemas: every body, request and reply."""
    return {"Problem": problem_schema(), **schemas.auth_schemas(), **schemas.model_schemas(),
            **schemas.envelope_schemas(), **schemas.predict_schemas(),
            **schemas.health_schemas(), **oip_schemas(), **management_schemas()}


def build_document(docs_ui: bool = True) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (pure: no app or request needed); /docs when served."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "torchgate", "version": API_VERSION, "description": DESCRIPTION},
        "tags": TAGS,
        "paths": {**auth_paths(), **model_paths(), **predict_paths(), **oip_paths(),
                  **management_paths(), **operations_paths(),
                  **(docs_paths() if docs_ui else {})},
        "components": {"schemas": component_schemas(),
                       "responses": {**problem_responses(), **oip_responses()},
                       "headers": headers(), "securitySchemes": SECURITY_SCHEMES},
    }


@bp.get("/openapi.json")
def openapi_document():
    return build_document(current_gateway().settings.docs_enabled)
