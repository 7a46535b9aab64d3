"""Attributes of callers and models (tenant, clearance, owner, …) that role conditions compare.

A caller's come from its user or client record, carried in its access token's `attributes`
claim, or from an identity provider's token at JWT_ATTRIBUTES_CLAIM; a model's from model.toml
[attributes]. A value is a string or a list of strings (for membership tests).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_ATTRIBUTES = 32
MAX_VALUE_CHARS = 256
MAX_LIST_ITEMS = 64
Value = str | tuple[str, ...]
Attributes = Mapping[str, Value]
NO_ATTRIBUTES: Attributes = MappingProxyType({})


class InvalidAttributes(ValueError):
    """Attributes that are not a small table of names to strings or lists of strings."""


def parse_attributes(value: Any) -> Attributes:
    """A checked, read-only copy of `value`; InvalidAttributes names what is wrong."""
    if not isinstance(value, Mapping):
        raise InvalidAttributes("expected a table of attribute names to strings")
    if len(value) > MAX_ATTRIBUTES:
        raise InvalidAttributes(f"at most {MAX_ATTRIBUTES} attributes")
    parsed: dict[str, Value] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not ATTRIBUTE_NAME.fullmatch(name):
            raise InvalidAttributes("attribute names are lower-case letters, digits and _, "
                                    "starting with a letter")
        parsed[name] = _value(item, name)
    return MappingProxyType(parsed)


def _value(item: Any, name: str) -> Value:
    items = tuple(item) if isinstance(item, list) else (item,)
    if len(items) > MAX_LIST_ITEMS:
        raise InvalidAttributes(f"{name}: at most {MAX_LIST_ITEMS} values")
    if not all(isinstance(text, str) and 0 < len(text) <= MAX_VALUE_CHARS for text in items):
        raise InvalidAttributes(f"{name}: expected a string or a list of strings "
                                f"(1 to {MAX_VALUE_CHARS} characters each)")
    return items if isinstance(item, list) else item


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at a dotted path ("realm_access.roles"), None when absent.

    A claim named by the whole path wins, for namespaced names such as "https://x.example/roles".
    """
    value: Any = claims.get(path)
    if value is None:
        value = claims
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    return value


def attributes_at(claims: Mapping[str, Any], path: str) -> dict[str, Any]:
    """An identity provider's attributes at `path`; anything malformed is none: attributes only
    ever grant, so a caller loses no right it had without them."""
    try:
        return dict(parse_attributes(claim_at(claims, path)))
    except InvalidAttributes:
        return {}


def as_claim(attributes: Attributes) -> dict[str, Any]:
    """The JSON form of attributes, for a token claim or a database row."""
    return {name: list(v) if isinstance(v, tuple) else v for name, v in attributes.items()}
