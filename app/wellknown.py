"""GET /.well-known/jwks.json: the gateway's public keys, no token needed, safe to cache.

`use: "enc"` keys are the HPKE keys requests are sealed to; `use: "sig"` keys verify receipts.
A retired key stays listed, with `exp`, until it stops opening requests.
"""

from __future__ import annotations

from flask import Blueprint, Response, json

from app.gateway import current_gateway

bp = Blueprint("wellknown", __name__)
JWKS_MEDIA_TYPE = "application/jwk-set+json"


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    gateway = current_gateway()
    response = Response(json.dumps(gateway.gateway_keys.public_jwks()),
                        mimetype=JWKS_MEDIA_TYPE)
    response.headers["Cache-Control"] = f"public, max-age={gateway.settings.jwks_max_age}"
    return response
