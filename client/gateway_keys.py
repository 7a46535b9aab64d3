"""The gateway's HPKE keys as this client trusts them: published at /.well-known/jwks.json,
pinned on first use (in memory, or in a file that later runs reuse) or given by the operator.

A pinned key set is never replaced behind the caller's back: when every pinned key has expired
(the gateway rotated and the overlap ended), the caller is told to re-pin.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.errors import KeyNotAllowed, ServerError
from client.sealing import PayloadKey, request_plaintext
from security.envelope_hpke import seal_hpke
from security.gateway_key_algs import ENC, X25519, XWING, KeyAlgorithm, hpke_public_key

JWKS_PATH = "/.well-known/jwks.json"
PREFERENCE = (XWING, X25519)  # post-quantum hybrid first


@dataclass(frozen=True)
class GatewayKey:
    """One published HPKE key: seals a request and hands back the key its reply opens with."""

    kid: str
    algorithm: KeyAlgorithm
    public_key: Any = field(repr=False)

    def seal(self, payload: dict[str, Any] | bytes, token: str,
             clock: Callable[[], float] = time.time) -> tuple[bytes, PayloadKey]:
        """(request body, reply key): each call a fresh encapsulation, iat now, bound to token;
        around the JSON of `payload`, or `payload` itself when it is JSON bytes already."""
        plaintext = payload if isinstance(payload, bytes) else request_plaintext(payload)
        sealed = seal_hpke(plaintext, public_key=self.public_key, algorithm=self.algorithm,
                           kid=self.kid, token=token, now=clock())
        return sealed.body, PayloadKey(sealed.kid, sealed.reply_key)


@dataclass
class KeyPin:
    """Where the trusted key set comes from: the operator's file, else trust on first use."""

    operator_file: Path | None = None
    tofu_file: Path | None = None
    _pinned: dict[str, Any] | None = field(default=None, repr=False)

    def key(self, fetch: Callable[[], dict[str, Any] | None],
            clock: Callable[[], float] = time.time) -> GatewayKey | None:
        """The preferred unexpired enc key of the trusted set; None when it has no enc key."""
        jwks = self._trusted(fetch)
        if jwks is None:
            return None
        candidates = _enc_keys(jwks)
        usable = [k for k in candidates if not isinstance(k.get("exp"), int) or k["exp"] > clock()]
        if candidates and not usable:
            where = self.operator_file or self.tofu_file or "this client's memory"
            raise KeyNotAllowed(f"every pinned gateway key has expired: re-pin the key set "
                                f"({where}) after checking the gateway's new keys",
                                slug="pinned-keys-expired")
        for jwk in sorted(usable, key=lambda k: PREFERENCE.index(k["alg"])):
            try:
                algorithm, public_key = hpke_public_key(jwk)
            except ValueError:
                continue
            return GatewayKey(str(jwk["kid"]), algorithm, public_key)
        return None

    def pinned_signing_set(self) -> dict[str, Any] | None:
        """The set pinned so far when it holds receipt keys (`use: "sig"`), else None."""
        keys = self._pinned.get("keys") if isinstance(self._pinned, dict) else None
        if isinstance(keys, list) and any(isinstance(k, dict) and k.get("use") == "sig"
                                          for k in keys):
            return self._pinned
        return None

    def _trusted(self, fetch: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        if self._pinned is not None:
            return self._pinned
        if self.operator_file is not None:
            self._pinned = _read(self.operator_file)
        elif self.tofu_file is not None and self.tofu_file.exists():
            self._pinned = _read(self.tofu_file)
        else:
            fetched = fetch()
            if fetched is None or not _enc_keys(fetched):
                return None  # nothing to pin: an older gateway, or one without HPKE keys
            if self.tofu_file is not None:
                self.tofu_file.write_text(json.dumps(fetched, indent=2))
            self._pinned = fetched
        return self._pinned


def _enc_keys(jwks: dict[str, Any]) -> list[dict[str, Any]]:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    return [k for k in keys or [] if isinstance(k, dict) and k.get("use") == ENC
            and k.get("alg") in PREFERENCE and isinstance(k.get("kid"), str)]


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ServerError(f"cannot read the pinned gateway keys {path}: {exc}",
                          slug="invalid-pinned-keys") from exc
    if not isinstance(value, dict):
        raise ServerError(f"{path} is not a JWKS", slug="invalid-pinned-keys")
    return value
