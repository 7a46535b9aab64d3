"""Where a model runs: the DEVICE setting and a manifest's `device` resolved to a torch.device."""

from __future__ import annotations

import re
from typing import Protocol

import torch

DEVICE_SETTING = re.compile(r"auto|cpu|cuda(:(0|[1-9][0-9]*))?")


class DeviceUnavailable(Exception):
    """The requested device does not exist on this machine."""


class CudaProbe(Protocol):
    """What device resolution asks of CUDA; `torch.cuda` satisfies it, tests pass a fake."""

    def is_available(self) -> bool: ...

    def device_count(self) -> int: ...


def is_device_setting(text: str) -> bool:
    """True for `auto`, `cpu`, `cuda` and `cuda:N`."""
    return DEVICE_SETTING.fullmatch(text) is not None


def resolve_device(
    setting: str, manifest_device: str | None, *, cuda: CudaProbe | None = None
) -> torch.device:
    """The device for one model: the manifest wins unless it is absent or `auto`."""
    requested = setting if manifest_device in (None, "auto") else manifest_device
    if not is_device_setting(requested):
        raise ValueError(f"unknown device setting {requested!r} (auto, cpu, cuda or cuda:N)")
    probe = torch.cuda if cuda is None else cuda
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "auto":
        return torch.device("cuda", 0) if probe.is_available() else torch.device("cpu")
    index = int(requested.partition(":")[2] or 0)
    if not probe.is_available():
        raise DeviceUnavailable(
            f"CUDA was requested ({requested}) but torch.cuda.is_available() is False"
        )
    count = probe.device_count()
    if index >= count:
        raise DeviceUnavailable(
            f"CUDA device {index} was requested ({requested}) but only {count} "
            f"{'is' if count == 1 else 'are'} visible (cuda:0..cuda:{count - 1})"
        )
    return torch.device("cuda", index)
