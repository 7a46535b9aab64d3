"""docs/receipts.md's third-party verification runs, as written, on a real reply and refuses a
reply edited after signing."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from app.gateway import current_gateway
from security.envelope import open_envelope, request_digest
from tests.conftest import SEALED
from tests.doc_blocks import ROOT, snippets

SNIPPET = snippets(ROOT / "docs" / "receipts.md")["third-party-verification"].code


@pytest.fixture
def saved(app, client, auth, sealer, tmp_path):
    """reply.json and jwks.json in tmp_path, as a caller saves them."""
    response = client.post("/predict/tiny", data=sealer.seal({"inputs": [[1, 2, 3, 4]]}),
                           content_type=SEALED, headers=auth.headers())
    assert response.status_code == 200
    plaintext = open_envelope(response.data, key_for=lambda kid: sealer.key, now=time.time(),
                              max_age=300, reply_to=request_digest(sealer.sent[-1])).plaintext
    (tmp_path / "reply.json").write_bytes(plaintext + b"\n")
    with app.app_context():
        jwks = {"keys": current_gateway().receipt_keys.public_jwks()}
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    return tmp_path


def run_snippet(cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SNIPPET], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_the_documented_verification_accepts_a_real_reply(saved):
    result = run_snippet(saved)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split()[:3] == ["tiny", "1", "alice"]


def test_the_documented_verification_refuses_an_edited_reply(saved):
    reply = saved / "reply.json"
    reply.write_bytes(reply.read_bytes().replace(b'"version":"1"', b'"version":"9"'))
    result = run_snippet(saved)
    assert result.returncode == 1
    assert "AssertionError" in result.stderr
