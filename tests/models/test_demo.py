"""The demo digits model: trains quickly and well, deterministically, and serves once sealed."""

from __future__ import annotations

import pytest

from models.demo import DemoResult, train_digits
from models.manifest import load_manifest
from models.registry import ModelRegistry
from security.sealed import seal_file
from tests.models.conftest import KEK_ID

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> DemoResult:
    return train_digits(tmp_path_factory.mktemp("demo"), seed=0)


def test_demo_reaches_95_percent_held_out_accuracy(trained):
    assert trained.accuracy >= 0.95
    assert trained.safetensors_path.name == "model.safetensors"


def test_demo_training_is_deterministic(trained, tmp_path):
    again = train_digits(tmp_path, seed=0)
    assert again.accuracy == trained.accuracy
    assert again.safetensors_path.read_bytes() == trained.safetensors_path.read_bytes()


def test_demo_manifest_declares_pixels_logits_and_labels(trained, tmp_path):
    path = tmp_path / "model.toml"
    path.write_text(trained.manifest_text)
    manifest = load_manifest(path, "digits")
    assert manifest.architecture == "models.zoo:MLP"
    inputs = [(s.name, s.shape, s.dtype) for s in manifest.inputs]
    assert inputs == [("pixels", (-1, 64), "float32")]
    assert [(s.name, s.shape) for s in manifest.outputs] == [("logits", (-1, 10))]
    assert manifest.labels == tuple(str(digit) for digit in range(10))


def test_sealed_demo_serves_digits(trained, tmp_path, keks):
    from sklearn.datasets import load_digits

    model_dir = tmp_path / "repository" / "digits"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "model.toml").write_text(trained.manifest_text)
    seal_file(trained.safetensors_path, model_dir / "1" / "model.safetensors.sealed",
              model="digits", version="1", kek_id=KEK_ID, kek=keks[KEK_ID])
    registry = ModelRegistry(tmp_path / "repository", keks, "cpu")
    registry.load_all()
    digits = load_digits()
    reply = registry.get("digits").predict({"inputs": (digits.data[:100] / 16).tolist()})
    right = sum(label == str(target) for label, target in zip(reply["labels"], digits.target,
                                                                strict=False))
    assert registry.failures() == {}
    assert right >= 95
