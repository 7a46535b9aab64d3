"""The one record of a request: facts written by the step that learns them, frozen at the end.

RequestFacts is created when a request arrives and is the only per-request state the request
path shares; each field is written once, by the step that established it (the subject only
after every token check passed). At the end, `finish` freezes it into a RequestRecord, which the
finishing hook hands to audit, log and metrics, in that order; a view that changes shared state
has it frozen and recorded ahead of the change as well (app/lifecycle.py `record_ahead`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from security.audit import AuditRecord, utc_now

MAX_TEXT = 256


@dataclass(slots=True)
class RequestFacts:
    """What the request path has established so far about one request."""

    request_id: str
    started: float  # time.perf_counter() at arrival
    subject: str | None = None
    model: str | None = None
    version: str | None = None
    body_sha256: str | None = None
    refusal: str | None = None  # problem slug or OAuth error code of a refused caller
    recorded: int | None = None  # the status of the record committed ahead of a state change

    def finish(self, *, method: str, route: str | None, action: str, status: int,
               requested: tuple[str | None, str | None] = (None, None)) -> RequestRecord:
        """The frozen record; `requested` is the model and version the URL named, kept when
        the request was refused before they were resolved."""
        audit = AuditRecord(
            time=utc_now(), request_id=self.request_id, subject=storable(self.subject),
            action=action, model=storable(self.model or requested[0]),
            version=storable(self.version or requested[1]),
            decision="allow" if status < 400 else "deny", status=status,
            latency_us=round((time.perf_counter() - self.started) * 1e6),
            body_sha256=self.body_sha256)
        return RequestRecord(audit=audit, method=method, route=route, refusal=self.refusal)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answered request: its audit record (who asked for what, and what the gateway
    answered, client-chosen text made storable), plus what the log line and metrics add."""

    audit: AuditRecord
    method: str
    route: str | None  # the URL template, None when no route matched
    refusal: str | None


def storable(text: str | None) -> str | None:
    """Client-chosen text as every database stores it: NUL escaped (PostgreSQL refuses it, and
    one refused row would fail the whole group commit), length capped; still readable."""
    if text is None:
        return None
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"
