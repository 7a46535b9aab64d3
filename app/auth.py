"""/auth/*: the OAuth 2.0 token endpoint (RFC 6749), revocation (RFC 7009) and whoami."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import unquote_plus

from flask import Blueprint, Response, jsonify, request
from flask_jwt_extended import create_access_token, create_refresh_token

from app.gateway import current_gateway
from app.guard import authenticate
from app.lifecycle import current_facts, record_ahead
from app.ratelimit import token_rate_limited
from errors import GatewayError, InvalidRequest
from security.attributes import as_claim
from security.identity import Principal
from security.strict_json import loads_strict
from security.tokens import mark_lifetime

bp = Blueprint("auth", __name__, url_prefix="/auth")


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer: {"error": code} with 400, or 401 for invalid_client."""

    def __init__(self, code: str, description: str, status: int = 400,
                 headers: Mapping[str, str] | None = None):
        super().__init__(description)
        self.code, self.description, self.status = code, description, status
        self.headers = dict(headers or {})


@bp.errorhandler(OAuthError)
def _oauth_error(error: OAuthError) -> Response:
    response = jsonify(error=error.code, error_description=error.description)
    response.status_code = error.status
    response.headers.update(error.headers)
    current_facts().refusal = error.code  # for the auth-failure metric (app/metrics.py)
    return _no_store(response)


@bp.post("/token")
@token_rate_limited  # per client address, before any credential is checked
def token():
    params = _form_params()
    grant_type = params.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required.")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise OAuthError("unsupported_grant_type", f"Supported: {', '.join(GRANTS)}.")
    return _no_store(jsonify(grant(params)))


@bp.post("/revoke")
def revoke():
    caller, params = _revoking_caller()
    value = params.get("token")
    if not value:  # outside /auth/token every error is problem+json (CONTRACT §6)
        raise InvalidRequest("The token parameter is required.")
    gateway = current_gateway()
    claims = gateway.verifier.read_for_revocation(value)
    allowed = claims is not None and (
        claims["sub"] == caller.subject
        or gateway.policy.allows(caller.roles, "tokens:revoke", caller.attributes))
    if allowed:
        record_ahead()  # 503 here: nothing revoked
        ttl = mark_lifetime(claims, time.time())
        gateway.store.revoke(f"jti:{claims['jti']}", ttl)
        if claims["type"] == "refresh" and claims.get("fam"):
            settings = gateway.settings
            gateway.store.revoke(f"fam:{claims['fam']}",
                                 settings.jwt_refresh_ttl + settings.jwt_access_ttl)
    return _no_store(Response(status=200))


def _revoking_caller() -> tuple[Principal, dict[str, str]]:
    """Who revokes: the bearer token's subject or, as RFC 7009 clients do, a client
    authenticated by its credentials (HTTP Basic, or client_id/client_secret in the body)."""
    scheme = request.headers.get("Authorization", "").partition(" ")[0].lower()
    if scheme and scheme != "basic":
        identity = authenticate()
        caller = Principal(identity.subject, identity.roles, attributes=identity.attributes)
        return caller, _form_params(InvalidRequest)
    params = _form_params(InvalidRequest)
    if scheme == "basic" or params.get("client_id"):
        return _authenticated_client(params), params
    identity = authenticate()  # no credentials at all: 401 with the Bearer challenge
    return Principal(identity.subject, identity.roles, attributes=identity.attributes), params


@bp.get("/whoami")
def whoami():
    identity = authenticate()
    permissions = current_gateway().policy.permissions_for(identity.roles)
    return {"sub": identity.subject, "roles": list(identity.roles),
            "permissions": sorted(permissions), "exp": identity.expires_at}


def _password_grant(params: Mapping[str, str]) -> dict:
    username, password = _require(params, "username", "password")
    gateway = current_gateway()
    principal = gateway.throttle.attempt(
        f"user:{username}", _address(),
        lambda: gateway.directory.authenticate_user(username, password))
    if principal is None:
        raise OAuthError("invalid_grant", "The username or password is wrong.")
    return _issue(principal, family=uuid.uuid4().hex)


def _client_credentials_grant(params: Mapping[str, str]) -> dict:
    return _issue(_authenticated_client(params), family=None)


def _authenticated_client(params: Mapping[str, str]) -> Principal:
    """The client of the request's credentials (throttled like passwords); else invalid_client."""
    client_id, secret, used_basic = _client_credentials(params)
    gateway = current_gateway()
    principal = gateway.throttle.attempt(
        f"client:{client_id}", _address(),
        lambda: gateway.directory.authenticate_client(client_id, secret))
    if principal is None:
        headers = {"WWW-Authenticate": 'Basic realm="torchgate"'} if used_basic else None
        raise OAuthError("invalid_client", "Client authentication failed.", 401, headers)
    return principal


def _refresh_token_grant(params: Mapping[str, str]) -> dict:
    (value,) = _require(params, "refresh_token")
    gateway = current_gateway()
    try:
        claims = gateway.verifier.verify(value, expected_type="refresh")
    except GatewayError as exc:
        if exc.status >= 500:
            raise
        raise OAuthError("invalid_grant", "The refresh token is not valid.") from exc
    gateway.throttle.refuse_if_locked(f"user:{claims['sub']}")  # refresh tokens: users only
    family = claims.get("fam")
    if not family:  # every refresh token is issued in one; without it, nothing to change
        raise OAuthError("invalid_grant", "The refresh token is not valid.")
    ttl = mark_lifetime(claims, time.time())
    record_ahead()  # 503 here: the token is not marked used, nor on reuse its family revoked
    if not gateway.store.claim_once(f"used:{claims['jti']}", ttl):
        # A refresh token presented twice was stolen or leaked: end the whole family.
        settings = gateway.settings
        gateway.store.revoke(f"fam:{family}", settings.jwt_refresh_ttl + settings.jwt_access_ttl)
        raise OAuthError("invalid_grant", "The refresh token is not valid.")
    principal = gateway.directory.current_principal(claims["sub"])
    if principal is None:  # deleted or disabled since
        raise OAuthError("invalid_grant", "The refresh token is not valid.")
    return _issue(principal, family=family)


GRANTS: dict[str, Callable[[Mapping[str, str]], dict]] = {
    "password": _password_grant,
    "client_credentials": _client_credentials_grant,
    "refresh_token": _refresh_token_grant,
}


def _issue(principal: Principal, family: str | None) -> dict:
    claims: dict = {"roles": list(principal.roles), "gen": principal.generation}
    if principal.attributes:  # role conditions compare them (docs/access-control.md)
        claims["attributes"] = as_claim(principal.attributes)
    if family:
        claims["fam"] = family
    body = {
        "access_token": create_access_token(principal.subject, additional_claims=claims),
        "token_type": "Bearer",
        "expires_in": current_gateway().settings.jwt_access_ttl,
    }
    if family:
        body["refresh_token"] = create_refresh_token(principal.subject, additional_claims=claims)
    return body


def _oauth_invalid_request(detail: str) -> OAuthError:
    return OAuthError("invalid_request", detail)


def _form_params(invalid: Callable[[str], Exception] = _oauth_invalid_request) -> dict[str, str]:
    """Form-encoded or JSON parameters, every value a string; else `invalid(detail)` is raised.

    /auth/token answers RFC 6749 errors; every other endpoint answers problem+json.
    """
    if request.mimetype == "application/json":
        try:  # strict: a repeated name is a repeated parameter, and a nesting bomb is refused
            data = loads_strict(request.get_data(cache=True))
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise invalid("The body must be a JSON object, each parameter once.")
    else:
        if any(len(values) > 1 for values in request.form.listvalues()):
            raise invalid("Each parameter may be given once (RFC 6749 §3.2).")
        data = request.form.to_dict()
    if not all(isinstance(v, str) for v in data.values()):
        raise invalid("Every parameter must be a string.")
    return data


def _require(params: Mapping[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not params.get(n)]
    if missing:
        raise OAuthError("invalid_request", f"Missing: {', '.join(missing)}.")
    return [params[n] for n in names]


def _client_credentials(params: Mapping[str, str]) -> tuple[str, str, bool]:
    basic = request.authorization
    if basic is not None and basic.type == "basic":
        if params.get("client_id") or params.get("client_secret"):
            raise OAuthError("invalid_request", "Use one client authentication method.")
        return unquote_plus(basic.username or ""), unquote_plus(basic.password or ""), True
    client_id, secret = _require(params, "client_id", "client_secret")
    return client_id, secret, False


def _address() -> str:
    return request.remote_addr or "unknown"


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
