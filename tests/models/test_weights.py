"""Safetensors weights: strict validation, zero-copy parsing equal to safetensors, sealed load."""

from __future__ import annotations

import io
import json
import mmap
import random
import re

import pytest
import safetensors.torch
import torch
from safetensors.torch import load as load_safetensors_bytes  # the reference parser, not pickle

from models.weights import (
    DTYPES,
    WeightsError,
    load_sealed_state_dict,
    state_dict_from_buffer,
    validate_safetensors,
)
from security.sealed import seal_file

KEKS = {"k1": bytes(range(32))}
CPU = torch.device("cpu")


def random_tensor(dtype: torch.dtype, shape: tuple[int, ...] = (3, 5)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=generator).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -1000), min(info.max, 1000), shape, generator=generator,
                         dtype=dtype)


def handmade(header: dict, data: bytes, pad: bool = True) -> bytes:
    """A safetensors file built field by field, to express malformed ones."""
    raw = json.dumps(header).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + data


def f32(offsets: list[int], shape: list[int] | None = None) -> dict:
    return {"dtype": "F32", "shape": shape or [(offsets[1] - offsets[0]) // 4],
            "data_offsets": offsets}


def assert_same_tensors(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]):
    assert ours.keys() == reference.keys()
    for name, tensor in reference.items():
        assert ours[name].dtype == tensor.dtype and ours[name].shape == tensor.shape, name
        assert torch.equal(ours[name], tensor), name


@pytest.mark.parametrize("name", sorted(DTYPES))
def test_state_dict_equals_safetensors_load(name):
    data = safetensors.torch.save({"weight": random_tensor(DTYPES[name]),
                                   "scalar": random_tensor(DTYPES[name], ())})
    ours = state_dict_from_buffer(bytearray(data), CPU)
    assert_same_tensors(ours, load_safetensors_bytes(data))


def test_state_dict_of_every_dtype_in_one_file_equals_safetensors_load():
    tensors = {name: random_tensor(dtype, (2, 7)) for name, dtype in DTYPES.items()}
    tensors["empty"] = torch.empty(0, 4)
    data = safetensors.torch.save(tensors, metadata={"format": "pt"})
    assert_same_tensors(state_dict_from_buffer(bytearray(data), CPU), load_safetensors_bytes(data))


def test_tensors_are_views_of_the_buffer():
    buffer = bytearray(safetensors.torch.save({name: random_tensor(dtype)
                                               for name, dtype in DTYPES.items()}))
    start = torch.frombuffer(buffer, dtype=torch.uint8).data_ptr()
    for tensor in state_dict_from_buffer(buffer, CPU).values():
        assert start <= tensor.data_ptr() < start + len(buffer)


def test_misaligned_tensor_is_copied_to_aligned_memory():
    values = torch.arange(6, dtype=torch.float32)
    buffer = bytearray(handmade({"w": f32([0, 24])}, values.numpy().tobytes(), pad=False))
    assert (len(buffer) - 24) % 4  # the data section starts misaligned for F32
    tensor = state_dict_from_buffer(buffer, CPU)["w"]
    assert tensor.data_ptr() % 4 == 0 and torch.equal(tensor, values)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.cuda
def test_state_dict_moves_to_cuda():
    data = safetensors.torch.save({"w": random_tensor(torch.float32)})
    tensor = state_dict_from_buffer(bytearray(data), torch.device("cuda"))["w"]
    assert tensor.is_cuda and torch.equal(tensor.cpu(), random_tensor(torch.float32))


def test_validate_accepts_real_safetensors():
    validate_safetensors(safetensors.torch.save({"w": torch.ones(2, 2)}, metadata={"a": "b"}))


def test_validate_accepts_a_file_without_tensors():
    validate_safetensors(safetensors.torch.save({}))


def torch_save_bytes() -> bytes:
    """What an operator might hand to `model seal` by mistake: a torch.save zip (pickle inside)."""
    stream = io.BytesIO()
    torch.save({"w": torch.ones(2)}, stream)
    return stream.getvalue()


REFUSED = [
    ("torch.save file", torch_save_bytes(), "header length"),
    ("pickle stream", b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00}\x94.", "exceeds 100000000"),
    ("garbage", random.Random(1).randbytes(4096), "exceeds 100000000 bytes"),
    ("shorter than the length field", b"\x05\x00\x00", "3 bytes, shorter than the 8-byte header"),
    ("header past the end", (64).to_bytes(8, "little") + b"{}",
     "header length 64 runs past the end of the file (10 bytes)"),
    ("header not JSON", handmade({}, b"")[:8] + b"{not j  ", "header is not valid JSON"),
    ("header a JSON list", (2).to_bytes(8, "little") + b"[]", "header is not a JSON object"),
    ("header repeats a key", (17).to_bytes(8, "little") + b'{"a": 1, "a": 2} ',
     "header repeats a key"),
    ("metadata not strings", handmade({"__metadata__": {"a": 1}}, b""),
     "__metadata__ must map strings to strings"),
    ("unsupported dtype", handmade({"w": {"dtype": "F8_E4M3", "shape": [1],
                                          "data_offsets": [0, 1]}}, b"\x00"),
     "tensor 'w': unsupported dtype 'F8_E4M3'"),
    ("entry without shape", handmade({"w": {"dtype": "F32", "data_offsets": [0, 4]}}, bytes(4)),
     "tensor 'w': entry must have exactly dtype, shape, data_offsets"),
    ("negative dimension", handmade({"w": f32([0, 4], [-1])}, bytes(4)),
     "tensor 'w': shape must be a list of non-negative integers"),
    ("boolean dimension", handmade({"w": f32([0, 4], [True])}, bytes(4)),
     "tensor 'w': shape must be a list of non-negative integers"),
    ("offsets reversed", handmade({"w": f32([4, 0], [1])}, bytes(4)),
     "tensor 'w': data_offsets must be [begin, end], 0 <= begin <= end"),
    ("size not the shape's", handmade({"w": f32([0, 12], [2, 2])}, bytes(12)),
     "tensor 'w': F32 shape [2, 2] needs 16 bytes, data_offsets give 12"),
    ("offsets past the end", handmade({"w": f32([0, 8])}, bytes(4)),
     "tensor 'w': data_offsets run past the end of the file"),
    ("tensors overlap", handmade({"a": f32([0, 8]), "b": f32([4, 12])}, bytes(12)),
     "tensor 'b': data_offsets overlap another tensor"),
    ("gap between tensors", handmade({"a": f32([0, 4]), "b": f32([8, 12])}, bytes(12)),
     "tensor 'b': 4 unused bytes before its data"),
    ("bytes after the last tensor", handmade({"a": f32([0, 4])}, bytes(9)),
     "5 bytes after the last tensor belong to none"),
    ("BOOL byte not 0 or 1", handmade({"b": {"dtype": "BOOL", "shape": [3],
                                             "data_offsets": [0, 3]}}, b"\x00\x01\x02"),
     "tensor 'b': BOOL bytes other than 0 and 1"),
]


@pytest.mark.parametrize(("case", "data", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_validate_refuses(case, data, message):
    with pytest.raises(WeightsError, match=re.escape(message)):
        validate_safetensors(data)


def test_refusal_lets_the_caller_close_its_mmap(tmp_path):
    """`model seal` validates through an mmap, which must close cleanly after a refusal."""
    path = tmp_path / "model.pt"
    path.write_bytes(torch_save_bytes())
    with path.open("rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        with pytest.raises(WeightsError) as refused:
            validate_safetensors(memoryview(mapped))
        mapped.close()  # BufferError while the live traceback still holds a view of it
    assert "header length" in str(refused.value)


def test_state_dict_from_buffer_refuses_what_validate_refuses():
    with pytest.raises(WeightsError, match="data_offsets run past the end"):
        state_dict_from_buffer(bytearray(handmade({"w": f32([0, 8])}, bytes(4))), CPU)


@pytest.fixture
def sealed_weights(tmp_path):
    tensors = {"layer.weight": random_tensor(torch.float32, (4, 3)),
               "layer.bias": random_tensor(torch.float32, (4,))}
    plain = tmp_path / "model.safetensors"
    safetensors.torch.save_file(tensors, plain)
    sealed = tmp_path / "model.safetensors.sealed"
    seal_file(plain, sealed, model="tiny", version="1", kek_id="k1", kek=KEKS["k1"],
              chunk_size=64)
    return plain, sealed


def test_load_sealed_state_dict_equals_the_plain_file(sealed_weights):
    plain, sealed = sealed_weights
    ours = load_sealed_state_dict(sealed, KEKS, model="tiny", version="1", device=CPU)
    assert_same_tensors(ours, safetensors.torch.load_file(plain))


def test_sealed_weights_load_into_a_meta_module(sealed_weights):
    """The registry's path: build on 'meta', then assign the loaded tensors without a copy."""
    plain, sealed = sealed_weights
    with torch.device("meta"):
        module = torch.nn.Sequential()
        module.add_module("layer", torch.nn.Linear(3, 4))
    state = load_sealed_state_dict(sealed, KEKS, model="tiny", version="1", device=CPU)
    module.load_state_dict(state, assign=True)
    reference = safetensors.torch.load_file(plain)
    inputs = torch.ones(2, 3)
    expected = inputs @ reference["layer.weight"].T + reference["layer.bias"]
    assert torch.allclose(module(inputs), expected)
    assert module.layer.weight.data_ptr() == state["layer.weight"].data_ptr()


def test_a_deeply_nested_header_is_refused_cleanly():
    header = b"{\"a\":" * 100_000 + b"1" + b"}" * 100_000
    data = len(header).to_bytes(8, "little") + header
    with pytest.raises(WeightsError, match="not valid JSON"):
        validate_safetensors(data)
