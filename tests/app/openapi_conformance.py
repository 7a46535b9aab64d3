"""Does a real response match what the OpenAPI document says of its operation and status?"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask
from jsonschema import Draft202012Validator
from werkzeug.test import TestResponse

IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def openapi_path(rule: str) -> str:
    """A werkzeug rule as an OpenAPI path template: /predict/<name> -> /predict/{name}."""
    return _VARIABLE.sub(r"{\1}", rule)


def served_operations(app: Flask) -> set[tuple[str, str]]:
    """(path template, METHOD) of every rule the app routes, HEAD/OPTIONS and static aside."""
    return {(openapi_path(rule.rule), method) for rule in app.url_map.iter_rules()
            if rule.endpoint != "static" for method in rule.methods - IGNORED_METHODS}


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in document["paths"].items()
            for method in item if method in HTTP_METHODS}


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local references (#/components/...) until a real object."""
    while set(node) == {"$ref"}:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_errors(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    """Every way `instance` breaks `schema`, whose $refs point into the document's components."""
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": document["components"], "allOf": [schema]}
    validator = Draft202012Validator(root)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def conformance_errors(document: dict[str, Any], response: TestResponse, path: str,
                       method: str) -> list[str]:
    """What in `response` the document does not allow for `method path` (empty: conforms)."""
    operation = document["paths"][path][method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    if documented is None:
        return [f"status {response.status_code} is not documented for {method} {path}"]
    documented = resolve(document, documented)
    return [*_header_errors(document, documented.get("headers", {}), response),
            *_body_errors(document, documented.get("content"), response)]


def _header_errors(document: dict[str, Any], headers: dict[str, Any],
                   response: TestResponse) -> list[str]:
    errors = []
    for name, spec in headers.items():
        spec = resolve(document, spec)
        value = response.headers.get(name)
        if value is None:
            if spec.get("required"):
                errors.append(f"required header {name} is missing")
            continue
        if spec["schema"].get("type") == "integer":
            value = int(value) if value.isdigit() else value
        errors += [f"header {name}: {e}" for e in schema_errors(document, spec["schema"], value)]
    return errors


def _body_errors(document: dict[str, Any], content: dict[str, Any] | None,
                 response: TestResponse) -> list[str]:
    if content is None:
        return [] if response.get_data() == b"" else ["a body where none is documented"]
    media = content.get(response.mimetype)
    if media is None:
        return [f"media type {response.mimetype} is not documented ({sorted(content)})"]
    text = response.get_data(as_text=True)
    instance = json.loads(text) if response.mimetype.endswith("json") else text
    return schema_errors(document, media["schema"], instance)
