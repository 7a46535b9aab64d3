"""Authentication and authorization of a request: bearer token, then permission."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

from flask import request

from app.gateway import current_gateway
from app.lifecycle import current_facts
from errors import Forbidden, Unauthorized
from security.tokens import Identity, identity_from_claims, invalid_token


def bearer_token() -> str:
    """The token of `Authorization: Bearer …`; only the header counts (never the query string)."""
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("A bearer token is required.")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise invalid_token("The Authorization header must be 'Bearer <token>'.")
    return token


def authenticate() -> Identity:
    """Verify the bearer token, revocation included; only then record the caller."""
    return identify(check_revocation=True)[0]


def identify(*, check_revocation: bool) -> tuple[Identity, Mapping[str, Any]]:
    """The caller and its verified claims. `check_revocation=False` is for the dataplane alone,
    which asks the store about revocation in its admission round trip and records the caller
    only then; otherwise the caller is recorded here, once every check passed."""
    verifier = current_gateway().verifier
    claims = verifier.authenticate(bearer_token())
    identity = identity_from_claims(claims)
    if check_revocation:
        verifier.verify_not_revoked(claims)
        current_facts().subject = identity.subject
    return identity, claims


def require_permission(identity: Identity, permission: str) -> None:
    """403 unless the caller's roles grant `permission`, outright or under a condition on the
    caller's attributes (model-scoped checks pass the model's too: app/predict.py)."""
    if not current_gateway().policy.allows(identity.roles, permission, identity.attributes):
        raise Forbidden(f"Permission {permission!r} is required.")


def permission_required(template: str) -> Callable:
    """Authenticate, then require the permission `template` formatted with the view's arguments."""
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(**kwargs):
            require_permission(authenticate(), template.format(**kwargs))
            return view(**kwargs)
        return wrapper
    return decorator


def token_required(view: Callable) -> Callable:
    """Authenticate only; the view decides what the caller may see."""
    @wraps(view)
    def wrapper(**kwargs):
        authenticate()
        return view(**kwargs)
    return wrapper
