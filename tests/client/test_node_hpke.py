"""The npm @hpke packages seal to the gateway's published keys; the exported key opens the reply.

Needs node and `npm ci --prefix tests/js` (make test runs it); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from security.encoding import b64url_decode
from security.gateway_key_algs import XWING

JS = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS / "hpke_seal_and_open.mjs"
PACKAGES = ("@hpke/core", "@hpke/hybridkem-x-wing", "jose")
SUITES = [XWING, "HPKE-3"]


@pytest.fixture(scope="module")
def node() -> str:
    executable = shutil.which("node")
    if executable is None:
        pytest.skip("node is not installed: the npm @hpke interop tests need Node.js 20+")
    missing = [name for name in PACKAGES
               if not (JS / "node_modules" / name / "package.json").exists()]
    if missing:
        pytest.skip(f"npm {', '.join(missing)} not installed: run `npm ci --prefix tests/js` "
                    "(make test does)")
    return executable


def run_script(node: str, environ: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([node, str(SCRIPT)], cwd=JS, capture_output=True, text=True,
                          timeout=60, env={"PATH": os.environ.get("PATH", ""), **environ})


def sent_envelope(live) -> bytes:
    return next(s.body for s in live.recorder.seen if s.path == "/predict/digits")


@pytest.mark.parametrize("alg", SUITES)
def test_hpke_sealed_request_is_answered_and_its_reply_opened_in_node(live, node, alg) -> None:
    done = run_script(node, {**live.env(), "TORCHGATE_HPKE_ALG": alg})
    assert (done.returncode, done.stderr) == (0, "")
    result = json.loads(done.stdout)
    assert (result["model"], result["version"]) == ("digits", "1")
    assert len(result["labels"]) == 1 and result["labels"][0] in "0123456789"
    assert [(s.path, s.status) for s in live.recorder.seen] == [
        ("/.well-known/jwks.json", 200), ("/auth/token", 200), ("/predict/digits", 200)]


@pytest.mark.parametrize("alg", SUITES)
def test_node_writes_the_envelope_the_wire_format_describes(live, node, alg) -> None:
    assert run_script(node, {**live.env(), "TORCHGATE_HPKE_ALG": alg}).returncode == 0
    members = json.loads(sent_envelope(live))
    header = json.loads(b64url_decode(members["protected"]))
    published = live.app.test_client().get("/.well-known/jwks.json").json["keys"]
    kid = next(k["kid"] for k in published if k["use"] == "enc" and k["alg"] == alg)
    assert set(members) == {"protected", "encrypted_key", "ciphertext"}
    assert set(header) == {"alg", "kid", "iat", "typ", "ath"}
    assert (header["alg"], header["kid"], header["typ"], type(header["iat"])) == (
        alg, kid, "torchgate-request+jwe", int)
    assert len(b64url_decode(header["ath"])) == 32
    assert len(b64url_decode(members["encrypted_key"])) == {XWING: 1120, "HPKE-3": 32}[alg]


def test_node_envelope_under_another_token_of_the_same_caller_is_refused(live, node) -> None:
    """The `ath` binding: the captured envelope does not travel under a second, valid token."""
    assert run_script(node, live.env()).returncode == 0
    gateway = live.app.test_client()
    other = gateway.post("/auth/token", data={
        "grant_type": "password", "username": live.user.name,
        "password": live.user.secret}).json["access_token"]
    answer = gateway.post("/predict/digits", data=sent_envelope(live), headers={
        "Authorization": f"Bearer {other}", "Content-Type": "application/jose+json"})
    assert (answer.status_code, answer.json["type"]) == (
        400, "urn:torchgate:problem:invalid-envelope")
