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


@pytest.mark.parametrize(("zipped", "what"), [
    (True, "a zip archive holding a pickle"), (False, "a pickle")])
def test_model_seal_refuses_a_torch_save_file_and_says_how_to_convert(cli, tmp_path, zipped,
                                                                       what):
    import torch
    pickled = tmp_path / "w.pt"
    torch.save({"w": torch.ones(3)}, pickled, _use_new_zipfile_serialization=zipped)
    result = cli.invoke(args=["model", "seal", str(pickled), str(tmp_path / "x"), "--model", "m",
                              "--version", "1"])
    assert result.exit_code == 1
    assert f"is a torch.save file ({what}), not safetensors" in result.stderr
    assert f"model convert {pickled} {tmp_path / 'w.safetensors'}" in result.stderr
    assert "header length" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_model_convert_then_seal(cli, tmp_path):
    import torch
    pickled, converted = tmp_path / "w.pt", tmp_path / "w.safetensors"
    weight = torch.arange(6.0).reshape(2, 3)
    torch.save({"state_dict": {"w": weight, "t": weight.t()}, "epoch": 3}, pickled)
    assert run_json(cli, ["model", "convert", str(pickled), str(converted)])["tensors"] == [
        "t", "w"]
    header = run_json(cli, ["model", "seal", str(converted), str(tmp_path / "s"), "--model", "m",
                            "--version", "1"])
    assert header["model"] == "m"


def test_model_convert_refuses_a_pickled_module(cli, tmp_path):
    import torch
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    result = cli.invoke(args=["model", "convert", str(pickled), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "model.state_dict()" in result.stderr
    assert not (tmp_path / "out").exists()


def test_model_seal_refuses_an_overlong_model_name(cli, tmp_path):
    import torch
    plain = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(3)}, str(plain))
    result = cli.invoke(args=["model", "seal", str(plain), str(tmp_path / "x"), "--model",
                              "m" * 300, "--version", "1"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error:")
