"""A test-only architecture whose forward pass takes as long as the request asks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import Tensor, nn

MAX_SLEEP = 20.0
STARTED_DIR = "OPS_SLEEPY_STARTED_DIR"  # where forward() leaves a file when a sleep begins

SLEEPY_MANIFEST = """
architecture = "tests.ops.slow_model:Sleepy"
[arguments]
in_features = 4
out_features = 3
[[inputs]]
name = "x"
shape = [-1, 4]
dtype = "float32"
[[outputs]]
name = "scores"
shape = [-1, 3]
dtype = "float32"
"""


class Sleepy(nn.Module):
    """Sleeps x[0, 0] seconds (0 for the all-zeros warm-up, at most 20), then one Linear layer."""

    def __init__(self, in_features: int = 4, out_features: int = 3):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        seconds = min(max(float(x[0, 0]), 0.0), MAX_SLEEP)
        if seconds and os.environ.get(STARTED_DIR):
            Path(os.environ[STARTED_DIR], f"started-{os.getpid()}").touch()
        time.sleep(seconds)
        return self.linear(x)


def sleepy_state() -> dict[str, Tensor]:
    """Fixed weights for Sleepy, to seal."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Sleepy().state_dict()
