"""GET /openapi.json: a valid OpenAPI 3.1 document, true to the routes and to real responses."""

from __future__ import annotations

from pathlib import Path

import pytest
from openapi_spec_validator import validate

import errors
from app.openapi import build_document
from app.openapi_responses import PROBLEM_SLUGS
from tests.app.openapi_cases import CASES, Case
from tests.app.openapi_conformance import (
    conformance_errors,
    documented_operations,
    schema_errors,
    served_operations,
)
from tests.app.openapi_world import World, make_world, write_faulty_repository
from tests.doc_blocks import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def document(client) -> dict:
    return client.get("/openapi.json").json


@pytest.fixture(scope="session")
def faulty_repository(tmp_path_factory) -> Path:
    return write_faulty_repository(tmp_path_factory.mktemp("faulty"))


@pytest.fixture
def world(overrides, faulty_repository, auth, sealer) -> World:
    return make_world(overrides, faulty_repository, auth, sealer)


def test_document_is_served_without_a_token(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.json == build_document()


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises OpenAPIValidationError when invalid


def test_every_route_is_documented(app, document):
    assert served_operations(app) - documented_operations(document) == set()


def test_every_documented_operation_is_routed(app, document):
    assert documented_operations(document) - served_operations(app) == set()


def _gateway_errors(kind: type = errors.GatewayError) -> set[type]:
    return {kind}.union(*(_gateway_errors(sub) for sub in kind.__subclasses__()))


def test_every_problem_slug_is_documented(app):
    undocumented = {(kind.status, kind.slug) for kind in _gateway_errors()
                    if kind.slug not in PROBLEM_SLUGS.get(kind.status, ())}
    assert undocumented == set()


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_real_response_conforms_to_the_document(world: World, document: dict, case: Case):
    response = case.call(world)
    assert response.status_code == case.status, response.get_data(as_text=True)
    if case.slug is not None:
        assert response.json["type"] == f"urn:torchgate:problem:{case.slug}"
    assert conformance_errors(document, response, case.path, case.method) == []
    if case.plaintext is not None:
        opened = world.sealer.open(response.get_data())
        schema = {"$ref": f"#/components/schemas/{case.plaintext}"}
        assert schema_errors(document, schema, opened) == []


def test_a_wrong_body_is_caught_by_the_document(client, document):
    """The conformance check can fail: a reply stripped of a required member does not pass."""
    response = client.get("/healthz")
    response.set_data(b'{"status": "fine"}')
    assert conformance_errors(document, response, "/healthz", "GET") != []


def test_docs_api_md_is_up_to_date():
    rendered = load_script("render_openapi").render(build_document())
    committed = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert committed == rendered, "run: .venv/bin/python scripts/render_openapi.py"
