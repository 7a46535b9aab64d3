"""A request's beginning and end: its RequestFacts, then one finishing hook that hands the
frozen record to audit, log and metrics, in that order.

Audit comes first because it may withhold the answer (a record that cannot be written turns the
answer into a 503); the log line and the metrics then describe the answer that really leaves.
A view that changes shared state commits the request's record ahead (`record_ahead`), with the
answer it will give when the change succeeds; the hook then writes nothing more, unless the
answer that leaves is another one: then its record, the later and true one, corrects the first.
"""

from __future__ import annotations

import re
import time
import uuid

from flask import Flask, Response, g, request

from app import audit, metrics, requestlog
from dataplane.record import RequestFacts, RequestRecord

_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_teardown)


def current_facts() -> RequestFacts:
    """This request's facts (created on arrival, so always present inside a request)."""
    return g.facts


def record_ahead(status: int = 200) -> None:
    """Commit this request's record, answering `status`, before the view changes shared state:
    no change stands without it. AuditUnavailable (503) when it cannot be, and the view must
    change nothing; its latency is the time until the record was made."""
    facts = g.facts
    audit.write_ahead(_record(facts, status))
    facts.recorded = status


def _start() -> None:
    given = request.headers.get("X-Request-ID", "")
    request_id = given if _SAFE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    g.facts = RequestFacts(request_id=request_id, started=time.perf_counter())
    metrics.request_started()


def _finish(response: Response) -> Response:
    record = _record(g.facts, response.status_code)
    if audit.is_audited(request) and g.facts.recorded != record.audit.status:
        response = audit.write(record, response)  # the record, or one correcting record_ahead's
        if response.status_code != record.audit.status:  # withheld: the record says what left
            record = _record(g.facts, response.status_code)
    response.headers["X-Request-ID"] = record.audit.request_id
    requestlog.log_request(record)
    metrics.count(record)
    return response


def _teardown(_exc: BaseException | None) -> None:
    metrics.request_ended()


def _record(facts: RequestFacts, status: int) -> RequestRecord:
    rule = request.url_rule
    view_args = request.view_args or {}
    requested = (view_args.get("name"), view_args.get("version"))
    return facts.finish(method=request.method, route=rule.rule if rule else None,
                        action=request.endpoint or "", status=status,
                        requested=tuple(None if v is None else str(v) for v in requested))
