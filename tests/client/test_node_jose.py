"""The npm `jose` package, an independent JOSE implementation, seals for and opens from a gateway.

Needs node and `npm ci --prefix tests/js` (make test runs it); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from security.encoding import b64url_decode, b64url_encode

JS = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS / "seal_and_open.mjs"


@pytest.fixture(scope="module")
def node() -> str:
    executable = shutil.which("node")
    if executable is None:
        pytest.skip("node is not installed: the npm jose interop tests need Node.js 20+")
    if not (JS / "node_modules" / "jose" / "package.json").exists():
        pytest.skip("npm jose is not installed: run `npm ci --prefix tests/js` (make test does)")
    return executable


def run_script(node: str, environ: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([node, str(SCRIPT)], cwd=JS, capture_output=True, text=True,
                          timeout=60, env={"PATH": os.environ.get("PATH", ""), **environ})


def test_jose_sealed_request_is_opened_and_its_sealed_reply_opened_by_jose(live, node) -> None:
    done = run_script(node, live.env())
    assert (done.returncode, done.stderr) == (0, "")
    result = json.loads(done.stdout)
    assert (result["model"], result["version"]) == ("digits", "1")
    assert len(result["labels"]) == 1 and result["labels"][0] in "0123456789"


def test_jose_writes_the_envelope_the_contract_describes(live, node) -> None:
    assert run_script(node, live.env()).returncode == 0
    sent = next(s for s in live.recorder.seen if s.path == "/predict/digits")
    members = json.loads(sent.body)
    header = json.loads(b64url_decode(members["protected"]))
    assert set(members) == {"protected", "iv", "ciphertext", "tag"}
    assert (header["alg"], header["enc"], header["kid"], type(header["iat"])) == (
        "dir", "A256GCM", live.user.kid, int)
    assert [s.status for s in live.recorder.seen] == [200, 200]


def test_jose_sealed_with_a_wrong_key_is_refused(live, node) -> None:
    environ = {**live.env(), "TORCHGATE_KEY": b64url_encode(os.urandom(32))}
    done = run_script(node, environ)
    assert done.returncode != 0
    assert "predict: 400" in done.stderr and "invalid-envelope" in done.stderr
