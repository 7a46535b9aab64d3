"""python -m client: settings from env, flags or a credentials file; one JSON object on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from client.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
ROW = [0.1, 0.2, 0.3, 0.4]


def run(capsys, argv: list[str], environ: dict[str, str]) -> tuple[int, dict | None, str]:
    code = main(argv, environ)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else None), err


@pytest.mark.parametrize("content", [
    {"inputs": [ROW]},
    [ROW],
    {"inputs": {"x": [ROW]}, "parameters": {}},
], ids=["object", "bare-list", "named-with-parameters"])
def test_predict_prints_the_opened_reply(live, capsys, tmp_path, content) -> None:
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps(content))
    code, out, err = run(capsys, ["predict", "tiny", "--input", str(sample)], live.env())
    assert (code, out["model"], out["version"], len(out["labels"]), err) == (
        0, "tiny", "1", 1, "")


def test_predict_a_given_version_from_stdin(live, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(json.dumps([ROW, ROW])))
    code, out, _ = run(capsys, ["predict", "tiny", "--input", "-", "--version", "1"],
                       live.env())
    assert (code, out["version"], len(out["outputs"])) == (0, "1", 2)


@pytest.mark.parametrize(("argv", "check"), [
    (["models"], lambda out: sorted(m["name"] for m in out["models"]) == [
        "broken", "digits", "tiny"]),
    (["model", "tiny"], lambda out: out["name"] == "tiny" and out["versions"] == ["1"]),
    (["whoami"], lambda out: out["sub"] == "alice" and "predict:*" in out["permissions"]),
    (["token"], lambda out: out["token_type"] == "Bearer" and out["access_token"].count(".") == 2),
    (["revoke"], lambda out: out == {"revoked": True}),
])
def test_commands_print_one_json_object(live, capsys, argv, check) -> None:
    code, out, err = run(capsys, argv, live.env())
    assert (code, err) == (0, "") and check(out)


def test_flags_override_the_environment(live, capsys) -> None:
    environ = {**live.env(), "TORCHGATE_URL": "http://127.0.0.1:9", "TORCHGATE_USERNAME": "x"}
    code, out, _ = run(capsys, ["--url", live.url, "--username", "alice", "whoami"], environ)
    assert (code, out["sub"]) == (0, "alice")


def test_secrets_may_come_from_files(live, capsys, tmp_path) -> None:
    secret = tmp_path / "password"
    secret.write_text(live.user.secret + "\n")
    environ = {k: v for k, v in live.env().items() if k != "TORCHGATE_PASSWORD"}
    code, out, _ = run(capsys, ["whoami"], {**environ, "TORCHGATE_PASSWORD_FILE": str(secret)})
    assert (code, out["sub"]) == (0, "alice")


@pytest.mark.parametrize(("flags", "subject"), [([], "alice"), (["--as-client"], "batch-job")])
def test_credentials_file_in_the_demo_layout(live, capsys, tmp_path, flags, subject) -> None:
    path = tmp_path / "demo.json"
    path.write_text(json.dumps({
        "username": "alice", "password": live.user.secret,
        "client_id": "batch-job", "client_secret": live.client.secret,
        "user_key": {"kid": live.user.kid, "key": live.user.key_text},
        "client_key": {"kid": live.client.kid, "key": live.client.key_text}}))
    argv = ["--url", live.url, "--credentials", str(path), *flags]
    code, me, _ = run(capsys, [*argv, "whoami"], {})
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps([ROW]))
    predicted, out, _ = run(capsys, [*argv, "predict", "tiny", "--input", str(sample)], {})
    assert (code, me["sub"], predicted, out["model"]) == (0, subject, 0, "tiny")


@pytest.mark.parametrize(("argv", "message"), [
    (["predict", "nope", "--input", "{sample}"], "404 not-found: No model 'nope'"),
    (["predict", "tiny", "--input", "{sample}", "--version", "9"], "404 not-found"),
    (["model", "nope"], "404 not-found"),
])
def test_refusals_exit_1_with_the_problem_on_stderr(live, capsys, tmp_path, argv, message):
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps([ROW]))
    argv = [arg.replace("{sample}", str(sample)) for arg in argv]
    code, out, err = run(capsys, argv, live.env())
    assert (code, out) == (1, None)
    assert message in err and "request_id" in err


def test_wrong_password_exits_1_with_the_oauth_error(live, capsys) -> None:
    code, out, err = run(capsys, ["whoami"], {**live.env(), "TORCHGATE_PASSWORD": "wrong!!"})
    assert (code, out) == (1, None) and "400 invalid_grant" in err
    assert "wrong!!" not in err


@pytest.mark.parametrize(("argv", "environ", "message"), [
    (["whoami"], {}, "no credentials"),
    (["whoami"], {"TORCHGATE_USERNAME": "a", "TORCHGATE_PASSWORD": "b", "TORCHGATE_KID": "k"},
     "both TORCHGATE_KID and TORCHGATE_KEY"),
    (["whoami"], {"TORCHGATE_USERNAME": "a", "TORCHGATE_PASSWORD": "b", "TORCHGATE_KID": "k",
                  "TORCHGATE_KEY": "c2hvcnQ"}, "32 bytes"),
    (["--url", "ftp://x", "whoami"], {"TORCHGATE_USERNAME": "a", "TORCHGATE_PASSWORD": "b"},
     "http:// or https://"),
    (["predict", "tiny", "--input", "/nonexistent.json"],
     {"TORCHGATE_USERNAME": "a", "TORCHGATE_PASSWORD": "b"}, "cannot read inputs"),
    (["--credentials", "/nonexistent.json", "whoami"], {}, "cannot read credentials"),
])
def test_usage_errors_exit_2(capsys, argv, environ, message) -> None:
    code, out, err = run(capsys, argv, environ)
    assert (code, out) == (2, None) and message in err


def test_python_dash_m_client_runs_as_a_program(live) -> None:
    done = subprocess.run([sys.executable, "-m", "client", "whoami"], cwd=ROOT, timeout=60,
                          capture_output=True, text=True, env={**os.environ, **live.env()})
    assert (done.returncode, json.loads(done.stdout)["sub"]) == (0, "alice")


class _Stdin:
    """A stand-in for sys.stdin holding `text`."""

    def __init__(self, text: str):
        self.text = text

    def read(self) -> str:
        return self.text
