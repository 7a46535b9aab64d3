"""The demo `digits` model: a small MLP trained on scikit-learn's bundled 8x8 digits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from models.zoo import MLP

HIDDEN = (128,)
EPOCHS = 30
BATCH_SIZE = 128
LEARNING_RATE = 5e-3
TEST_FRACTION = 0.25
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class DemoResult:
    """The trained demo: held-out accuracy, the plain safetensors file and its model.toml text."""

    accuracy: float
    safetensors_path: Path
    manifest_text: str


def train_digits(out_dir: Path, *, seed: int = 0) -> DemoResult:
    """Train the digits MLP deterministically and save it as `out_dir/model.safetensors`."""
    from sklearn.datasets import load_digits  # demo-only dependency: imported when used
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    features = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    targets = torch.tensor(digits.target, dtype=torch.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        features, targets, test_size=TEST_FRACTION, random_state=seed, stratify=targets)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(64, list(HIDDEN), 10)
        _fit(model, x_train, y_train, torch.Generator().manual_seed(seed))
    model.eval()
    with torch.inference_mode():
        accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / WEIGHTS_FILE
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})
    return DemoResult(accuracy=accuracy, safetensors_path=path, manifest_text=manifest_text())


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
    """Mini-batch Adam on cross-entropy; the generator fixes the shuffling order."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()


def manifest_text() -> str:
    """The demo's model.toml (CONTRACT §7)."""
    labels = ", ".join(f'"{digit}"' for digit in range(10))
    hidden = ", ".join(str(width) for width in HIDDEN)
    return f"""\
# The demo digits classifier: scikit-learn's 8x8 digits, pixels scaled to 0..1 (value / 16).
architecture = "models.zoo:MLP"
labels = [{labels}]

[arguments]
in_features = 64
hidden = [{hidden}]
out_features = 10

[[inputs]]
name = "pixels"
shape = [-1, 64]
dtype = "float32"

[[outputs]]
name = "logits"
shape = [-1, 10]
dtype = "float32"

[limits]
max_elements = 65536
allow_nonfinite = false
"""
