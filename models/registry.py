"""ModelRegistry: every version of every model loaded once at start-up, read-only afterwards."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from errors import InvalidRequest, ModelLoadFailed, ModelNotFound, ModelUnavailable
from models.architecture import build_module, load_weights
from models.batcher import Batcher
from models.device import CudaProbe, DeviceUnavailable, is_device_setting, resolve_device
from models.manifest import ManifestError, ModelManifest, TensorSpec, load_manifest
from models.repository import ModelEntry, default_version, scan_repository
from models.runner import ModelRunner
from models.weights import state_dict_from_buffer
from security.attributes import NO_ATTRIBUTES, Attributes
from security.sealed import open_sealed

logger = logging.getLogger(__name__)

REPOSITORY_KEY = "<repository>"
MAX_REASON = 500
OnBatch = Callable[[str, str, int, int], None]
"""on_batch(model, version, rows, requests): once per forward pass of a batching model."""


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
                 *, cuda: CudaProbe | None = None, on_batch: OnBatch | None = None):
        if not is_device_setting(device_setting):
            raise ValueError(f"DEVICE must be auto, cpu, cuda or cuda:N, got {device_setting!r}")
        self._root = Path(root)
        self._keks = keks
        self._device_setting = device_setting
        self._cuda = cuda
        self._on_batch = on_batch
        self._models: Mapping[str, ModelState] = MappingProxyType({})
        self._problem: str | None = None
        self._changes = threading.Lock()  # one run-time change at a time (load/unload/reload)

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

    def manifest(self, name: str) -> ModelManifest | None:
        """The model's manifest as served now; None when unknown or unreadable."""
        state = self._models.get(name)
        return state.manifest if state is not None else None

    def attributes(self, name: str) -> Attributes:
        """The model's [attributes]; none when unknown, so that every condition on them fails."""
        manifest = self.manifest(name)
        return manifest.attributes if manifest is not None else NO_ATTRIBUTES

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

    # --- changes at run time (models/admin.py): build a new mapping, then swap the reference ---
    # Readers never lock: a request keeps the runner it got from `get`, so it finishes on the
    # version it started with; the next `get` sees the new mapping.

    def reload_all(self) -> None:
        """Scan and load the whole repository again, then swap it in (load_all builds anew)."""
        with self._changes:
            self.load_all()

    def load_version(self, name: str, version: str) -> None:
        """Load (or load again) one version from the repository; raises when it cannot serve."""
        with self._changes:
            entry = self._entry(name, version)
            started = time.perf_counter()
            try:
                manifest = load_manifest(entry.manifest_path, name)
                device = resolve_device(self._device_setting, manifest.device, cuda=self._cuda)
                runner = self._load_version(entry, manifest, version, device)
            except Exception as exc:  # the reason goes back to the administrator
                raise ModelLoadFailed(name, version, _reason(exc)) from None
            self._swap(name, _with_version(self._models.get(name), name, manifest, str(device),
                                           runner, time.perf_counter() - started))

    def unload_version(self, name: str, version: str) -> None:
        """Stop serving one version (404 from then on); the default version stays."""
        with self._changes:
            current = self._models.get(name)
            if current is None or version not in current.versions:
                raise ModelNotFound(name, version)
            if version == current.default_version and len(current.versions) > 1:
                raise InvalidRequest(f"Version {version} is {name}'s default: change "
                                     "default_version in model.toml and reload first.")
            versions = tuple(v for v in current.versions if v != version)
            if not versions:
                self._swap(name, None)
                return
            self._swap(name, dataclasses.replace(
                current, versions=versions,
                runners=MappingProxyType({v: r for v, r in current.runners.items()
                                          if v != version}),
                errors=MappingProxyType({v: r for v, r in current.errors.items()
                                         if v != version})))

    def _entry(self, name: str, version: str) -> ModelEntry:
        scan = scan_repository(self._root)
        entry = next((e for e in scan.models if e.name == name), None)
        if entry is None or version not in entry.versions:
            raise ModelNotFound(name, version)
        return entry

    def _swap(self, name: str, state: ModelState | None) -> None:
        models = {k: v for k, v in self._models.items() if k != name}
        if state is not None:
            models[name] = state
        self._models = MappingProxyType(dict(sorted(models.items())))

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
        weights = open_sealed(path, self._keks, model=entry.name, version=version)
        state = state_dict_from_buffer(weights, device)
        runner = ModelRunner(manifest, load_weights(module, state, device), device, version,
                             weights_sha256=hashlib.sha256(weights).hexdigest())
        runner.warm_up()
        if manifest.batching is None:
            return runner
        observer = None if self._on_batch is None else partial(self._on_batch, entry.name, version)
        return replace(runner, batcher=Batcher(runner.forward, manifest.batching, observer))

    def _failed(self, entry: ModelEntry, manifest: ModelManifest | None, device: str,
                reason: str) -> ModelState:
        logger.error("model %s failed to load: %s", entry.name, reason)
        declared = manifest.default_version if manifest else None
        return ModelState(entry.name, entry.versions, default_version(entry.versions, declared),
                          manifest, device, reason, MappingProxyType({}), MappingProxyType({}),
                          MappingProxyType({}))


def _with_version(current: ModelState | None, name: str, manifest: ModelManifest, device: str,
                  runner: ModelRunner, seconds: float) -> ModelState:
    """`current` (or a new state) serving `runner` as its version, under the new manifest."""
    version = runner.version
    versions = tuple(sorted({*(current.versions if current else ()), version}, key=int))
    default = default_version(versions, manifest.default_version)
    old_errors = current.errors if current else {}
    return ModelState(
        name, versions, default, manifest, device, _default_problem(versions, default),
        MappingProxyType({**(current.runners if current else {}), version: runner}),
        MappingProxyType({v: r for v, r in old_errors.items() if v != version}),
        MappingProxyType({**(current.load_seconds if current else {}), version: seconds}))


def _default_problem(versions: tuple[str, ...], default: str | None) -> str | None:
    if not versions:
        return "no version directories (<name>/<integer>/model.safetensors.sealed)"
    if default not in versions:
        return f"default_version {default!r} has no directory (versions: {', '.join(versions)})"
    return None


def _spec(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype}
