"""ModelRegistry: every version of every model loaded once at start-up, read-only afterwards."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from errors import ModelNotFound, ModelUnavailable
from models.architecture import build_module, load_weights
from models.device import CudaProbe, DeviceUnavailable, is_device_setting, resolve_device
from models.manifest import ManifestError, ModelManifest, TensorSpec, load_manifest
from models.repository import ModelEntry, default_version, scan_repository
from models.runner import ModelRunner
from models.weights import load_sealed_state_dict

logger = logging.getLogger(__name__)

REPOSITORY_KEY = "<repository>"
MAX_REASON = 500


@dataclass(frozen=True)
class ModelState:
    """What loading one model directory produced."""

    name: str
    versions: tuple[str, ...]
    default_version: str | None
    manifest: ModelManifest | None
    device: str
    error: str | None
    runners: Mapping[str, ModelRunner]
    errors: Mapping[str, str]
    load_seconds: Mapping[str, float]


def _reason(exc: Exception) -> str:
    """A one-line failure reason for logs and /readyz; never contains key material."""
    text = str(exc).strip().replace("\n", " ") or type(exc).__name__
    if not isinstance(exc, ManifestError | DeviceUnavailable | FileNotFoundError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


class ModelRegistry:
    """The served models; `load_all` once, then `get`/`describe` from any thread."""

    def __init__(self, root: Path, keks: Mapping[str, bytes], device_setting: str = "auto",
                 *, cuda: CudaProbe | None = None):
        if not is_device_setting(device_setting):
            raise ValueError(f"DEVICE must be auto, cpu, cuda or cuda:N, got {device_setting!r}")
        self._root = Path(root)
        self._keks = keks
        self._device_setting = device_setting
        self._cuda = cuda
        self._models: Mapping[str, ModelState] = MappingProxyType({})
        self._problem: str | None = None

    def load_all(self) -> None:
        """Load every version of every model; a failure is recorded, the others still load."""
        try:
            scan = scan_repository(self._root)
        except FileNotFoundError as exc:
            logger.error("model repository unavailable: %s", exc)
            self._models, self._problem = MappingProxyType({}), str(exc)
            return
        for line in scan.skipped:
            logger.warning("model repository entry skipped: %s", line)
        self._models = MappingProxyType({e.name: self._load_model(e) for e in scan.models})
        self._problem = None

    def names(self) -> list[str]:
        """Every model directory found, loaded or not."""
        return sorted(self._models)

    def get(self, name: str, version: str | None = None) -> ModelRunner:
        """The runner of `name` at `version` (default when None): 404 unknown, 503 not loaded."""
        state = self._models.get(name)
        if state is None:
            raise ModelNotFound(name)
        if version is None:
            runner = state.runners.get(state.default_version or "")
            if runner is None:
                raise ModelUnavailable(name, state.default_version or "default")
            return runner
        if version not in state.versions:
            raise ModelNotFound(name, version)
        runner = state.runners.get(version)
        if runner is None:
            raise ModelUnavailable(name, version)
        return runner

    def describe(self, name: str) -> dict[str, Any]:
        """The public description of one model (CONTRACT §5 `GET /models/<name>`)."""
        state = self._models.get(name)
        if state is None:
            raise ModelNotFound(name)
        manifest = state.manifest
        return {
            "name": name,
            "versions": list(state.versions),
            "default_version": state.default_version,
            "inputs": [_spec(s) for s in manifest.inputs] if manifest else [],
            "outputs": [_spec(s) for s in manifest.outputs] if manifest else [],
            "device": state.device,
            "ready": (state.default_version or "") in state.runners,
        }

    def failures(self) -> dict[str, str]:
        """Why things are not served: "name" or "name/version" -> reason (operator-facing)."""
        found = {} if self._problem is None else {REPOSITORY_KEY: self._problem}
        for name, state in self._models.items():
            if state.error is not None:
                found[name] = state.error
            found.update({f"{name}/{v}": reason for v, reason in state.errors.items()})
        return found

    def load_seconds(self) -> dict[str, float]:
        """Seconds each "name/version" took to load (decrypt, build, warm up), failed or not."""
        return {f"{name}/{version}": seconds for name, state in self._models.items()
                for version, seconds in state.load_seconds.items()}

    # --- what start-up reports (app/startup.py) ---

    def loaded_versions(self) -> list[tuple[str, str, str]]:
        """(name, version, device) of every version that serves, in name and version order."""
        return [(name, version, state.device) for name, state in sorted(self._models.items())
                for version in sorted(state.runners, key=int)]

    def _load_model(self, entry: ModelEntry) -> ModelState:
        try:
            manifest = load_manifest(entry.manifest_path, entry.name)
        except ManifestError as exc:
            return self._failed(entry, None, self._device_setting, _reason(exc))
        default = default_version(entry.versions, manifest.default_version)
        try:
            device = resolve_device(self._device_setting, manifest.device, cuda=self._cuda)
        except DeviceUnavailable as exc:
            requested = manifest.device if manifest.device not in (None, "auto") else None
            return self._failed(entry, manifest, requested or self._device_setting, _reason(exc))
        runners: dict[str, ModelRunner] = {}
        errors: dict[str, str] = {}
        seconds: dict[str, float] = {}
        for version in entry.versions:
            started = time.perf_counter()
            try:
                runners[version] = self._load_version(entry, manifest, version, device)
            except Exception as exc:  # any failure leaves this version unserved, others load
                errors[version] = _reason(exc)
                logger.error("model %s version %s failed to load: %s",
                             entry.name, version, errors[version])
            seconds[version] = time.perf_counter() - started
        error = _default_problem(entry.versions, default)
        if error is not None:
            logger.error("model %s is not ready: %s", entry.name, error)
        return ModelState(entry.name, entry.versions, default, manifest, str(device), error,
                          MappingProxyType(runners), MappingProxyType(errors),
                          MappingProxyType(seconds))

    def _load_version(self, entry: ModelEntry, manifest: ModelManifest, version: str,
                      device: torch.device) -> ModelRunner:
        path = entry.weights_path(version)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
        module = build_module(manifest.architecture, manifest.arguments)
        state = load_sealed_state_dict(path, self._keks, model=entry.name, version=version,
                                       device=device)
        runner = ModelRunner(manifest, load_weights(module, state, device), device, version)
        runner.warm_up()
        return runner

    def _failed(self, entry: ModelEntry, manifest: ModelManifest | None, device: str,
                reason: str) -> ModelState:
        logger.error("model %s failed to load: %s", entry.name, reason)
        declared = manifest.default_version if manifest else None
        return ModelState(entry.name, entry.versions, default_version(entry.versions, declared),
                          manifest, device, reason, MappingProxyType({}), MappingProxyType({}),
                          MappingProxyType({}))


def _default_problem(versions: tuple[str, ...], default: str | None) -> str | None:
    if not versions:
        return "no version directories (<name>/<integer>/model.safetensors.sealed)"
    if default not in versions:
        return f"default_version {default!r} has no directory (versions: {', '.join(versions)})"
    return None


def _spec(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype}
