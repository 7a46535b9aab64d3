"""GET /docs: Swagger UI from a package, no CDN; on in development, a setting in production."""

from __future__ import annotations

import re

import pytest

from app import create_app


@pytest.fixture
def production(overrides) -> dict:
    return {**overrides, "env": "production", "jwt_secret": "k9!Qz-7xP2_mVb8wLr4TnYe6HsUa3DcFgJ"}


def test_docs_page_loads_every_file_from_the_gateway(client):
    page = client.get("/docs")
    assert (page.status_code, page.mimetype) == (200, "text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/") for s in sources)  # nothing from a CDN
    assert "<script>" not in page.text  # no inline script: a strict CSP may forbid it
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
        assert len(asset.data) > 100
    assert b"SwaggerUIBundle" in client.get("/docs/static/swagger-ui-bundle.js").data
    assert b'url: "/openapi.json"' in client.get("/docs/init.js").data


def test_only_the_ui_files_are_served(client):
    for path in ("/docs/static/..%2Fapp.py", "/docs/static/index.j2", "/docs/static/nope.js"):
        answer = client.get(path)
        assert (answer.status_code, answer.json["type"]) == (404, "urn:torchgate:problem:not-found")


@pytest.mark.parametrize(("env", "setting", "served"), [
    ("development", "auto", True), ("testing", "auto", True), ("production", "auto", False),
    ("production", "on", True), ("development", "off", False)])
def test_docs_setting(overrides, production, env, setting, served):
    base = production if env == "production" else {**overrides, "env": env}
    app = create_app({**base, "docs": setting})
    client = app.test_client()
    assert client.get("/docs").status_code == (200 if served else 404)
    assert ("/docs" in client.get("/openapi.json").json["paths"]) is served
