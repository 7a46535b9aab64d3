"""Real gunicorn workers: a model change made through one worker, or the CLI, reaches them all."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from tests.fixtures import seal_state, tiny_mlp
from tests.ops.client import bearer, call
from tests.ops.gateway import launch

pytestmark = pytest.mark.slow
ROWS = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}


def admin_token(secret: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "root", "roles": ["admin"], "jti": uuid.uuid4().hex, "iat": now,
                       "nbf": now, "exp": now + 300, "iss": "torchgate", "aud": "torchgate",
                       "type": "access"}, secret, algorithm="HS256")


def test_changes_reach_every_worker(tmp_path):
    gateway = launch(tmp_path, {"model_sync_interval": 0})
    try:
        keys, caller = gateway.secrets, gateway.caller()
        seal_state(tmp_path / "models", "tiny", "2", tiny_mlp(seed=2).state_dict(),
                   kek_id=keys.kek_id, kek=keys.kek)
        first, second = gateway.worker_pids()
        token = caller.login()

        def version_on(pid: int, version: str) -> int:
            with gateway.only(pid):
                return call(gateway.url, "POST", f"/predict/tiny/versions/{version}",
                            caller.seal(ROWS), {**bearer(token),
                                                "Content-Type": "application/jose+json"}).status

        assert version_on(second, "2") == 404
        with gateway.only(first):
            loaded = call(gateway.url, "POST", "/models/tiny/versions/2/load",
                          headers=bearer(admin_token(keys.jwt_secret)))
        assert loaded.status == 200, loaded.body
        assert (version_on(second, "2"), version_on(first, "2")) == (200, 200)
        unloaded = gateway.flask("model", "unload", "tiny", "1")
        assert unloaded.returncode == 0, unloaded.stderr
        assert (version_on(first, "1"), version_on(second, "1")) == (404, 404)
    finally:
        gateway.stop()
