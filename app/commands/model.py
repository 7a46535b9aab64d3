"""model seal | inspect | rewrap: sealed-weights files (security.sealed) from the command line."""

from __future__ import annotations

import mmap
from pathlib import Path

import click
from flask.cli import with_appcontext

from app.commands import emit, fail, say
from app.gateway import current_gateway
from models.convert import ConversionError, convert_to_safetensors, torch_save_kind
from models.weights import WeightsError, validate_safetensors
from security.sealed import SealedFileError, read_header, rewrap_file, seal_file

model_group = click.Group("model", help="Seal, inspect and rewrap model weight files.")
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
