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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from Crypto.Cipher import AES
from Crypto.Random import get_random_bytes

MAGIC = b"\x89TGSEAL\n"
FORMAT_VERSION = 1
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024  # loads ~30% faster than 1 MiB: benchmarks/README.md
MIN_CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 64 * 1024 * 1024
MAX_CHUNKS = 2**32  # the chunk counter is 32 bits
KEY_SIZE = 32
TAG_SIZE = 16
PREFIX_SIZE = 7
WRAP_NONCE_SIZE = 12
WRAPPED_KEY_SIZE = WRAP_NONCE_SIZE + KEY_SIZE + TAG_SIZE
_COPY_BLOCK = 1024 * 1024
_THREADS = 0  # pycryptodome spreads each long GCM call over all cores; loading is worth them


class SealedFileError(Exception):
    """A sealed file that cannot be written, read or trusted; the message names the failed check."""


@dataclass(frozen=True)
class SealedHeader:
    """The header of a sealed file; wrapped_key is wrap nonce ‖ encrypted data key ‖ tag."""

    format_version: int
    model: str
    version: str
    chunk_size: int
    nonce_prefix: bytes
    plaintext_length: int
    kek_id: str
    wrapped_key: bytes

    @property
    def chunks(self) -> int:
        """Number of body chunks: at least one, so empty plaintext is one empty last chunk."""
        return max(1, -(-self.plaintext_length // self.chunk_size))

    def fixed_part(self) -> bytes:
        """Magic through plaintext length: the AAD of every chunk."""
        return b"".join((
            MAGIC, struct.pack(">H", self.format_version),
            _short_string(self.model, "model"), _short_string(self.version, "version"),
            struct.pack(">I", self.chunk_size), self.nonce_prefix,
            struct.pack(">Q", self.plaintext_length),
        ))

    def wrap_aad(self) -> bytes:
        """Every header byte before the encrypted data key: the AAD of the key wrapping."""
        return (self.fixed_part() + _short_string(self.kek_id, "kek_id")
                + self.wrapped_key[:WRAP_NONCE_SIZE])

    def to_bytes(self) -> bytes:
        return self.wrap_aad() + self.wrapped_key[WRAP_NONCE_SIZE:]

    def describe(self) -> dict:
        """What `model inspect` prints: JSON-able, nothing secret."""
        return {
            "format_version": self.format_version, "model": self.model, "version": self.version,
            "chunk_size": self.chunk_size, "plaintext_length": self.plaintext_length,
            "chunks": self.chunks, "kek_id": self.kek_id,
        }


def seal_bytes(plaintext: bytes | memoryview, *, model: str, version: str, kek_id: str,
               kek: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE,
               _data_key: bytes | None = None, _nonce_prefix: bytes | None = None,
               _wrap_nonce: bytes | None = None) -> bytes:
    """Seal in memory; the underscored arguments are hooks for the deterministic test vector."""
    source = io.BytesIO(plaintext)
    data_key = _data_key if _data_key is not None else get_random_bytes(KEY_SIZE)
    header = _new_header(memoryview(plaintext).nbytes, model=model, version=version, kek_id=kek_id,
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
        header = _new_header(os.fstat(source.fileno()).st_size, model=model, version=version,
                             kek_id=kek_id, kek=kek, chunk_size=chunk_size, data_key=data_key)

        def write(out: BinaryIO) -> None:
            out.write(header.to_bytes())
            _encrypt_body(header, data_key, source, out)

        _write_atomically(dest, write)
    return header


def read_header(path: Path) -> SealedHeader:
    """Parse the header without any key: for inspection, nothing in it is authenticated yet."""
    with open(path, "rb") as stream:
        return _parse_header(stream)


def open_sealed(path: Path, keks: Mapping[str, bytes], *, model: str,
                version: str) -> bytearray:
    """Authenticate and decrypt the whole file into one preallocated buffer, or raise."""
    with open(path, "rb", buffering=0) as stream:
        header = _parse_header(stream)
        data_key = _unwrap(header, keks)
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
        header = _parse_header(stream)
        data_key = _unwrap(header, keks)
        new_header = _wrap(header, data_key, new_kek_id, _kek(keks, new_kek_id),
                           get_random_bytes(WRAP_NONCE_SIZE))

        def write(out: BinaryIO) -> None:
            out.write(new_header.to_bytes())
            while block := stream.read(_COPY_BLOCK):
                out.write(block)

        _write_atomically(path, write)
    return new_header


def _new_header(length: int, *, model: str, version: str, kek_id: str, kek: bytes,
                chunk_size: int, data_key: bytes, nonce_prefix: bytes | None = None,
                wrap_nonce: bytes | None = None) -> SealedHeader:
    """Check the sealing arguments and build the header with the data key wrapped under kek."""
    prefix = get_random_bytes(PREFIX_SIZE) if nonce_prefix is None else bytes(nonce_prefix)
    nonce = get_random_bytes(WRAP_NONCE_SIZE) if wrap_nonce is None else bytes(wrap_nonce)
    if (len(prefix), len(nonce), len(data_key)) != (PREFIX_SIZE, WRAP_NONCE_SIZE, KEY_SIZE):
        raise SealedFileError(f"nonce prefix, wrap nonce and data key must be {PREFIX_SIZE}, "
                              f"{WRAP_NONCE_SIZE} and {KEY_SIZE} bytes")
    header = SealedHeader(FORMAT_VERSION, model, version, chunk_size, prefix, length, kek_id,
                          bytes(WRAPPED_KEY_SIZE))
    return _wrap(header, data_key, kek_id, kek, nonce)


def _wrap(header: SealedHeader, data_key: bytes, kek_id: str, kek: bytes,
          nonce: bytes) -> SealedHeader:
    """A copy of header whose key part holds data_key wrapped under kek with nonce."""
    _check_key(kek, kek_id)
    draft = replace(header, kek_id=kek_id, wrapped_key=nonce + bytes(KEY_SIZE + TAG_SIZE))
    _check_limits(draft)
    cipher = AES.new(kek, AES.MODE_GCM, nonce=nonce)
    cipher.update(draft.wrap_aad())
    encrypted, tag = cipher.encrypt_and_digest(data_key)
    return replace(draft, wrapped_key=nonce + encrypted + tag)


def _unwrap(header: SealedHeader, keks: Mapping[str, bytes]) -> bytes:
    """The data key, once its wrapping has authenticated the whole header."""
    cipher = AES.new(_kek(keks, header.kek_id), AES.MODE_GCM,
                     nonce=header.wrapped_key[:WRAP_NONCE_SIZE])
    cipher.update(header.wrap_aad())
    try:
        return cipher.decrypt_and_verify(header.wrapped_key[WRAP_NONCE_SIZE:-TAG_SIZE],
                                         header.wrapped_key[-TAG_SIZE:])
    except ValueError:
        raise SealedFileError(
            f"header authentication failed: the data key does not unwrap under KEK "
            f"{header.kek_id!r} (wrong key for that id, or the header was edited)") from None


def _kek(keks: Mapping[str, bytes], kek_id: str) -> bytes:
    if kek_id not in keks:
        known = ", ".join(sorted(keks)) or "none"
        raise SealedFileError(f"unknown KEK id {kek_id!r} (known: {known})")
    _check_key(keks[kek_id], kek_id)
    return keks[kek_id]


def _check_key(kek: bytes, kek_id: str) -> None:
    if len(kek) != KEY_SIZE:
        raise SealedFileError(f"KEK {kek_id!r} must be {KEY_SIZE} bytes, not {len(kek)}")


def _check_limits(header: SealedHeader) -> None:
    """Field limits every header keeps, whether being written or read."""
    for name in ("model", "version", "kek_id"):
        _short_string(getattr(header, name), name)
    if not MIN_CHUNK_SIZE <= header.chunk_size <= MAX_CHUNK_SIZE:
        raise SealedFileError(
            f"chunk size {header.chunk_size} is outside {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}")
    if header.chunks > MAX_CHUNKS:
        raise SealedFileError(f"{header.chunks} chunks overflow the 32-bit chunk counter")


def _short_string(text: str, name: str) -> bytes:
    """One length byte, then 1..255 bytes of UTF-8."""
    encoded = text.encode("utf-8")
    if not 1 <= len(encoded) <= 255:
        raise SealedFileError(f"{name} must be 1..255 bytes of UTF-8, not {len(encoded)}")
    return bytes((len(encoded),)) + encoded


def _parse_header(stream: BinaryIO) -> SealedHeader:
    """Read exactly the header, leaving the stream at the first chunk."""

    def take(size: int) -> bytes:
        data = stream.read(size)
        if len(data) != size:
            raise SealedFileError("file ends inside the header")
        return data

    def string(name: str) -> str:
        try:
            return take(take(1)[0]).decode("utf-8")
        except UnicodeDecodeError:
            raise SealedFileError(f"header field {name} is not UTF-8") from None

    if take(len(MAGIC)) != MAGIC:
        raise SealedFileError("not a sealed weights file (bad magic)")
    (format_version,) = struct.unpack(">H", take(2))
    if format_version != FORMAT_VERSION:
        raise SealedFileError(
            f"unsupported format version {format_version} (this reader knows {FORMAT_VERSION})")
    model, version = string("model"), string("version")
    chunk_size, prefix, length = struct.unpack(">I7sQ", take(4 + PREFIX_SIZE + 8))
    header = SealedHeader(format_version, model, version, chunk_size, prefix, length,
                          string("kek_id"), take(WRAPPED_KEY_SIZE))
    _check_limits(header)
    return header


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
        cipher = AES.new(data_key, AES.MODE_GCM, nonce=nonce, threads=_THREADS)
        cipher.update(aad)
        cipher.encrypt(plain[:size], output=sealed[:size])
        out.write(sealed[:size])
        out.write(cipher.digest())
    if source.read(1):
        raise SealedFileError("the source grew while it was being sealed")


def _decrypt_body(header: SealedHeader, data_key: bytes, stream: BinaryIO,
                  plaintext: memoryview) -> None:
    aad = header.fixed_part()
    scratch = memoryview(bytearray(min(header.chunk_size, header.plaintext_length) + TAG_SIZE))
    for index, offset, size, nonce in _chunks(header):
        if _read_into(stream, scratch[:size + TAG_SIZE]) != size + TAG_SIZE:
            raise SealedFileError(f"file shrank while chunk {index + 1} was read")
        cipher = AES.new(data_key, AES.MODE_GCM, nonce=nonce, threads=_THREADS)
        cipher.update(aad)
        try:
            cipher.decrypt_and_verify(scratch[:size], scratch[size:size + TAG_SIZE],
                                      output=plaintext[offset:offset + size])
        except ValueError:
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
