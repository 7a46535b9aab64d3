"""Typed settings: built-in defaults < TOML file < TORCHGATE_* environment < test overrides.

Every secret X may also come from a file named by X_FILE (the Docker/Kubernetes secrets
convention). Production refuses to start on a missing or weak secret with one line that names
the setting; development generates secrets once into the instance directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from environment import ENVIRONMENT_ONLY
from security.encoding import b64url_decode
from security.generated_secrets import development_secrets, new_secrets

ENV_PREFIX = "TORCHGATE_"
ENVIRONMENTS = ("production", "development", "testing")
JWT_ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")
MIN_SECRET_BYTES = 32
DEV_SECRETS_FILE = "dev-secrets.toml"


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message is one line that names the setting.

    A RuntimeError so that gunicorn's master, preloading the app, prints that one line and
    exits 1 instead of a traceback (gunicorn.conf.py does the same for a worker)."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{ENV_PREFIX}{name}: {problem}")
        self.name = name


def _setting(default: Any, meaning: str, *, secret: bool = False, shown: str | None = None,
             factory: Any = None) -> Any:
    """A Settings field with what the reference (docs/settings.md) says about it."""
    metadata = {"meaning": meaning, "secret": secret, "shown": shown}
    if factory is not None:
        return field(default_factory=factory, repr=not secret, metadata=metadata)
    return field(default=default, repr=not secret, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """Every setting of the gateway, validated. Field names are the setting names, lower case."""

    env: str = _setting("production", "`production`, `development` or `testing`; production "
                        "refuses to start without real secrets")
    instance_dir: Path = _setting(Path("instance"), "SQLite database, shared store, audit log, "
                                  "generated development secrets; its `torchgate.toml` is read "
                                  "when CONFIG is not set")
    database_url: str = _setting("", "users, clients, payload keys, audit trail: any SQLAlchemy "
                                 "URL (PostgreSQL for several nodes)",
                                 secret=True, shown="SQLite in INSTANCE_DIR")
    store_url: str = _setting("sqlite", "shared state (revocations, seen envelope IVs, login "
                              "failures, rate limits): `sqlite` (one machine) or `redis://…` "
                              "(several machines)", secret=True)
    jwt_secret: str = _setting("", "HS256 signing secret, at least 32 bytes of UTF-8 text",
                               secret=True)
    jwt_algorithm: str = _setting("HS256", "`HS256`, `RS256`, `ES256` or `EdDSA`")
    jwt_private_key: str = _setting("", "PEM signing key for RS256/ES256/EdDSA", secret=True)
    jwt_public_key: str = _setting("", "PEM verification key for RS256/ES256/EdDSA")
    jwt_previous_secret: str = _setting("", "the HS256 secret before JWT_SECRET: verifies "
                                        "until JWT_PREVIOUS_KEYS_UNTIL", secret=True)
    jwt_previous_public_key: str = _setting("", "the PEM public key before the current one: "
                                            "verifies until JWT_PREVIOUS_KEYS_UNTIL")
    jwt_previous_keys_until: str = _setting("", "ISO-8601 time with zone (`2026-12-01T12:00Z`) "
                                            "when the previous JWT keys stop verifying")
    jwt_issuer: str = _setting("torchgate", "required `iss` of tokens")
    jwt_audience: str = _setting("torchgate", "required `aud` of tokens")
    jwt_access_ttl: int = _setting(900, "access token lifetime, seconds")
    jwt_refresh_ttl: int = _setting(86400, "refresh token lifetime, seconds")
    jwt_jwks_file: str = _setting("", "also accept an identity provider's tokens signed by the "
                                  "keys of this JWKS file (docs/external-tokens.md)")
    jwt_roles_claim: str = _setting("roles", "dotted path of the roles claim in external tokens")
    jwt_attributes_claim: str = _setting("attributes", "dotted path of the attributes object "
                                         "in external tokens (docs/access-control.md)")
    master_key: bytes = _setting(b"", "32 bytes as base64url: wraps payload keys at rest and "
                                 "keys the audit chain", secret=True)
    previous_master_keys: tuple[bytes, ...] = _setting(None, "earlier MASTER_KEYs, comma-"
                                                       "separated (`keys rewrap`)", secret=True,
                                                       factory=tuple, shown="—")
    model_keys: Mapping[str, bytes] = _setting(None, "key-encryption keys of sealed weights: "
                                               "`kid1:base64url,kid2:base64url`", secret=True,
                                               factory=dict)
    model_repository: Path = _setting(Path("model_repository"), "the model repository "
                                      "(docs/models.md)")
    roles_file: str = _setting("", "TOML roles file (role -> permissions)",
                               shown="built-in roles")
    payload_encryption: str = _setting("required", "`required`, or `optional` (plain JSON also "
                                       "accepted)")
    envelope_max_age: int = _setting(300, "seconds an envelope's `iat` may differ from the "
                                     "server clock")
    envelope_modes: str = _setting("dir,hpke", "envelopes accepted: `dir`, `hpke` or `dir,hpke`")
    gateway_key_overlap: int = _setting(86400, "seconds a rotated gateway key still opens")
    jwks_max_age: int = _setting(300, "seconds clients may cache /.well-known/jwks.json")
    max_body_bytes: int = _setting(10 * 1024 * 1024, "largest request body; more is 413")
    receipt_algorithm: str = _setting("EdDSA", "JWS algorithm of reply receipts: `EdDSA` "
                                      "(Ed25519) or `ML-DSA-65` (docs/receipts.md)")
    device: str = _setting("auto", "`auto` (CUDA when available), `cpu`, `cuda`, `cuda:N`; a "
                           "model's manifest may override")
    login_max_failures: int = _setting(5, "failed logins per username and per address before "
                                       "429")
    login_window: int = _setting(900, "seconds failed logins are counted")
    model_sync_interval: int = _setting(2, "seconds between a worker's checks for model loads, "
                                        "unloads and reloads made on another worker or node "
                                        "(0: on every request)")
    key_cache_ttl: int = _setting(10, "seconds a worker caches a payload key (a revocation "
                                  "takes effect within this)")
    rate_limit_predict: str = _setting("6000/minute", "model calls per subject (`limits` "
                                       "notation; empty: off)")
    rate_limit_token: str = _setting("60/minute", "POST /auth/token calls per client address")
    extraction_monitor: str = _setting("off", "model-extraction monitor (docs/model-protection"
                                       ".md): `off`, `log` or `refuse` (also 403 once flagged)")
    extraction_threshold: str = _setting("0.90", "Shapiro-Wilk W below which a caller is flagged")
    extraction_min_queries: int = _setting(100, "queries to a model before a caller is judged")
    extraction_streams: int = _setting(1000, "(subject, model) streams each worker watches")
    log_level: str = _setting("INFO", "`DEBUG`, `INFO`, `WARNING`, `ERROR`")
    docs: str = _setting("auto", "interactive API documentation at /docs: `auto` (on in "
                         "development and testing, off in production), `on` or `off`")
    log_format: str = _setting("json", "`json` (one JSON object per line, for log shippers) or "
                               "`text` (one readable line, for a terminal in development)")
    # Reverse proxies in front whose X-Forwarded-For/-Proto are believed (0: none, the default);
    # behind nginx set 1, else every caller shares the proxy's address (and its lockout).
    trusted_proxies: int = _setting(0, "reverse proxies in front whose X-Forwarded-For/-Proto "
                                    "are believed (behind one nginx: 1)")
    audit_anchor_interval: int = _setting(1, "seconds between a worker's signed audit chain-head "
                                          "anchors in the shared store; 0: every commit")

    @property
    def debug(self) -> bool:
        return False  # never: not even in development (werkzeug's debugger runs code)

    @property
    def docs_enabled(self) -> bool:
        return self.docs == "on" or (self.docs == "auto" and self.env != "production")

    @property
    def sqlite_store_path(self) -> Path:
        return self.instance_dir / "store.sqlite3"


SETTING_NAMES = tuple(f.name.upper() for f in dataclasses.fields(Settings))
SECRET_NAMES = tuple(f.name.upper() for f in dataclasses.fields(Settings) if f.metadata["secret"])

def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate every layer; raise ConfigError naming the first bad setting."""
    environ = os.environ if environ is None else environ
    overriding = _normalise_layer(dict(overrides or {}), "override")
    raw: dict[str, Any] = {}
    raw.update(_read_toml(_config_path(environ, overriding)))
    raw.update(_read_environment(environ))
    raw.update(overriding)
    settings = _build(raw)
    return _with_secrets(settings)


def _config_path(environ: Mapping[str, str], overriding: Mapping[str, Any]) -> Path | None:
    """The TOML file named by CONFIG, else <INSTANCE_DIR>/torchgate.toml when it exists.

    The instance dir of the overrides wins over the environment's, so an app built with an
    instance dir of its own never reads the working directory's instance/torchgate.toml.
    """
    named = environ.get(ENV_PREFIX + "CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError("CONFIG", f"no such file: {path}")
        return path
    instance = overriding.get("INSTANCE_DIR") or environ.get(ENV_PREFIX + "INSTANCE_DIR",
                                                             "instance")
    default = Path(instance) / "torchgate.toml"
    return default if default.is_file() else None


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("CONFIG", f"{path} is not valid TOML: {exc}") from exc
    return _normalise_layer(data, str(path))


def _read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    layer = {key[len(ENV_PREFIX):]: value for key, value in environ.items()
             if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):] not in ENVIRONMENT_ONLY}
    return _normalise_layer(layer, "environment")


def _normalise_layer(layer: dict[str, Any], origin: str) -> dict[str, Any]:
    """Upper-case the names, resolve X_FILE secrets, drop names this gateway does not know."""
    out: dict[str, Any] = {}
    for key, value in layer.items():
        name = key.upper()
        if name.endswith("_FILE") and name[:-5] in SECRET_NAMES:
            out[name[:-5]] = _read_secret_file(name, value)
        elif name in SETTING_NAMES:
            out[name] = value
        elif name.startswith("TEST_"):
            continue  # the test suite's own variables (TORCHGATE_TEST_REDIS_URL, ...)
        else:
            raise ConfigError(name, f"unknown setting in {origin}"
                                    f"{_did_you_mean(name, origin == 'environment')}")
    return out


def _did_you_mean(name: str, environment: bool) -> str:
    """"; did you mean X?" naming the closest valid name, or nothing when none is close."""
    valid = [*SETTING_NAMES, *(f"{n}_FILE" for n in SECRET_NAMES)]
    close = difflib.get_close_matches(name, valid + list(ENVIRONMENT_ONLY) if environment
                                      else valid, n=1, cutoff=0.6)
    if not close:
        return ""
    return f"; did you mean {ENV_PREFIX + close[0] if environment else close[0].lower()}?"


def _read_secret_file(name: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(name, f"cannot read {path}: {exc.strerror}") from exc


def _build(raw: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        name = f.name.upper()
        if name in raw:
            values[f.name] = _convert(name, f.type, raw[name])
    settings = Settings(**values)
    _check_choices(settings)
    return settings


def _convert(name: str, kind: Any, value: Any) -> Any:
    if name == "MASTER_KEY":
        return parse_key(name, value) if value else b""
    if name == "PREVIOUS_MASTER_KEYS":
        return tuple(parse_key(name, k) for k in str(value).split(",") if k.strip())
    if name == "MODEL_KEYS":
        return parse_model_keys(value)
    if kind in ("int", int):
        try:
            number = int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(name, f"expected a whole number, got {value!r}") from exc
        if number < 0:
            raise ConfigError(name, "must not be negative")
        return number
    if kind in ("Path", Path):
        return Path(str(value))
    return str(value)


def parse_key(name: str, value: str) -> bytes:
    """A 256-bit key given as base64url, padding optional."""
    try:
        key = b64url_decode(str(value), allow_padding=True)
    except ValueError as exc:
        raise ConfigError(name, "not valid base64url") from exc
    if len(key) != 32:
        raise ConfigError(name, f"must be 32 bytes as base64url, got {len(key)} bytes")
    return key


def parse_model_keys(value: str | Mapping[str, str]) -> dict[str, bytes]:
    """`kid1:base64url,kid2:base64url` (or a TOML table kid = "base64url") into {kid: key}."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        pairs = []
        for item in filter(None, (part.strip() for part in str(value).split(","))):
            kid, sep, key = item.partition(":")
            if not sep or not kid:
                raise ConfigError("MODEL_KEYS", "expected kid:base64url[,kid:base64url...]")
            pairs.append((kid, key))
    return {kid.strip(): parse_key("MODEL_KEYS", key) for kid, key in pairs}


def _check_choices(s: Settings) -> None:
    if s.env not in ENVIRONMENTS:
        raise ConfigError("ENV", f"must be one of {', '.join(ENVIRONMENTS)}")
    if s.jwt_algorithm not in JWT_ALGORITHMS:
        raise ConfigError("JWT_ALGORITHM", f"must be one of {', '.join(JWT_ALGORITHMS)}")
    if s.docs not in ("auto", "on", "off"):
        raise ConfigError("DOCS", "must be 'auto', 'on' or 'off'")
    if s.log_format not in ("json", "text"):
        raise ConfigError("LOG_FORMAT", "must be 'json' or 'text'")
    if s.payload_encryption not in ("required", "optional"):
        raise ConfigError("PAYLOAD_ENCRYPTION", "must be 'required' or 'optional'")
    if not (s.store_url == "sqlite" or s.store_url.startswith(("redis://", "rediss://"))):
        raise ConfigError("STORE_URL", "must be 'sqlite' or a redis:// URL")
    if s.jwt_access_ttl == 0 or s.jwt_refresh_ttl == 0:
        raise ConfigError("JWT_ACCESS_TTL", "token lifetimes must be positive")


def _with_secrets(s: Settings) -> Settings:
    """Production: refuse missing or weak secrets. Elsewhere: fill the gaps with dev secrets."""
    if s.env != "production":
        s = _fill_development_secrets(s)
    if s.jwt_algorithm == "HS256":
        require_strong_text("JWT_SECRET", s.jwt_secret)
    else:
        if not s.jwt_private_key or not s.jwt_public_key:
            raise ConfigError("JWT_PRIVATE_KEY", f"{s.jwt_algorithm} needs JWT_PRIVATE_KEY "
                              "and JWT_PUBLIC_KEY (PEM)")
    if not s.master_key:
        raise ConfigError("MASTER_KEY", "missing: 32 random bytes as base64url are required")
    if not s.model_keys:
        raise ConfigError("MODEL_KEYS", "missing: at least one kid:base64url key is required")
    if not s.database_url:
        s = dataclasses.replace(s, database_url=f"sqlite:///{(s.instance_dir / 'torchgate.db')}")
    return s


def require_strong_text(name: str, value: str) -> None:
    if not value:
        raise ConfigError(name, f"missing: at least {MIN_SECRET_BYTES} random bytes are required")
    encoded = value.encode()
    if len(encoded) < MIN_SECRET_BYTES or len(set(encoded)) < 8:
        raise ConfigError(name, f"too weak: use at least {MIN_SECRET_BYTES} random bytes")


def _fill_development_secrets(s: Settings) -> Settings:
    """Generate any missing secret once and keep it in the instance dir (mode 0600)."""
    if s.jwt_secret and s.master_key and s.model_keys:
        return s
    if s.env == "development":
        stored = development_secrets(s.instance_dir / DEV_SECRETS_FILE)
    else:
        stored = new_secrets()  # testing: fresh and in memory only
    return dataclasses.replace(
        s,
        jwt_secret=s.jwt_secret or stored["jwt_secret"],
        master_key=s.master_key or parse_key("MASTER_KEY", stored["master_key"]),
        model_keys=s.model_keys or parse_model_keys(stored["model_keys"]),
    )
