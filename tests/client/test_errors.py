"""Typed errors: every problem slug and OAuth error maps to its class, live and on paper."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
import requests

from app.gateway import current_gateway
from client import (
    AuthError,
    Forbidden,
    InvalidEnvelope,
    InvalidInput,
    InvalidRequest,
    KeyNotAllowed,
    ModelUnavailable,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ReplayedEnvelope,
    ServerError,
    StaleEnvelope,
    TokenExpired,
    TokenRevoked,
    TorchgateClient,
    TorchgateError,
    Unauthorized,
    Unavailable,
)
from client.errors import error_for_response, parse_retry_after
from security.encoding import b64url_decode
from security.envelope import seal_envelope

ROW = [0.1, 0.2, 0.3, 0.4]


def problem(slug: str, status: int) -> bytes:
    return json.dumps({"type": f"urn:torchgate:problem:{slug}", "title": "t", "status": status,
                       "detail": f"{slug} detail", "request_id": "r-1"}).encode()


@pytest.mark.parametrize(("slug", "status", "kind"), [
    ("invalid-request", 400, InvalidRequest),
    ("invalid-envelope", 400, InvalidEnvelope),
    ("stale-envelope", 400, StaleEnvelope),
    ("replayed-envelope", 400, ReplayedEnvelope),
    ("unauthorized", 401, Unauthorized),
    ("token-expired", 401, TokenExpired),
    ("token-revoked", 401, TokenRevoked),
    ("forbidden", 403, Forbidden),
    ("key-not-allowed", 403, KeyNotAllowed),
    ("not-found", 404, NotFound),
    ("method-not-allowed", 405, InvalidRequest),
    ("payload-too-large", 413, InvalidRequest),
    ("unsupported-media-type", 415, InvalidRequest),
    ("invalid-input", 422, InvalidInput),
    ("rate-limited", 429, RateLimited),
    ("quota-exceeded", 429, QuotaExceeded),
    ("model-unavailable", 503, ModelUnavailable),
    ("service-unavailable", 503, Unavailable),
    ("internal-error", 500, ServerError),
    ("some-future-slug", 409, TorchgateError),
    ("some-future-slug", 502, ServerError),
])
def test_each_problem_slug_has_its_class(slug, status, kind) -> None:
    error = error_for_response(status, {"Retry-After": "7"}, problem(slug, status))
    assert type(error) is kind and isinstance(error, TorchgateError)
    assert (error.status, error.slug, error.detail, error.request_id, error.retry_after) == (
        status, slug, f"{slug} detail", "r-1", 7.0)


@pytest.mark.parametrize(("status", "body", "kind", "slug"), [
    (400, b'{"error": "invalid_grant", "error_description": "wrong"}', AuthError,
     "invalid_grant"),
    (401, b'{"error": "invalid_client"}', AuthError, "invalid_client"),
    (502, b"<html>Bad gateway</html>", ServerError, "http-502"),
    (404, b"", NotFound, "http-404"),
])
def test_oauth_and_non_problem_answers(status, body, kind, slug) -> None:
    error = error_for_response(status, {}, body)
    assert (type(error), error.status, error.slug) == (kind, status, slug)


@pytest.mark.parametrize(("value", "seconds"), [
    ("12", 12.0), (None, None), ("soon", None), ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
])
def test_retry_after_parsing(value, seconds) -> None:
    assert parse_retry_after(value) == seconds


def viewer(live) -> dict:
    """A signed-in caller whose role may read the catalogue but call no model."""
    with live.app.app_context():
        gateway = current_gateway()
        gateway.directory.create_user("victor", "a long password", ["viewer"])
        key = gateway.keyring.issue("victor")
    return {"username": "victor", "password": "a long password", "kid": key.kid, "key": key.key}


CASES: dict[str, Callable] = {
    "forbidden": viewer,
    "key-not-allowed": lambda live: live.user_kwargs(kid=live.client.kid, key=live.client.key),
    "not-found": lambda live: live.user_kwargs(),
    "invalid-input": lambda live: live.user_kwargs(),
    "invalid_grant": lambda live: live.user_kwargs(password="wrong password"),
    "invalid_client": lambda live: live.client_kwargs(client_secret="wrong"),
}


@pytest.mark.parametrize(("case", "model", "inputs", "kind", "status"), [
    ("forbidden", "tiny", [ROW], Forbidden, 403),
    ("key-not-allowed", "tiny", [ROW], KeyNotAllowed, 403),
    ("not-found", "nope", [ROW], NotFound, 404),
    ("invalid-input", "tiny", [[1.0, 2.0]], InvalidInput, 422),
    ("invalid_grant", "tiny", [ROW], AuthError, 400),
    ("invalid_client", "tiny", [ROW], AuthError, 401),
])
def test_live_refusals_raise_typed_errors(live, case, model, inputs, kind, status) -> None:
    with TorchgateClient(live.url, **CASES[case](live)) as gateway, \
            pytest.raises(kind) as caught:
        gateway.predict(model, inputs)
    assert (type(caught.value), caught.value.status, caught.value.slug) == (kind, status, case)
    assert caught.value.detail


def test_revoked_token_is_not_renewed(live) -> None:
    with TorchgateClient(live.url, **live.user_kwargs()) as gateway:
        token = gateway.token().access_token
        requests.post(f"{live.url}/auth/revoke", data={"token": token}, timeout=5,
                      headers={"Authorization": f"Bearer {token}"}).raise_for_status()
        with pytest.raises(TokenRevoked) as caught:
            gateway.whoami()
    assert (caught.value.status, caught.value.request_id is not None) == (401, True)
    assert live.recorder.grants() == ["password"]


def test_lockout_is_rate_limited_with_retry_after(start_live) -> None:
    live = start_live(login_max_failures=1)
    with TorchgateClient(live.url, **live.user_kwargs(password="wrong password")) as gateway:
        with pytest.raises(AuthError):
            gateway.whoami()
        with pytest.raises(RateLimited) as caught:
            gateway.whoami()
    assert (caught.value.status, caught.value.slug) == (429, "rate-limited")
    assert caught.value.retry_after > 10 and live.recorder.grants() == ["password", "password"]


def _plain_reply(body: bytes) -> tuple[bytes, str]:
    return b'{"model": "tiny"}', "application/json"


def _flipped(body: bytes) -> tuple[bytes, str]:
    members = json.loads(body)
    members["ciphertext"] = ("A" if members["ciphertext"][0] != "A" else "B") + \
        members["ciphertext"][1:]
    return json.dumps(members).encode(), "application/jose+json"


def _resealed(kid: str | None) -> Callable[[bytes], tuple[bytes, str]]:
    def edit(body: bytes) -> tuple[bytes, str]:
        header = json.loads(b64url_decode(json.loads(body)["protected"]))
        return seal_envelope(b"{}", key=os.urandom(32), kid=kid or header["kid"]), \
            "application/jose+json"
    return edit


class Tamper:
    """WSGI middleware that edits the body of every reply under `prefix`."""

    def __init__(self, app: Callable, edit: Callable[[bytes], tuple[bytes, str]],
                 prefix: str = "/predict/"):
        self.app, self.edit, self.prefix = app, edit, prefix

    def __call__(self, environ: dict, start_response: Callable):
        if not environ["PATH_INFO"].startswith(self.prefix):
            return self.app(environ, start_response)
        captured: list = []
        body = b"".join(self.app(environ, lambda status, headers, *_: captured.append(status)))
        data, content_type = self.edit(body)
        start_response(captured[0], [("Content-Type", content_type),
                                     ("Content-Length", str(len(data)))])
        return [data]


@pytest.mark.parametrize("edit", [
    _plain_reply, _flipped, _resealed(None), _resealed("someone-else"),
], ids=["downgraded", "flipped", "wrong-key", "other-kid"])
def test_a_reply_that_does_not_open_is_refused(start_live, edit) -> None:
    live = start_live(wrap=lambda app: Tamper(app, edit))
    with TorchgateClient(live.url, **live.user_kwargs()) as gateway, \
            pytest.raises(InvalidEnvelope) as caught:
        gateway.predict("tiny", [ROW])
    assert caught.value.slug == "invalid-reply-envelope" and "tiny" not in str(caught.value)


@pytest.mark.parametrize(("path", "call"), [
    ("/models", lambda gateway: gateway.models()),
    ("/auth/token", lambda gateway: gateway.token()),
])
def test_an_answer_that_is_not_json_is_a_server_error(start_live, path, call) -> None:
    live = start_live(wrap=lambda app: Tamper(app, lambda body: (b"<html>", "text/html"), path))
    with TorchgateClient(live.url, **live.user_kwargs()) as gateway, \
            pytest.raises(ServerError) as caught:
        call(gateway)
    assert (caught.value.status, caught.value.slug) == (200, "invalid-answer")
