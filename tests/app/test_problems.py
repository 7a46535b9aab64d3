"""Every status of the problem table reached by a real request, with the RFC 9457 shape."""

from __future__ import annotations

import pytest

from app import create_app
from tests.conftest import SEALED, Auth, Sealer
from tests.fixtures import MLP_MANIFEST

PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}


def assert_problem(response, status: int, slug: str) -> None:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert set(response.json) >= PROBLEM_KEYS
    assert response.json["type"] == f"urn:torchgate:problem:{slug}"
    assert response.json["status"] == status
    assert "Traceback" not in response.get_data(as_text=True)


def test_unknown_route_is_404(client):
    assert_problem(client.get("/no/such/thing"), 404, "not-found")


def test_wrong_method_is_405_with_allow(client):
    response = client.get("/predict/tiny")
    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]


def test_no_token_is_401_without_invalid_token_error(client):
    response = client.get("/models")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="torchgate"'


def test_models_list_needs_read_or_predict(client, auth):
    listing = client.get("/models", headers=auth.headers("v", ("viewer",))).json["models"]
    assert [m["name"] for m in listing] == ["tiny"]
    assert set(listing[0]) >= {"name", "versions", "default_version", "inputs", "outputs",
                               "device", "ready"}
    assert client.get("/models", headers=auth.headers("n", ("nobody",))).json == {"models": []}


@pytest.mark.parametrize(("roles", "path", "status", "slug"), [
    (("nobody",), "/models/tiny", 403, "forbidden"),
    (("nobody",), "/models/ghost", 403, "forbidden"),
    (("viewer",), "/models/ghost", 404, "not-found"),
])
def test_model_description_checks(client, auth, roles, path, status, slug):
    assert_problem(client.get(path, headers=auth.headers("x", roles)), status, slug)


def test_model_that_breaks_at_inference_is_500_without_a_trace(tmp_path, overrides):
    from safetensors.torch import save_file

    from security.sealed import seal_file
    from tests.app.fragile import Fragile
    from tests.conftest import KEK, KEK_ID

    model_dir = tmp_path / "repository" / "fragile"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "model.toml").write_text(
        MLP_MANIFEST.replace("models.zoo:MLP", "tests.app.fragile:Fragile")
        .split("[arguments]")[0] + MLP_MANIFEST.split("out_features = 3")[1])
    save_file(Fragile().state_dict(), str(tmp_path / "w.safetensors"))
    seal_file(tmp_path / "w.safetensors", model_dir / "1" / "model.safetensors.sealed",
              model="fragile", version="1", kek_id=KEK_ID, kek=KEK)
    app = create_app({**overrides, "model_repository": str(tmp_path / "repository")})
    auth = Auth(app)
    sealer = Sealer(*auth.payload_key("alice"))
    response = app.test_client().post(
        "/predict/fragile", data=sealer.seal({"inputs": [[1, 2, 3, 4]] * 2}),
        content_type=SEALED, headers=auth.headers())
    assert_problem(response, 500, "internal-error")
    assert response.json["detail"] == "An internal error occurred."


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["models"] == ["tiny"]


def test_request_id_is_echoed_when_safe_and_replaced_when_not(client):
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123-def"})
    assert given.headers["X-Request-ID"] == "abc-123-def"
    hostile = client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert hostile.headers["X-Request-ID"] != "<script>alert(1)</script>"
    assert len(hostile.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/predict//tiny"),
    ("GET", "/models//tiny"),
    ("POST", "//predict//tiny"),
])
def test_a_path_with_doubled_slashes_is_a_404_problem_not_a_redirect(client, method, path):
    response = client.open(path, method=method)
    assert (response.status_code, response.mimetype) == (404, "application/problem+json")
    assert "Location" not in response.headers
