"""Request ids and JSON-lines logs on stderr; a log line never holds a token, key or payload."""

from __future__ import annotations

import json
import logging
import sys

from flask import g, has_request_context

from dataplane.record import RequestRecord

log = logging.getLogger("torchgate.access")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra` fields given."""

    FIELDS = ("request_id", "subject", "method", "route", "status", "latency_ms", "model",
              "version")

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": round(record.created, 3), "level": record.levelname,
                "logger": record.name, "message": record.getMessage()}
        line.update({k: getattr(record, k) for k in self.FIELDS if hasattr(record, k)})
        if "request_id" not in line and has_request_context() and "facts" in g:
            line["request_id"] = g.facts.request_id  # any line logged while answering a request
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str) -> None:
    """JSON lines on stderr for the whole process (idempotent)."""
    root = logging.getLogger()
    if not any(getattr(h, "torchgate", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLineFormatter())
        handler.torchgate = True
        root.addHandler(handler)
    root.setLevel(level.upper())


def log_request(record: RequestRecord) -> None:
    """The access-log line of one answered request (no token, key or payload: none is here)."""
    if log.isEnabledFor(logging.INFO):
        log.info("request", extra={
            "request_id": record.request_id, "method": record.method, "route": record.route,
            "status": record.status, "subject": record.subject,
            "latency_ms": round(record.latency_us / 1000, 3)})
