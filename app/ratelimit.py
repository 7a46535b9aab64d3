"""Rate limits (flask-limiter): per caller on model calls, per client address on /auth/token.

Limits are settings written in the `limits` notation: ``<count>/<period>`` or
``<count> per <n> <period>``, several joined by ``;`` (each must hold), with periods second,
minute, hour, day, month, year; an empty value switches the limit off. Examples:
``RATE_LIMIT_PREDICT="6000/minute"``, ``"100/second;5000/hour"``, ``"10 per 5 seconds"``.
Windows are fixed: a caller's window opens with its first hit and lasts one period.

- ``predict``: keyed by the authenticated subject, counted after authentication and the
  permission check (so an anonymous flood cannot spend a caller's budget); every model-call
  route shares one budget per subject.
- ``token``: keyed by the client address, counted before any credential is checked.

Counters live beside the security state (STORE_URL): the SQLite file ``ratelimit.sqlite3`` in the
instance dir, shared by every worker on the machine, or the same Redis (keys under
``torchgate:ratelimit:``), shared by every node. A spent limit answers 429 ``rate-limited`` with
``Retry-After`` (seconds until the window ends).

If that storage fails, limits fall back to per-worker memory (flask-limiter's in-memory
fallback: one warning, the storage re-probed with backoff) rather than refusing traffic. A rate
limit guards capacity, not access: every access check (token, revocation, permission, payload key,
replay, login lockout) still fails closed on its own, so the fallback lets no one in who would
otherwise be refused, and it keeps a bound (the limit per worker) while the storage is away.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from types import MappingProxyType

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from limits import parse_many

from app.errors import problem_response
from app.gateway import EXTENSION as GATEWAY_EXTENSION
from config import ConfigError
from errors import RateLimited, StoreUnavailable
from security.limits_storage import SCHEME
from security.store import open_store

EXTENSION = "torchgate.ratelimit"
STORE_FILE = "ratelimit.sqlite3"
NAMESPACE = "torchgate:ratelimit"
LIMIT_NAMES = ("predict", "token")


@dataclass(frozen=True)
class RateLimits:
    """One app's limiter and its named limits, each a callable that counts one hit or raises."""

    limiter: Limiter
    guards: Mapping[str, Callable[[], None]]


def init_app(app: Flask) -> None:
    """A limiter per app (several apps in one process must not share counters or storage)."""
    settings = app.extensions[GATEWAY_EXTENSION].settings
    predict_rate = parse_rate("RATE_LIMIT_PREDICT", settings.rate_limit_predict)
    token_rate = parse_rate("RATE_LIMIT_TOKEN", settings.rate_limit_token)
    store = open_store(settings.store_url, settings.instance_dir / STORE_FILE,
                       namespace=NAMESPACE)
    limiter = Limiter(client_address, storage_uri=f"{SCHEME}://",
                      storage_options={"store": store}, strategy="fixed-window",
                      headers_enabled=False, in_memory_fallback_enabled=True)
    limiter.init_app(app)
    guards = {
        "predict": _guard("predict", limiter.shared_limit(
            predict_rate, scope="predict", key_func=subject_key)),
        "token": _guard("token", limiter.shared_limit(
            token_rate, scope="token", key_func=client_address)),
    }
    app.extensions[EXTENSION] = RateLimits(limiter, MappingProxyType(guards))
    app.register_error_handler(RateLimitExceeded, _rate_limited)


def rate_limited(name: str) -> Callable:
    """Count the request against the app's limit `name`; a spent limit answers 429."""
    if name not in LIMIT_NAMES:
        raise ValueError(f"unknown rate limit {name!r}; known: {', '.join(LIMIT_NAMES)}")

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(**kwargs):
            current_app.extensions[EXTENSION].guards[name]()
            return view(**kwargs)
        return wrapper
    return decorator


def parse_rate(setting: str, value: str) -> str:
    """The setting's rate, checked now so a typo stops start-up; "" means no limit."""
    value = value.strip()
    if value:
        try:
            parse_many(value)
        except ValueError as exc:
            raise ConfigError(setting, f"not a rate limit: {value!r} (e.g. '6000/minute' or "
                              "'100/second;5000/hour')") from exc
    return value


def subject_key() -> str:
    """The authenticated caller; a per-subject limit placed before authentication is a bug."""
    identity = g.get("identity")
    if identity is None:
        raise RuntimeError("a per-subject rate limit must run after authentication")
    return identity.subject


def client_address() -> str:
    return request.remote_addr or "unknown"


def _guard(name: str, limit: Callable[[Callable], Callable]) -> Callable[[], None]:
    """A no-op wrapped by a flask-limiter limit: calling it counts one hit (or raises 429)."""
    def hit() -> None:
        return None
    hit.__name__ = hit.__qualname__ = f"{name}_rate_limit"
    return limit(hit)


def _rate_limited(exc: RateLimitExceeded) -> Response:
    retry_after = _seconds_until_reset(exc)
    return problem_response(RateLimited(
        retry_after, f"Rate limit of {exc.description} exceeded; "
                     f"retry after {retry_after} seconds."))


def _seconds_until_reset(exc: RateLimitExceeded) -> int:
    """Whole seconds until the spent window ends (its full length if the storage cannot say)."""
    breached: RequestLimit | None = current_app.extensions[EXTENSION].limiter.current_limit
    try:
        reset_at = breached.limiter.storage.get_expiry(breached.key) if breached else None
    except StoreUnavailable:
        reset_at = None
    if reset_at is None:
        return max(1, exc.limit.limit.get_expiry())
    return max(1, math.ceil(reset_at - time.time()))
