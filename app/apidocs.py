"""GET /docs: interactive API documentation (Swagger UI) of /openapi.json.

The Swagger UI files come from the `swagger-ui-bundle-v2` package and are served by the gateway
itself: nothing is fetched from a CDN, and the page runs no inline script. On in development
and testing, off in production unless DOCS=on (settings.md).
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from errors import NotFound

bp = Blueprint("apidocs", __name__)
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                    "index.css", "favicon-32x32.png", "favicon-16x16.png"})
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>torchgate API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
  <link rel="stylesheet" href="/docs/static/index.css">
  <link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script src="/docs/static/swagger-ui-standalone-preset.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""
INITIALIZER = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
    validatorUrl: null
  });
};
"""


@bp.get("/docs")
def docs_page() -> Response:
    return Response(PAGE, mimetype="text/html")


@bp.get("/docs/init.js")
def docs_initializer() -> Response:
    return Response(INITIALIZER, mimetype="text/javascript")


@bp.get("/docs/static/<name>")
def docs_asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound("No such resource.")
    return send_from_directory(swagger_ui_path, name, max_age=3600)


def init_app(app: Flask, enabled: bool) -> None:
    """Register /docs when the settings enable it; otherwise the paths do not exist (404)."""
    if enabled:
        app.register_blueprint(bp)
