"""Unauthenticated probes: /healthz (the process answers) and /readyz (it can serve)."""

from __future__ import annotations

import logging

from flask import Blueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.audit import write_probe
from app.gateway import current_gateway
from errors import GatewayError, ServiceUnavailable

bp = Blueprint("health", __name__)


class ModelsNotReady(ServiceUnavailable):
    """503 from /readyz when a model failed to load (a store or database outage is plain 503)."""

    slug, title = "model-unavailable", "Not ready"

log = logging.getLogger(__name__)
INFRASTRUCTURE = frozenset({"store", "database", "audit trail"})


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    gateway = current_gateway()
    failed = dict(gateway.registry.failures())
    try:
        gateway.store.ping()
    except GatewayError:
        failed["store"] = "unreachable"
    try:
        with gateway.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        failed["database"] = "unreachable"
    else:
        if not write_probe().writable():  # a full or read-only disk still answers SELECT 1
            failed["database"] = failed["audit trail"] = "not writable"
    if failed:
        kind = ModelsNotReady if set(failed) - INFRASTRUCTURE else ServiceUnavailable
        raise kind("Not ready: " + ", ".join(sorted(failed)) + ".")
    return {"status": "ready", "models": gateway.registry.names()}
