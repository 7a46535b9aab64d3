"""Live gateways for the client tests: the real app behind werkzeug on a free 127.0.0.1 port."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import torch
from argon2 import PasswordHasher
from flask import Flask

from app import create_app
from app.gateway import current_gateway
from models.demo import manifest_text
from models.zoo import MLP
from security import passwords
from security.encoding import b64url_encode
from tests.conftest import KEK, KEK_ID, write_tiny_model
from tests.fixtures import publish_receipt_keys, serve_in_thread, write_model

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch) -> None:
    """Argon2id at its lowest cost: these tests are about the client, not password hashing."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=64,
                                                             parallelism=1))


@pytest.fixture(scope="session")
def client_repository(tmp_path_factory) -> Path:
    """tiny, a digits-shaped model (64 -> 10, random weights) as the docs call it, and broken."""
    repository = tmp_path_factory.mktemp("client-repository")
    write_tiny_model(repository)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = MLP(64, [128], 10).state_dict()
    write_model(repository, "digits", kek_id=KEK_ID, kek=KEK, manifest=manifest_text(),
                state=state)
    write_tiny_model(repository, "broken", kek=bytes(32))  # wrong KEK: fails to load, 503
    return repository


@pytest.fixture
def overrides(overrides, client_repository) -> dict:
    return {**overrides, "model_repository": str(client_repository)}


@dataclass(frozen=True)
class Fault:
    """A canned answer; `after_app` lets the app handle (and remember) the request first."""

    status: int
    retry_after: str | None = "0"
    after_app: bool = False


@dataclass
class Seen:
    """One request the gateway received, and the status it answered."""

    method: str
    path: str
    body: bytes
    status: int = 0

    @property
    def grant_type(self) -> str | None:
        return parse_qs(self.body.decode()).get("grant_type", [None])[0]


@dataclass
class Recorder:
    """WSGI middleware: records every request and answers queued faults per path."""

    app: Callable
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, path: str, *faults: Fault) -> None:
        self.faults.setdefault(path, []).extend(faults)

    def paths(self) -> list[tuple[str, int]]:
        return [(s.path, s.status) for s in self.seen]

    def grants(self) -> list[str | None]:
        return [s.grant_type for s in self.seen if s.path == "/auth/token"]

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        seen = Seen(environ["REQUEST_METHOD"], environ["PATH_INFO"], body)
        with self.lock:
            self.seen.append(seen)
            queue = self.faults.get(seen.path) or []
            fault = queue.pop(0) if queue else None

        def recording_start(status: str, headers: list, exc_info: Any = None) -> Any:
            seen.status = int(status.split()[0])
            return start_response(status, headers, exc_info)

        if fault is None:
            return self.app(environ, recording_start)
        if fault.after_app:
            chunks = self.app(environ, lambda *args: lambda data: None)
            b"".join(chunks)
            getattr(chunks, "close", lambda: None)()
        return _fault_response(fault, recording_start)


def _fault_response(fault: Fault, start_response: Callable) -> list[bytes]:
    slug = {429: "rate-limited", 503: "service-unavailable"}.get(fault.status, "internal-error")
    body = json.dumps({"type": f"urn:torchgate:problem:{slug}",
                       "title": "Injected", "status": fault.status,
                       "detail": "Injected by the test.", "request_id": "injected"}).encode()
    headers = [("Content-Type", "application/problem+json"), ("Content-Length", str(len(body)))]
    if fault.retry_after is not None:
        headers.append(("Retry-After", fault.retry_after))
    start_response(f"{fault.status} Injected", headers)
    return [body]


@pytest.fixture
def serve() -> Iterator[Callable[[Callable], str]]:
    """Serve WSGI apps on 127.0.0.1:<free port> in threads; stopped at teardown."""
    with ExitStack() as servers:
        yield lambda wsgi: servers.enter_context(serve_in_thread(wsgi))


@dataclass(frozen=True)
class Caller:
    """Credentials and payload key of one caller of a live gateway."""

    name: str
    secret: str = field(repr=False)
    kid: str
    key: bytes = field(repr=False)

    @property
    def key_text(self) -> str:
        return b64url_encode(self.key)


@dataclass(frozen=True)
class Live:
    """A served gateway: its URL, the recorder in front of it, a user and a client."""

    url: str
    app: Flask
    recorder: Recorder
    user: Caller
    client: Caller

    def user_kwargs(self, **extra: Any) -> dict[str, Any]:
        return {"username": self.user.name, "password": self.user.secret,
                "kid": self.user.kid, "key": self.user.key, **extra}

    def client_kwargs(self, **extra: Any) -> dict[str, Any]:
        return {"client_id": self.client.name, "client_secret": self.client.secret,
                "kid": self.client.kid, "key": self.client.key, **extra}

    def env(self) -> dict[str, str]:
        """The TORCHGATE_* variables the CLI and the docs' snippets read."""
        return {"TORCHGATE_URL": self.url, "TORCHGATE_USERNAME": self.user.name,
                "TORCHGATE_PASSWORD": self.user.secret, "TORCHGATE_KID": self.user.kid,
                "TORCHGATE_KEY": self.user.key_text}


def add_callers(app, roles: tuple[str, ...] = ("analyst",)) -> tuple[Caller, Caller]:
    """Create the user alice and the client batch-job, each with a payload key."""
    with app.app_context():
        gateway = current_gateway()
        gateway.directory.create_user("alice", PASSWORD, list(roles))
        _, secret = gateway.directory.create_client("batch-job", list(roles))
        user_key = gateway.keyring.issue("alice")
        client_key = gateway.keyring.issue("batch-job")
    return (Caller("alice", PASSWORD, user_key.kid, user_key.key),
            Caller("batch-job", secret, client_key.kid, client_key.key))


@pytest.fixture
def start_live(serve, overrides) -> Callable[..., Live]:
    """A live gateway with extra setting overrides (jwt_access_ttl=2), optionally wrapped."""
    def start(wrap: Callable[[Callable], Callable] | None = None, **settings: Any) -> Live:
        app = publish_receipt_keys(create_app({**overrides, **settings}))
        user, client = add_callers(app)
        recorder = Recorder(app if wrap is None else wrap(app))
        return Live(serve(recorder), app, recorder, user, client)
    return start


@pytest.fixture
def live(start_live) -> Live:
    return start_live()
