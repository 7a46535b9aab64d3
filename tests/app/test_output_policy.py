"""Output policies (model.toml [output]) through real sealed requests on /predict and /v2."""

from __future__ import annotations

import math

import pytest
import torch

from app import create_app
from tests.conftest import KEK, KEK_ID, SEALED, Auth, Sealer
from tests.fixtures import MLP_MANIFEST, tiny_mlp, write_variants

ROWS = [[0.1, 0.2, 0.3, 0.4], [-1.0, 0.5, 2.0, 1.0], [3.0, -2.0, 0.0, 1.5]]
EXACT = tiny_mlp()(torch.tensor(ROWS)).detach()
TOP2 = EXACT.topk(2, dim=-1)
TOP_CLASS = EXACT.argmax(dim=-1).tolist()
TOP_LABELS = ["abc"[i] for i in TOP_CLASS]
POLICIES = {
    "full": "",
    "topk": '[output]\nmode = "top_k"\ntop_k = 2\n',
    "labelsonly": '[output]\nmode = "labels"\n',
    "rounded": "[output]\ndecimals = 2\n",
    "noisy": "[output]\nnoise = 0.5\n",
    "tiered": ('[output]\nmode = "labels"\n'
               '[output.roles.partner]\nmode = "top_k"\ntop_k = 2\ndecimals = 1\n'
               '[output.roles.auditor]\n'),
}
ROLES_FILE = """
[roles.analyst]
permissions = ["models:read", "predict:*"]
[roles.partner]
permissions = ["predict:*"]
[roles.auditor]
permissions = ["predict:*"]
"""
OIP_X = {"name": "x", "shape": [3, 4], "datatype": "FP32", "data": [v for row in ROWS for v in row]}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return write_variants(tmp_path_factory.mktemp("policies"), POLICIES, kek_id=KEK_ID, kek=KEK)


@pytest.fixture
def gateway(overrides, repository, tmp_path):
    roles = tmp_path / "roles.toml"
    roles.write_text(ROLES_FILE)
    app = create_app({**overrides, "model_repository": str(repository),
                      "roles_file": str(roles)})
    auth = Auth(app)
    return app.test_client(), auth, Sealer(*auth.payload_key("alice"))


@pytest.fixture
def call(gateway):
    """The opened reply of a sealed request by alice with `roles`, after asserting 200."""
    client, auth, sealer = gateway

    def post(path: str, payload: dict, roles: tuple[str, ...] = ("analyst",)) -> dict:
        response = client.post(path, data=sealer.seal(payload), content_type=SEALED,
                               headers=auth.headers("alice", roles))
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == SEALED
        return sealer.open(response.data)
    return post


def close(got: list, expected: torch.Tensor, tolerance: float = 1e-6) -> bool:
    return torch.allclose(torch.tensor(got, dtype=torch.float64), expected.double(),
                          atol=tolerance)


def has_decimals(values: list, decimals: int) -> bool:
    scale = 10 ** decimals
    return all(math.isclose(v * scale, round(v * scale), abs_tol=1e-6)
               for row in values for v in row)


# /predict, one-input form: the reply form of each mode


def test_full_scores_are_the_model_outputs_unchanged(call):
    reply = call("/predict/full", {"inputs": ROWS})
    assert close(reply["outputs"], EXACT) and reply["labels"] == TOP_LABELS
    assert "indices" not in reply


def test_top_k_carries_k_sorted_scores_and_their_class_indices(call):
    reply = call("/predict/topk", {"inputs": ROWS})
    assert close(reply["outputs"], TOP2.values)
    assert reply["indices"] == TOP2.indices.tolist()
    assert reply["labels"] == TOP_LABELS


def test_labels_mode_carries_the_top_class_and_no_score(call):
    reply = call("/predict/labelsonly", {"inputs": ROWS})
    assert reply["outputs"] == TOP_CLASS
    assert all(isinstance(index, int) for index in reply["outputs"])
    assert reply["labels"] == TOP_LABELS and "indices" not in reply


def test_rounded_scores_carry_n_decimals_within_half_a_unit(call):
    reply = call("/predict/rounded", {"inputs": ROWS})
    assert has_decimals(reply["outputs"], 2) and close(reply["outputs"], EXACT, 0.005 + 1e-7)
    assert not has_decimals(call("/predict/full", {"inputs": ROWS})["outputs"], 2)


def test_noise_blurs_scores_differently_each_time_and_keeps_the_label(call):
    first = call("/predict/noisy", {"inputs": ROWS})
    second = call("/predict/noisy", {"inputs": ROWS})
    assert not close(first["outputs"], EXACT, 1e-3)
    assert first["outputs"] != second["outputs"]  # never a fixed seed
    assert first["labels"] == second["labels"] == TOP_LABELS
    assert close(first["outputs"], EXACT, 20.0)  # Laplace b = 0.5: 20 is 40 scales


# /predict, named form


@pytest.mark.parametrize(("model", "outputs", "indices"), [
    ("topk", lambda r: close(r["scores"], TOP2.values), TOP2.indices.tolist()),
    ("labelsonly", lambda r: r == {"scores": TOP_CLASS}, None),
    ("full", lambda r: close(r["scores"], EXACT), None),
])
def test_the_named_form_is_cut_the_same_way(call, model, outputs, indices):
    reply = call(f"/predict/{model}", {"inputs": {"x": ROWS}})
    assert outputs(reply["outputs"]) and set(reply["outputs"]) == {"scores"}
    assert reply.get("indices") == (None if indices is None else {"scores": indices})
    assert reply["labels"] == TOP_LABELS


# /v2: every output tensor, its shape and datatype as returned


def v2(call, model: str, roles: tuple[str, ...] = ("analyst",)) -> list[dict]:
    return call(f"/v2/models/{model}/infer", {"inputs": [OIP_X]}, roles)["outputs"]


def test_v2_top_k_returns_the_scores_then_their_indices_tensor(call):
    scores, indices = v2(call, "topk")
    assert (scores["name"], scores["datatype"], scores["shape"]) == ("scores", "FP32", [3, 2])
    assert close(scores["data"], TOP2.values.reshape(-1))
    assert indices == {"name": "scores.indices", "datatype": "INT64", "shape": [3, 2],
                       "data": TOP2.indices.reshape(-1).tolist()}


def test_v2_labels_mode_returns_the_class_index_as_int64(call):
    assert v2(call, "labelsonly") == [{"name": "scores", "datatype": "INT64", "shape": [3],
                                       "data": TOP_CLASS}]


def test_v2_rounding_keeps_the_declared_datatype(call):
    [scores] = v2(call, "rounded")
    assert (scores["datatype"], scores["shape"]) == ("FP32", [3, 3])
    assert has_decimals([scores["data"]], 2)


# Per-role overrides: each role's policy, and the most revealing of a caller's roles


@pytest.mark.parametrize(("roles", "mode", "shape"), [
    (("analyst",), "labels", [3]),
    (("partner",), "top_k", [3, 2]),
    (("analyst", "partner"), "top_k", [3, 2]),
    (("auditor",), "scores", [3, 3]),
    (("partner", "auditor"), "scores", [3, 3]),
])
def test_a_role_override_applies_and_several_roles_get_the_most_revealing(call, roles, mode,
                                                                          shape):
    reply = call("/predict/tiered", {"inputs": ROWS}, roles)
    assert list(torch.tensor(reply["outputs"]).shape) == shape
    assert ("indices" in reply) == (mode == "top_k")
    if mode == "top_k":  # the partner override rounds to one decimal
        assert has_decimals(reply["outputs"], 1)
    if mode == "scores":  # the auditor override is a whole policy: nothing inherited
        assert close(reply["outputs"], EXACT)
    assert v2(call, "tiered", roles)[0]["shape"] == shape


# /models shows the policy that applies to the caller


@pytest.mark.parametrize(("roles", "expected"), [
    (("analyst",), {"mode": "labels", "top_k": None, "decimals": None, "noise": None}),
    (("partner",), {"mode": "top_k", "top_k": 2, "decimals": 1, "noise": None}),
    (("auditor",), {"mode": "scores", "top_k": None, "decimals": None, "noise": None}),
])
def test_models_shows_the_callers_policy(gateway, roles, expected):
    client, auth, _ = gateway
    one = client.get("/models/tiered", headers=auth.headers("alice", roles))
    listed = client.get("/models", headers=auth.headers("alice", roles))
    assert one.status_code == listed.status_code == 200
    assert one.json["output_policy"] == expected
    assert {m["name"]: m["output_policy"] for m in listed.json["models"]}["tiered"] == expected


def test_models_shows_each_models_own_policy(gateway):
    client, auth, _ = gateway
    listed = client.get("/models", headers=auth.headers("alice", ("analyst",))).json["models"]
    policies = {m["name"]: m["output_policy"] for m in listed}
    assert policies["noisy"] == {"mode": "scores", "top_k": None, "decimals": None, "noise": 0.5}
    assert policies["full"]["mode"] == "scores" and policies["topk"]["top_k"] == 2


@pytest.mark.parametrize(("model", "roles"), [
    ("full", ("analyst",)), ("topk", ("analyst",)), ("labelsonly", ("analyst",)),
    ("rounded", ("analyst",)), ("tiered", ("analyst",)), ("tiered", ("partner",)),
])
def test_v2_metadata_describes_the_tensors_inference_returns(gateway, call, model, roles):
    client, auth, _ = gateway
    metadata = client.get(f"/v2/models/{model}", headers=auth.headers("alice", roles))
    assert metadata.status_code == 200
    returned = v2(call, model, roles)
    assert [(t["name"], t["datatype"]) for t in metadata.json["outputs"]] == [
        (t["name"], t["datatype"]) for t in returned]
    for described, tensor in zip(metadata.json["outputs"], returned, strict=True):
        assert len(described["shape"]) == len(tensor["shape"])
        assert all(d in (-1, n) for d, n in zip(described["shape"], tensor["shape"], strict=True))


def test_a_reload_applies_a_changed_output_policy(overrides, tmp_path):
    root = write_variants(tmp_path / "repository", {"m": ""}, kek_id=KEK_ID, kek=KEK)
    app = create_app({**overrides, "model_repository": str(root)})
    auth = Auth(app)
    client, sealer = app.test_client(), Sealer(*auth.payload_key("alice"))

    def outputs() -> list:
        response = client.post("/predict/m", data=sealer.seal({"inputs": ROWS}),
                               content_type=SEALED, headers=auth.headers("alice"))
        assert response.status_code == 200
        return sealer.open(response.data)["outputs"]

    assert close(outputs(), EXACT)
    (root / "m" / "model.toml").write_text(MLP_MANIFEST + POLICIES["labelsonly"])
    reloaded = client.post("/models/reload", headers=auth.headers("root", ("admin",)))
    assert reloaded.status_code == 200
    assert outputs() == TOP_CLASS
