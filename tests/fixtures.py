"""Tiny real models, sealed for real: the one builder every test suite uses."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from flask import Flask
from safetensors.torch import save_file
from werkzeug.serving import make_server

from models.zoo import MLP
from security.sealed import seal_file

MLP_MANIFEST = """
architecture = "models.zoo:MLP"
labels = ["a", "b", "c"]
[arguments]
in_features = 4
hidden = [8]
out_features = 3
[[inputs]]
name = "x"
shape = [-1, 4]
dtype = "float32"
[[outputs]]
name = "scores"
shape = [-1, 3]
dtype = "float32"
"""


def tiny_mlp(seed: int = 0) -> MLP:
    """The 4 -> 8 -> 3 MLP of MLP_MANIFEST with fixed random weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLP(in_features=4, hidden=[8], out_features=3).eval()


def seal_state(root: Path, name: str, version: str, state: Mapping[str, torch.Tensor], *,
               kek_id: str, kek: bytes, sealed_for: tuple[str, str] | None = None) -> Path:
    """Seal `state` into root/name/version (optionally sealed for another model's slot)."""
    plain = root / f".{name}-{version}.safetensors"
    save_file(dict(state), str(plain))
    dest = root / name / version / "model.safetensors.sealed"
    dest.parent.mkdir(parents=True, exist_ok=True)
    model, version_for = sealed_for or (name, version)
    seal_file(plain, dest, model=model, version=version_for, kek_id=kek_id, kek=kek)
    plain.unlink()
    return dest


def write_model(root: Path, name: str, *, kek_id: str, kek: bytes,
                manifest: str = MLP_MANIFEST, versions: tuple[str, ...] = ("1",),
                state: Mapping[str, torch.Tensor] | None = None) -> Path:
    """A model directory with its manifest and one sealed file per version."""
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.toml").write_text(manifest)
    for version in versions:
        seal_state(root, name, version, state if state is not None else tiny_mlp().state_dict(),
                   kek_id=kek_id, kek=kek)
    return directory


@contextmanager
def serve_in_thread(wsgi: Callable) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1:<free port> in a thread; its base URL while inside."""
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


RECEIPT_JWKS_PATH = "/.well-known/jwks.json"


def publish_receipt_keys(app: Flask) -> Flask:
    """Serve the app's receipt keys at /.well-known/jwks.json when no route does yet: a test
    stand-in for the gateway key store's JWKS route, which takes precedence once present."""
    if not any(rule.rule == RECEIPT_JWKS_PATH for rule in app.url_map.iter_rules()):
        app.add_url_rule(RECEIPT_JWKS_PATH, "test_receipt_jwks", lambda: {
            "keys": app.extensions["torchgate"].receipt_keys.public_jwks()})
    return app
