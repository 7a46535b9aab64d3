"""NVIDIA's own OIP client (tritonclient.http) against a live gateway, bearer token as a header.

PAYLOAD_ENCRYPTION=optional: tritonclient speaks plain JSON, so this is the mode it can use.
Tensors go as JSON (binary_data=False): the binary tensor data extension is not supported.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from app import create_app
from tests.conftest import Auth, instance_overrides
from tests.fixtures import serve_in_thread, tiny_mlp

ROWS = np.array([[0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4]], dtype=np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_repository) -> Iterator[tuple[str, Auth]]:
    """The gateway on a free 127.0.0.1 port in a thread, shut down after the module."""
    app = create_app(instance_overrides(tmp_path_factory.mktemp("instance"), tiny_repository,
                                       payload_encryption="optional"))
    with serve_in_thread(app) as url:
        yield url.removeprefix("http://"), Auth(app)


@pytest.fixture
def triton(server) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(url=server[0], connection_timeout=10,
                                              network_timeout=10)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def headers(server) -> dict[str, str]:
    """tritonclient sends no Content-Type of its own; the gateway's media-type check needs one."""
    return {**server[1].headers(), "Content-Type": "application/json"}


def x_input(datatype: str = "FP32", rows: np.ndarray = ROWS) -> httpclient.InferInput:
    tensor = httpclient.InferInput("x", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=False)
    return tensor


def expected_scores() -> np.ndarray:
    with torch.inference_mode():
        return tiny_mlp()(torch.from_numpy(ROWS)).numpy()


def test_infer_with_json_outputs_matches_the_reference_model(triton, headers):
    result = triton.infer("tiny", [x_input()], headers=headers, request_id="r-1",
                          outputs=[httpclient.InferRequestedOutput("scores", binary_data=False)])
    np.testing.assert_allclose(result.as_numpy("scores"), expected_scores(), rtol=1e-6)
    assert result.get_response()["id"] == "r-1"
    assert result.get_response()["model_version"] == "1"


def test_infer_with_default_outputs_is_answered_in_json(triton, headers):
    result = triton.infer("tiny", [x_input()], headers=headers)
    np.testing.assert_allclose(result.as_numpy("scores"), expected_scores(), rtol=1e-6)


def test_bad_request_reaches_the_client_as_the_oip_error(triton, headers):
    with pytest.raises(InferenceServerException) as raised:
        triton.infer("tiny", [x_input("FP64", ROWS.astype(np.float64))], headers=headers)
    assert raised.value.status() == "422"
    assert raised.value.message() == "inputs.x: datatype must be 'FP32'"


def test_infer_without_a_token_is_401(triton):
    with pytest.raises(InferenceServerException) as raised:
        triton.infer("tiny", [x_input()], headers={"Content-Type": "application/json"})
    assert raised.value.status() == "401"
    assert raised.value.message() == "A bearer token is required."


def test_server_probes_need_no_token(triton):
    assert triton.is_server_live() is True
    assert triton.is_server_ready() is True


@pytest.mark.parametrize(("with_token", "ready"), [(True, True), (False, False)])
def test_model_ready_needs_a_token(triton, headers, with_token, ready):
    assert triton.is_model_ready("tiny", headers=headers if with_token else None) is ready


def test_model_metadata(triton, headers):
    metadata = triton.get_model_metadata("tiny", headers=headers)
    assert metadata["platform"] == "pytorch"
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]


def test_server_metadata(triton, headers):
    assert triton.get_server_metadata(headers=headers)["name"] == "torchgate"
