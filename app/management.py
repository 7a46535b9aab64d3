"""Model management at run time (permission `models:admin`), after TorchServe's management API:
load a version, unload one, reload the repository, on every worker and node (models/admin.py).

    POST   /models/<name>/versions/<version>/load
    DELETE /models/<name>/versions/<version>
    POST   /models/reload
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app

from app.gateway import Gateway, current_gateway
from app.guard import permission_required
from app.lifecycle import current_facts, record_ahead
from models.admin import ModelAdmin

EXTENSION = "torchgate.models"
bp = Blueprint("management", __name__)


def init_app(app: Flask, gateway: Gateway) -> None:
    """The model admin of this process; every request first applies what other workers did."""
    admin = ModelAdmin(gateway.registry, gateway.engine,
                       interval=gateway.settings.model_sync_interval)
    app.extensions[EXTENSION] = admin
    app.before_request(admin.poll_if_due)
    app.register_blueprint(bp)


def model_admin_of(app: Flask) -> ModelAdmin:
    return app.extensions[EXTENSION]


def model_admin() -> ModelAdmin:
    return model_admin_of(current_app)


def _executed(action: str, name: str | None = None, version: str | None = None) -> dict:
    record_ahead()  # 503 here: nothing loaded or unloaded
    command = model_admin().execute(action, name, version, current_facts().subject)
    registry = current_gateway().registry
    return {**command.to_json(),
            "models": [registry.describe(n) for n in registry.names()
                       if name is None or n == name],
            "other_workers_within_seconds": current_gateway().settings.model_sync_interval}


@bp.post("/models/<name>/versions/<version>/load")
@permission_required("models:admin")
def load_model(name: str, version: str):
    return _executed("load", name, version)


@bp.delete("/models/<name>/versions/<version>")
@permission_required("models:admin")
def unload_model(name: str, version: str):
    return _executed("unload", name, version)


@bp.post("/models/reload")
@permission_required("models:admin")
def reload_models():
    return _executed("reload")
