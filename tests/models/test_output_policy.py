"""[output] and [attributes] of model.toml, and how a caller's roles combine their policies."""

from __future__ import annotations

import tomllib

import pytest
import torch

from models.manifest import ManifestError, load_manifest, parse_manifest
from models.output_policy import OutputPolicies, OutputPolicy
from tests.doc_blocks import ROOT, snippets
from tests.models.test_manifest import BASE, INPUT, OUTPUT, write

SCORES = OutputPolicy()
TOP3 = OutputPolicy(mode="top_k", top_k=3)
LABELS = OutputPolicy(mode="labels")
MODEL = BASE + INPUT + OUTPUT


def test_output_and_attributes_are_parsed(tmp_path):
    text = MODEL + ('[output]\nmode = "top_k"\ntop_k = 2\ndecimals = 3\nnoise = 0.01\n'
                    '[output.roles.partner]\ndecimals = 4\n'
                    '[attributes]\nowner = "acme"\nregions = ["eu", "us"]\n')
    manifest = load_manifest(write(tmp_path, text), "m")
    assert manifest.output == OutputPolicies(
        OutputPolicy(mode="top_k", top_k=2, decimals=3, noise=0.01),
        {"partner": OutputPolicy(decimals=4)})
    assert dict(manifest.attributes) == {"owner": "acme", "regions": ("eu", "us")}


def test_without_output_every_caller_gets_full_scores(tmp_path):
    manifest = load_manifest(write(tmp_path, MODEL), "m")
    assert manifest.output.for_roles(("anyone",)) == SCORES
    assert dict(manifest.attributes) == {}


ERRORS = [
    ("unknown mode", '[output]\nmode = "probabilities"\n', "output.mode: expected one of"),
    ("top_k without k", '[output]\nmode = "top_k"\n', "output.top_k: required with"),
    ("k without top_k", "[output]\ntop_k = 2\n", "output.top_k: required with"),
    ("k of zero", '[output]\nmode = "top_k"\ntop_k = 0\n', "output.top_k: must be at least 1"),
    ("labels rounded", '[output]\nmode = "labels"\ndecimals = 2\n', "carries no scores"),
    ("too many decimals", "[output]\ndecimals = 16\n", "output.decimals: at most 15"),
    ("negative noise", "[output]\nnoise = -0.1\n", "output.noise: expected a positive"),
    ("noise as text", '[output]\nnoise = "0.1"\n', "output.noise: expected a number"),
    ("unknown key", "[output]\nprecision = 2\n", "output.precision: unknown key"),
    ("unknown role key", "[output.roles.x]\nroles = 1\n", "output.roles.x.roles: unknown key"),
    ("role not a table", "[output]\nroles = 1\n", "output.roles: expected a table"),
    ("top_k of 1-d scores", BASE + INPUT + OUTPUT.replace("[-1, 3]", "[-1]")
     + '[output]\nmode = "labels"\n', "outputs[0].shape: top_k and labels modes need"),
    ("attribute as number", "[attributes]\nowner = 7\n", "attributes: owner: expected a string"),
    ("attribute name", '[attributes]\nOwner = "x"\n', "attributes: attribute names are"),
    ("attribute list too long", "[attributes]\nregions = [" + '"r", ' * 65 + "]\n",
     "attributes: regions: at most 64 values"),
    ("empty attribute", '[attributes]\nowner = ""\n', "attributes: owner: expected a string"),
]


@pytest.mark.parametrize(("case", "table", "fragment"), ERRORS, ids=[e[0] for e in ERRORS])
def test_a_bad_output_or_attributes_table_names_the_field(tmp_path, case, table, fragment):
    text = table if table.startswith(BASE) else MODEL + table
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, "m")
    assert str(caught.value).startswith(f"{path}: ") and fragment in str(caught.value)


@pytest.mark.parametrize(("a", "b", "joined"), [
    (LABELS, TOP3, TOP3),
    (TOP3, OutputPolicy(mode="top_k", top_k=5), OutputPolicy(mode="top_k", top_k=5)),
    (TOP3, SCORES, SCORES),
    (OutputPolicy(decimals=2), OutputPolicy(decimals=4), OutputPolicy(decimals=4)),
    (OutputPolicy(decimals=2), SCORES, SCORES),
    (OutputPolicy(noise=0.1), OutputPolicy(noise=0.01), OutputPolicy(noise=0.01)),
    (LABELS, OutputPolicy(mode="top_k", top_k=2, decimals=1),
     OutputPolicy(mode="top_k", top_k=2, decimals=1)),  # labels shows no score to round
    (LABELS, LABELS, LABELS),
])
def test_joining_two_policies_keeps_the_most_revealing_part(a, b, joined):
    assert a.join(b) == b.join(a) == joined


@pytest.mark.parametrize(("roles", "expected"), [
    ((), LABELS),
    (("viewer",), LABELS),
    (("partner",), TOP3),
    (("viewer", "partner"), TOP3),
    (("partner", "auditor"), SCORES),
])
def test_a_callers_policy_joins_its_roles_overrides_or_the_models(roles, expected):
    policies = OutputPolicies(LABELS, {"partner": TOP3, "auditor": SCORES})
    assert policies.for_roles(roles) == expected


def test_top_k_is_at_most_the_number_of_classes():
    shaped = OutputPolicy(mode="top_k", top_k=5).apply({"y": torch.tensor([[0.1, 0.7, 0.2]])},
                                                       None)
    assert shaped.tensors["y"][0].tolist() == pytest.approx([0.7, 0.2, 0.1])
    assert shaped.indices["y"].tolist() == [[1, 2, 0]]


def test_integer_and_boolean_outputs_pass_unchanged():
    outputs = {"count": torch.tensor([[3, 1]]), "flag": torch.tensor([[True, False]])}
    shaped = LABELS.apply(outputs, None)
    assert shaped.tensors == outputs and not shaped.indices


def test_the_documented_example_parses_as_docs_models_md_says():
    table = snippets(ROOT / "docs" / "models.md")["output-manifest"].code
    manifest = parse_manifest(tomllib.loads(MODEL + table), "m")
    assert manifest.output.for_roles(("guest",)) == OutputPolicy(mode="top_k", top_k=2,
                                                                 decimals=2, noise=0.01)
    assert manifest.output.for_roles(("partner",)) == OutputPolicy(decimals=4)
    assert manifest.output.for_roles(("guest", "auditor")) == SCORES
    assert dict(manifest.attributes) == {"owner": "acme", "data_class": "internal"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("policy", [TOP3, LABELS, OutputPolicy(decimals=2)], ids=str)
def test_outputs_on_cuda_are_cut_as_on_cpu(policy):
    scores = torch.randn(5, 7)
    on_cpu = policy.apply({"y": scores}, "y")
    on_cuda = policy.apply({"y": scores.cuda()}, "y")
    assert torch.equal(on_cuda.tensors["y"].cpu(), on_cpu.tensors["y"])
    assert torch.equal(on_cuda.top_class.cpu(), on_cpu.top_class)
    assert {k: v.cpu().tolist() for k, v in on_cuda.indices.items()} == {
        k: v.tolist() for k, v in on_cpu.indices.items()}
