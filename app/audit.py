"""The audit step: every request that reaches a view leaves its record before the answer leaves.

Only the unauthenticated probes are exempt. A record that cannot be written withholds the answer:
the client gets 503 instead (fail closed), so nothing is accepted without its record. The
finishing hook (app/lifecycle.py) calls `write` with the request's frozen record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Request, Response, current_app, request

from app.errors import problem_response
from app.gateway import EXTENSION as GATEWAY
from app.gateway import Gateway
from dataplane.record import RequestFacts, RequestRecord, storable
from security.audit import AuditRecord, AuditUnavailable, audit_key, utc_now
from security.audit_anchor import AnchorPublisher, anchor_key
from security.audit_trail import AuditTrail
from security.write_probe import WriteProbe

EXTENSION = "torchgate.audit"
PROBE = "torchgate.write_probe"
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
PROBE_PREFIXES = ("/v2/health/",)
INTENT = "intent"  # the decision of a record written before a state change, status 0
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


def record_intent(facts: RequestFacts, change: str, subject: str | None) -> None:
    """Commit a record of the state change this request is about to make, before it is made:
    no change stands without its record. When it cannot be written, AuditUnavailable (503) is
    raised and the caller makes no change. The request's own record follows as always."""
    intent = AuditRecord(time=utc_now(), request_id=facts.request_id, subject=storable(subject),
                         action=f"{request.endpoint}:{change}", model=None, version=None,
                         decision=INTENT, status=0, latency_us=None, body_sha256=None)
    try:
        audit_trail().append(intent)
    except AuditUnavailable:
        log.error("audit intent not written: %s not made", change,
                  extra={"request_id": facts.request_id})
        raise
