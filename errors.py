"""The gateway's one error type: every refusal is a GatewayError that renders as RFC 9457.

Flask-free so that security/ and models/ raise the same errors the HTTP layer renders.
"""

from __future__ import annotations

PROBLEM_TYPE_PREFIX = "urn:torchgate:problem:"


class GatewayError(Exception):
    """A refusal with a problem slug, an HTTP status and a client-safe detail."""

    slug = "internal-error"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})

    def to_problem(self, request_id: str | None) -> dict:
        return {
            "type": PROBLEM_TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "request_id": request_id,
        }


class InvalidRequest(GatewayError):
    slug, status, title = "invalid-request", 400, "Invalid request"


class StaleEnvelope(GatewayError):
    slug, status, title = "stale-envelope", 400, "Stale envelope"


class ReplayedEnvelope(GatewayError):
    slug, status, title = "replayed-envelope", 400, "Replayed envelope"


class Unauthorized(GatewayError):
    slug, status, title = "unauthorized", 401, "Unauthorized"


class TokenExpired(GatewayError):
    slug, status, title = "token-expired", 401, "Token expired"


class TokenRevoked(GatewayError):
    slug, status, title = "token-revoked", 401, "Token revoked"


class Forbidden(GatewayError):
    slug, status, title = "forbidden", 403, "Forbidden"


class NotFound(GatewayError):
    slug, status, title = "not-found", 404, "Not found"


class MethodNotAllowed(GatewayError):
    slug, status, title = "method-not-allowed", 405, "Method not allowed"


class PayloadTooLarge(GatewayError):
    slug, status, title = "payload-too-large", 413, "Payload too large"


class UnsupportedMediaType(GatewayError):
    slug, status, title = "unsupported-media-type", 415, "Unsupported media type"


class InvalidInput(GatewayError):
    slug, status, title = "invalid-input", 422, "Invalid input"


class InternalError(GatewayError):
    slug, status, title = "internal-error", 500, "Internal error"


class InvalidEnvelope(GatewayError):
    """400: the envelope cannot be opened; one generic detail so failures give no oracle."""

    slug = "invalid-envelope"
    status = 400
    title = "Invalid envelope"
    GENERIC = "The envelope could not be opened."

    def __init__(self, detail: str | None = None, **kwargs):
        super().__init__(detail or self.GENERIC, **kwargs)


class KeyNotAllowed(GatewayError):
    """403: the payload key is unknown, revoked, expired or someone else's: one detail for all."""

    slug = "key-not-allowed"
    status = 403
    title = "Key not allowed"

    def __init__(self) -> None:
        super().__init__("The payload key is not usable by this caller.")


class RateLimited(GatewayError):
    """429 with Retry-After."""

    slug = "rate-limited"
    status = 429
    title = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None):
        retry_after = max(1, int(retry_after))
        super().__init__(detail or f"Retry after {retry_after} seconds.",
                         headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class QuotaExceeded(RateLimited):
    """429 with Retry-After: the caller's query budget on one model is spent for its window."""

    slug = "quota-exceeded"
    title = "Quota exceeded"


class ServiceUnavailable(GatewayError):
    """503 with Retry-After: a dependency (store, database) cannot serve right now."""

    slug = "service-unavailable"
    status = 503
    title = "Service unavailable"

    def __init__(self, detail: str, retry_after: int = 5):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class ModelNotFound(NotFound):
    def __init__(self, name: str, version: str | None = None):
        what = f"model {name!r}" if version is None else f"version {version!r} of model {name!r}"
        super().__init__(f"No {what} is served here.")


class ModelUnavailable(ServiceUnavailable):
    slug, title = "model-unavailable", "Model unavailable"

    def __init__(self, name: str, version: str):
        super().__init__(f"Model {name!r} version {version!r} is not loaded.", retry_after=30)


class ModelLoadFailed(ServiceUnavailable):
    """A version an administrator asked to load did not load; the reason says why."""

    slug, title = "model-unavailable", "Model unavailable"

    def __init__(self, name: str, version: str, reason: str):
        super().__init__(f"Model {name!r} version {version!r} did not load: {reason}",
                         retry_after=30)


class StoreUnavailable(ServiceUnavailable):
    """Shared state (store or database) unreachable: fail closed."""

    title = "Shared state unavailable"

    def __init__(self) -> None:
        super().__init__("Shared security state is unreachable; the request was refused.")
