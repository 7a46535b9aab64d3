"""Environment variables that other programs of the project read, never the app's settings:
gunicorn.conf.py (before the app exists) and the client CLI (python -m client). config.py
accepts them in the environment and docs/settings.md lists them (scripts/render_settings.py).
"""

from __future__ import annotations

SERVER_VARIABLES: dict[str, tuple[str, str]] = {
    "BIND": ("127.0.0.1:8000", "host:port gunicorn listens on (`torchgate serve`)"),
    "WORKERS": ("max(2, cores)", "gunicorn worker processes"),
    "THREADS": ("4", "threads per worker"),
    "REUSE_PORT": ("yes", "`yes`: a listening socket per worker, the kernel spreads connections "
                   "over them; `no`: one shared socket"),
    "TIMEOUT": ("30", "seconds a request may take before its worker is restarted"),
    "GRACEFUL_TIMEOUT": ("30", "seconds in-flight requests get on shutdown"),
    "KEEPALIVE": ("5", "seconds an idle keep-alive connection is held"),
    "MAX_REQUESTS": ("20000", "requests before a worker is recycled"),
    "MAX_REQUESTS_JITTER": ("2000", "random spread of MAX_REQUESTS"),
    "PRELOAD": ("auto", "`yes`, `no`, `auto` (preload unless CUDA may be used)"),
    "FORWARDED_ALLOW_IPS": ("127.0.0.1", "proxies gunicorn believes about the scheme"),
    "CONTROL_SOCKET": ("", "path of gunicorn's control socket (off when empty)"),
    "TORCH_THREADS": ("cores // workers", "torch intra-op threads per worker"),
    "TLS_CERT": ("", "PEM certificate: TLS at gunicorn (docs/mtls.md)"),
    "TLS_KEY": ("", "PEM key of TLS_CERT"),
    "TLS_CA": ("", "CA bundle that client certificates are checked against"),
    "TLS_CLIENT_CERT": ("none, required with TLS_CA", "`none`, `optional`, `required`"),
    "TLS_MIN_VERSION": ("1.2", "`1.2` or `1.3`"),
}
CLIENT_VARIABLES: dict[str, tuple[str, bool]] = {
    "URL": ("gateway URL of the client CLI (default http://127.0.0.1:8000)", False),
    "USERNAME": ("user of the password grant", False),
    "PASSWORD": ("password of that user", True),
    "CLIENT_ID": ("client of the client_credentials grant", False),
    "CLIENT_SECRET": ("secret of that client", True),
    "KID": ("payload key id", False),
    "KEY": ("payload key, base64url", True),
    "ENVELOPE": ("`auto` (HPKE to the gateway's key, else KID/KEY), `hpke`, `dir` or `plain`",
                 False),
    "PIN_FILE": ("the gateway's HPKE keys, pinned there on first use", False),
    "GATEWAY_KEYS": ("a JWKS file of the gateway's keys from the operator, trusted instead",
                     False),
}
ENVIRONMENT_ONLY = ("CONFIG", *SERVER_VARIABLES, *CLIENT_VARIABLES,
                    *(f"{name}_FILE" for name, (_, secret) in CLIENT_VARIABLES.items() if secret))
