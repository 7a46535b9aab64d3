"""model seal | inspect | rewrap: sealed-weights files (security.sealed) from the command line."""

from __future__ import annotations

import mmap
from pathlib import Path

import click
from flask.cli import with_appcontext

from app.commands import audit_cli_action, cli_subject, emit, fail, say
from app.gateway import current_gateway
from errors import GatewayError
from models.convert import ConversionError, convert_to_safetensors, torch_save_kind
from models.weights import WeightsError, validate_safetensors
from security.sealed import SealedFileError, read_header, rewrap_file, seal_file

model_group = click.Group("model", help="Seal, inspect and rewrap weight files; load, unload "
                                        "and reload models on the running gateway.")
existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)


def choose_kek(kek_id: str | None) -> tuple[str, bytes]:
    """The KEK named by --kek-id, or the only one configured."""
    keks = current_gateway().settings.model_keys
    if kek_id is None:
        if len(keks) != 1:
            fail(f"several MODEL_KEYS are set ({', '.join(keks)}): name one with --kek-id")
        kek_id = next(iter(keks))
    if kek_id not in keks:
        fail(f"no key-encryption key {kek_id!r} in MODEL_KEYS")
    return kek_id, keks[kek_id]


def check_safetensors(path: Path) -> None:
    """Refuse anything but safetensors (pickle-based torch files above all) before sealing."""
    with path.open("rb") as handle:
        kind = torch_save_kind(handle.read(4))
    if kind is not None:
        what = "a zip archive holding a pickle" if kind == "zip" else "a pickle"
        fail(f"{path} is a torch.save file ({what}), not safetensors: convert it first with "
             f"`torchgate model convert {path} {path.with_suffix('.safetensors')}` "
             "(docs/models.md)")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        try:
            validate_safetensors(memoryview(m))
        except WeightsError as exc:
            fail(f"{path} is not a safetensors file: {exc}")


@model_group.command("seal")
@click.argument("src", type=existing_file)
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model_name", required=True, help="The model's name (its directory).")
@click.option("--version", required=True, help="The version directory: 1, 2, ...")
@click.option("--kek-id", default=None, help="A MODEL_KEYS id; the only one when omitted.")
@with_appcontext
def seal(src: Path, dest: Path, model_name: str, version: str, kek_id: str | None) -> None:
    """Seal a safetensors file for one model version (refuses pickles)."""
    if not version.isdigit():
        fail("--version must be a whole number (version directories are named 1, 2, ...)")
    if src.stat().st_size == 0:
        fail(f"{src} is empty, not a safetensors file")
    check_safetensors(src)
    kek_id, kek = choose_kek(kek_id)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        header = seal_file(src, dest, model=model_name, version=version, kek_id=kek_id, kek=kek)
    except SealedFileError as exc:
        fail(str(exc))
    say(f"sealed {src} -> {dest}")
    emit(header.describe())


@model_group.command("convert")
@click.argument("src", type=existing_file)
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
def convert(src: Path, dest: Path) -> None:
    """Convert a torch.save state dict (.pt, .pth, .bin) to safetensors, reading tensors only."""
    try:
        names = convert_to_safetensors(src, dest)
    except ConversionError as exc:
        fail(str(exc))
    say(f"converted {src} -> {dest} ({len(names)} tensors); seal {dest} next")
    emit({"source": str(src), "safetensors": str(dest), "tensors": names})


@model_group.command("inspect")
@click.argument("file", type=existing_file)
def inspect(file: Path) -> None:
    """Print a sealed file's header as JSON (no secrets)."""
    try:
        emit(read_header(file).describe())
    except SealedFileError as exc:
        fail(str(exc))


@model_group.command("rewrap")
@click.argument("file", type=existing_file)
@click.option("--kek-id", required=True)
@with_appcontext
def rewrap(file: Path, kek_id: str) -> None:
    """Rewrap a sealed file's data key under another KEK; the body stays as it is."""
    choose_kek(kek_id)
    try:
        header = rewrap_file(file, current_gateway().settings.model_keys, kek_id)
    except SealedFileError as exc:
        fail(str(exc))
    say(f"rewrapped {file} under {kek_id}")
    emit(header.describe())


def _record_change(action: str, name: str | None = None, version: str | None = None) -> None:
    """Record a model change for every worker and node, audited like a request."""
    from app.management import model_admin

    command = model_admin().record(action, name, version, cli_subject())
    audit_cli_action(f"model.{action}", name, version)
    seconds = current_gateway().settings.model_sync_interval
    say(f"recorded; every worker and node applies it within {seconds} s of its next request")
    emit(command.to_json())


@model_group.command("load")
@click.argument("name")
@click.argument("version")
@with_appcontext
def load(name: str, version: str) -> None:
    """Load (or load again) NAME's VERSION from the repository on the running gateway.

    It is loaded here first (decrypted, built, smoke-tested), so a version that cannot serve is
    refused before any worker tries it."""
    try:
        current_gateway().registry.load_version(name, version)
    except GatewayError as exc:
        fail(exc.detail)
    _record_change("load", name, version)


@model_group.command("unload")
@click.argument("name")
@click.argument("version")
@with_appcontext
def unload(name: str, version: str) -> None:
    """Stop serving NAME's VERSION on the running gateway (requests in flight finish)."""
    directory = current_gateway().settings.model_repository / name / version
    if not directory.is_dir():
        fail(f"no version {version!r} of model {name!r} in the repository")
    _record_change("unload", name, version)


@model_group.command("reload")
@with_appcontext
def reload() -> None:
    """Scan and load the whole repository again on the running gateway."""
    _record_change("reload")
