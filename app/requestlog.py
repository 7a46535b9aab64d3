"""Request ids and JSON-lines logs on stderr; a log line never holds a token, key or payload."""

from __future__ import annotations

import json
import logging
import sys
import time

from flask import g, has_request_context

from dataplane.record import RequestRecord

log = logging.getLogger("torchgate.access")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra` fields given."""

    FIELDS = ("request_id", "subject", "method", "route", "status", "latency_ms", "model",
              "version", "startup")

    def fields(self, record: logging.LogRecord) -> dict:
        """The `extra` fields of a record, plus the id of the request being answered."""
        found = {k: getattr(record, k) for k in self.FIELDS if hasattr(record, k)}
        if "request_id" not in found and has_request_context() and "facts" in g:
            found["request_id"] = g.facts.request_id  # any line logged while answering a request
        return found

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": round(record.created, 3), "level": record.levelname,
                "logger": record.name, "message": record.getMessage(), **self.fields(record)}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextLineFormatter(JsonLineFormatter):
    """LOG_FORMAT=text, for a person at a terminal: time level logger: message key=value ..."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = " ".join(f"{k}={v}" for k, v in self.fields(record).items()
                          if v is not None and k != "startup")
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line} {extras}" if extras else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def formatter_for(log_format: str) -> logging.Formatter:
    return TextLineFormatter() if log_format == "text" else JsonLineFormatter()


def configure_logging(level: str, log_format: str = "json") -> None:
    """JSON lines (or text lines) on stderr for the whole process (idempotent)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "torchgate", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.torchgate = True
        root.addHandler(handler)
    handler.setFormatter(formatter_for(log_format))
    root.setLevel(level.upper())


def log_request(record: RequestRecord) -> None:
    """The access-log line of one answered request (no token, key or payload: none is here)."""
    if log.isEnabledFor(logging.INFO):
        audit = record.audit
        log.info("request", extra={
            "request_id": audit.request_id, "method": record.method, "route": record.route,
            "status": audit.status, "subject": audit.subject,
            "latency_ms": round(audit.latency_us / 1000, 3)})
