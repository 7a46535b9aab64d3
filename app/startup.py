"""The one line the gateway logs when it starts: what runs, where, and how (never a secret)."""

from __future__ import annotations

import logging
import os
from importlib import metadata

from app.gateway import Gateway
from security.keys import isoformat_utc

log = logging.getLogger("torchgate.startup")


def version() -> str:
    try:
        return metadata.version("torchgate")
    except metadata.PackageNotFoundError:
        return "unknown"


def startup_facts(gateway: Gateway) -> dict:
    """Version, environment, models (name, version, device), store and database kind (no URL,
    so no credentials), payload-encryption mode, bind address (gunicorn's, when known), and the
    public ids of the JWT keys, so every node can be seen to be on the same step of a rotation."""
    settings, signing = gateway.settings, gateway.verifier.signing
    return {
        "version": version(),
        "env": settings.env,
        "models": [{"name": n, "version": v, "device": d}
                   for n, v, d in gateway.registry.loaded_versions()],
        "store": "redis" if settings.store_url.startswith("redis") else "sqlite",
        "database": gateway.engine.url.get_backend_name(),
        "payload_encryption": settings.payload_encryption,
        "bind": os.environ.get("TORCHGATE_BIND") or "unknown (not started with gunicorn.conf.py)",
        "jwt_keys": {"signing": signing.current.kid, "previous": [
            {"kid": key.kid, "until": isoformat_utc(int(key.until))}
            for key in signing.previous()]},
    }


def log_startup(gateway: Gateway) -> None:
    facts = startup_facts(gateway)
    models = ", ".join(f"{m['name']}/{m['version']}@{m['device']}" for m in facts["models"])
    log.info("torchgate %s started: env=%s models=[%s] store=%s database=%s "
             "payload_encryption=%s bind=%s jwt_kid=%s", facts["version"], facts["env"],
             models or "none", facts["store"], facts["database"], facts["payload_encryption"],
             facts["bind"], facts["jwt_keys"]["signing"], extra={"startup": facts})
