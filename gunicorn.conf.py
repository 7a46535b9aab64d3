"""gunicorn settings: `gunicorn wsgi:app` is the whole production command.

Every value can be overridden from the environment (TORCHGATE_BIND, TORCHGATE_WORKERS, ...).
CPU models are loaded once in the master (preload) so workers share the weight pages
copy-on-write; CUDA is never touched before the fork, so with CUDA each worker loads after it.
docs/operations.md explains each choice.
"""

import os
import ssl
import sys

from gunicorn.glogging import Logger as _GunicornLogger

CORES = os.cpu_count() or 1


def _env(name: str, default):
    return type(default)(os.environ.get(f"TORCHGATE_{name}", default))


def _cuda_possible() -> bool:
    """Whether models may land on CUDA, asked without initialising CUDA in the master."""
    device = os.environ.get("TORCHGATE_DEVICE", "auto")
    if device == "cpu":
        return False
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # fork-safe availability check
    import torch
    return torch.cuda.is_available()


bind = _env("BIND", "127.0.0.1:8000")
os.environ["TORCHGATE_BIND"] = bind  # for the app's start-up line (app/startup.py)
workers = _env("WORKERS", max(2, CORES))
threads = _env("THREADS", 4)
worker_class = "gthread"
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new
# connections over them. With one shared socket, whichever worker wakes first accepts, and a
# gthread worker keeps its keep-alive connections: 28 or 30 of 32 connections were seen on one
# of two workers while the other idled. The cost: connections still queued in a dying worker's
# backlog are reset (a graceful stop drains them first). TORCHGATE_REUSE_PORT=no turns it off.
reuse_port = _env("REUSE_PORT", "yes") == "yes"
timeout = _env("TIMEOUT", 30)
graceful_timeout = _env("GRACEFUL_TIMEOUT", 30)
keepalive = _env("KEEPALIVE", 5)
max_requests = _env("MAX_REQUESTS", 20000)
max_requests_jitter = _env("MAX_REQUESTS_JITTER", 2000)
limit_request_line = 4094
limit_request_fields = 64
limit_request_field_size = 8190
preload_app = _env("PRELOAD", "auto") == "yes" or (
    _env("PRELOAD", "auto") == "auto" and not _cuda_possible())
accesslog = None  # the app writes one JSON line per request (app/requestlog.py)
errorlog = "-"
loglevel = _env("LOG_LEVEL", "info").lower()
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn >= 25 opens a control socket at $HOME/.gunicorn/gunicorn.ctl by default: one path for
# every gunicorn of the user (the last started takes it over, the first to stop deletes it), and
# unwritable under a read-only root. Off unless TORCHGATE_CONTROL_SOCKET names a path.
control_socket_disable = not os.environ.get("TORCHGATE_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["TORCHGATE_CONTROL_SOCKET"]
# Per-worker intra-op threads so that workers x torch threads never exceed the cores.
TORCH_THREADS = _env("TORCH_THREADS", max(1, CORES // workers))

# TLS at gunicorn, optionally mutual: callers then show a certificate issued by TORCHGATE_TLS_CA
# (docs/mtls.md). Without TORCHGATE_TLS_CERT: plain HTTP, as behind a TLS-terminating proxy.
CLIENT_CERT_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                     "required": ssl.CERT_REQUIRED}
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def _tls_choice(name: str, choices: dict, default: str) -> str:
    value = os.environ.get(f"TORCHGATE_{name}") or default
    if value not in choices:
        raise ValueError(f"TORCHGATE_{name}: must be one of {', '.join(choices)}, got {value!r}")
    return value


certfile = os.environ.get("TORCHGATE_TLS_CERT") or None
keyfile = os.environ.get("TORCHGATE_TLS_KEY") or None
ca_certs = os.environ.get("TORCHGATE_TLS_CA") or None
CLIENT_CERT = _tls_choice("TLS_CLIENT_CERT", CLIENT_CERT_MODES, "required" if ca_certs else "none")
cert_reqs = CLIENT_CERT_MODES[CLIENT_CERT]  # an ssl.CERT_* number: True would be CERT_OPTIONAL
TLS_MIN_VERSION = TLS_VERSIONS[_tls_choice("TLS_MIN_VERSION", TLS_VERSIONS, "1.2")]
if keyfile and not certfile:
    raise ValueError("TORCHGATE_TLS_KEY is set without TORCHGATE_TLS_CERT")
if CLIENT_CERT != "none" and not (certfile and ca_certs):
    raise ValueError(f"TORCHGATE_TLS_CLIENT_CERT={CLIENT_CERT} needs TORCHGATE_TLS_CERT and "
                     "TORCHGATE_TLS_CA (the CA bundle client certificates are checked against)")
_TLS_CONTEXTS: dict = {}


def ssl_context(conf, default_ssl_context_factory):
    """One TLS context per worker and version of the PEM files, not one per connection (1-2 ms)."""
    files = (conf.certfile, conf.keyfile, conf.ca_certs)
    version = tuple((path, os.stat(path).st_mtime_ns) for path in files if path)
    context = _TLS_CONTEXTS.get(version)
    if context is None:
        context = default_ssl_context_factory()
        context.minimum_version = TLS_MIN_VERSION
        _TLS_CONTEXTS.clear()
        _TLS_CONTEXTS[version] = context
    return context

if preload_app:
    # The master loads (and warms up) the models before it forks: it must not start an OpenMP
    # thread pool, which a forked child cannot use. gunicorn preloads before on_starting runs,
    # so this is set while the config is read.
    import torch
    torch.set_num_threads(1)


def post_fork(server, worker):
    import torch
    torch.set_num_threads(TORCH_THREADS)


class JsonLogger(_GunicornLogger):
    """gunicorn's own lines (start, worker booted or killed) in the app's format: one to ship.

    JSON, or text with TORCHGATE_LOG_FORMAT=text (the environment: gunicorn reads no TOML)."""

    def setup(self, cfg):
        super().setup(cfg)
        from app.requestlog import formatter_for
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter_for(os.environ.get("TORCHGATE_LOG_FORMAT", "json")))

    def exception(self, msg, *args, **kwargs):
        """A worker that cannot build the app (no preload) for a bad setting: that one line,
        which gunicorn prints after this call, and no traceback."""
        from config import ConfigError
        if isinstance(sys.exc_info()[1], ConfigError):
            return
        super().exception(msg, *args, **kwargs)


logger_class = JsonLogger


# /metrics sums every worker (app/metrics.py): each writes its samples under this directory.
# prometheus_client reads the variable when first imported, so it is set here, before the app
# (and prometheus_client) is imported. An operator's value is kept; else a private temp dir.
OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if OWN_METRICS_DIR:
    import tempfile
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="torchgate-metrics-")


def on_starting(server):
    """Refuse a port something already listens on; empty the metrics directory (samples of an
    earlier run must not be summed into this one)."""
    from pathlib import Path
    if reuse_port:
        _refuse_busy_addresses(server)
    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()


def _refuse_busy_addresses(server):
    """With reuse_port, a second gateway on the same port would silently share its connections
    (same user): probe each address with a plain bind first, as gunicorn would have done."""
    import socket
    import sys
    for address in server.cfg.address:
        if not isinstance(address, tuple):
            continue  # a unix socket: gunicorn's own checks apply
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(address[:2])
            except OSError as exc:
                server.log.error("cannot listen on %s:%s: %s (another server holds it? "
                                 "TORCHGATE_BIND or PORT= choose another)", *address[:2],
                                 exc.strerror)
                sys.exit(1)


def child_exit(server, worker):
    """A dead worker's live gauges (in-flight requests, model state) stop counting."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if OWN_METRICS_DIR:
        import shutil
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
