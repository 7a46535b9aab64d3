"""The gateway's services, built once per app from the settings and kept in app.extensions."""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from app.key_rotation import previous_signing_keys, verification_key
from config import ConfigError, Settings
from dataplane.call import ModelCall
from dataplane.payload import (
    JOSE_JSON,
    PLAIN_JSON,
    EnvelopeKeys,
    PayloadPolicy,
    parse_envelope_modes,
)
from dataplane.receipt import receipt_signer
from dataplane.watch import Flag, build_watch
from models.registry import ModelRegistry, OnBatch
from security.admission import RateLimit
from security.gateway_keys import GatewayKeyStore
from security.identity import Directory
from security.jwks import JwksError, VerificationKey, load_jwks
from security.keys import PayloadKeyring
from security.lockout import LoginThrottle
from security.private_files import private_dir, private_file
from security.rbac import Policy
from security.receipt_keys import ReceiptKeys
from security.schema import metadata
from security.sqlite_writes import NO_AUTO_CHECKPOINT
from security.store import SharedStore, open_store
from security.tokens import TokenVerifier

EXTENSION = "torchgate"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gateway:
    """Everything a view needs, wired from one Settings."""

    settings: Settings
    engine: Engine
    store: SharedStore
    directory: Directory
    keyring: PayloadKeyring
    gateway_keys: GatewayKeyStore
    policy: Policy
    verifier: TokenVerifier
    throttle: LoginThrottle
    registry: ModelRegistry
    model_call: ModelCall
    token_rate: RateLimit

    @property
    def receipt_keys(self) -> ReceiptKeys:
        """The keys receipts are signed with (published in the JWKS as `use: "sig"`)."""
        return self.model_call.receipts.keys


def current_gateway() -> Gateway:
    return current_app.extensions[EXTENSION]


def build_gateway(settings: Settings, *, on_batch: OnBatch | None = None,
                  on_flag: Callable[[Flag], None] | None = None) -> Gateway:
    # Keys, hashes and the audit trail live here: owner only.
    try:
        private_dir(settings.instance_dir)
    except OSError as exc:
        raise ConfigError("INSTANCE_DIR", f"cannot create {settings.instance_dir}: "
                          f"{exc.strerror}") from exc
    engine = create_database_engine(settings.database_url)
    store = open_store(settings.store_url, settings.sqlite_store_path)
    keyring = PayloadKeyring(engine, settings.master_key, cache_ttl=settings.key_cache_ttl,
                             previous_master_keys=settings.previous_master_keys)
    gateway_keys = GatewayKeyStore(engine, settings.master_key, cache_ttl=settings.key_cache_ttl,
                                   overlap=settings.gateway_key_overlap,
                                   previous_master_keys=settings.previous_master_keys)
    if settings.env != "production":  # HPKE works out of the box; production keys: the CLI
        gateway_keys.ensure_defaults()
    policy = Policy.from_file(settings.roles_file)
    registry = ModelRegistry(settings.model_repository, settings.model_keys, settings.device,
                             on_batch=on_batch)
    receipts = receipt_signer(settings, gateway_keys)
    return Gateway(
        settings=settings,
        engine=engine,
        store=store,
        directory=Directory(engine),
        keyring=keyring,
        gateway_keys=gateway_keys,
        policy=policy,
        verifier=TokenVerifier(
            algorithm=settings.jwt_algorithm, key=verification_key(settings),
            issuer=settings.jwt_issuer, audience=settings.jwt_audience,
            is_revoked=store.any_revoked,
            external_keys=external_keys(settings), roles_claim=settings.jwt_roles_claim,
            previous=previous_signing_keys(settings),
            attributes_claim=settings.jwt_attributes_claim),
        throttle=LoginThrottle(store, settings.login_max_failures, settings.login_window),
        registry=registry,
        model_call=ModelCall(
            registry=registry, policy=policy, keys=EnvelopeKeys(keyring, gateway_keys),
            store=store,
            payload=payload_policy(settings),
            rate_limit=rate_limit("RATE_LIMIT_PREDICT", settings.rate_limit_predict, "predict"),
            watch=build_watch(settings, on_flag or _unreported),
            receipts=receipts),
        token_rate=rate_limit("RATE_LIMIT_TOKEN", settings.rate_limit_token, "token"),
    )


def _unreported(_flag: Flag) -> None:
    """A gateway built without an app (the CLI) has no one to tell."""


def payload_policy(settings: Settings) -> PayloadPolicy:
    optional = settings.payload_encryption == "optional"
    return PayloadPolicy(media_types=(JOSE_JSON, PLAIN_JSON) if optional else (JOSE_JSON,),
                         max_body_bytes=settings.max_body_bytes,
                         envelope_max_age=settings.envelope_max_age,
                         envelope_modes=envelope_modes(settings.envelope_modes))


def envelope_modes(value: str) -> frozenset[str]:
    """ENVELOPE_MODES parsed now, so a typo stops start-up naming the setting."""
    try:
        return parse_envelope_modes(value)
    except ValueError as exc:
        raise ConfigError("ENVELOPE_MODES", f"{exc}, got {value!r}") from exc


def rate_limit(setting: str, value: str, scope: str) -> RateLimit:
    """The setting's limit, checked now so a typo stops start-up; "" means no limit."""
    try:
        return RateLimit.parse(scope, value)
    except ValueError as exc:
        raise ConfigError(setting, f"not a rate limit: {value.strip()!r} (e.g. '6000/minute' "
                          "or '100/second;5000/hour')") from exc


def external_keys(settings: Settings) -> dict[str, VerificationKey]:
    """The identity provider's JWKS, parsed once; a bad file stops start-up naming the setting."""
    if not settings.jwt_jwks_file:
        return {}
    try:
        return load_jwks(settings.jwt_jwks_file)
    except JwksError as exc:
        raise ConfigError("JWT_JWKS_FILE", str(exc)) from exc


def create_database_engine(url: str) -> Engine:
    """An engine with the schema in place; SQLite gets WAL so several workers can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 5})
        _create_private_file(engine)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                               connect_args=_connect_timeout(url))
    try:
        metadata.create_all(engine)
    except OperationalError as exc:  # cannot connect, or cannot write: no race to retry
        raise ConfigError("DATABASE_URL", f"cannot use {_safe_url(engine)}: "
                          f"{_first_line(exc.orig)}") from exc
    except SQLAlchemyError:  # two processes created the same table at once
        log.warning("schema creation raced with another process; retrying once")
        metadata.create_all(engine)
    _fresh_pool_after_fork(engine)
    return engine


def _create_private_file(engine: Engine) -> None:
    """The SQLite file, 0600, before SQLite creates it 0644; ConfigError if it cannot be."""
    database = engine.url.database
    if not database or database == ":memory:":
        return
    try:
        private_file(Path(database))
    except OSError as exc:
        raise ConfigError("DATABASE_URL", f"cannot create {database}: {exc.strerror}") from exc


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if str(error or "").strip() else "failed"


def _fresh_pool_after_fork(engine: Engine) -> None:
    """gunicorn --preload forks after create_all: without this, every worker would talk on the
    master's pooled connection at once (a hang, then ProgrammingError). Held weakly."""
    ref = weakref.ref(engine)

    def reset() -> None:
        forked = ref()
        if forked is not None:
            forked.dispose(close=False)  # forget the parent's connections, never close them

    os.register_at_fork(after_in_child=reset)


def _connect_timeout(url: str) -> dict:
    return {"connect_timeout": 3} if url.startswith("postgresql") else {}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(NO_AUTO_CHECKPOINT)  # the audit writer checkpoints, outside its turn
    cursor.close()
