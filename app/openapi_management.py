"""OpenAPI of the model management routes (app/management.py): paths and the reply schema."""

from __future__ import annotations

from typing import Any

from app.openapi_paths import path_parameter
from app.openapi_responses import BEARER, body, operation, problems
from app.openapi_schemas import ref

TAG = {"name": "management",
       "description": "Load, unload and reload models at run time (permission models:admin)."}


def management_schemas() -> dict[str, Any]:
    return {"ModelCommand": {
        "type": "object", "additionalProperties": False,
        "required": ["command", "action", "model", "version", "subject", "created_at",
                     "models", "other_workers_within_seconds"],
        "properties": {
            "command": {"type": "integer", "description": "Id of the recorded command."},
            "action": {"enum": ["load", "unload", "reload"]},
            "model": {"type": ["string", "null"]},
            "version": {"type": ["string", "null"]},
            "subject": {"type": "string", "description": "Who asked."},
            "created_at": {"type": "integer", "description": "Unix seconds."},
            "models": {"type": "array", "items": ref("Model"),
                       "description": "The model(s) as this worker now serves them."},
            "other_workers_within_seconds": {
                "type": "integer", "description": "Every other worker and node applies the "
                                                  "command within this many seconds."},
        }}}


def _command(operation_id: str, summary: str, statuses: tuple[int, ...], description: str,
             versioned: bool) -> dict[str, Any]:
    params = ([path_parameter("name", "The model name."),
               path_parameter("version", "The version directory (1, 2, ...).")]
              if versioned else [])
    return operation(operation_id, "management", summary, {
        "200": body("Applied here, recorded for every worker.", ref("ModelCommand")),
        **problems(*statuses)}, security=BEARER, description=description,
        **({"parameters": params} if params else {}))


def management_paths() -> dict[str, Any]:
    load = _command("loadModelVersion", "Load (or load again) a version from the repository",
                    (401, 403, 404, 500, 503), "404 when the version directory is not in the "
                    "repository; 503 `model-unavailable` naming why it did not load.", True)
    unload = _command("unloadModelVersion", "Stop serving a version", (400, 401, 403, 404, 500,
                      503), "400 for the default version of a model with others. Requests in "
                      "flight finish on it; later ones get 404.", True)
    reload = _command("reloadModels", "Scan and load the whole repository again",
                      (401, 403, 500, 503), "Requests in flight finish on the models they "
                      "started with.", False)
    return {"/models/{name}/versions/{version}/load": {"post": load},
            "/models/{name}/versions/{version}": {"delete": unload},
            "/models/reload": {"post": reload}}
