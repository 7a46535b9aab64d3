"""Typed reads of one model.toml field: each failure names the field (models/manifest.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FieldError(Exception):
    """One bad field, before the file name is known to the message."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}")


def check_keys(table: Mapping[str, Any], allowed: tuple[str, ...],
               required: tuple[str, ...], where: str) -> None:
    prefix = f"{where}." if where else ""
    for key in table:
        if key not in allowed:
            raise FieldError(f"{prefix}{key}",
                             f"unknown key (expected one of {', '.join(allowed)})")
    for key in required:
        if key not in table:
            raise FieldError(f"{prefix}{key}", "required")


def type_name(value: Any) -> str:
    return {dict: "table", list: "array", str: "string", bool: "boolean",
            int: "integer", float: "float"}.get(type(value), type(value).__name__)


def string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FieldError(where, f"expected a string, got {type_name(value)}")
    return value


def integer(value: Any, where: str, *, minimum: int) -> int:
    if type(value) is not int:
        raise FieldError(where, f"expected an integer, got {type_name(value)}")
    if value < minimum:
        raise FieldError(where, f"must be at least {minimum}, got {value}")
    return value


def table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FieldError(where, f"expected a table, got {type_name(value)}")
    return value
