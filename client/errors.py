"""Typed client errors: every gateway problem+json and OAuth error becomes one TorchgateError."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

PROBLEM_TYPE_PREFIX = "urn:torchgate:problem:"


class TorchgateError(Exception):
    """A refused or failed call: status (None when no answer came), slug, detail, request id."""

    def __init__(self, detail: str, *, status: int | None = None, slug: str = "error",
                 request_id: str | None = None, retry_after: float | None = None):
        super().__init__(f"{slug}: {detail}" if status is None else f"{status} {slug}: {detail}")
        self.detail = detail
        self.status = status
        self.slug = slug
        self.request_id = request_id
        self.retry_after = retry_after


class TransportError(TorchgateError):
    """The gateway could not be reached, or its answer was cut off."""


class InvalidRequest(TorchgateError):
    """400 invalid-request, and the other refusals of a malformed call (405, 413, 415)."""


class InvalidEnvelope(InvalidRequest):
    """400 invalid-envelope; also a sealed reply that this client cannot open."""


class StaleEnvelope(InvalidEnvelope):
    """400 stale-envelope: the envelope's iat is too far from the server clock."""


class ReplayedEnvelope(InvalidEnvelope):
    """400 replayed-envelope: this (kid, iv) was already received."""


class Unauthorized(TorchgateError):
    """401 unauthorized: no token, or a token the gateway does not accept."""


class TokenExpired(Unauthorized):
    """401 token-expired."""


class TokenRevoked(Unauthorized):
    """401 token-revoked."""


class AuthError(Unauthorized):
    """An RFC 6749 §5.2 error from /auth/token; `error` (and `slug`) is the OAuth error code."""

    @property
    def error(self) -> str:
        return self.slug


class InvalidReceipt(TorchgateError):
    """A successful reply whose receipt does not verify, or does not describe this call."""


class Forbidden(TorchgateError):
    """403 forbidden: the caller's roles lack the permission."""


class KeyNotAllowed(Forbidden):
    """403 key-not-allowed: the payload key is unknown, revoked, expired or someone else's."""


class NotFound(TorchgateError):
    """404 not-found: no such model, version or resource."""


class InvalidInput(TorchgateError):
    """422 invalid-input: the inputs do not match the model's declared shapes or dtypes."""


class RateLimited(TorchgateError):
    """429 rate-limited; `retry_after` is the seconds the gateway asked the caller to wait."""


class QuotaExceeded(RateLimited):
    """429 quota-exceeded: the caller's query budget on the model is spent until `retry_after`."""


class Unavailable(TorchgateError):
    """503: the model or a dependency cannot serve now; `retry_after` seconds to wait."""


class ModelUnavailable(Unavailable):
    """503 model-unavailable: the model failed to load."""


class ServerError(TorchgateError):
    """500 internal-error, or any other 5xx answer."""


ERRORS_BY_SLUG: Mapping[str, type[TorchgateError]] = {
    "invalid-request": InvalidRequest, "method-not-allowed": InvalidRequest,
    "payload-too-large": InvalidRequest, "unsupported-media-type": InvalidRequest,
    "invalid-envelope": InvalidEnvelope, "stale-envelope": StaleEnvelope,
    "replayed-envelope": ReplayedEnvelope,
    "unauthorized": Unauthorized, "token-expired": TokenExpired, "token-revoked": TokenRevoked,
    "forbidden": Forbidden, "key-not-allowed": KeyNotAllowed,
    "not-found": NotFound, "invalid-input": InvalidInput, "rate-limited": RateLimited,
    "quota-exceeded": QuotaExceeded,
    "service-unavailable": Unavailable, "model-unavailable": ModelUnavailable,
    "internal-error": ServerError,
}
_ERRORS_BY_STATUS: Mapping[int, type[TorchgateError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: InvalidRequest,
    413: InvalidRequest, 415: InvalidRequest, 422: InvalidInput, 429: RateLimited,
    503: Unavailable,
}


def error_for_response(status: int, headers: Mapping[str, str], body: bytes) -> TorchgateError:
    """The typed error for a non-2xx answer: problem+json, an OAuth error, or the status alone."""
    retry_after = parse_retry_after(headers.get("Retry-After"))
    data = _json_object(body)
    slug = str(data.get("type", "")).removeprefix(PROBLEM_TYPE_PREFIX) or None
    if slug is None and isinstance(data.get("error"), str):
        detail = str(data.get("error_description") or data["error"])
        return AuthError(detail, status=status, slug=data["error"], retry_after=retry_after)
    kind = ERRORS_BY_SLUG.get(slug or "") or _ERRORS_BY_STATUS.get(status) or (
        ServerError if status >= 500 else TorchgateError)
    detail = data.get("detail") or data.get("title") or f"HTTP {status}"
    request_id = data.get("request_id")
    return kind(str(detail), status=status, slug=slug or f"http-{status}",
                request_id=request_id if isinstance(request_id, str) else None,
                retry_after=retry_after)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
