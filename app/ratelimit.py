"""Rate limits: per caller on model calls, per client address on /auth/token.

Limits are settings written in the `limits` notation: ``<count>/<period>`` or
``<count> per <n> <period>``, several joined by ``;`` (each must hold), with periods second,
minute, hour, day, month, year; an empty value switches the limit off. Examples:
``RATE_LIMIT_PREDICT="6000/minute"``, ``"100/second;5000/hour"``, ``"10 per 5 seconds"``.
Windows are fixed: a caller's window opens with its first hit and lasts one period.

- ``predict``: keyed by the authenticated subject, counted after authentication and the
  permission check (so an anonymous flood cannot spend a caller's budget); every model-call
  route shares one budget per subject. The dataplane counts it in the same store round trip as
  the revocation check and the replay claim (security.admission), so a store that cannot count
  refuses the call (503), as it would for the revocation check alone.
- ``token``: keyed by the client address, counted before any credential is checked. If the
  store cannot count, this limit falls back to per-worker memory (one warning per outage) rather
  than refusing sign-ins: it guards capacity, not access, and the login lockout still fails
  closed on its own.

Counters live in the shared store (STORE_URL): the SQLite file every worker on the machine
opens, or the Redis every node uses. A spent limit answers 429 ``rate-limited`` with
``Retry-After`` (seconds until the window ends).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from functools import wraps

from flask import current_app, request
from limits.storage import MemoryStorage

from app.gateway import current_gateway
from dataplane.call import raise_refusal
from errors import RateLimited, StoreUnavailable
from security.admission import AdmissionRequest

EXTENSION = "torchgate.token-limit-fallback"
log = logging.getLogger(__name__)


def token_rate_limited(view: Callable) -> Callable:
    """Count the request against RATE_LIMIT_TOKEN for its client address; 429 when spent."""
    @wraps(view)
    def wrapper(**kwargs):
        count_token_request(request.remote_addr or "unknown")
        return view(**kwargs)
    return wrapper


def count_token_request(address: str) -> None:
    gateway = current_gateway()
    counters = gateway.token_rate.counters(address)
    if not counters:
        return
    try:
        raise_refusal(gateway.store.admit(AdmissionRequest((), counters=counters)))
    except StoreUnavailable:
        _count_in_memory(counters)


def _count_in_memory(counters) -> None:
    """This worker's own count while the store is away (limits' in-memory storage)."""
    memory = current_app.extensions.get(EXTENSION)
    if memory is None:
        log.warning("rate-limit store unreachable: falling back to in-memory storage")
        memory = current_app.extensions[EXTENSION] = MemoryStorage()
    for counter in counters:
        if memory.incr(counter.key, counter.window) > counter.limit:
            retry_after = max(1, math.ceil(memory.get_expiry(counter.key) - time.time()))
            raise RateLimited(retry_after, f"Rate limit of {counter.text} exceeded; "
                                           f"retry after {retry_after} seconds.")
