"""The audit step: every request that reaches a view leaves its record before the answer leaves.

Only the unauthenticated probes are exempt. A record that cannot be written withholds the answer:
the client gets 503 instead (fail closed), so nothing is accepted without its record. The
finishing hook (app/lifecycle.py) calls `write` with the request's frozen record; a view that
changes shared state has it committed ahead, with `write_ahead`, before the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Request, Response, current_app

from app.errors import problem_response
from app.gateway import EXTENSION as GATEWAY
from app.gateway import Gateway
from dataplane.record import RequestRecord
from security.audit import AuditUnavailable, audit_key
from security.audit_anchor import AnchorPublisher, anchor_key
from security.audit_trail import AuditTrail
from security.write_probe import WriteProbe

EXTENSION = "torchgate.audit"
PROBE = "torchgate.write_probe"
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
PROBE_PREFIXES = ("/v2/health/",)
log = logging.getLogger(__name__)


def init_app(app: Flask, on_commit: Callable[[int], None] | None = None) -> None:
    """Open this app's audit trail (its chain starts with the first record)."""
    gateway: Gateway = app.extensions[GATEWAY]
    settings = gateway.settings
    anchors = AnchorPublisher(gateway.store.put_anchor, anchor_key(settings.master_key),
                              settings.audit_anchor_interval)
    trail = AuditTrail(gateway.engine, audit_key(settings.master_key), on_commit=on_commit,
                       on_head=anchors.after_commit)
    app.extensions[EXTENSION] = trail
    app.extensions[PROBE] = WriteProbe(gateway.engine, trail.turn)


def audit_trail() -> AuditTrail:
    return current_app.extensions[EXTENSION]


def write_probe() -> WriteProbe:
    return current_app.extensions[PROBE]


def is_audited(request: Request) -> bool:
    """A view was routed to and run: not a probe, not an unknown route, not automatic OPTIONS."""
    rule = request.url_rule
    if rule is None:
        return False
    if request.method == "OPTIONS" and getattr(rule, "provide_automatic_options", False):
        return False  # Flask answers these itself; the view never runs
    return request.path not in PROBE_PATHS and not request.path.startswith(PROBE_PREFIXES)


def write(record: RequestRecord, response: Response) -> Response:
    """The response once its record is committed; a 503 problem when it cannot be."""
    try:
        audit_trail().append(record.audit)
    except AuditUnavailable as exc:
        log.error("audit record not written: answer replaced by 503",
                  extra={"request_id": record.audit.request_id, "status": record.audit.status})
        return problem_response(exc)
    return response


def write_ahead(record: RequestRecord) -> None:
    """Commit a request's record before its view changes shared state, so that no change stands
    without it; AuditUnavailable (503) when it cannot be, and the view changes nothing."""
    try:
        audit_trail().append(record.audit)
    except AuditUnavailable:
        log.error("audit record not written: state change not made, answer 503",
                  extra={"request_id": record.audit.request_id, "status": record.audit.status})
        raise
