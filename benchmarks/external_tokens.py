"""µs per bearer-token verification: the gateway's own HS256 tokens and an IdP's RS256/ES256/EdDSA.

    .venv/bin/python benchmarks/external_tokens.py

Each row is `TokenVerifier.verify` as the request path calls it; "+ store" includes the SQLite
revocation lookup, the other column stubs it out to show the signature and claims work alone.
Best of 5 repeats (the least disturbed figure on a shared machine).
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NUMBER = 2000


def best_us(fn: Callable[[], object], number: int = NUMBER) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def settings_for(tmp: Path) -> dict:
    from security.encoding import b64url_encode
    from tests.conftest import KEK, KEK_ID
    from tests.external_idp import AUDIENCE, ISSUER
    (tmp / "repository").mkdir(exist_ok=True)
    return {"env": "testing", "instance_dir": str(tmp / "instance"),
            "model_repository": str(tmp / "repository"),
            "model_keys": f"{KEK_ID}:{b64url_encode(KEK)}",
            "jwt_secret": secrets.token_urlsafe(48),
            "master_key": b64url_encode(secrets.token_bytes(32)),
            "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE,
            "jwt_roles_claim": "realm_access.roles"}


def time_tokens(settings: dict, idp_keys: dict) -> list[tuple[str, float, float]]:
    """Rows (token kind, µs with the store's revocation lookup, µs with it stubbed)."""
    from flask_jwt_extended import create_access_token

    from app import create_app
    from app.gateway import current_gateway
    from security.jwks import load_jwks
    from security.tokens import ExternalTokenVerifier, TokenVerifier
    from tests.external_idp import idp_claims

    jwks = settings.get("jwt_jwks_file")
    app = create_app(settings)
    with app.app_context():
        verifier = current_gateway().verifier
        own = create_access_token("alice", additional_claims={"roles": ["analyst"]})
    stubbed = TokenVerifier(
        algorithm="HS256", key=settings["jwt_secret"], issuer=settings["jwt_issuer"],
        audience=settings["jwt_audience"], is_revoked=lambda _: False,
        roles_claim=settings["jwt_roles_claim"], external_keys=load_jwks(jwks) if jwks else None)
    tokens = {f"own HS256, {'with' if jwks else 'no'} JWKS": own}
    if jwks:
        tokens.update({f"external {alg}": key.sign(idp_claims()) for alg, key in idp_keys.items()})
    rows = [(name, best_us(lambda t=token: verifier.verify(t)),
             best_us(lambda t=token: stubbed.verify(t))) for name, token in tokens.items()]
    if jwks:
        lookup = ExternalTokenVerifier(load_jwks(jwks), issuer="", audience="", roles_claim="")
        cost = best_us(lambda: lookup.key_for(own), 20 * NUMBER)
        rows.append(("  kid lookup (own token)", cost, cost))
    return rows


def main() -> None:
    from tests.external_idp import new_signing_key, write_jwks
    idp_keys = {alg: new_signing_key(alg) for alg in ("RS256", "ES256", "EdDSA")}
    with tempfile.TemporaryDirectory() as tmp:
        base = settings_for(Path(tmp))
        jwks = write_jwks(Path(tmp) / "jwks.json", [k.public_jwk() for k in idp_keys.values()])
        rows = time_tokens(base, idp_keys)
        rows += time_tokens({**base, "jwt_jwks_file": str(jwks)}, idp_keys)
    print(f"{'token':<26} {'verify + store (µs)':>20} {'verify alone (µs)':>18}")
    for name, full, alone in rows:
        print(f"{name:<26} {full:>20.1f} {alone:>18.1f}")


if __name__ == "__main__":
    main()
