"""The audit hook: every request that reaches a view leaves its record before the answer leaves.

Only the unauthenticated probes are exempt. A record that cannot be written withholds the answer:
the client gets 503 instead (fail closed), so nothing is accepted without its record.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, current_app, g, request

from app.errors import problem_response
from app.gateway import EXTENSION as GATEWAY
from app.gateway import Gateway
from security.audit import AuditRecord, AuditUnavailable, audit_key, utc_now
from security.audit_trail import AuditTrail

EXTENSION = "torchgate.audit"
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
PROBE_PREFIXES = ("/v2/health/",)
MAX_TEXT = 256
log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Open this app's audit trail (its chain starts with the first record) and hook it in."""
    gateway: Gateway = app.extensions[GATEWAY]
    app.extensions[EXTENSION] = AuditTrail(gateway.engine, audit_key(gateway.settings.master_key))
    app.after_request(_write_record)


def audit_trail() -> AuditTrail:
    return current_app.extensions[EXTENSION]


def is_audited() -> bool:
    """A view was routed to and run: not a probe, not an unknown route, not automatic OPTIONS."""
    rule = request.url_rule
    if rule is None:
        return False
    if request.method == "OPTIONS" and getattr(rule, "provide_automatic_options", False):
        return False  # Flask answers these itself; the view never runs
    return request.path not in PROBE_PATHS and not request.path.startswith(PROBE_PREFIXES)


def record_for(response: Response) -> AuditRecord:
    """This request's record, from what the request path left in `g`."""
    identity = g.get("identity")
    started = g.get("started")
    return AuditRecord(
        time=utc_now(),
        request_id=g.get("request_id") or "",
        subject=_storable(identity.subject) if identity else None,
        action=request.endpoint or "",
        model=_storable(g.get("model") or _view_arg("name")),
        version=_storable(g.get("model_version") or _view_arg("version")),
        decision="allow" if response.status_code < 400 else "deny",
        status=response.status_code,
        latency_us=None if started is None else round((time.perf_counter() - started) * 1e6),
        body_sha256=g.get("body_sha256"),
    )


def _storable(text: str | None) -> str | None:
    """Client-chosen text as every database stores it: NUL escaped (PostgreSQL refuses it, and
    one refused row would fail the whole group commit), length capped; still readable."""
    if text is None:
        return None
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _view_arg(name: str) -> str | None:
    """The model or version the URL asked for, when the view did not get as far as resolving it."""
    value = (request.view_args or {}).get(name)
    return None if value is None else str(value)


def _write_record(response: Response) -> Response:
    if not is_audited():
        return response
    try:
        audit_trail().append(record_for(response))
    except AuditUnavailable as exc:
        log.error("audit record not written: answer replaced by 503",
                  extra={"request_id": g.get("request_id"), "status": response.status_code})
        return problem_response(exc)
    return response
