"""Conditions of the roles file: a small grammar over caller and model attributes, never eval'd.

    condition = clause { "and" clause }
    clause    = operand ( "==" | "in" ) operand
    operand   = caller.<name> | model.<name> | "text" | 'text' | [ "text", ... ]

`a == b` holds when both are the same string; `a in b` when `a` is a string and `b` a list that
holds it. An attribute the caller or model does not have makes its clause false, so a condition
only ever narrows a grant. Parsed once when the roles file is read (docs/access-control.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from security.attributes import ATTRIBUTE_NAME, Attributes, Value

SCOPES = ("caller", "model")
OPERATORS = ("==", "in")
MAX_CONDITION_CHARS = 1000
TOKEN = re.compile(r"""\s*(?:(?P<word>[A-Za-z_][A-Za-z0-9_.]*)|(?P<text>"[^"\\]*"|'[^'\\]*')
                       |(?P<symbol>==|\[|\]|,))""", re.VERBOSE)


class ConditionError(ValueError):
    """A condition that does not follow the grammar; the message says where."""


@dataclass(frozen=True)
class Operand:
    """An attribute of the caller or the model, or a literal string or list of strings."""

    scope: str | None = None
    name: str | None = None
    literal: Value | None = None

    def value(self, caller: Attributes, model: Attributes) -> Value | None:
        if self.scope is None:
            return self.literal
        return (caller if self.scope == "caller" else model).get(self.name or "")


@dataclass(frozen=True)
class Clause:
    left: Operand
    operator: str
    right: Operand

    def holds(self, caller: Attributes, model: Attributes) -> bool:
        left, right = self.left.value(caller, model), self.right.value(caller, model)
        if not isinstance(left, str):
            return False
        if self.operator == "==":
            return isinstance(right, str) and left == right
        return isinstance(right, tuple) and left in right


@dataclass(frozen=True)
class Condition:
    """Clauses that must all hold; `text` is the condition as the roles file wrote it."""

    clauses: tuple[Clause, ...]
    text: str

    def holds(self, caller: Attributes, model: Attributes) -> bool:
        return all(clause.holds(caller, model) for clause in self.clauses)


def parse_condition(text: str) -> Condition:
    """The condition `text` states, or ConditionError naming the first thing not understood."""
    if len(text) > MAX_CONDITION_CHARS:
        raise ConditionError(f"longer than {MAX_CONDITION_CHARS} characters")
    tokens = _tokens(text)
    clauses = [_clause(tokens)]
    while tokens:
        if tokens.pop(0) != ("word", "and"):
            raise ConditionError("clauses are joined by 'and'")
        clauses.append(_clause(tokens))
    return Condition(tuple(clauses), text)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while text[position:].strip():
        match = TOKEN.match(text, position)
        if match is None:
            raise ConditionError(f"cannot read {text[position:].strip()[:20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    if not tokens:
        raise ConditionError("empty")
    return tokens


def _clause(tokens: list[tuple[str, str]]) -> Clause:
    left = _operand(tokens)
    operator = tokens.pop(0)[1] if tokens else "end of condition"
    if operator not in OPERATORS:
        raise ConditionError(f"expected == or in, got {operator!r}")
    right = _operand(tokens)
    if left.scope is None and right.scope is None:
        raise ConditionError("a clause compares an attribute of caller or model")
    return Clause(left, operator, right)


def _operand(tokens: list[tuple[str, str]]) -> Operand:
    if not tokens:
        raise ConditionError("a clause is missing an operand")
    kind, lexeme = tokens.pop(0)
    if kind == "text":
        return Operand(literal=lexeme[1:-1])
    if lexeme == "[":
        return Operand(literal=_list(tokens))
    scope, _, name = lexeme.partition(".")
    if kind != "word" or scope not in SCOPES or not ATTRIBUTE_NAME.fullmatch(name):
        raise ConditionError(f"expected caller.<name>, model.<name>, a string or a list, "
                             f"got {lexeme!r}")
    return Operand(scope=scope, name=name)


def _list(tokens: list[tuple[str, str]]) -> tuple[str, ...]:
    items: list[str] = []
    while True:
        kind, lexeme = tokens.pop(0) if tokens else ("end", "end of condition")
        if kind != "text":
            raise ConditionError(f"a list holds quoted strings, got {lexeme!r}")
        items.append(lexeme[1:-1])
        separator = tokens.pop(0)[1] if tokens else "end of condition"
        if separator == "]":
            return tuple(items)
        if separator != ",":
            raise ConditionError(f"expected , or ] in a list, got {separator!r}")
