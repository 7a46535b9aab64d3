"""Prometheus metrics: request hooks, model gauges and the unauthenticated GET /metrics.

Without PROMETHEUS_MULTIPROC_DIR (tests, `flask run`) each app has its own CollectorRegistry,
so several apps in one process never collide. Under gunicorn, gunicorn.conf.py sets that
variable before anything imports prometheus_client: every worker then writes its samples to
files there, and /metrics merges the files of ALL workers with a MultiProcessCollector over a
fresh registry, whichever worker answers. Gauges say how workers combine (livesum, livemin,
livemax); no custom collectors or callback gauges, which multiprocess mode cannot serve.

Labels never hold a subject, token or payload: routes are URL templates, models and versions
come from the repository, and reasons are problem slugs or OAuth error codes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder

from app.gateway import current_gateway
from dataplane.record import RequestRecord
from errors import GatewayError, QuotaExceeded
from models.registry import ModelRegistry

EXTENSION = "torchgate.metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
AUTH_FAILURE_STATUSES = frozenset({401, 403, 429})
OAUTH_FAILURES = frozenset({"invalid_grant", "invalid_client"})
UNMATCHED_ROUTE = "unmatched"
MODEL_CALLS = frozenset({"predict.predict", "oip.infer"})  # endpoints whose latency is observed
log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)


@dataclass(frozen=True)
class Metrics:
    """The gateway's collectors; `registry` is None when samples go to multiprocess files."""

    registry: CollectorRegistry | None
    requests: Counter
    in_flight: Gauge
    predict_latency: Histogram
    auth_failures: Counter
    model_load_seconds: Gauge
    model_ready: Gauge
    batch_size: Histogram
    audit_commit_records: Histogram
    quota_exceeded: Counter
    extraction_flags: Counter
    published_in: set[int] = field(default_factory=set)  # pids whose model gauges are written

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> Metrics:
        """Every collector, registered in `registry` (or in none, for multiprocess mode)."""
        return cls(
            registry=registry,
            requests=Counter("torchgate_http_requests", "HTTP requests answered.",
                             ["method", "route", "status"], registry=registry),
            in_flight=Gauge("torchgate_http_requests_in_flight", "Requests being answered.",
                            registry=registry, multiprocess_mode="livesum"),
            predict_latency=Histogram(
                "torchgate_predict_latency_seconds",
                "Seconds to answer a successful model call, from request to sealed reply.",
                ["model", "version"], buckets=LATENCY_BUCKETS, registry=registry),
            auth_failures=Counter("torchgate_auth_failures", "Refused authentications and "
                                  "authorizations, by problem slug or OAuth error.",
                                  ["reason"], registry=registry),
            model_load_seconds=Gauge("torchgate_model_load_seconds",
                                     "Seconds a model version took to load (slowest worker).",
                                     ["model", "version"], registry=registry,
                                     multiprocess_mode="livemax"),
            model_ready=Gauge("torchgate_model_ready",
                              "1 when a model version is served (by every live worker), else 0.",
                              ["model", "version"], registry=registry,
                              multiprocess_mode="livemin"),
            batch_size=Histogram("torchgate_batch_size",
                                 "Rows per forward pass of a model with [batching].",
                                 ["model", "version"], buckets=BATCH_BUCKETS, registry=registry),
            audit_commit_records=Histogram(
                "torchgate_audit_commit_records",
                "Audit records written per database commit (group commit).",
                buckets=BATCH_BUCKETS, registry=registry),
            quota_exceeded=Counter("torchgate_quota_exceeded", "Model calls refused because the "
                                   "caller's [quota] on the model was spent.", ["model"],
                                   registry=registry),
            extraction_flags=Counter("torchgate_extraction_flags", "Callers the extraction "
                                     "monitor flagged on a model (once per worker).", ["model"],
                                     registry=registry),
        )

    def observe_batch(self, model: str, version: str, rows: int, _requests: int) -> None:
        """models.registry's on_batch: runs in whichever request thread led the batch."""
        self.batch_size.labels(model, version).observe(rows)

    def observe_audit_commit(self, records: int) -> None:
        """security.audit_trail's on_commit."""
        self.audit_commit_records.observe(records)

    def publish_models(self, models: ModelRegistry) -> None:
        """Write this process's view of every model version into the model gauges."""
        for key, seconds in models.load_seconds().items():
            name, _, version = key.partition("/")
            self.model_load_seconds.labels(name, version).set(seconds)
        for name in models.names():
            for version in models.describe(name)["versions"]:
                self.model_ready.labels(name, version).set(_served(models, name, version))
        self.published_in.add(os.getpid())

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The text format the scraper asked for, over this app's or all workers' samples."""
        registry = self.registry
        if registry is None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        encode, content_type = choose_encoder(accept or "")
        return encode(registry), content_type


def create_metrics() -> Metrics:
    """This app's collectors (before the gateway, whose registry and audit trail report here)."""
    return Metrics.create(None if os.environ.get(MULTIPROC_ENV) else CollectorRegistry())


def init_app(app: Flask, metrics: Metrics) -> None:
    """Keep the collectors, add the /metrics route; app/lifecycle.py calls the hooks."""
    app.extensions[EXTENSION] = metrics
    app.register_blueprint(bp)


def current_metrics() -> Metrics:
    return current_app.extensions[EXTENSION]


@bp.get("/metrics")
def metrics_view() -> Response:
    metrics = current_metrics()
    metrics.publish_models(current_gateway().registry)
    body, content_type = metrics.exposition(request.headers.get("Accept"))
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})


def request_started() -> None:
    metrics = current_metrics()
    if os.getpid() not in metrics.published_in:  # once per worker, after the fork
        metrics.publish_models(current_gateway().registry)
    metrics.in_flight.inc()
    g.metrics_in_flight = True


def count(record: RequestRecord) -> None:
    """Count the answer; a failure to count (a full metrics dir) never changes the answer."""
    try:
        _count(record)
    except Exception:  # the answer is already decided and audited: it must leave as it is
        log.warning("metrics not recorded", exc_info=True)


def request_ended() -> None:
    if g.pop("metrics_in_flight", False):
        current_metrics().in_flight.dec()


def _count(record: RequestRecord) -> None:
    metrics = current_metrics()
    audit = record.audit
    status = audit.status
    method = record.method if record.method in METHODS else "other"
    metrics.requests.labels(method, record.route or UNMATCHED_ROUTE, str(status)).inc()
    if audit.model is not None and status < 400 and audit.action in MODEL_CALLS:
        metrics.predict_latency.labels(audit.model, audit.version or "").observe(
            audit.latency_us / 1e6)
    if record.refusal == QuotaExceeded.slug and audit.model is not None:
        metrics.quota_exceeded.labels(audit.model).inc()
    reason = _auth_failure(record)
    if reason is not None:
        metrics.auth_failures.labels(reason).inc()


def _auth_failure(record: RequestRecord) -> str | None:
    """The reason of a refused caller: the problem slug of a 401/403/429, or the OAuth error."""
    reason = record.refusal  # OAuth errors other than these two come with status 400
    return (reason if reason in OAUTH_FAILURES or record.audit.status in AUTH_FAILURE_STATUSES
            else None)


def _served(models: ModelRegistry, name: str, version: str) -> int:
    try:
        models.get(name, version)
    except GatewayError:
        return 0
    return 1
