"""Sealed weights: round trips, every tampering refused by name, rewrap, and the test vector."""

from __future__ import annotations

import json
import os
import random
import re
import struct
from pathlib import Path

import pytest

from security.sealed import (
    DEFAULT_CHUNK_SIZE,
    SealedFileError,
    SealedHeader,
    open_sealed,
    read_header,
    rewrap_file,
    seal_bytes,
    seal_file,
)

KEK1 = bytes(range(32))
KEK2 = bytes(range(100, 132))
KEKS = {"k1": KEK1, "k2": KEK2}
MODEL, VERSION, CHUNK = "digits", "1", 64
PLAINTEXT = random.Random(7).randbytes(160)  # 2.5 chunks: 3 chunks of 64, 64 and 32 bytes
HOOKS = {"_data_key": bytes(range(200, 232)), "_nonce_prefix": b"\x01" * 7,
         "_wrap_nonce": b"\x02" * 12}
VECTOR = Path(__file__).parent / "sealed_vector"


def layout(model: str = MODEL, version: str = VERSION, kek_id: str = "k1") -> dict[str, int]:
    """Field offsets as docs/sealed-format.md defines them."""
    sizes = [("magic", 8), ("format_version", 2), ("model_length", 1), ("model", len(model)),
             ("version_length", 1), ("version", len(version)), ("chunk_size", 4),
             ("nonce_prefix", 7), ("plaintext_length", 8), ("kek_id_length", 1),
             ("kek_id", len(kek_id)), ("wrap_nonce", 12), ("wrapped_data_key", 32),
             ("wrap_tag", 16), ("body", 0)]
    offsets, position = {}, 0
    for name, size in sizes:
        offsets[name], position = position, position + size
    return offsets


BODY = layout()["body"]


def chunk_at(index: int) -> int:
    """File offset of chunk index (0-based) of PLAINTEXT sealed at CHUNK."""
    return BODY + index * (CHUNK + 16)


def sealed(data: bytes = PLAINTEXT, *, model: str = MODEL, version: str = VERSION,
           kek_id: str = "k1", chunk_size: int = CHUNK, **hooks: bytes) -> bytes:
    return seal_bytes(data, model=model, version=version, kek_id=kek_id, kek=KEKS[kek_id],
                      chunk_size=chunk_size, **hooks)


def write(tmp_path: Path, data: bytes, name: str = "model.safetensors.sealed") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def open_file(path: Path, keks: dict[str, bytes] = KEKS, model: str = MODEL,
              version: str = VERSION) -> bytearray:
    return open_sealed(path, keks, model=model, version=version)


def replaced(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]


def flipped(data: bytes, offset: int) -> bytes:
    return replaced(data, offset, bytes((data[offset] ^ 0x20,)))


@pytest.mark.parametrize("size", [0, 1, 63, CHUNK, 2 * CHUNK, 2 * CHUNK + 17, 1000])
def test_round_trip(tmp_path, size):
    data = os.urandom(size)
    assert open_file(write(tmp_path, sealed(data))) == data


@pytest.mark.parametrize(("size", "chunk_size"), [
    (0, CHUNK), (CHUNK, CHUNK), (3 * CHUNK, CHUNK), (3 * CHUNK + 5, CHUNK),
    (DEFAULT_CHUNK_SIZE * 2 + 12345, DEFAULT_CHUNK_SIZE),
])
def test_seal_file_round_trip(tmp_path, size, chunk_size):
    src = write(tmp_path, os.urandom(size), "model.safetensors")
    dest = tmp_path / "model.safetensors.sealed"
    seal_file(src, dest, model=MODEL, version=VERSION, kek_id="k1", kek=KEK1,
              chunk_size=chunk_size)
    assert open_file(dest) == src.read_bytes()


def test_seal_file_returns_the_written_header(tmp_path):
    src = write(tmp_path, PLAINTEXT, "model.safetensors")
    header = seal_file(src, tmp_path / "out", model=MODEL, version=VERSION, kek_id="k1",
                       kek=KEK1, chunk_size=CHUNK)
    assert read_header(tmp_path / "out") == header


def test_seal_file_writes_only_the_destination(tmp_path):
    src = write(tmp_path, PLAINTEXT, "model.safetensors")
    seal_file(src, tmp_path / "out", model=MODEL, version=VERSION, kek_id="k1", kek=KEK1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "out"]
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o644


def test_empty_plaintext_is_one_empty_last_chunk():
    assert len(sealed(b"")) == BODY + 16


def test_sealing_twice_gives_different_files():
    assert sealed() != sealed()


def test_describe_shows_no_secrets(tmp_path):
    description = read_header(write(tmp_path, sealed())).describe()
    assert description == {"format_version": 1, "model": MODEL, "version": VERSION,
                           "chunk_size": CHUNK, "plaintext_length": 160, "chunks": 3,
                           "kek_id": "k1"}
    json.dumps(description)


TAMPERED = [
    ("magic", lambda b: flipped(b, 0), "not a sealed weights file (bad magic)"),
    ("format version", lambda b: replaced(b, 8, b"\x00\x02"), "unsupported format version 2"),
    ("model not UTF-8", lambda b: replaced(b, layout()["model"], b"\xff"),
     "header field model is not UTF-8"),
    ("model", lambda b: flipped(b, layout()["model"]), "header authentication failed"),
    ("version", lambda b: replaced(b, layout()["version"], b"2"), "header authentication failed"),
    ("chunk size", lambda b: replaced(b, layout()["chunk_size"], struct.pack(">I", 32)),
     "header authentication failed"),
    ("chunk size out of range", lambda b: replaced(b, layout()["chunk_size"], bytes(4)),
     "chunk size 0 is outside 16..67108864"),
    ("nonce prefix", lambda b: flipped(b, layout()["nonce_prefix"] + 3),
     "header authentication failed"),
    ("plaintext length", lambda b: replaced(b, layout()["plaintext_length"],
                                            struct.pack(">Q", 128)),
     "header authentication failed"),
    ("kek id to another known id", lambda b: replaced(b, layout()["kek_id"], b"k2"),
     "header authentication failed: the data key does not unwrap under KEK 'k2'"),
    ("kek id to an unknown id", lambda b: replaced(b, layout()["kek_id"], b"k9"),
     "unknown KEK id 'k9' (known: k1, k2)"),
    ("wrap nonce", lambda b: flipped(b, layout()["wrap_nonce"]), "header authentication failed"),
    ("wrapped key", lambda b: flipped(b, layout()["wrapped_data_key"] + 31),
     "header authentication failed"),
    ("wrap tag", lambda b: flipped(b, layout()["wrap_tag"]), "header authentication failed"),
    ("body byte", lambda b: flipped(b, chunk_at(1) + 10), "chunk 2 of 3 failed authentication"),
    ("first tag", lambda b: flipped(b, chunk_at(1) - 1), "chunk 1 of 3 failed authentication"),
    ("last tag", lambda b: flipped(b, len(b) - 16), "chunk 3 of 3 failed authentication"),
    ("two chunks swapped", lambda b: b[:chunk_at(0)] + b[chunk_at(1):chunk_at(2)]
     + b[chunk_at(0):chunk_at(1)] + b[chunk_at(2):], "chunk 1 of 3 failed authentication"),
    ("truncated inside the header", lambda b: b[:BODY - 1], "file ends inside the header"),
    ("truncated at a chunk boundary", lambda b: b[:chunk_at(1)],
     "body is truncated: 3 chunks need 208 bytes, the file has 80"),
    ("truncated inside a chunk", lambda b: b[:chunk_at(1) + 30],
     "body is truncated: 3 chunks need 208 bytes, the file has 110"),
    ("last chunk dropped", lambda b: b[:chunk_at(2)],
     "body is truncated: 3 chunks need 208 bytes, the file has 160"),
    ("chunk appended", lambda b: b + b[chunk_at(0):chunk_at(1)],
     "file has 80 trailing bytes after the last chunk"),
    ("one byte appended", lambda b: b + b"\x00", "file has 1 trailing bytes after the last chunk"),
]


@pytest.mark.parametrize(("case", "tamper", "message"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_file_is_refused(tmp_path, case, tamper, message):
    path = write(tmp_path, tamper(sealed()))
    with pytest.raises(SealedFileError, match="^" + re.escape(message)):
        open_file(path)


def test_wrong_kek_is_refused_without_showing_key_material(tmp_path):
    path = write(tmp_path, sealed())
    with pytest.raises(SealedFileError, match="header authentication failed") as refused:
        open_file(path, {"k1": KEK2})
    assert KEK1.hex() not in str(refused.value) and KEK2.hex() not in str(refused.value)


def test_unknown_kek_id_is_refused(tmp_path):
    with pytest.raises(SealedFileError, match=r"unknown KEK id 'k1' \(known: k2\)"):
        open_file(write(tmp_path, sealed()), {"k2": KEK2})


@pytest.mark.parametrize(("model", "version", "message"), [
    ("iris", VERSION,
     "file is sealed for model 'digits' version '1', not model 'iris' version '1'"),
    (MODEL, "2", "file is sealed for model 'digits' version '1', not model 'digits' version '2'"),
])
def test_file_copied_into_another_slot_is_refused(tmp_path, model, version, message):
    with pytest.raises(SealedFileError, match=message):
        open_file(write(tmp_path, sealed()), model=model, version=version)


def test_chunks_authenticate_the_fixed_part(tmp_path):
    """Same data key and nonces, other model: a valid header on this body still fails."""
    digits, iris = sealed(**HOOKS), sealed(model="iris", **HOOKS)
    iris_body_start = layout(model="iris")["body"]
    spliced = write(tmp_path, iris[:iris_body_start] + digits[BODY:])
    with pytest.raises(SealedFileError, match="chunk 1 of 3 failed authentication"):
        open_file(spliced, model="iris")


def test_body_of_another_file_is_refused(tmp_path):
    first, second = sealed(), sealed()
    with pytest.raises(SealedFileError, match="chunk 1 of 3 failed authentication"):
        open_file(write(tmp_path, first[:BODY] + second[BODY:]))


def test_refused_file_leaves_no_plaintext_behind(tmp_path):
    before = set(tmp_path.iterdir())
    data = sealed()
    path = write(tmp_path, flipped(data, len(data) - 1))
    with pytest.raises(SealedFileError):
        open_file(path)
    assert set(tmp_path.iterdir()) - before == {path}


@pytest.mark.parametrize(("arguments", "message"), [
    ({"kek": b"short"}, "KEK 'k1' must be 32 bytes, not 5"),
    ({"chunk_size": 15}, "chunk size 15 is outside 16..67108864"),
    ({"chunk_size": 64 * 1024 * 1024 + 1}, "chunk size 67108865 is outside"),
    ({"model": ""}, "model must be 1..255 bytes of UTF-8, not 0"),
    ({"version": "9" * 256}, "version must be 1..255 bytes of UTF-8, not 256"),
    ({"kek_id": "k" * 256}, "kek_id must be 1..255 bytes of UTF-8, not 256"),
    ({"_nonce_prefix": b"\x00" * 8}, "nonce prefix, wrap nonce and data key must be 7, 12 and 32"),
    ({"_data_key": b"\x00" * 16}, "nonce prefix, wrap nonce and data key must be 7, 12 and 32"),
])
def test_sealing_refuses_bad_arguments(arguments, message):
    call = {"model": MODEL, "version": VERSION, "kek_id": "k1", "kek": KEK1, **arguments}
    with pytest.raises(SealedFileError, match=message):
        seal_bytes(PLAINTEXT, **call)


def test_rewrapped_file_opens_with_only_the_new_kek(tmp_path):
    path = write(tmp_path, sealed())
    rewrap_file(path, KEKS, "k2")
    assert open_file(path, {"k2": KEK2}) == PLAINTEXT


def test_rewrap_leaves_fixed_part_and_body_byte_identical(tmp_path):
    before = sealed()
    path = write(tmp_path, before)
    rewrap_file(path, KEKS, "k2")
    after = path.read_bytes()
    assert after[:layout()["kek_id_length"]] == before[:layout()["kek_id_length"]]
    assert after[BODY:] == before[BODY:]
    assert after[layout()["kek_id"]:BODY] != before[layout()["kek_id"]:BODY]


def test_rewrapped_file_refuses_the_old_kek(tmp_path):
    path = write(tmp_path, sealed())
    rewrap_file(path, KEKS, "k2")
    with pytest.raises(SealedFileError, match="unknown KEK id 'k2'"):
        open_file(path, {"k1": KEK1})


def test_rewrap_returns_the_new_header(tmp_path):
    path = write(tmp_path, sealed())
    header = rewrap_file(path, KEKS, "k2")
    assert header == read_header(path) and header.kek_id == "k2"


@pytest.mark.parametrize(("keks", "new_kek_id", "message"), [
    ({"k2": KEK2}, "k2", "unknown KEK id 'k1'"),
    ({"k1": KEK1}, "k3", "unknown KEK id 'k3'"),
    ({"k1": KEK2, "k2": KEK2}, "k2", "header authentication failed"),
])
def test_rewrap_refusal_leaves_the_file_untouched(tmp_path, keks, new_kek_id, message):
    before = sealed()
    path = write(tmp_path, before)
    with pytest.raises(SealedFileError, match=message):
        rewrap_file(path, keks, new_kek_id)
    assert path.read_bytes() == before
    assert sorted(tmp_path.iterdir()) == [path]


def load_vector() -> tuple[dict, bytes, bytes]:
    spec = json.loads((VECTOR / "vector.json").read_text())
    return (spec, (VECTOR / spec["plaintext_file"]).read_bytes(),
            (VECTOR / spec["sealed_file"]).read_bytes())


def test_vector_reseals_byte_for_byte():
    spec, plaintext, expected = load_vector()
    resealed = seal_bytes(
        plaintext, model=spec["model"], version=spec["version"], kek_id=spec["kek_id"],
        kek=bytes.fromhex(spec["kek"]), chunk_size=spec["chunk_size"],
        _data_key=bytes.fromhex(spec["data_key"]),
        _nonce_prefix=bytes.fromhex(spec["nonce_prefix"]),
        _wrap_nonce=bytes.fromhex(spec["wrap_nonce"]))
    assert resealed == expected


def test_vector_opens():
    spec, plaintext, _ = load_vector()
    opened = open_sealed(VECTOR / spec["sealed_file"], {spec["kek_id"]: bytes.fromhex(spec["kek"])},
                         model=spec["model"], version=spec["version"])
    assert opened == plaintext


def test_vector_header_reencodes_to_the_same_bytes():
    spec, _, expected = load_vector()
    header = read_header(VECTOR / spec["sealed_file"])
    assert isinstance(header, SealedHeader)
    assert expected.startswith(header.to_bytes())


def test_vector_opens_with_an_independent_reader_written_from_the_spec():
    """docs/sealed-format.md alone, with OpenSSL's AES-GCM (pyca/cryptography), reads the vector."""
    aead = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead")
    spec, plaintext, data = load_vector()
    position = 10
    fields = []
    for _ in range(2):
        fields.append(data[position + 1:position + 1 + data[position]].decode())
        position += 1 + data[position]
    chunk_size, prefix, length = struct.unpack(">I7sQ", data[position:position + 19])
    fixed_end = position + 19
    kek_id_end = fixed_end + 1 + data[fixed_end]
    wrap_nonce = data[kek_id_end:kek_id_end + 12]
    data_key = aead.AESGCM(bytes.fromhex(spec["kek"])).decrypt(
        wrap_nonce, data[kek_id_end + 12:kek_id_end + 60], data[:kek_id_end + 12])
    chunks = max(1, -(-length // chunk_size))
    position, recovered = kek_id_end + 60, b""
    for index in range(chunks):
        size = min(chunk_size, length - index * chunk_size) + 16
        nonce = prefix + struct.pack(">I", index) + bytes((index == chunks - 1,))
        recovered += aead.AESGCM(data_key).decrypt(nonce, data[position:position + size],
                                                   data[:fixed_end])
        position += size
    assert fields == [spec["model"], spec["version"]] and data_key.hex() == spec["data_key"]
    assert recovered == plaintext and position == len(data)
