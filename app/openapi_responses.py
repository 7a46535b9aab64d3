"""Reusable OpenAPI responses and headers: problem+json per status, and the operation builder."""

from __future__ import annotations

from typing import Any

from app.openapi_schemas import Schema, ref
from errors import PROBLEM_TYPE_PREFIX

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
BEARER: list[dict[str, list]] = [{"bearerAuth": []}]

# Every slug a status can carry (CONTRACT §6, plus service-unavailable for a store or database
# outage); the per-status response schemas pin `type` to these.
PROBLEM_SLUGS: dict[int, tuple[str, ...]] = {
    400: ("invalid-request", "invalid-envelope", "stale-envelope", "replayed-envelope"),
    401: ("unauthorized", "token-expired", "token-revoked"),
    403: ("forbidden", "key-not-allowed"),
    404: ("not-found",),
    405: ("method-not-allowed",),
    413: ("payload-too-large",),
    415: ("unsupported-media-type",),
    422: ("invalid-input",),
    429: ("rate-limited", "quota-exceeded"),
    500: ("internal-error",),
    503: ("model-unavailable", "service-unavailable"),
}

_PROBLEM_DESCRIPTIONS = {
    400: "The request or its envelope is malformed, stale or replayed.",
    401: "No valid bearer token (missing, invalid, expired or revoked).",
    403: "The caller's roles lack the permission, the payload key is not the caller's, or the "
         "extraction monitor suspended the caller on this model (EXTRACTION_MONITOR=refuse).",
    404: "No such model or version (or resource).",
    405: "The path exists but not with this method; Allow lists the methods it has.",
    413: "The body is larger than MAX_BODY_BYTES.",
    415: "The Content-Type is not one this operation accepts.",
    422: "The inputs do not match the model's declared names, shapes, dtypes or limits.",
    429: "Too many requests (login lockout, a spent rate limit, or a model's spent [quota], "
         "then with RateLimit fields); wait Retry-After seconds.",
    500: "An unexpected failure; the body never holds a stack trace.",
    503: "Not available now: a model is not loaded, or the store, database or audit trail is "
         "unreachable; retry after Retry-After.",
}

_STATUS_HEADERS: dict[int, tuple[str, ...]] = {
    401: ("WWW-Authenticate",), 405: ("Allow",), 503: ("Retry-After",),
    429: ("Retry-After", "RateLimit-Policy", "RateLimit"),
}


def header(name: str) -> dict[str, str]:
    """A reference to a header of components.headers."""
    return {"$ref": f"#/components/headers/{name}"}


def problem(status: int, name: str = "Problem") -> dict[str, str]:
    """A reference to the problem+json response `name` for `status` (components.responses)."""
    return {"$ref": f"#/components/responses/{name}{status}"}


def problems(*statuses: int, name: str = "Problem") -> dict[str, Any]:
    """The responses object entries for several problem statuses."""
    return {str(status): problem(status, name) for status in statuses}


def body(description: str, schema: Schema, media_type: str = JSON,
         headers: tuple[str, ...] = ()) -> dict[str, Any]:
    """A response with one JSON body; every response carries X-Request-ID."""
    return {"description": description,
            "headers": {name: header(name) for name in ("X-Request-ID", *headers)},
            "content": {media_type: {"schema": schema}}}


def operation(operation_id: str, tag: str, summary: str, responses: dict[str, Any], *,
              security: list | None = None, **fields: Any) -> dict[str, Any]:
    """One operation object; `security` None means no authentication (an empty list)."""
    return {"operationId": operation_id, "tags": [tag], "summary": summary,
            "security": security or [], **fields, "responses": responses}


def problem_schema() -> Schema:
    """RFC 9457 problem details as every error outside the token endpoint is written."""
    return {
        "type": "object",
        "description": "RFC 9457 problem details; extension members may follow.",
        "required": ["type", "title", "status", "detail", "request_id"],
        "properties": {
            "type": {"type": "string", "pattern": f"^{PROBLEM_TYPE_PREFIX}[a-z-]+$"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "request_id": {"type": ["string", "null"]},
        },
    }


def problem_responses(name: str = "Problem", extension: Schema | None = None,
                      statuses: tuple[int, ...] = tuple(PROBLEM_SLUGS)) -> dict[str, Any]:
    """components.responses: one problem+json response per status, its slugs pinned."""
    responses = {}
    for status in statuses:
        schema = {"allOf": [ref("Problem"), *([extension] if extension else [])], "properties": {
            "type": {"enum": [PROBLEM_TYPE_PREFIX + slug for slug in PROBLEM_SLUGS[status]]},
            "status": {"const": status}}}
        responses[f"{name}{status}"] = body(
            _PROBLEM_DESCRIPTIONS[status], schema, PROBLEM_JSON, _STATUS_HEADERS.get(status, ()))
    return responses


def headers() -> dict[str, Any]:
    """components.headers."""
    return {
        "X-Request-ID": {
            "description": "The request id: the caller's X-Request-ID when it is 8-64 of "
                           "[A-Za-z0-9._-], else a fresh one. Also in logs and audit records.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{8,64}$"}},
        "WWW-Authenticate": {
            "description": 'Bearer realm="torchgate", with error="invalid_token" when a token '
                           "was presented (RFC 6750 §3.1).",
            "required": True,
            "schema": {"type": "string", "pattern": '^Bearer realm="torchgate"'}},
        "Retry-After": {"description": "Seconds to wait before retrying.", "required": True,
                        "schema": {"type": "integer", "minimum": 1}},
        "RateLimit-Policy": {
            "description": "A model call's [quota] windows (draft-ietf-httpapi-ratelimit-"
                           'headers): "quota-<seconds>";q=<calls>;w=<seconds>, comma-separated. '
                           "Only for a model with a quota.",
            "required": False, "schema": {"type": "string", "pattern": '^"quota-[0-9]+";q='}},
        "RateLimit": {
            "description": 'What is left of each quota window: "quota-<seconds>";r=<calls '
                           "left>;t=<seconds until the window ends>. Only for a model with a "
                           "quota.",
            "required": False, "schema": {"type": "string", "pattern": '^"quota-[0-9]+";r='}},
        "Allow": {"description": "The methods this path has.", "required": True,
                  "schema": {"type": "string"}},
        "Cache-Control": {"description": "Token and error replies are never cached.",
                          "required": True, "schema": {"const": "no-store"}},
    }
