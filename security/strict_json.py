"""JSON read strictly: a repeated member name, NaN/Infinity or a nesting bomb is an error.

A repeated name is read differently by different parsers (first or last wins), so whatever a
security decision reads must refuse it: envelopes here, OAuth parameters (RFC 6749 §3.2).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn


def loads_strict(data: bytes) -> Any:
    """The JSON value of UTF-8 `data`; ValueError for anything but one strict JSON text."""
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_members,
                          parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ValueError("JSON nested too deep") from exc


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member name")
    return members


def _reject_constant(name: str) -> NoReturn:
    raise ValueError("not a JSON number")
