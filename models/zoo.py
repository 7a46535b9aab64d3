"""Built-in architectures that manifests may name (`models.zoo:MLP`)."""

from __future__ import annotations

from itertools import pairwise

from torch import Tensor, nn


class MLP(nn.Module):
    """A multilayer perceptron: Linear layers with ReLU between them."""

    def __init__(self, in_features: int, hidden: list[int] | int, out_features: int):
        super().__init__()
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        sizes = [in_features, *widths, out_features]
        for size in sizes:
            if type(size) is not int or size < 1:
                raise ValueError(f"layer sizes must be positive integers, got {size!r}")
        layers: list[nn.Module] = []
        for i, (width_in, width_out) in enumerate(pairwise(sizes)):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(width_in, width_out))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a batch of feature rows."""
        return self.layers(x)
