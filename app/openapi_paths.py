"""OpenAPI path items of the gateway's own routes: /auth, /models, /predict, probes, metrics."""

from __future__ import annotations

from typing import Any

from app.apidocs import ASSETS as DOCS_ASSETS
from app.openapi_responses import (
    BEARER,
    JSON,
    PROBLEM_JSON,
    body,
    header,
    operation,
    problems,
)
from app.openapi_schemas import ref

FORM = "application/x-www-form-urlencoded"
JOSE_JSON = "application/jose+json"
PROMETHEUS_TEXT = "text/plain"
OPENMETRICS_TEXT = "application/openmetrics-text"
JWK_SET = "application/jwk-set+json"
SEALED_NOTE = "A JWE (flattened JSON, dir + A256GCM) whose plaintext is"
CHECK_ORDER = ("Checks run in order, the first failure answers: token 401, permission 403, "
               "model/version 404, loaded 503, media type 415, size 413, envelope 400/403, "
               "inputs 422.")


def path_parameter(name: str, description: str) -> dict[str, Any]:
    """A required path segment (Flask's default converter: anything but a slash)."""
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}}


def _form_or_json(schema_name: str, description: str) -> dict[str, Any]:
    schema = ref(schema_name)
    return {"required": True, "description": description,
            "content": {FORM: {"schema": schema}, JSON: {"schema": schema}}}


def _oauth_error(description: str, basic_challenge: bool = False) -> dict[str, Any]:
    response = body(description, ref("OAuthError"), headers=("Cache-Control",))
    if basic_challenge:
        response["headers"]["WWW-Authenticate"] = {
            "description": "When the client authenticated with HTTP Basic (RFC 6749 §5.2).",
            "schema": {"type": "string", "pattern": '^Basic realm="torchgate"$'}}
    return response


def _revoke_unauthorized() -> dict[str, Any]:
    """401 of /auth/revoke: problem+json for a bearer token, RFC 6749 JSON for a client."""
    response = _oauth_error("`invalid_client` (JSON) when client credentials are wrong; "
                            "problem+json for a missing or bad bearer token.")
    response["content"][PROBLEM_JSON] = {"schema": ref("Problem")}
    response["headers"]["WWW-Authenticate"] = {
        "description": "Basic (client credentials) or Bearer (token) challenge.",
        "schema": {"type": "string"}}
    return response


def auth_paths() -> dict[str, Any]:
    """/auth/token, /auth/revoke, /auth/whoami."""
    token = operation(
        "issueToken", "auth", "Get an access token (RFC 6749 token endpoint)", {
            "200": body("Tokens issued.", ref("TokenResponse"), headers=("Cache-Control",)),
            "400": _oauth_error("invalid_request, invalid_grant or unsupported_grant_type."),
            "401": _oauth_error("invalid_client.", basic_challenge=True),
            **problems(413, 429, 500, 503)},
        security=[{}, {"basicAuth": []}],
        description="Form-encoded or JSON. Errors are RFC 6749 §5.2 JSON, except 429 (lockout "
                    "after LOGIN_MAX_FAILURES per username and per address) and 413/500/503, "
                    "which are problem+json.",
        requestBody=_form_or_json("TokenRequest", "One of the three grants."))
    revoke = operation(
        "revokeToken", "auth", "Revoke an access or refresh token (RFC 7009)", {
            "200": {"description": "Always, whether or not the token was known (RFC 7009 §2.2).",
                    "headers": {"X-Request-ID": header("X-Request-ID"),
                                "Cache-Control": header("Cache-Control")}},
            "401": _revoke_unauthorized(), **problems(400, 413, 429, 500, 503)},
        security=BEARER,
        description="The caller authenticates with its bearer token or, as RFC 7009 clients do, "
                    "with client credentials (HTTP Basic, or `client_id`/`client_secret` in the "
                    "body). A caller may revoke its own tokens; `tokens:revoke` allows any token. "
                    "Without any credentials the answer is 401 problem+json `unauthorized`.",
        requestBody=_form_or_json("RevokeRequest", "The token to revoke."))
    whoami = operation(
        "whoami", "auth", "Who the bearer token says the caller is",
        {"200": body("The caller.", ref("Whoami")), **problems(401, 500, 503)}, security=BEARER)
    return {"/auth/token": {"post": token}, "/auth/revoke": {"post": revoke},
            "/auth/whoami": {"get": whoami}}


def model_paths() -> dict[str, Any]:
    """/models and /models/{name}."""
    listing = operation(
        "listModels", "models", "The models the caller may call (all with `models:read`)",
        {"200": body("The visible models.", ref("ModelList")), **problems(401, 500, 503)},
        security=BEARER)
    describe = operation(
        "describeModel", "models", "One model's description",
        {"200": body("The model.", ref("Model")), **problems(401, 403, 404, 500, 503)},
        security=BEARER, parameters=[path_parameter("name", "The model name.")],
        description="403 without `models:read` or `predict:<name>`, then 404 if unknown.")
    return {"/models": {"get": listing}, "/models/{name}": {"get": describe}}


def sealed_request_body(plaintext: str) -> dict[str, Any]:
    """A JWE envelope whose plaintext is `plaintext`, or that plaintext as plain JSON."""
    return {"required": True, "content": {
        JOSE_JSON: {"schema": {"oneOf": [ref("Envelope"), ref("HpkeEnvelope")],
                               "description": f"{SEALED_NOTE} a {plaintext}; or an HPKE "
                                              "envelope to the gateway's key (ENVELOPE_MODES)."}},
        JSON: {"schema": {**ref(plaintext),
                          "description": "Accepted only with PAYLOAD_ENCRYPTION=optional "
                                         "(else 415)."}}}}


def sealed_reply(plaintext: str) -> dict[str, Any]:
    """The 200 reply: sealed like the request, or plain JSON for a plain request."""
    return {"description": "Sealed with the request's key (for an HPKE request: a key exported "
                           "from its context) and a fresh IV, or plain JSON for a plain request.",
            "headers": {name: header(name)
                        for name in ("X-Request-ID", "RateLimit-Policy", "RateLimit")},
            "content": {
                JOSE_JSON: {"schema": {**ref("Envelope"),
                                       "description": f"{SEALED_NOTE} a {plaintext}."}},
                JSON: {"schema": {**ref(plaintext), "description": "For a plain request."}}}}


def _predict(operation_id: str, summary: str, parameters: list) -> dict[str, Any]:
    return operation(
        operation_id, "predict", summary,
        {"200": sealed_reply("PredictReply"),
         **problems(400, 401, 403, 404, 413, 415, 422, 429, 500, 503)},
        security=BEARER, parameters=parameters,
        description=CHECK_ORDER + " 429 `rate-limited` when the caller's RATE_LIMIT_PREDICT "
                                  "is spent, `quota-exceeded` when its [quota] on the model is.",
        requestBody=sealed_request_body("PredictRequest"))


def predict_paths() -> dict[str, Any]:
    """/predict/{name} and /predict/{name}/versions/{version}."""
    name = path_parameter("name", "The model name; needs `predict:<name>`.")
    version = path_parameter("version", "A version directory name, e.g. 1.")
    return {
        "/predict/{name}": {"post": _predict(
            "predict", "Run the model's default version", [name])},
        "/predict/{name}/versions/{version}": {"post": _predict(
            "predictVersion", "Run one version of the model", [name, version])},
    }


def _metrics_reply() -> dict[str, Any]:
    reply = body("All workers combined: Prometheus text, or OpenMetrics when Accept asks.",
                 {"type": "string"}, PROMETHEUS_TEXT, headers=("Cache-Control",))
    reply["content"][OPENMETRICS_TEXT] = {"schema": {"type": "string"}}
    return reply


def operations_paths() -> dict[str, Any]:
    """Unauthenticated probes, metrics and this document."""
    return {
        "/healthz": {"get": operation("healthz", "operations", "The process answers", {
            "200": body("Alive.", ref("Health")), **problems(500)})},
        "/readyz": {"get": operation("readyz", "operations", "Models loaded, state reachable", {
            "200": body("Ready to serve.", ref("Ready")), **problems(500, 503)},
            description="503 names what is not ready: failed models, store, database, "
                        "audit trail (a write is probed, at most once a second).")},
        "/metrics": {"get": operation("metrics", "operations", "Prometheus metrics", {
            "200": _metrics_reply(), **problems(500)})},
        "/openapi.json": {"get": operation("openapi", "operations", "This document", {
            "200": body("OpenAPI 3.1.", {"type": "object"}), **problems(500)})},
        "/.well-known/jwks.json": {"get": operation("jwks", "operations", "Gateway public keys", {
            "200": _jwks_reply(), **problems(500)})},
    }


def _jwks_reply() -> dict[str, Any]:
    reply = body("RFC 7517 JWK Set: `use: enc` HPKE keys, `use: sig` receipt keys "
                 "(docs/envelope-hpke.md).", ref("Jwks"), media_type=JWK_SET)
    reply["headers"]["Cache-Control"] = {
        "description": "Public and cacheable for JWKS_MAX_AGE seconds.", "required": True,
        "schema": {"type": "string", "pattern": "^public, max-age=[0-9]+$"}}
    return reply


def _page(operation_id: str, summary: str, media_type: str) -> dict[str, Any]:
    return operation(operation_id, "operations", summary, {
        "200": body(summary + ".", {"type": "string"}, media_type=media_type), **problems(500)})


def docs_paths() -> dict[str, Any]:
    """/docs: Swagger UI, served from a package (DOCS setting: off in production by default)."""
    asset = operation("docsAsset", "operations", "A Swagger UI file", {
        "200": {"description": "The file (CSS, JavaScript or an icon).",
                "headers": {"X-Request-ID": header("X-Request-ID")},
                "content": {"text/css": {"schema": {"type": "string"}},
                            "text/javascript": {"schema": {"type": "string"}},
                            "image/png": {"schema": {"type": "string"}}}},
        **problems(404, 500)},
        parameters=[{**path_parameter("name", "One of the Swagger UI files the page uses."),
                     "schema": {"type": "string", "enum": sorted(DOCS_ASSETS)}}])
    return {"/docs": {"get": _page("docs", "Interactive API documentation", "text/html")},
            "/docs/init.js": {"get": _page("docsInitializer", "The page's script",
                                           "text/javascript")},
            "/docs/static/{name}": {"get": asset}}
