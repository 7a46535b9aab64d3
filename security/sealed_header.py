"""The sealed-weights header: its byte layout, parsing, limits and the wrapping of the data key.

docs/sealed-format.md is the specification; security/sealed.py seals and opens whole files.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import BinaryIO

from Crypto.Random import get_random_bytes

from security import aead

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


def new_header(length: int, *, model: str, version: str, kek_id: str, kek: bytes,
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
    return wrap_data_key(header, data_key, kek_id, kek, nonce)


def wrap_data_key(header: SealedHeader, data_key: bytes, kek_id: str, kek: bytes,
          nonce: bytes) -> SealedHeader:
    """A copy of header whose key part holds data_key wrapped under kek with nonce."""
    _check_key(kek, kek_id)
    draft = replace(header, kek_id=kek_id, wrapped_key=nonce + bytes(KEY_SIZE + TAG_SIZE))
    _check_limits(draft)
    encrypted, tag = aead.seal(kek, nonce, data_key, draft.wrap_aad())
    return replace(draft, wrapped_key=nonce + encrypted + tag)


def unwrap_data_key(header: SealedHeader, keks: Mapping[str, bytes]) -> bytes:
    """The data key, once its wrapping has authenticated the whole header."""
    kek = kek_for(keks, header.kek_id)
    try:
        return aead.open_(kek, header.wrapped_key[:WRAP_NONCE_SIZE],
                          header.wrapped_key[WRAP_NONCE_SIZE:-TAG_SIZE],
                          header.wrapped_key[-TAG_SIZE:], header.wrap_aad())
    except aead.AeadError:
        raise SealedFileError(
            f"header authentication failed: the data key does not unwrap under KEK "
            f"{header.kek_id!r} (wrong key for that id, or the header was edited)") from None


def kek_for(keks: Mapping[str, bytes], kek_id: str) -> bytes:
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


def parse_header(stream: BinaryIO) -> SealedHeader:
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
