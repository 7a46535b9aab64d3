"""/predict: the sealed round trip, and the order in which checks answer."""

from __future__ import annotations

import io
import json

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app
from werkzeug.wrappers import Response

from tests.conftest import SEALED, write_tiny_model

ROWS = {"inputs": [[0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4]]}


def test_sealed_round_trip_returns_sealed_outputs_and_labels(predict, sealer):
    response = predict(ROWS)
    assert response.status_code == 200
    assert response.mimetype == SEALED
    reply = sealer.open(response.data)
    assert reply["model"] == "tiny" and reply["version"] == "1"
    assert len(reply["outputs"]) == 2 and len(reply["outputs"][0]) == 3
    assert set(reply["labels"]) <= {"a", "b", "c"}
    assert reply["request_id"] == response.headers["X-Request-ID"]


def test_named_inputs_get_named_outputs(predict, sealer):
    reply = sealer.open(predict({"inputs": {"x": ROWS["inputs"]}}).data)
    assert list(reply["outputs"]) == ["scores"]


def test_explicit_version_route(predict, sealer):
    response = predict(ROWS, path="/predict/tiny/versions/1")
    assert response.status_code == 200
    assert sealer.open(response.data)["version"] == "1"


def test_same_input_gives_same_output(predict, sealer):
    first = sealer.open(predict(ROWS).data)["outputs"]
    assert sealer.open(predict(ROWS).data)["outputs"] == first


def test_invalid_input_is_422_problem_without_plaintext(predict):
    response = predict({"inputs": [[0.1, 0.2, 0.3]]})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "urn:torchgate:problem:invalid-input"
    assert "0.1" not in response.get_data(as_text=True)


def test_non_json_plaintext_is_invalid_request(client, auth, sealer):
    response = client.post("/predict/tiny", data=sealer.seal(b"not json"),
                           content_type=SEALED, headers=auth.headers())
    assert response.status_code == 400
    assert response.json["type"] == "urn:torchgate:problem:invalid-request"


def _call(client, auth, sealer, *, roles=("analyst",), path="/predict/tiny",
          content_type=SEALED, body=None):
    headers = auth.headers("alice", roles) if roles is not None else {}
    data = sealer.seal(ROWS) if body is None else body
    return client.post(path, data=data, content_type=content_type, headers=headers)


@pytest.mark.parametrize(("case", "kwargs", "status", "slug"), [
    ("no token beats everything", dict(roles=None, path="/predict/nope",
                                       content_type="text/plain"), 401, "unauthorized"),
    ("no permission, unknown model", dict(roles=("viewer",), path="/predict/nope"),
     403, "forbidden"),
    ("no permission, known model", dict(roles=("viewer",)), 403, "forbidden"),
    ("permission, unknown model", dict(path="/predict/nope", content_type="text/plain"),
     404, "not-found"),
    ("permission, unknown version", dict(path="/predict/tiny/versions/9"), 404, "not-found"),
    ("media type before body size", dict(content_type="text/plain", body=b"x" * 4096),
     415, "unsupported-media-type"),
    ("plain JSON while encryption is required", dict(content_type="application/json",
                                                     body=json.dumps(ROWS).encode()),
     415, "unsupported-media-type"),
    ("garbage envelope", dict(body=b"{}"), 400, "invalid-envelope"),
])
def test_checks_answer_in_contract_order(client, auth, sealer, case, kwargs, status, slug):
    response = _call(client, auth, sealer, **kwargs)
    assert response.status_code == status, case
    assert response.json["type"] == f"urn:torchgate:problem:{slug}"
    assert response.json["request_id"]


def test_body_over_the_limit_is_413(overrides, auth_for):
    client, auth, sealer = auth_for({**overrides, "max_body_bytes": 256})
    response = _call(client, auth, sealer, body=b"{" + b" " * 1024 + b"}")
    assert response.status_code == 413
    assert response.json["type"] == "urn:torchgate:problem:payload-too-large"


def _chunked(client, auth, body: bytes):
    """POST `body` as a chunked request: no Content-Length, the server ends the stream."""
    environ = EnvironBuilder(path="/predict/tiny", method="POST", content_type=SEALED,
                             headers=auth.headers(), input_stream=io.BytesIO(body)).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True  # as gunicorn sets it for Transfer-Encoding: chunked
    # client.open(environ) would measure the stream again: call the WSGI app itself
    return Response(*run_wsgi_app(client.application, environ))


@pytest.mark.parametrize(("case", "tail", "status"), [
    ("within the limit", b" " * 16, 200),
    ("valid envelope then spaces past the limit", b" " * 4096, 413),
])
def test_chunked_body_over_the_limit_is_413_and_not_opened(overrides, auth_for, case, tail,
                                                           status):
    client, auth, sealer = auth_for({**overrides, "max_body_bytes": 1024})
    envelope = sealer.seal(ROWS)
    assert len(envelope) + 16 <= 1024
    response = _chunked(client, auth, envelope + tail)
    assert response.status_code == status, case
    if status == 413:
        assert response.json["type"] == "urn:torchgate:problem:payload-too-large"
        # nothing of it ran: the same envelope within the limit is still fresh, not replayed
        assert _chunked(client, auth, envelope).status_code == 200


def test_failed_model_answers_503_and_others_serve(tmp_path, overrides, auth_for):
    repository = tmp_path / "repository"
    write_tiny_model(repository, "good")
    write_tiny_model(repository, "bad", kek=bytes(32))  # sealed under another key
    client, auth, sealer = auth_for({**overrides, "model_repository": str(repository)})
    bad = client.post("/predict/bad", data=sealer.seal(ROWS), content_type=SEALED,
                      headers=auth.headers())
    assert bad.status_code == 503
    assert bad.json["type"] == "urn:torchgate:problem:model-unavailable"
    assert bad.headers["Retry-After"]
    good = client.post("/predict/good", data=sealer.seal(ROWS), content_type=SEALED,
                       headers=auth.headers())
    assert good.status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "bad" in ready.json["detail"]


def test_optional_encryption_accepts_and_answers_plain_json(overrides, auth_for):
    client, auth, _ = auth_for({**overrides, "payload_encryption": "optional"})
    response = client.post("/predict/tiny", json=ROWS, headers=auth.headers())
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.json["labels"]


@pytest.fixture
def auth_for():
    """An app built from other settings, with its own auth and sealer."""
    from app import create_app
    from tests.conftest import Auth, Sealer

    def build(settings: dict):
        app = create_app(settings)
        auth = Auth(app)
        return app.test_client(), auth, Sealer(*auth.payload_key("alice"))
    return build
