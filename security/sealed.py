"""Sealed weights: envelope-encrypted, chunked AES-256-GCM (STREAM); see docs/sealed-format.md.

A fresh data key per file, wrapped by a key-encryption key (KEK) named by id; the body is
decrypted chunk by chunk straight into one buffer, so plaintext never touches the disk.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from Crypto.Random import get_random_bytes

from security import aead
from security.sealed_header import (
    DEFAULT_CHUNK_SIZE,
    KEY_SIZE,
    TAG_SIZE,
    WRAP_NONCE_SIZE,
    SealedFileError,
    SealedHeader,
    kek_for,
    new_header,
    parse_header,
    unwrap_data_key,
    wrap_data_key,
)

_COPY_BLOCK = 1024 * 1024
_THREADS = 0  # pycryptodome spreads each long GCM call over all cores; loading is worth them

def seal_bytes(plaintext: bytes | memoryview, *, model: str, version: str, kek_id: str,
               kek: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE,
               _data_key: bytes | None = None, _nonce_prefix: bytes | None = None,
               _wrap_nonce: bytes | None = None) -> bytes:
    """Seal in memory; the underscored arguments are hooks for the deterministic test vector."""
    source = io.BytesIO(plaintext)
    data_key = _data_key if _data_key is not None else get_random_bytes(KEY_SIZE)
    header = new_header(memoryview(plaintext).nbytes, model=model, version=version, kek_id=kek_id,
                         kek=kek, chunk_size=chunk_size, data_key=data_key,
                         nonce_prefix=_nonce_prefix, wrap_nonce=_wrap_nonce)
    out = io.BytesIO()
    out.write(header.to_bytes())
    _encrypt_body(header, data_key, source, out)
    return out.getvalue()


def seal_file(src: Path, dest: Path, *, model: str, version: str, kek_id: str, kek: bytes,
              chunk_size: int = DEFAULT_CHUNK_SIZE) -> SealedHeader:
    """Seal src into dest chunk by chunk; dest appears atomically, complete or not at all."""
    with open(src, "rb", buffering=0) as source:
        data_key = get_random_bytes(KEY_SIZE)
        header = new_header(os.fstat(source.fileno()).st_size, model=model, version=version,
                             kek_id=kek_id, kek=kek, chunk_size=chunk_size, data_key=data_key)

        def write(out: BinaryIO) -> None:
            out.write(header.to_bytes())
            _encrypt_body(header, data_key, source, out)

        _write_atomically(dest, write)
    return header


def read_header(path: Path) -> SealedHeader:
    """Parse the header without any key: for inspection, nothing in it is authenticated yet."""
    with open(path, "rb") as stream:
        return parse_header(stream)


def open_sealed(path: Path, keks: Mapping[str, bytes], *, model: str,
                version: str) -> bytearray:
    """Authenticate and decrypt the whole file into one preallocated buffer, or raise."""
    with open(path, "rb", buffering=0) as stream:
        header = parse_header(stream)
        data_key = unwrap_data_key(header, keks)
        if (header.model, header.version) != (model, version):
            raise SealedFileError(
                f"file is sealed for model {header.model!r} version {header.version!r}, "
                f"not model {model!r} version {version!r}")
        _check_body_length(header, os.fstat(stream.fileno()).st_size - stream.tell())
        plaintext = bytearray(header.plaintext_length)
        try:
            _decrypt_body(header, data_key, stream, memoryview(plaintext))
        except SealedFileError:
            plaintext[:] = bytes(len(plaintext))  # no partial plaintext outlives a refusal
            raise
    return plaintext


def rewrap_file(path: Path, keks: Mapping[str, bytes], new_kek_id: str) -> SealedHeader:
    """Wrap the data key under another KEK; only the key part changes, the body is copied as is."""
    with open(path, "rb") as stream:
        header = parse_header(stream)
        data_key = unwrap_data_key(header, keks)
        new_header = wrap_data_key(header, data_key, new_kek_id, kek_for(keks, new_kek_id),
                           get_random_bytes(WRAP_NONCE_SIZE))

        def write(out: BinaryIO) -> None:
            out.write(new_header.to_bytes())
            while block := stream.read(_COPY_BLOCK):
                out.write(block)

        _write_atomically(path, write)
    return new_header


def _check_body_length(header: SealedHeader, found: int) -> None:
    expected = header.plaintext_length + header.chunks * TAG_SIZE
    if found < expected:
        raise SealedFileError(f"body is truncated: {header.chunks} chunks need {expected} "
                              f"bytes, the file has {found}")
    if found > expected:
        raise SealedFileError(f"file has {found - expected} trailing bytes after the last chunk")


def _chunks(header: SealedHeader) -> Iterator[tuple[int, int, int, bytes]]:
    """(index, plaintext offset, plaintext size, STREAM nonce) of every chunk."""
    for index in range(header.chunks):
        offset = index * header.chunk_size
        last = b"\x01" if index == header.chunks - 1 else b"\x00"
        nonce = header.nonce_prefix + struct.pack(">I", index) + last
        yield index, offset, min(header.chunk_size, header.plaintext_length - offset), nonce


def _encrypt_body(header: SealedHeader, data_key: bytes, source: BinaryIO,
                  out: BinaryIO) -> None:
    aad = header.fixed_part()
    scratch = memoryview(bytearray(2 * min(header.chunk_size, header.plaintext_length)))
    plain, sealed = scratch[:len(scratch) // 2], scratch[len(scratch) // 2:]
    for _, _, size, nonce in _chunks(header):
        if _read_into(source, plain[:size]) != size:
            raise SealedFileError("the source shrank while it was being sealed")
        tag = aead.seal_into(data_key, nonce, plain[:size], sealed[:size], aad, _THREADS)
        out.write(sealed[:size])
        out.write(tag)
    if source.read(1):
        raise SealedFileError("the source grew while it was being sealed")


def _decrypt_body(header: SealedHeader, data_key: bytes, stream: BinaryIO,
                  plaintext: memoryview) -> None:
    aad = header.fixed_part()
    scratch = memoryview(bytearray(min(header.chunk_size, header.plaintext_length) + TAG_SIZE))
    for index, offset, size, nonce in _chunks(header):
        if _read_into(stream, scratch[:size + TAG_SIZE]) != size + TAG_SIZE:
            raise SealedFileError(f"file shrank while chunk {index + 1} was read")
        try:
            aead.open_into(data_key, nonce, scratch[:size], scratch[size:size + TAG_SIZE],
                           plaintext[offset:offset + size], aad, _THREADS)
        except aead.AeadError:
            raise SealedFileError(f"chunk {index + 1} of {header.chunks} failed "
                                  "authentication (edited, reordered or foreign)") from None


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    """Fill view from stream across short reads; it comes back short only at end of file."""
    filled = 0
    while filled < len(view) and (count := stream.readinto(view[filled:])):
        filled += count
    return filled


def _write_atomically(dest: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temporary file beside dest, fsync, then rename it over dest."""
    directory = Path(dest).parent
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(dest).name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # ciphertext: as readable as any other model file
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
