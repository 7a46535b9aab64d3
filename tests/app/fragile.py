"""A test architecture: it loads and passes the smoke test, then breaks on batches of two."""

from __future__ import annotations

import torch


class Fragile(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 1:
            raise RuntimeError("internal detail that must never reach a client")
        return self.linear(x)
