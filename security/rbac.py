"""Roles to permissions, read from the roles file: tokens name roles, the policy grants."""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

BUILTIN_ROLES: Mapping[str, tuple[str, ...]] = {
    "admin": ("*",),
    "analyst": ("models:read", "predict:*"),
    "viewer": ("models:read",),
}


class RolesFileError(Exception):
    """The roles file is missing or malformed; the message names the file and the role."""


class Policy:
    """An immutable role -> permission-pattern map; unknown roles grant nothing."""

    def __init__(self, roles: Mapping[str, Iterable[str]]):
        self._roles = {name: tuple(perms) for name, perms in roles.items()}
        self.permissions_for = lru_cache(maxsize=1024)(self._permissions_for)
        self._allows = lru_cache(maxsize=4096)(self._allows_uncached)

    @classmethod
    def from_file(cls, path: str | Path | None) -> Policy:
        if not path:
            return cls(BUILTIN_ROLES)
        path = Path(path)
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise RolesFileError(f"{path}: {exc}") from exc
        return cls(_parse_roles(path, data))

    def role_names(self) -> list[str]:
        """The roles this policy defines (what `--role` may name)."""
        return sorted(self._roles)

    def _permissions_for(self, roles: tuple[str, ...]) -> frozenset[str]:
        return frozenset(p for role in roles for p in self._roles.get(role, ()))

    def allows(self, roles: tuple[str, ...], permission: str) -> bool:
        return self._allows(roles, permission)

    def _allows_uncached(self, roles: tuple[str, ...], permission: str) -> bool:
        return any(fnmatch.fnmatchcase(permission, pattern)
                   for pattern in self.permissions_for(roles))


def _parse_roles(path: Path, data: dict) -> dict[str, tuple[str, ...]]:
    roles = data.get("roles")
    if not isinstance(roles, dict) or set(data) - {"roles"}:
        raise RolesFileError(f"{path}: expected only [roles.<name>] tables")
    parsed = {}
    for name, table in roles.items():
        perms = table.get("permissions") if isinstance(table, dict) else None
        if (not isinstance(perms, list) or not all(isinstance(p, str) and p for p in perms)
                or set(table) - {"permissions"}):
            raise RolesFileError(f"{path}: roles.{name}: expected permissions = [\"...\"]")
        parsed[name] = tuple(perms)
    return parsed
