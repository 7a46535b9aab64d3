"""What a flag of the extraction monitor (dataplane.watch) leaves behind: a metric, an audit
record and a log line, none of which holds a query, an output, a token or a key."""

from __future__ import annotations

import logging

from app.audit import audit_trail
from app.metrics import current_metrics
from dataplane.record import storable
from dataplane.watch import Flag
from security.audit import AuditRecord, utc_now

ACTION = "extraction.flag"
log = logging.getLogger("torchgate.extraction")


def report_flag(flag: Flag) -> None:
    """Count, audit and log one flag; runs inside the request that raised it. A record that
    cannot be written fails that request closed (503), as every audit record does."""
    try:
        current_metrics().extraction_flags.labels(flag.model).inc()
    except Exception:  # a full metrics dir must not hide the flag: the audit record follows
        log.warning("extraction flag not counted", exc_info=True)
    audit_trail().append(AuditRecord(
        time=utc_now(), request_id=flag.request_id, subject=storable(flag.subject),
        action=ACTION, model=storable(flag.model), version=storable(flag.version),
        decision="deny" if flag.refused else "allow", status=0, latency_us=None,
        body_sha256=None))
    log.warning("extraction monitor flagged a caller: Shapiro-Wilk W %.3f after %d queries%s",
                flag.statistic, flag.queries, "; its calls are refused" if flag.refused else "",
                extra={"subject": flag.subject, "model": flag.model, "version": flag.version})
