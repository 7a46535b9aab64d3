"""Model fixtures: tiny real modules, runners built from manifest text, a sealed repository."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from models.manifest import parse_manifest
from models.runner import ModelRunner
from tests.fixtures import MLP_MANIFEST, seal_state, write_model

KEK_ID = "unit-kek"

class Echo(nn.Module):
    """Returns its one input unchanged: outputs show exactly what `prepare` produced."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class SumAndConcat(nn.Module):
    """Two inputs, two outputs, returned as a tuple, list or dict (`returns`)."""

    def __init__(self, returns: str = "tuple"):
        super().__init__()
        self.returns = returns

    def forward(self, a: torch.Tensor, b: torch.Tensor):
        both = torch.cat([a, b], dim=1)
        total = both.sum(dim=1, keepdim=True)
        if self.returns == "dict":
            return {"total": total, "both": both}
        return [total, both] if self.returns == "list" else (total, both)


def echo_manifest(dtype: str = "float32", shape: str = "[-1, 3]", limits: str = "") -> str:
    """A one-input, one-output manifest for Echo."""
    return f"""
architecture = "tests.models.conftest:Echo"
[[inputs]]
name = "x"
shape = {shape}
dtype = "{dtype}"
[[outputs]]
name = "y"
shape = {shape}
dtype = "{dtype}"
{limits}
"""


TWO_INPUT_MANIFEST = """
architecture = "tests.models.conftest:SumAndConcat"
[[inputs]]
name = "a"
shape = [-1, 2]
dtype = "float32"
[[inputs]]
name = "b"
shape = [-1, 1]
dtype = "float32"
[[outputs]]
name = "total"
shape = [-1, 1]
dtype = "float32"
[[outputs]]
name = "both"
shape = [-1, 3]
dtype = "float32"
"""


def make_runner(manifest_text: str, module: nn.Module, name: str = "test",
                device: str = "cpu") -> ModelRunner:
    """A runner straight from manifest text and a live module (no repository, no sealing)."""
    manifest = parse_manifest(tomllib.loads(manifest_text), name)
    return ModelRunner(manifest, module.eval(), torch.device(device), "1")


@pytest.fixture
def kek() -> bytes:
    return os.urandom(32)


@pytest.fixture
def keks(kek) -> dict[str, bytes]:
    return {KEK_ID: kek}


@dataclass(frozen=True)
class RepositoryBuilder:
    """Writes models into a temporary repository, sealing real weights with a random KEK."""

    root: Path
    keks: Mapping[str, bytes]

    def add(self, name: str, manifest: str = MLP_MANIFEST, versions: tuple[str, ...] = ("1",),
            state: Mapping[str, torch.Tensor] | None = None) -> Path:
        """A model directory with its manifest and one sealed file per version."""
        return write_model(self.root, name, kek_id=KEK_ID, kek=self.keks[KEK_ID],
                           manifest=manifest, versions=versions, state=state)

    def seal(self, name: str, version: str, state: Mapping[str, torch.Tensor],
             sealed_for: tuple[str, str] | None = None) -> Path:
        """Seal `state` into name/version (optionally sealed for another slot)."""
        return seal_state(self.root, name, version, state, kek_id=KEK_ID,
                          kek=self.keks[KEK_ID], sealed_for=sealed_for)


@pytest.fixture
def repository(tmp_path, keks) -> RepositoryBuilder:
    root = tmp_path / "model_repository"
    root.mkdir()
    return RepositoryBuilder(root, keks)


@dataclass(frozen=True)
class FakeCuda:
    """Stands in for torch.cuda in device resolution."""

    count: int

    def is_available(self) -> bool:
        return self.count > 0

    def device_count(self) -> int:
        return self.count


@pytest.fixture
def fake_cuda() -> Callable[[int], FakeCuda]:
    return FakeCuda
