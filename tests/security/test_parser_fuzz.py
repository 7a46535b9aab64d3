"""Fuzzing of the three parsers that read attacker-shaped bytes before any key proves them:
the envelope's JSON and protected header, the sealed-weights header, and the safetensors header
inside decrypted weights. Each either refuses with its own error type or returns a value that
keeps its promises; nothing else may escape (no IndexError, struct.error, MemoryError, …).

Bounded for `make test`; `make fuzz` runs the same properties with TORCHGATE_FUZZ_EXAMPLES
(docs/threat-model.md, section "Proof that stays in the suite").
"""

from __future__ import annotations

import base64
import io
import json
import struct

import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from safetensors.torch import save as save_safetensors

from errors import GatewayError
from models.weights import DTYPES, WeightsError, parse_safetensors, state_dict_from_buffer
from security import aead
from security.envelope import REQUEST_TYP, open_envelope
from security.sealed import seal_bytes
from security.sealed_header import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    SealedFileError,
    parse_header,
)
from tests.security.test_properties import BOUNDED, KEK, KEY, KID, NOW, PLAINTEXT, mutations


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64),
                         st.floats(allow_nan=False), st.text(max_size=12))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=12)
HEADER_MEMBERS = st.sampled_from(["alg", "enc", "kid", "iat", "typ", "cty", "zip", "crit",
                                  "req_sha256", "epk", "ek"])
KNOWN_VALUES = st.one_of(st.sampled_from(["dir", "A256GCM", KID, NOW, NOW + 301, True, "",
                                         REQUEST_TYP, "torchgate-reply+jwe", ["iat"]]),
                         JSON_VALUES)
HEADERS = st.dictionaries(HEADER_MEMBERS, KNOWN_VALUES, max_size=3)
B64_MEMBERS = st.one_of(st.binary(max_size=40).map(b64url), st.text(max_size=20), JSON_VALUES)


@st.composite
def envelopes(draw) -> bytes:
    """A flattened-JSON JWE whose header and members are drawn; about half carry a tag that
    authenticates the drawn header under the right key, so the checks after the AEAD run too."""
    header = {"alg": "dir", "enc": "A256GCM", "kid": KID, "iat": NOW, **draw(HEADERS)}
    for name in draw(st.lists(HEADER_MEMBERS, max_size=2)):
        header.pop(name, None)
    protected = b64url(json.dumps(header).encode())
    iv = draw(st.binary(min_size=12, max_size=12))
    ciphertext, tag = aead.seal(KEY, iv, draw(st.sampled_from([PLAINTEXT, b"", b"\x00"])),
                                protected.encode())
    body = {"protected": protected, "iv": b64url(iv), "ciphertext": b64url(ciphertext),
            "tag": b64url(tag)}
    if draw(st.booleans()):
        body[draw(st.sampled_from(["iv", "ciphertext", "tag"]))] = draw(B64_MEMBERS)
    for extra in draw(st.lists(st.sampled_from(["aad", "header", "unprotected", "x"]),
                               max_size=2)):
        body[extra] = draw(B64_MEMBERS)
    return json.dumps(body).encode()


def well_formed_request_header(header: dict) -> bool:
    return (header.get("alg") == "dir" and header.get("enc") == "A256GCM"
            and isinstance(header.get("kid"), str) and header["kid"] != ""
            and type(header.get("iat")) is int and abs(header["iat"] - NOW) <= 300
            and "zip" not in header and "crit" not in header
            and header.get("typ", REQUEST_TYP) == REQUEST_TYP and "req_sha256" not in header)


@pytest.mark.timeout(60)
@BOUNDED
@given(envelopes())
def test_the_envelope_parser_accepts_only_well_formed_authenticated_requests(body) -> None:
    try:
        opened = open_envelope(body, key_for=lambda kid: KEY, now=NOW, max_age=300)
    except GatewayError as refused:
        event("refused")
        assert refused.status in (400, 403)
        return
    event("accepted")
    assert well_formed_request_header(dict(opened.header))


HEADER_BYTES = seal_bytes(b"x" * 64, model="m", version="1", kek_id="k", kek=KEK,
                          chunk_size=MIN_CHUNK_SIZE)[:96]


@pytest.mark.timeout(60)
@BOUNDED
@given(st.one_of(mutations(HEADER_BYTES), st.binary(max_size=128)))
def test_the_sealed_header_parser_refuses_or_returns_a_header_within_limits(data: bytes) -> None:
    try:
        header = parse_header(io.BytesIO(data))
    except SealedFileError:
        event("refused")
        return
    event("parsed")
    assert MIN_CHUNK_SIZE <= header.chunk_size <= MAX_CHUNK_SIZE
    assert header.model and header.version and header.kek_id


def safetensors_file() -> bytes:
    return save_safetensors({"weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
                             "bias": torch.ones(3, dtype=torch.float64),
                             "mask": torch.tensor([True, False])})


@st.composite
def drawn_safetensors(draw) -> bytes:
    """A file whose JSON header is drawn: dtypes, shapes and offsets that may or may not fit."""
    entries = draw(st.dictionaries(st.text(max_size=6), st.fixed_dictionaries({
        "dtype": st.one_of(st.sampled_from(sorted(DTYPES)), st.text(max_size=4)),
        "shape": st.lists(st.integers(-2, 2**40), max_size=3),
        "data_offsets": st.lists(st.integers(-2, 2**40), max_size=3),
    }), max_size=3))
    header = json.dumps(entries).encode()
    return struct.pack("<Q", len(header)) + header + draw(st.binary(max_size=64))


@pytest.mark.timeout(60)
@BOUNDED
@given(st.one_of(mutations(safetensors_file()), drawn_safetensors()))
def test_the_safetensors_parser_refuses_or_yields_tensors_inside_the_file(data: bytes) -> None:
    try:
        entries = parse_safetensors(memoryview(data))
    except WeightsError:
        event("refused")
        return
    event("parsed")
    for entry in entries:
        assert 8 <= entry.start <= entry.end <= len(data)
    tensors = state_dict_from_buffer(bytearray(data), torch.device("cpu"))
    assert sorted(tensors) == sorted(entry.name for entry in entries)
