"""users, clients, keys and model commands: one JSON object on stdout, messages on stderr."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import save_file

from tests.conftest import KEK_ID


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def run_json(cli, args, **kwargs) -> dict:
    result = cli.invoke(args=args, **kwargs)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_users_create_reads_password_from_stdin(cli, client):
    out = run_json(cli, ["users", "create", "carol", "--role", "analyst", "--password-stdin"],
                   input="a long password\n")
    assert out == {"username": "carol", "roles": ["analyst"]}
    response = client.post("/auth/token", data={"grant_type": "password", "username": "carol",
                                                "password": "a long password"})
    assert response.status_code == 200


def test_clients_create_prints_the_secret_once(cli, client):
    out = run_json(cli, ["clients", "create", "job", "--role", "viewer"])
    response = client.post("/auth/token", data={"grant_type": "client_credentials",
                                                "client_id": "job",
                                                "client_secret": out["client_secret"]})
    assert response.status_code == 200


def test_keys_issue_list_revoke(cli):
    issued = run_json(cli, ["keys", "issue", "--subject", "carol", "--ttl-days", "3",
                            "--external"])
    assert set(issued) == {"kid", "key", "subject", "expires_at"}
    listed = run_json(cli, ["keys", "list"])["keys"]
    assert [k["kid"] for k in listed] == [issued["kid"]]
    assert set(listed[0]) == {"kid", "subject", "created_at", "expires_at", "revoked"}
    assert "key" not in listed[0]
    run_json(cli, ["keys", "revoke", issued["kid"]])
    assert run_json(cli, ["keys", "list"])["keys"][0]["revoked"] is True


def test_model_seal_inspect_rewrap(cli, tmp_path):
    import torch
    plain = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(3)}, str(plain))
    sealed = tmp_path / "out" / "model.safetensors.sealed"
    header = run_json(cli, ["model", "seal", str(plain), str(sealed), "--model", "m",
                            "--version", "2"])
    assert header["model"] == "m" and header["version"] == "2" and header["kek_id"] == KEK_ID
    assert run_json(cli, ["model", "inspect", str(sealed)]) == header


def test_model_seal_refuses_a_pickle(cli, tmp_path):
    import torch
    pickled = tmp_path / "w.pt"
    torch.save({"w": torch.ones(3)}, pickled)
    result = cli.invoke(args=["model", "seal", str(pickled), str(tmp_path / "x"), "--model", "m",
                              "--version", "1"])
    assert result.exit_code == 1
    assert "not a safetensors file" in result.stderr
    assert not (tmp_path / "x").exists()


def test_model_seal_refuses_an_overlong_model_name(cli, tmp_path):
    import torch
    plain = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(3)}, str(plain))
    result = cli.invoke(args=["model", "seal", str(plain), str(tmp_path / "x"), "--model",
                              "m" * 300, "--version", "1"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error:")
