"""/predict and /models: the sealed model call and the catalogue of what a caller may use."""

from __future__ import annotations

from flask import Blueprint, g

from app.gateway import current_gateway
from app.guard import authenticate, permission_required, require_permission
from app.ratelimit import rate_limited
from app.sealing import read_request, reply
from errors import ModelNotFound
from security.tokens import Identity

bp = Blueprint("predict", __name__)


@bp.post("/predict/<name>")
@bp.post("/predict/<name>/versions/<version>")
@permission_required("predict:{name}")
@rate_limited("predict")  # keyed by the subject: after authentication
def predict(name: str, version: str | None = None):
    runner = current_gateway().registry.get(name, version)
    g.model, g.model_version = name, runner.version
    payload, reply_key = read_request(g.identity)
    result = runner.predict(payload)
    return reply({"model": name, "version": runner.version, **result,
                  "request_id": g.request_id}, reply_key)


@bp.get("/models")
def list_models():
    identity = authenticate()
    gateway = current_gateway()
    visible = [n for n in gateway.registry.names() if _may_see(identity.roles, n)]
    return {"models": [gateway.registry.describe(n) for n in visible]}


@bp.get("/models/<name>")
def describe_model(name: str):
    require_visible(authenticate(), name)
    registry = current_gateway().registry
    if name not in registry.names():
        raise ModelNotFound(name)
    return registry.describe(name)


def require_visible(identity: Identity, name: str) -> None:
    """403 unless the caller holds models:read or predict:<name> (also used by /v2/models)."""
    if not _may_see(identity.roles, name):
        require_permission(identity, f"predict:{name}")  # raises the 403


def _may_see(roles: tuple[str, ...], name: str) -> bool:
    policy = current_gateway().policy
    return policy.allows(roles, "models:read") or policy.allows(roles, f"predict:{name}")
