"""/predict and /models: the sealed model call and the catalogue of what a caller may use."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.gateway import current_gateway
from app.guard import authenticate, bearer_token, identify
from app.lifecycle import current_facts
from dataplane.call import CallRequest, Respond
from dataplane.payload import Body
from errors import Forbidden, ModelNotFound, PayloadTooLarge
from models.output_policy import OutputPolicy
from models.runner import ModelRunner
from security.envelope_hpke import token_binding
from security.receipts import RECEIPT_AT
from security.tokens import Identity

bp = Blueprint("predict", __name__)


@bp.post("/predict/<name>")
@bp.post("/predict/<name>/versions/<version>")
def predict(name: str, version: str | None = None):
    def respond(runner: ModelRunner, payload: dict[str, Any], request_id: str,
                policy: OutputPolicy) -> dict:
        return {"model": name, "version": runner.version, **runner.predict(payload, policy),
                "request_id": request_id}
    return call_model(name, version, respond)


def call_model(name: str, version: str | None, respond: Respond,
               unsupported: str | None = None,
               receipt_at: tuple[str, ...] = RECEIPT_AT) -> Response:
    """The dataplane's answer to this HTTP request (shared by /predict and /v2 infer)."""
    identity, claims = identify(check_revocation=False)  # the dataplane's admission checks it
    reply = current_gateway().model_call.run(
        CallRequest(identity=identity, claims=claims, model=name, version=version,
                    body=http_body(), respond=respond, unsupported=unsupported,
                    token_binding=token_binding(bearer_token()), receipt_at=receipt_at),
        current_facts())
    return Response(reply.body, mimetype=reply.media_type, headers=reply.headers)


def http_body() -> Body:
    """The body, not read yet: touching request.stream already applies werkzeug's size limit,
    which must answer only after the token, permission and model checks."""
    return Body(media_type=request.mimetype, content_length=request.content_length,
                read=read_stream)


def read_stream(size: int) -> bytes:
    """At most `size` bytes of the request body, however the server hands them over.

    Werkzeug ends a chunked body silently at MAX_CONTENT_LENGTH and raises only when read
    past it; that raise is the only sign the body went on, so it becomes our 413.
    """
    parts: list[bytes] = []
    wanted = size
    try:
        while wanted > 0:
            part = request.stream.read(wanted)
            if not part:
                break
            parts.append(part)
            wanted -= len(part)
    except RequestEntityTooLarge as exc:
        limit = request.max_content_length
        raise PayloadTooLarge(f"The body may be at most {limit} bytes.") from exc
    return b"".join(parts)


@bp.get("/models")
def list_models():
    identity = authenticate()
    gateway = current_gateway()
    visible = [n for n in gateway.registry.names() if _may_see(identity, n)]
    return {"models": [_describe(identity, n) for n in visible]}


@bp.get("/models/<name>")
def describe_model(name: str):
    identity = authenticate()
    require_visible(identity, name)
    if name not in current_gateway().registry.names():
        raise ModelNotFound(name)
    return _describe(identity, name)


def _describe(identity: Identity, name: str) -> dict[str, Any]:
    """The registry's description plus the output policy that applies to this caller."""
    policy = caller_policy(identity, name)
    return {**current_gateway().registry.describe(name),
            "output_policy": policy.describe() if policy else None}


def caller_policy(identity: Identity, name: str) -> OutputPolicy | None:
    """The output policy of this caller's replies from model `name` (also for /v2 metadata);
    None when its manifest cannot be read."""
    manifest = current_gateway().registry.manifest(name)
    return manifest.output.for_roles(identity.roles) if manifest else None


def require_visible(identity: Identity, name: str) -> None:
    """403 unless the caller holds models:read or predict:<name> (also used by /v2/models)."""
    if not _may_see(identity, name):
        permission = f"predict:{name}"  # the dataplane's 403, whichever condition failed
        raise Forbidden(f"Permission {permission!r} is required.")


def _may_see(identity: Identity, name: str) -> bool:
    """models:read or predict:<name>, conditions met by the caller's and the model's
    attributes: /models lists only what the caller may call or read."""
    gateway = current_gateway()
    model = gateway.registry.attributes(name)
    return any(gateway.policy.allows(identity.roles, permission, identity.attributes, model)
               for permission in ("models:read", f"predict:{name}"))
