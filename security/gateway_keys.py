"""The gateway's own key pairs (HPKE `enc`, receipt `sig`): stored wrapped by MASTER_KEY,
generated and rotated by the CLI, cached per worker, published as a JWKS.

A rotated key is retired, not deleted: it keeps opening requests until its `not_after`
(retirement + GATEWAY_KEY_OVERLAP), so a client holding a cached key set is not cut off.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from security.gateway_key_algs import DEFAULT_ALG, ENC, SEED_BYTES, SIG, algorithm
from security.keys import isoformat_utc, unwrap_secret_with_any, wrap_secret
from security.schema import metadata

log = logging.getLogger(__name__)

WRAP_CONTEXT = b"torchgate:gateway-key:v1:"

gateway_keys = sa.Table(
    "gateway_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("use", sa.String(8), nullable=False),
    sa.Column("alg", sa.String(64), nullable=False),
    sa.Column("public", sa.LargeBinary, nullable=False),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),  # the seed: nonce || ciphertext || tag
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("retired_at", sa.Integer, nullable=True),
    sa.Column("not_after", sa.Integer, nullable=True),
)


@dataclass(frozen=True)
class GatewayKey:
    """One key pair of the gateway; `private` is a pycryptodome key object."""

    kid: str
    use: str
    alg: str
    public: bytes
    private: Any = field(repr=False, compare=False)
    created_at: int
    retired_at: int | None
    not_after: int | None

    def public_jwk(self) -> dict[str, Any]:
        """The JWK clients see; `exp` (NumericDate) only once the key is retired."""
        jwk = {**algorithm(self.alg, self.use).jwk_members(self.public),
               "kid": self.kid, "use": self.use, "alg": self.alg}
        if self.not_after is not None:
            jwk["exp"] = self.not_after
        return jwk

    def to_json(self) -> dict[str, Any]:
        """What `gateway-keys list` shows: never the private half."""
        return {"kid": self.kid, "use": self.use, "alg": self.alg,
                "created_at": isoformat_utc(self.created_at),
                "retired_at": isoformat_utc(self.retired_at),
                "not_after": isoformat_utc(self.not_after)}


class GatewayKeyStore:
    """Generates, rotates and resolves the gateway's keys in the `gateway_keys` table."""

    def __init__(self, engine: sa.Engine, master_key: bytes, *, overlap: int,
                 cache_ttl: float = 10.0, clock: Callable[[], float] = time.time,
                 previous_master_keys: Sequence[bytes] = ()) -> None:
        self._engine = engine
        self._master_key = master_key
        # Earlier master keys first: seeds `keys rewrap` has not reached yet still open.
        self._masters = (*previous_master_keys, master_key)
        self._overlap = overlap
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._keys: dict[str, GatewayKey] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def generate(self, use: str, alg: str | None = None) -> GatewayKey:
        """A new current key of `use` (its default algorithm unless `alg`), stored wrapped."""
        return self._insert(use, alg, retire=False)

    def rotate(self, use: str, alg: str | None = None) -> GatewayKey:
        """A new current key; the previous ones of that use and alg retire after the overlap."""
        return self._insert(use, alg, retire=True)

    def ensure_defaults(self) -> list[GatewayKey]:
        """One key of each default kind (X-Wing, X25519, Ed25519) unless one is active; the new."""
        wanted = ((ENC, DEFAULT_ALG[ENC]), (ENC, "HPKE-3"), (SIG, DEFAULT_ALG[SIG]))
        active = self._active_kinds()
        return [self.generate(use, alg) for use, alg in wanted if (use, alg) not in active]

    def ensure(self, use: str, alg: str) -> GatewayKey | None:
        """A new key of (use, alg) when none is active, else None. Workers starting at once
        may each make one: every one is published and the newest signs, so that is harmless."""
        return None if (use, alg) in self._active_kinds() else self.generate(use, alg)

    def _active_kinds(self) -> set[tuple[str, str]]:
        return {(k.use, k.alg) for k in self.list() if k.retired_at is None}

    def list(self) -> list[GatewayKey]:
        """Every stored key, expired ones included, oldest first (read now, not cached)."""
        return sorted(self._read(include_expired=True).values(),
                      key=lambda k: (k.created_at, k.kid))

    def by_kid(self, kid: str) -> GatewayKey | None:
        """The key `kid` while it may still be used (not past `not_after`), else None."""
        key = self._snapshot().get(kid)
        if key is None:  # made on another worker or node since: one read of a small table,
            key = self._snapshot(force=True).get(kid)  # as an unknown payload kid costs
        if key is None or (key.not_after is not None and self._clock() >= key.not_after):
            return None
        return key

    def current(self, use: str, alg: str | None = None) -> GatewayKey | None:
        """The newest active key of `use`: of `alg`, or preferring the use's default one."""
        active = [k for k in self._snapshot().values()
                  if k.use == use and k.retired_at is None and alg in (None, k.alg)]
        if not active:
            return None
        return max(active, key=lambda k: (k.alg == DEFAULT_ALG[use], k.created_at, k.kid))

    def public_jwks(self) -> dict[str, list[dict[str, Any]]]:
        """Every usable key as a JWKS: active ones first, each use's default algorithm first,
        then newest first."""
        now = self._clock()
        usable = [k for k in self._snapshot().values()
                  if k.not_after is None or now < k.not_after]
        usable.sort(key=lambda k: (k.retired_at is not None, k.use,
                                   k.alg != DEFAULT_ALG[k.use], -k.created_at, k.kid))
        return {"keys": [k.public_jwk() for k in usable]}

    def _insert(self, use: str, alg: str | None, *, retire: bool) -> GatewayKey:
        if use not in DEFAULT_ALG:
            raise ValueError(f"unknown key use {use!r}: choose {ENC} or {SIG}")
        chosen = algorithm(alg or DEFAULT_ALG[use], use)
        now = int(self._clock())
        kid = f"gk_{use}_" + secrets.token_urlsafe(12)
        seed = secrets.token_bytes(SEED_BYTES)
        private, public = chosen.derive(seed)
        table = gateway_keys
        with self._engine.begin() as conn:
            if retire:
                conn.execute(table.update().where(
                    table.c.use == use, table.c.alg == chosen.name, table.c.retired_at.is_(None))
                    .values(retired_at=now, not_after=now + self._overlap))
            conn.execute(table.insert().values(
                kid=kid, use=use, alg=chosen.name, public=public,
                wrapped=wrap_secret(self._master_key, seed, seed_context(kid, use, chosen.name)),
                created_at=now, retired_at=None, not_after=None))
        self._loaded_at = float("-inf")  # this worker sees the change at once
        return GatewayKey(kid=kid, use=use, alg=chosen.name, public=public, private=private,
                          created_at=now, retired_at=None, not_after=None)

    def _snapshot(self, force: bool = False) -> dict[str, GatewayKey]:
        if force or not 0 <= self._clock() - self._loaded_at < self._cache_ttl:
            with self._lock:
                self._keys = self._read(include_expired=False)
                self._loaded_at = self._clock()
        return self._keys

    def _read(self, *, include_expired: bool) -> dict[str, GatewayKey]:
        """The table's keys, reusing the unwrapped private halves this worker already has."""
        table = gateway_keys
        query = sa.select(table)
        if not include_expired:
            query = query.where(sa.or_(table.c.not_after.is_(None),
                                       table.c.not_after > int(self._clock())))
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        keys = {}
        for row in rows:
            known = self._keys.get(row.kid)
            try:
                private = known.private if known is not None else self._unwrap(row)
            except ValueError:
                log.warning("gateway key %s could not be unwrapped; is MASTER_KEY the one it "
                            "was generated under?", row.kid)
                continue
            keys[row.kid] = GatewayKey(
                kid=row.kid, use=row.use, alg=row.alg, public=bytes(row.public),
                private=private, created_at=row.created_at, retired_at=row.retired_at,
                not_after=row.not_after)
        return keys

    def _unwrap(self, row: Any) -> Any:
        """The private key of a row; ValueError when no master key opens it or the row does
        not match."""
        seed = unwrap_secret_with_any(self._masters, bytes(row.wrapped),
                                      seed_context(row.kid, row.use, row.alg), SEED_BYTES)
        private, public = algorithm(row.alg, row.use).derive(seed)
        if public != bytes(row.public):
            raise ValueError(f"gateway key {row.kid}: the stored public key does not match")
        return private


def seed_context(kid: str, use: str, alg: str) -> bytes:
    """AAD binding a wrapped seed to its row, so seeds cannot be swapped between rows."""
    return WRAP_CONTEXT + f"{kid}:{use}:{alg}".encode()

