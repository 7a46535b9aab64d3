"""The application factory: settings, extensions, blueprints, error handlers, CLI."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import click
from flask import Flask
from flask_jwt_extended import JWTManager
from werkzeug.middleware.proxy_fix import ProxyFix

# At module level, management's table (models.admin) is in the schema before build_gateway.
from app import audit, errors, extraction, lifecycle, management, metrics, requestlog, startup
from app.gateway import EXTENSION, build_gateway, current_gateway
from config import Settings, load_settings

jwt_manager = JWTManager()


@jwt_manager.additional_headers_loader
def signing_key_header(_identity: Any) -> dict[str, str]:
    """Every token names its signing key, so a previous key can keep verifying after a switch."""
    return {"kid": current_gateway().verifier.signing.current.kid}


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the gateway; raises config.ConfigError (one line) on a missing or weak secret."""
    settings = load_settings(overrides)
    requestlog.configure_logging(settings.log_level, settings.log_format)
    app = Flask(__name__, instance_path=str(settings.instance_dir.resolve()))
    # A path with doubled slashes is not ours: 404 problem+json, where werkzeug would answer an
    # HTML 308 redirect (which a client may follow with its body and token).
    app.url_map.merge_slashes = False
    app.config.update(DEBUG=False, MAX_CONTENT_LENGTH=settings.max_body_bytes,
                      **jwt_issuing_config(settings))
    if settings.trusted_proxies:  # the caller's address as the proxy saw it (docs/operations.md)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies,
                                x_proto=settings.trusted_proxies)
    jwt_manager.init_app(app)
    collectors = metrics.create_metrics()
    gateway = build_gateway(settings, on_batch=collectors.observe_batch,
                            on_flag=extraction.report_flag)
    app.extensions[EXTENSION] = gateway

    errors.init_app(app)
    metrics.init_app(app, collectors)
    audit.init_app(app, on_commit=collectors.observe_audit_commit)
    lifecycle.init_app(app)  # one finishing hook: audit, then log, then metrics
    from app import apidocs, auth, commands, health, oip, openapi, predict, wellknown
    for blueprint in (auth.bp, predict.bp, oip.bp, health.bp, openapi.bp, wellknown.bp):
        app.register_blueprint(blueprint)
    management.init_app(app, gateway)
    apidocs.init_app(app, settings.docs_enabled)
    commands.init_app(app)

    if not _inside_cli_command():
        gateway.registry.load_all()
        management.model_admin_of(app).catch_up_at_start()
        startup.log_startup(gateway)
    return app


def jwt_issuing_config(settings: Settings) -> dict[str, Any]:
    """flask-jwt-extended settings: it signs our tokens; security.tokens verifies them."""
    keys = ({"JWT_SECRET_KEY": settings.jwt_secret} if settings.jwt_algorithm == "HS256" else
            {"JWT_PRIVATE_KEY": settings.jwt_private_key,
             "JWT_PUBLIC_KEY": settings.jwt_public_key})
    return {
        **keys,
        "JWT_ALGORITHM": settings.jwt_algorithm,
        "JWT_DECODE_ALGORITHMS": [settings.jwt_algorithm],
        "JWT_ENCODE_ISSUER": settings.jwt_issuer,
        "JWT_DECODE_ISSUER": settings.jwt_issuer,
        "JWT_ENCODE_AUDIENCE": settings.jwt_audience,
        "JWT_DECODE_AUDIENCE": settings.jwt_audience,
        "JWT_ENCODE_NBF": True,
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(seconds=settings.jwt_access_ttl),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(seconds=settings.jwt_refresh_ttl),
        "JWT_TOKEN_LOCATION": ["headers"],
    }


def _inside_cli_command() -> bool:
    """Admin commands need no models loaded; `flask run` and servers do."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.info_name != "run"
