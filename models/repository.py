"""The on-disk model repository: `<root>/<name>/model.toml` and `<root>/<name>/<version>/`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
VERSION_NAME = re.compile(r"0|[1-9][0-9]*")
MANIFEST_FILE = "model.toml"
WEIGHTS_FILE = "model.safetensors.sealed"


@dataclass(frozen=True)
class ModelEntry:
    """One model directory: its manifest path and its integer versions, lowest first."""

    name: str
    directory: Path
    versions: tuple[str, ...]

    @property
    def manifest_path(self) -> Path:
        """Where the model's manifest lives."""
        return self.directory / MANIFEST_FILE

    def weights_path(self, version: str) -> Path:
        """Where the sealed weights of `version` live."""
        return self.directory / version / WEIGHTS_FILE


@dataclass(frozen=True)
class RepositoryScan:
    """What a scan found: the models, and the entries it skipped with the reason."""

    models: tuple[ModelEntry, ...]
    skipped: tuple[str, ...]


def is_model_name(text: str) -> bool:
    """True for names the repository (and the URL space) accepts."""
    return MODEL_NAME.fullmatch(text) is not None


def is_version_name(text: str) -> bool:
    """True for canonical non-negative integers: "0", "1", "12" (not "01")."""
    return VERSION_NAME.fullmatch(text) is not None


def scan_repository(root: Path) -> RepositoryScan:
    """List the model directories under `root`; a missing root is an error, not an empty list."""
    if not root.is_dir():
        raise FileNotFoundError(f"model repository {root} is not a directory")
    models: list[ModelEntry] = []
    skipped: list[str] = []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not path.is_dir():
            continue
        if not is_model_name(path.name):
            skipped.append(f"{path}: model names must match [a-z0-9][a-z0-9_.-]*")
            continue
        versions, odd = _scan_versions(path)
        models.append(ModelEntry(name=path.name, directory=path, versions=versions))
        skipped.extend(odd)
    return RepositoryScan(models=tuple(models), skipped=tuple(skipped))


def _scan_versions(directory: Path) -> tuple[tuple[str, ...], list[str]]:
    versions: list[str] = []
    skipped: list[str] = []
    for path in directory.iterdir():
        if path.name.startswith(".") or not path.is_dir():
            continue
        if is_version_name(path.name):
            versions.append(path.name)
        else:
            skipped.append(f"{path}: version directories must be named by integers (1, 2, ...)")
    return tuple(sorted(versions, key=int)), sorted(skipped)


def default_version(versions: tuple[str, ...], declared: str | None) -> str | None:
    """The manifest's default_version when given, else the numerically highest version."""
    if declared is not None:
        return declared
    return max(versions, key=int) if versions else None
