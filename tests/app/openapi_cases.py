"""A table of real requests, one per documented (operation, status), for the conformance test."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from werkzeug.test import TestResponse

from tests.app.openapi_world import PASSWORD, World
from tests.conftest import SEALED

ROW = [[1.0, 2.0, 3.0, 4.0]]
OIP_REQUEST = {"id": "r-1", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                        "data": [1.0, 2.0, 3.0, 4.0]}]}


@dataclass(frozen=True)
class Case:
    """A request, the operation it exercises and what must come back."""

    name: str
    method: str
    path: str
    status: int
    call: Callable[[World], TestResponse]
    slug: str | None = None
    plaintext: str | None = None


def _basic(user: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def _login(w: World, **body: dict) -> TestResponse:
    return w.with_alice().client.post("/auth/token", **body)


def _locked_out(w: World) -> TestResponse:
    w.with_alice()
    for _ in range(5):
        w.client.post("/auth/token", data={"grant_type": "password", "username": "alice",
                                           "password": "wrong password!"})
    return w.client.post("/auth/token", data={"grant_type": "password", "username": "alice",
                                              "password": PASSWORD})


def _revoke(w: World, data: dict) -> TestResponse:
    return w.client.post("/auth/revoke", data=data, headers=w.as_())


def _second_call(w: World, path: str, payload: dict) -> TestResponse:
    client = w.client_with(rate_limit_predict="1/minute")
    w.sealed_post(path, payload, client)
    return w.sealed_post(path, payload, client)


def _plain(w: World, path: str, payload: dict) -> TestResponse:
    return w.faulty_client().post(path, json=payload, headers=w.as_())


AUTH_CASES = [
    Case("token password form", "POST", "/auth/token", 200, lambda w: _login(
        w, data={"grant_type": "password", "username": "alice", "password": PASSWORD})),
    Case("token password json", "POST", "/auth/token", 200, lambda w: _login(
        w, json={"grant_type": "password", "username": "alice", "password": PASSWORD})),
    Case("token client basic", "POST", "/auth/token", 200, lambda w: w.client.post(
        "/auth/token", data={"grant_type": "client_credentials"},
        headers=_basic("robot", w.robot_secret()))),
    Case("token unsupported grant", "POST", "/auth/token", 400, lambda w: w.client.post(
        "/auth/token", data={"grant_type": "authorization_code", "code": "x"})),
    Case("token wrong basic", "POST", "/auth/token", 401, lambda w: w.client.post(
        "/auth/token", data={"grant_type": "client_credentials"},
        headers=_basic("robot", "wrong"))),
    Case("token lockout", "POST", "/auth/token", 429, _locked_out, "rate-limited"),
    Case("revoke", "POST", "/auth/revoke", 200, lambda w: _revoke(
        w, {"token": w.auth.token("alice")})),
    Case("revoke without token param", "POST", "/auth/revoke", 400, lambda w: _revoke(w, {}),
         "invalid-request"),
    Case("revoke without bearer", "POST", "/auth/revoke", 401, lambda w: w.client.post(
        "/auth/revoke", data={"token": "x"}), "unauthorized"),
    Case("whoami", "GET", "/auth/whoami", 200, lambda w: w.client.get(
        "/auth/whoami", headers=w.as_(("analyst",)))),
    Case("whoami bad token", "GET", "/auth/whoami", 401, lambda w: w.client.get(
        "/auth/whoami", headers={"Authorization": "Bearer not.a.jwt"}), "unauthorized"),
]

MODEL_CASES = [
    Case("models", "GET", "/models", 200, lambda w: w.client.get("/models", headers=w.as_())),
    Case("model", "GET", "/models/{name}", 200, lambda w: w.client.get(
        "/models/tiny", headers=w.as_(("viewer",)))),
    Case("model forbidden", "GET", "/models/{name}", 403, lambda w: w.client.get(
        "/models/tiny", headers=w.as_(("nobody",))), "forbidden"),
    Case("model unknown", "GET", "/models/{name}", 404, lambda w: w.client.get(
        "/models/ghost", headers=w.as_()), "not-found"),
]

PREDICT_CASES = [
    Case("predict sealed", "POST", "/predict/{name}", 200, lambda w: w.sealed_post(
        "/predict/tiny", {"inputs": ROW}), plaintext="PredictReply"),
    Case("predict named inputs", "POST", "/predict/{name}", 200, lambda w: w.sealed_post(
        "/predict/tiny", {"inputs": {"x": ROW}}), plaintext="PredictReply"),
    Case("predict plain", "POST", "/predict/{name}", 200, lambda w: _plain(
        w, "/predict/tiny", {"inputs": ROW})),
    Case("predict version", "POST", "/predict/{name}/versions/{version}", 200,
         lambda w: w.sealed_post("/predict/tiny/versions/1", {"inputs": ROW}),
         plaintext="PredictReply"),
    Case("predict unknown version", "POST", "/predict/{name}/versions/{version}", 404,
         lambda w: w.sealed_post("/predict/tiny/versions/9", {"inputs": ROW}), "not-found"),
    Case("predict bad envelope", "POST", "/predict/{name}", 400, lambda w: w.client.post(
        "/predict/tiny", data=b'{"protected": "x"}', content_type=SEALED, headers=w.as_()),
         "invalid-envelope"),
    Case("predict no permission", "POST", "/predict/{name}", 403, lambda w: w.client.post(
        "/predict/tiny", data=b"{}", content_type=SEALED, headers=w.as_(("viewer",))),
         "forbidden"),
    Case("predict key of another", "POST", "/predict/{name}", 403, lambda w: w.client.post(
        "/predict/tiny", data=w.sealer.seal({"inputs": ROW}), content_type=SEALED,
        headers=w.as_(sub="mallory")), "key-not-allowed"),
    Case("predict too large", "POST", "/predict/{name}", 413, lambda w: _plain(
        w, "/predict/tiny", {"inputs": ROW * 500}), "payload-too-large"),
    Case("predict media type", "POST", "/predict/{name}", 415, lambda w: w.client.post(
        "/predict/tiny", json={"inputs": ROW}, headers=w.as_()), "unsupported-media-type"),
    Case("predict bad inputs", "POST", "/predict/{name}", 422, lambda w: w.sealed_post(
        "/predict/tiny", {"inputs": [[1.0, 2.0]]}), "invalid-input"),
    Case("predict rate limited", "POST", "/predict/{name}", 429, lambda w: _second_call(
        w, "/predict/tiny", {"inputs": ROW}), "rate-limited"),
    Case("predict model failure", "POST", "/predict/{name}", 500, lambda w: _plain(
        w, "/predict/fragile", {"inputs": ROW * 2}), "internal-error"),
    Case("predict not loaded", "POST", "/predict/{name}", 503, lambda w: _plain(
        w, "/predict/broken", {"inputs": ROW}), "model-unavailable"),
]

OPERATIONS_CASES = [
    Case("healthz", "GET", "/healthz", 200, lambda w: w.client.get("/healthz")),
    Case("readyz", "GET", "/readyz", 200, lambda w: w.client.get("/readyz")),
    Case("readyz failed model", "GET", "/readyz", 503, lambda w: w.faulty_client().get(
        "/readyz"), "model-unavailable"),
    Case("metrics", "GET", "/metrics", 200, lambda w: w.client.get("/metrics")),
    Case("openmetrics", "GET", "/metrics", 200, lambda w: w.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text"})),
    Case("openapi", "GET", "/openapi.json", 200, lambda w: w.client.get("/openapi.json")),
    Case("jwks", "GET", "/.well-known/jwks.json", 200, lambda w: w.client.get(
        "/.well-known/jwks.json")),
]

OIP_CASES = [
    Case("oip server", "GET", "/v2", 200, lambda w: w.client.get("/v2", headers=w.as_())),
    Case("oip server no token", "GET", "/v2", 401, lambda w: w.client.get("/v2"),
         "unauthorized"),
    Case("oip live", "GET", "/v2/health/live", 200, lambda w: w.client.get("/v2/health/live")),
    Case("oip ready", "GET", "/v2/health/ready", 200, lambda w: w.client.get(
        "/v2/health/ready")),
    Case("oip not ready", "GET", "/v2/health/ready", 503, lambda w: w.faulty_client().get(
        "/v2/health/ready"), "model-unavailable"),
    Case("oip metadata", "GET", "/v2/models/{name}", 200, lambda w: w.client.get(
        "/v2/models/tiny", headers=w.as_())),
    Case("oip metadata unknown", "GET", "/v2/models/{name}", 404, lambda w: w.client.get(
        "/v2/models/ghost", headers=w.as_()), "not-found"),
    Case("oip version metadata", "GET", "/v2/models/{name}/versions/{version}", 200,
         lambda w: w.client.get("/v2/models/tiny/versions/1", headers=w.as_())),
    Case("oip model ready", "GET", "/v2/models/{name}/ready", 200, lambda w: w.client.get(
        "/v2/models/tiny/ready", headers=w.as_())),
    Case("oip model not loaded", "GET", "/v2/models/{name}/ready", 503,
         lambda w: w.faulty_client().get("/v2/models/broken/ready", headers=w.as_()),
         "model-unavailable"),
    Case("oip version ready forbidden", "GET", "/v2/models/{name}/versions/{version}/ready",
         403, lambda w: w.client.get("/v2/models/tiny/versions/1/ready",
                                     headers=w.as_(("nobody",))), "forbidden"),
    Case("oip infer sealed", "POST", "/v2/models/{name}/infer", 200, lambda w: w.sealed_post(
        "/v2/models/tiny/infer", OIP_REQUEST), plaintext="OipInferenceResponse"),
    Case("oip infer plain", "POST", "/v2/models/{name}/infer", 200, lambda w: _plain(
        w, "/v2/models/tiny/infer", OIP_REQUEST)),
    Case("oip infer bad tensor", "POST", "/v2/models/{name}/versions/{version}/infer", 422,
         lambda w: _plain(w, "/v2/models/tiny/versions/1/infer",
                          {"inputs": [{**OIP_REQUEST["inputs"][0], "datatype": "INT8"}]}),
         "invalid-input"),
    Case("oip infer rate limited", "POST", "/v2/models/{name}/infer", 429, lambda w: _second_call(
        w, "/v2/models/tiny/infer", OIP_REQUEST), "rate-limited"),
    Case("oip infer version", "POST", "/v2/models/{name}/versions/{version}/infer", 200,
         lambda w: w.sealed_post("/v2/models/tiny/versions/1/infer", OIP_REQUEST),
         plaintext="OipInferenceResponse"),
]

CASES = [*AUTH_CASES, *MODEL_CASES, *PREDICT_CASES, *OPERATIONS_CASES, *OIP_CASES]
