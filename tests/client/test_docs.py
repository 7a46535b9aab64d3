"""Every code block of docs/clients.md runs, as written, against a live gateway."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "clients.md"
SNIPPET = re.compile(r"<!-- snippet: (\S+) -->\n```(\w+)\n(.*?)```", re.DOTALL)


def snippets() -> dict[str, tuple[str, str]]:
    """name -> (language, code) of every marked code block."""
    return {name: (lang, code) for name, lang, code in SNIPPET.findall(DOC.read_text())}


def run(names: list[str], environ: dict[str, str], cwd: Path = ROOT,
        ) -> subprocess.CompletedProcess:
    blocks = snippets()
    languages = {blocks[name][0] for name in names}
    code = "\n".join(blocks[name][1] for name in names)
    if languages == {"python"}:
        command = [sys.executable, "-c", code]
    else:
        assert languages == {"bash"}
        for tool in ("curl", "jq"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not installed: the shell snippets use it")
        command = ["bash", "-euo", "pipefail", "-c", code]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=90,
                          env={"PATH": os.environ.get("PATH", ""), **environ})


def test_every_code_block_is_a_tested_snippet() -> None:
    fences = DOC.read_text().count("```") // 2
    assert fences == len(snippets()) == 10


def client_env(live) -> dict[str, str]:
    return {"TORCHGATE_URL": live.url, "TORCHGATE_CLIENT_ID": live.client.name,
            "TORCHGATE_CLIENT_SECRET": live.client.secret}


def lines(out: str) -> list:
    return [json.loads(line) if line[:1] in "[{" else line for line in out.splitlines()]


@pytest.mark.parametrize(("names", "environ", "check"), [
    (["curl-token"], lambda live: live.env(),
     lambda out: json.loads(out)["sub"] == "alice"),
    (["curl-client"], client_env,
     lambda out: json.loads(out) == {"token_type": "Bearer", "expires_in": 900}),
    (["python-client"], lambda live: live.env(),
     lambda out: out.startswith("digits 1 ['")
     and out.endswith("['broken', 'digits', 'tiny'] alice\n")),
    (["python-cli"], lambda live: live.env(),
     lambda out: lines(out)[0]["model"] == "digits" and lines(out)[1:] == [
         ["broken", "digits", "tiny"], "alice"]),
    (["python-cli-receipt"], lambda live: live.env(), lambda out: out == "digits 1 alice\n"),
    (["python-jwcrypto"], lambda live: live.env(),
     lambda out: len(json.loads(out.replace("'", '"'))) == 1),
])
def test_snippet_runs(live, names, environ, check) -> None:
    done = run(names, environ(live))
    assert (done.returncode, done.stderr) == (0, "")
    assert check(done.stdout), done.stdout


def test_plain_json_snippet_with_optional_encryption(start_live) -> None:
    live = start_live(payload_encryption="optional")
    done = run(["curl-token", "curl-plain"], live.env())
    result = json.loads(done.stdout.splitlines()[-1])
    assert (done.returncode, result["model"], result["version"], len(result["labels"])) == (
        0, "digits", "1", 1)


def test_plain_json_snippet_is_refused_when_encryption_is_required(live) -> None:
    done = run(["curl-token", "curl-plain"], live.env())
    assert (done.returncode, done.stderr) == (
        22, "curl: (22) The requested URL returned error: 415\n")


def test_demo_env_snippet_reads_demo_json(live, tmp_path) -> None:
    root = tmp_path / "checkout"
    (root / "instance").mkdir(parents=True)
    (root / "instance" / "demo.json").write_text(json.dumps({
        "username": "alice", "password": live.user.secret,
        "client_id": "batch-job", "client_secret": live.client.secret,
        "user_key": {"kid": live.user.kid, "key": live.user.key_text}}))
    done = run(["demo-env", "curl-token", "curl-client"], {"TORCHGATE_URL": live.url},
               cwd=root)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout.splitlines()[0])["sub"] == "alice"


def test_node_snippet_is_the_script_the_node_tests_run() -> None:
    language, code = snippets()["node-jose"]
    script = ROOT / "tests" / "js" / "seal_and_open.mjs"
    assert (language, code) == ("js", script.read_text())




def test_node_hpke_snippet_is_taken_from_the_script_the_node_tests_run() -> None:
    language, code = snippets()["node-hpke-seal"]
    script = ROOT / "tests" / "js" / "hpke_seal_and_open.mjs"
    assert language == "js" and code in script.read_text()
