"""Repository scan and ModelRegistry: good models serve, broken ones are reported, never fatal."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from errors import ModelNotFound, ModelUnavailable
from models.registry import REPOSITORY_KEY, ModelRegistry
from models.repository import default_version, scan_repository
from tests.fixtures import MLP_MANIFEST, tiny_mlp
from tests.models.conftest import KEK_ID, FakeCuda

ROWS = [[0.1, 0.2, 0.3, 0.4]]


def loaded(repository, device: str = "auto", gpus: int = 0) -> ModelRegistry:
    registry = ModelRegistry(repository.root, repository.keks, device, cuda=FakeCuda(gpus))
    registry.load_all()
    return registry


def test_scan_finds_models_and_integer_versions(repository):
    repository.add("digits", versions=("1", "2", "10"))
    (repository.root / "digits" / "v3").mkdir()
    (repository.root / "Bad Name").mkdir()
    (repository.root / ".hidden").mkdir()
    (repository.root / "README.md").write_text("not a model")
    scan = scan_repository(repository.root)
    assert [(m.name, m.versions) for m in scan.models] == [("digits", ("1", "2", "10"))]
    assert any("Bad Name" in line for line in scan.skipped)
    assert any("v3: version directories must be named by integers" in line
               for line in scan.skipped)
    assert not any(".hidden" in line or "README" in line for line in scan.skipped)


@pytest.mark.parametrize(("versions", "declared", "expected"), [
    (("1", "2", "10"), None, "10"),
    (("1", "2", "10"), "2", "2"),
    ((), None, None),
])
def test_default_version_is_declared_or_numerically_highest(versions, declared, expected):
    assert default_version(versions, declared) == expected


def test_good_model_serves_beside_a_tampered_one(repository):
    repository.add("good")
    sealed = repository.add("broken") / "1" / "model.safetensors.sealed"
    data = bytearray(sealed.read_bytes())
    data[-5] ^= 0x01
    sealed.write_bytes(bytes(data))
    registry = loaded(repository)
    assert registry.get("good").predict({"inputs": ROWS})["labels"]
    assert list(registry.failures()) == ["broken/1"]
    assert "SealedFileError" in registry.failures()["broken/1"]
    with pytest.raises(ModelUnavailable):
        registry.get("broken")
    assert registry.describe("broken")["ready"] is False
    assert registry.describe("good")["ready"] is True


def sealed_with_other_kek(repository):
    directory = repository.add("m")
    other = type(repository)(repository.root, {KEK_ID: os.urandom(32)})
    other.seal("m", "1", tiny_mlp().state_dict())
    return directory


def moved_from_other_slot(repository):
    repository.add("m", versions=())
    repository.seal("m", "1", tiny_mlp().state_dict(), sealed_for=("other", "1"))


def not_safetensors(repository):
    directory = repository.add("m", versions=())
    plain = repository.root / "junk.bin"
    plain.write_bytes(b"\x80\x04pickle, never")
    from security.sealed import seal_file
    (directory / "1").mkdir()
    seal_file(plain, directory / "1" / "model.safetensors.sealed", model="m", version="1",
              kek_id=KEK_ID, kek=repository.keks[KEK_ID])


def manifest_with(old: str, new: str):
    return lambda repository: repository.add("m", manifest=MLP_MANIFEST.replace(old, new))


FAILURES = [
    ("wrong KEK", sealed_with_other_kek, "m/1", "SealedFileError"),
    ("sealed for another slot", moved_from_other_slot, "m/1", "sealed for model 'other'"),
    ("sealed file missing", lambda r: (r.add("m", versions=()) / "1").mkdir(), "m/1",
     "model.safetensors.sealed is missing"),
    ("not safetensors", not_safetensors, "m/1", "WeightsError"),
    ("import error", manifest_with("models.zoo:MLP", "models.nowhere:Net"), "m/1",
     "cannot import 'models.nowhere'"),
    ("not a module", manifest_with("models.zoo:MLP", "pathlib:Path"), "m/1",
     "'pathlib:Path' is not a torch.nn.Module subclass"),
    ("bad arguments", manifest_with("hidden = [8]", "hidden = [8]\ndepth = 3"), "m/1",
     "unexpected keyword argument 'depth'"),
    ("state dict mismatch", manifest_with("hidden = [8]", "hidden = [16]"), "m/1",
     "weights do not fit MLP"),
    ("input dtype the weights refuse", manifest_with('dtype = "float32"\n[[outputs]]',
                                                     'dtype = "float64"\n[[outputs]]'), "m/1",
     "RuntimeError: mat1 and mat2 must have the same dtype"),
    ("outputs not as declared", manifest_with('[-1, 3]\ndtype = "float32"',
                                              '[-1, 3]\ndtype = "float64"'), "m/1",
     "has dtype torch.float32, declared float64"),
    ("broken manifest", manifest_with('dtype = "float32"', 'dtype = "float8"'), "m",
     "inputs[0].dtype: unknown dtype 'float8'"),
    ("device unavailable", manifest_with("[arguments]", 'device = "cuda:1"\n[arguments]'), "m",
     "CUDA was requested (cuda:1) but torch.cuda.is_available() is False"),
    ("default version missing", manifest_with("[arguments]", 'default_version = "7"\n[arguments]'),
     "m", "default_version '7' has no directory (versions: 1)"),
    ("no versions", lambda r: r.add("m", versions=()), "m", "no version directories"),
]


@pytest.mark.parametrize(("case", "build", "key", "fragment"), FAILURES,
                         ids=[row[0] for row in FAILURES])
def test_failure_is_recorded_and_the_others_still_load(repository, case, build, key, fragment):
    repository.add("good")
    build(repository)
    registry = loaded(repository)
    assert list(registry.failures()) == [key]
    assert fragment in registry.failures()[key]
    assert registry.names() == ["good", "m"]
    with pytest.raises(ModelUnavailable) as caught:
        registry.get("m")
    assert caught.value.status == 503
    assert registry.get("good").predict({"inputs": ROWS})["outputs"]


def test_failure_logs_carry_no_key_material(repository, caplog):
    sealed_with_other_kek(repository)
    with caplog.at_level(logging.DEBUG):
        loaded(repository)
    kek = repository.keks[KEK_ID]
    assert "failed to load" in caplog.text
    assert kek.hex() not in caplog.text and repr(kek) not in caplog.text


@pytest.mark.parametrize(("name", "version"), [
    ("unknown", None), ("unknown", "1"), ("good", "2"), ("good", "01"), ("good", "latest"),
])
def test_unknown_model_or_version_is_not_found(repository, name, version):
    repository.add("good")
    with pytest.raises(ModelNotFound) as caught:
        loaded(repository).get(name, version)
    assert caught.value.status == 404


def test_known_version_of_a_model_with_broken_manifest_is_unavailable(repository):
    repository.add("m", manifest="architecture = 1\n", versions=("1",))
    registry = loaded(repository)
    with pytest.raises(ModelUnavailable, match="version '1'"):
        registry.get("m", "1")
    with pytest.raises(ModelNotFound):
        registry.get("m", "2")
    description = registry.describe("m")
    assert (description["inputs"], description["ready"]) == ([], False)


def test_versions_and_default_version_are_served(repository):
    repository.add("m", versions=("1", "2", "10"))
    registry = loaded(repository)
    assert registry.get("m").version == "10"
    assert registry.get("m", "2").version == "2"
    assert set(registry.load_seconds()) == {"m/1", "m/2", "m/10"}
    assert all(seconds > 0 for seconds in registry.load_seconds().values())


def test_declared_default_version_wins(repository):
    repository.add("m", manifest='default_version = "1"\n' + MLP_MANIFEST, versions=("1", "2"))
    assert loaded(repository).get("m").version == "1"


def test_describe_is_the_public_model_object(repository):
    repository.add("m", versions=("2", "10"))
    assert loaded(repository).describe("m") == {
        "name": "m",
        "versions": ["2", "10"],
        "default_version": "10",
        "inputs": [{"name": "x", "shape": [-1, 4], "dtype": "float32"}],
        "outputs": [{"name": "scores", "shape": [-1, 3], "dtype": "float32"}],
        "device": "cpu",
        "ready": True,
    }


def test_manifest_device_overrides_the_setting(repository):
    repository.add("pinned", manifest='device = "cpu"\n' + MLP_MANIFEST)
    repository.add("follows")
    registry = loaded(repository, device="cuda", gpus=0)
    assert registry.get("pinned").device == torch.device("cpu")
    assert list(registry.failures()) == ["follows"]
    assert registry.describe("follows")["device"] == "cuda"


def test_weights_are_loaded_exactly(repository):
    repository.add("m")
    module = loaded(repository).get("m").module
    expected = tiny_mlp().state_dict()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in module.state_dict().items())
    assert not module.training


def test_missing_repository_is_reported(tmp_path, keks):
    registry = ModelRegistry(tmp_path / "absent", keks)
    registry.load_all()
    assert registry.names() == []
    assert REPOSITORY_KEY in registry.failures()


def test_unknown_device_setting_is_refused(tmp_path, keks):
    with pytest.raises(ValueError, match="DEVICE"):
        ModelRegistry(tmp_path, keks, "gpu")
