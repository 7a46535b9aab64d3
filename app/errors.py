"""One problem+json builder (RFC 9457) and the app-level handlers that use it for every error."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, json, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from errors import (
    Forbidden,
    GatewayError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    StoreUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)

PROBLEM_JSON = "application/problem+json"
# Open Inference Protocol clients read an "error" string; RFC 9457 allows extension members, so
# every problem under /v2 carries one, whichever handler or hook produced it.
OIP_PATH_PREFIX = "/v2"
BEARER_CHALLENGE = 'Bearer realm="torchgate"'
log = logging.getLogger(__name__)

_HTTP_ERRORS: dict[int, type[GatewayError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
    405: MethodNotAllowed, 413: PayloadTooLarge, 415: UnsupportedMediaType,
}


def problem_response(error: GatewayError) -> Response:
    facts = g.get("facts")
    body = error.to_problem(facts.request_id if facts else None)
    if request.path == OIP_PATH_PREFIX or request.path.startswith(OIP_PATH_PREFIX + "/"):
        body["error"] = error.detail
    response = Response(json.dumps(body), status=error.status, mimetype=PROBLEM_JSON)
    response.headers.update(error.headers)
    if error.status == 401 and "WWW-Authenticate" not in response.headers:
        response.headers["WWW-Authenticate"] = BEARER_CHALLENGE
    response.headers["Cache-Control"] = "no-store"
    if facts is not None:
        facts.refusal = error.slug
    return response


def from_http_exception(exc: HTTPException) -> GatewayError:
    kind = _HTTP_ERRORS.get(exc.code or 500)
    if kind is None:
        error = GatewayError(exc.description)
        error.status, error.slug, error.title = exc.code or 500, "http-error", exc.name
        return error
    detail = {404: "No such resource.", 413: "The request body is too large."}.get(exc.code)
    error = kind(detail or exc.description)
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        error.headers["Allow"] = ", ".join(exc.valid_methods)
    return error


def init_app(app: Flask) -> None:
    app.register_error_handler(GatewayError, problem_response)
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(SQLAlchemyError, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)


def _http_exception(exc: HTTPException) -> Response:
    return problem_response(from_http_exception(exc))


def _database_unavailable(exc: SQLAlchemyError) -> Response:
    log.error("database error: %s", type(exc).__name__)
    return problem_response(ServiceUnavailable("The database is unreachable; request refused."))


def _store_unavailable(exc: StoreUnavailable) -> Response:
    """An outage of the shared store refuses requests: ERROR, the level operators alert on
    (the store's own WARNING line before it names the cause)."""
    log.error("shared store unavailable: request refused with 503")
    return problem_response(exc)


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return problem_response(InternalError("An internal error occurred."))
