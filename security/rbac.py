"""Roles to permissions, read from the roles file: tokens name roles, the policy grants.

A permission may be granted under a condition on the caller's and the model's attributes
(security/conditions.py): `{permission = "predict:*", when = "caller.tenant == model.owner"}`.
Without conditions a check is one cached lookup, as it always was.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from security.attributes import NO_ATTRIBUTES, Attributes
from security.conditions import Condition, ConditionError, parse_condition

BUILTIN_ROLES: Mapping[str, tuple[str, ...]] = {
    "admin": ("*",),
    "analyst": ("models:read", "predict:*"),
    "viewer": ("models:read",),
}


class RolesFileError(Exception):
    """The roles file is missing or malformed; the message names the file and the role."""


@dataclass(frozen=True)
class Grant:
    """A permission pattern granted only while its condition holds."""

    pattern: str
    condition: Condition


class Policy:
    """An immutable role -> permission-pattern map; unknown roles grant nothing."""

    def __init__(self, roles: Mapping[str, Iterable[str | Grant]]):
        self._roles = {name: tuple(p for p in perms if isinstance(p, str))
                       for name, perms in roles.items()}
        self._grants = {name: grants for name, perms in roles.items()
                        if (grants := tuple(p for p in perms if isinstance(p, Grant)))}
        self.permissions_for = lru_cache(maxsize=1024)(self._permissions_for)
        self._allows = lru_cache(maxsize=4096)(self._allows_uncached)
        self._conditional = lru_cache(maxsize=4096)(self._conditional_uncached)
        if not self._grants:
            self.allows = self._allows_outright  # type: ignore[method-assign]

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

    def allows(self, roles: tuple[str, ...], permission: str,
               caller: Attributes = NO_ATTRIBUTES, model: Attributes = NO_ATTRIBUTES) -> bool:
        """Whether a role grants `permission` outright, or under a condition that `caller`'s
        and `model`'s attributes meet."""
        return self._allows(roles, permission) or any(
            grant.condition.holds(caller, model) for grant in self._conditional(roles, permission))

    def _allows_outright(self, roles: tuple[str, ...], permission: str,
                         caller: Attributes = NO_ATTRIBUTES,
                         model: Attributes = NO_ATTRIBUTES) -> bool:
        """`allows` of a roles file without conditions: one cached lookup, as before them."""
        return self._allows(roles, permission)

    def _conditional_uncached(self, roles: tuple[str, ...], permission: str
                              ) -> tuple[Grant, ...]:
        return tuple(grant for role in roles for grant in self._grants.get(role, ())
                     if fnmatch.fnmatchcase(permission, grant.pattern))

    def _allows_uncached(self, roles: tuple[str, ...], permission: str) -> bool:
        return any(fnmatch.fnmatchcase(permission, pattern)
                   for pattern in self.permissions_for(roles))


def _parse_roles(path: Path, data: dict) -> dict[str, tuple[str | Grant, ...]]:
    roles = data.get("roles")
    if not isinstance(roles, dict) or set(data) - {"roles"}:
        raise RolesFileError(f"{path}: expected only [roles.<name>] tables")
    parsed = {}
    for name, table in roles.items():
        perms = table.get("permissions") if isinstance(table, dict) else None
        if not isinstance(perms, list) or set(table) - {"permissions"}:
            raise RolesFileError(f"{path}: roles.{name}: expected permissions = [\"...\"]")
        parsed[name] = tuple(_permission(path, f"roles.{name}.permissions[{index}]", perm)
                             for index, perm in enumerate(perms))
    return parsed


def _permission(path: Path, where: str, value: Any) -> str | Grant:
    """A pattern, or {permission = "pattern", when = "condition"}."""
    if isinstance(value, str) and value:
        return value
    if not isinstance(value, dict) or set(value) != {"permission", "when"} or not all(
            isinstance(v, str) and v for v in value.values()):
        raise RolesFileError(f"{path}: {where}: expected \"pattern\" or "
                             "{permission = \"pattern\", when = \"condition\"}")
    try:
        return Grant(value["permission"], parse_condition(value["when"]))
    except ConditionError as exc:
        raise RolesFileError(f"{path}: {where}.when: {exc}") from None
