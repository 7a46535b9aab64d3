"""Device choice: DEVICE and the manifest's `device`, with CUDA faked; real CUDA when present."""

from __future__ import annotations

import pytest
import torch

from models.device import DeviceUnavailable, resolve_device
from models.output_policy import FULL_SCORES
from tests.fixtures import MLP_MANIFEST, tiny_mlp
from tests.models.conftest import FakeCuda, make_runner

CHOICES = [
    ("auto without CUDA", "auto", None, 0, "cpu"),
    ("auto with CUDA", "auto", None, 2, "cuda:0"),
    ("cpu even with CUDA", "cpu", None, 2, "cpu"),
    ("cuda means cuda:0", "cuda", None, 1, "cuda:0"),
    ("cuda:N", "cuda:1", None, 2, "cuda:1"),
    ("manifest cuda:N beats DEVICE=cpu", "cpu", "cuda:1", 2, "cuda:1"),
    ("manifest cpu beats DEVICE=cuda", "cuda", "cpu", 1, "cpu"),
    ("manifest auto defers to DEVICE", "cpu", "auto", 2, "cpu"),
    ("auto everywhere without CUDA", "auto", "auto", 0, "cpu"),
]


@pytest.mark.parametrize(("case", "setting", "manifest", "gpus", "expected"), CHOICES,
                         ids=[row[0] for row in CHOICES])
def test_device_choice(case, setting, manifest, gpus, expected):
    assert resolve_device(setting, manifest, cuda=FakeCuda(gpus)) == torch.device(expected)


REFUSALS = [
    ("cuda requested, none present", "cuda", None, 0,
     "CUDA was requested (cuda) but torch.cuda.is_available() is False"),
    ("manifest cuda:1, none present", "cpu", "cuda:1", 0,
     "CUDA was requested (cuda:1) but torch.cuda.is_available() is False"),
    ("cuda:N out of range", "cuda:2", None, 2,
     "CUDA device 2 was requested (cuda:2) but only 2 are visible (cuda:0..cuda:1)"),
    ("manifest cuda:N out of range", "auto", "cuda:1", 1,
     "CUDA device 1 was requested (cuda:1) but only 1 is visible"),
]


@pytest.mark.parametrize(("case", "setting", "manifest", "gpus", "message"), REFUSALS,
                         ids=[row[0] for row in REFUSALS])
def test_unavailable_device_is_refused(case, setting, manifest, gpus, message):
    with pytest.raises(DeviceUnavailable) as caught:
        resolve_device(setting, manifest, cuda=FakeCuda(gpus))
    assert message in str(caught.value)


def test_unknown_setting_is_a_value_error():
    with pytest.raises(ValueError, match="unknown device setting 'gpu'"):
        resolve_device("gpu", None, cuda=FakeCuda(1))


def test_torch_cuda_is_asked_by_default(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", None) == torch.device("cpu")
    with pytest.raises(DeviceUnavailable):
        resolve_device("cuda", None)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.cuda.is_available() is False")
def test_real_cuda_inference_matches_cpu():
    device = resolve_device("auto", None)
    assert device == torch.device("cuda", 0)
    runner = make_runner(MLP_MANIFEST, tiny_mlp().to(device), device="cuda:0")
    rows = [[0.1, 0.2, 0.3, 0.4], [-1, 0, 1, 2]]
    batch = runner.prepare({"inputs": rows})
    assert batch["x"].device.type == "cuda"
    outputs = runner.forward(batch)
    assert outputs["scores"].device.type == "cuda"
    expected = tiny_mlp()(torch.tensor(rows))
    rendered = runner.render(FULL_SCORES.apply(outputs, None), named=False)
    assert torch.allclose(torch.tensor(rendered["outputs"]), expected, atol=1e-4)
