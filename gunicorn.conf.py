"""gunicorn settings: `gunicorn wsgi:app` is the whole production command.

Every value can be overridden from the environment (TORCHGATE_BIND, TORCHGATE_WORKERS, ...).
CPU models are loaded once in the master (preload) so workers share the weight pages
copy-on-write; CUDA is never touched before the fork, so with CUDA each worker loads after it.
docs/operations.md explains each choice.
"""

import os

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
workers = _env("WORKERS", max(2, CORES))
threads = _env("THREADS", 4)
worker_class = "gthread"
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
# Per-worker intra-op threads so that workers x torch threads never exceed the cores.
TORCH_THREADS = _env("TORCH_THREADS", max(1, CORES // workers))

if preload_app:
    # The master loads (and warms up) the models before it forks: it must not start an OpenMP
    # thread pool, which a forked child cannot use. gunicorn preloads before on_starting runs,
    # so this is set while the config is read.
    import torch
    torch.set_num_threads(1)


def post_fork(server, worker):
    import torch
    torch.set_num_threads(TORCH_THREADS)
