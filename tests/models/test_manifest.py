"""model.toml parsing: the full format, defaults, and one table of every refusal."""

from __future__ import annotations

import pytest

from models.manifest import Batching, Limits, ManifestError, TensorSpec, load_manifest
from tests.doc_blocks import ROOT, snippets

FULL = """
architecture = "models.zoo:MLP"
default_version = "2"
device = "cuda:1"
labels = ["no", "yes"]
[arguments]
in_features = 64
hidden = [32, 16]
out_features = 2
[[inputs]]
name = "pixels"
shape = [-1, 64]
dtype = "float32"
[[outputs]]
name = "logits"
shape = [-1, 2]
dtype = "float32"
[limits]
max_elements = 1000
allow_nonfinite = true
[batching]
max_batch_size = 32
max_delay_ms = 2
"""

MINIMAL = """
architecture = "pkg.module:Net"
[[inputs]]
name = "x"
shape = [-1]
dtype = "int64"
[[outputs]]
name = "y"
shape = [-1]
dtype = "bool"
"""

INPUT = '[[inputs]]\nname = "x"\nshape = [-1, 4]\ndtype = "float32"\n'
OUTPUT = '[[outputs]]\nname = "y"\nshape = [-1, 3]\ndtype = "float32"\n'
BASE = 'architecture = "models.zoo:MLP"\n'
BATCHING = "[batching]\nmax_batch_size = {}\nmax_delay_ms = {}\n"


def write(tmp_path, text: str):
    path = tmp_path / "model.toml"
    path.write_text(text)
    return path


def test_full_manifest_is_parsed(tmp_path):
    manifest = load_manifest(write(tmp_path, FULL), "digits")
    assert manifest.name == "digits"
    assert manifest.architecture == "models.zoo:MLP"
    assert dict(manifest.arguments) == {"in_features": 64, "hidden": [32, 16], "out_features": 2}
    assert manifest.inputs == (TensorSpec("pixels", (-1, 64), "float32"),)
    assert manifest.outputs == (TensorSpec("logits", (-1, 2), "float32"),)
    assert (manifest.default_version, manifest.device) == ("2", "cuda:1")
    assert manifest.labels == ("no", "yes")
    assert manifest.limits == Limits(max_elements=1000, allow_nonfinite=True)
    assert manifest.batching == Batching(max_batch_size=32, max_delay_ms=2.0)


def test_optional_fields_default(tmp_path):
    manifest = load_manifest(write(tmp_path, MINIMAL), "m")
    assert dict(manifest.arguments) == {}
    assert (manifest.default_version, manifest.device, manifest.labels) == (None, None, None)
    assert manifest.limits == Limits(max_elements=1048576, allow_nonfinite=False)
    assert manifest.batching is None
    assert manifest.quota is None


def test_a_quota_counts_per_subject_on_the_model_in_every_window(tmp_path):
    text = BASE + INPUT + OUTPUT + "[quota]\nper_subject = '1000/hour;10000/day'\n"
    quota = load_manifest(write(tmp_path, text), "digits").quota
    counters = quota.counters("alice")
    assert [(c.limit, c.window, c.text) for c in counters] == [
        (1000, 3600, "1000 per 1 hour"), (10000, 86400, "10000 per 1 day")]
    assert all("quota:digits" in c.key and "alice" in c.key for c in counters)


def test_manifest_is_read_only(tmp_path):
    manifest = load_manifest(write(tmp_path, FULL), "digits")
    with pytest.raises(TypeError):
        manifest.arguments["in_features"] = 1  # type: ignore[index]


ERRORS = [
    ("unknown top-level key", BASE + "colour = 'red'\n" + INPUT + OUTPUT, "colour: unknown key"),
    ("architecture missing", INPUT + OUTPUT, "architecture: required"),
    ("architecture not module:Class", 'architecture = "MLP"\n' + INPUT + OUTPUT,
     "architecture: expected 'package.module:Class'"),
    ("architecture not a string", "architecture = 3\n" + INPUT + OUTPUT,
     "architecture: expected a string, got integer"),
    ("arguments not a table", BASE + "arguments = [1]\n" + INPUT + OUTPUT,
     "arguments: expected a table"),
    ("inputs missing", BASE + OUTPUT, "inputs: required"),
    ("inputs empty", BASE + "inputs = []\n" + OUTPUT, "inputs: at least one entry"),
    ("outputs not tables", BASE + "outputs = [1]\n" + INPUT,
     "outputs: expected an array of tables"),
    ("input key unknown", BASE + INPUT + 'layout = "nchw"\n' + OUTPUT,
     "inputs[0].layout: unknown key"),
    ("input dtype missing", BASE + '[[inputs]]\nname = "x"\nshape = [1]\n' + OUTPUT,
     "inputs[0].dtype: required"),
    ("unknown dtype", BASE + INPUT.replace("float32", "float8") + OUTPUT,
     "inputs[0].dtype: unknown dtype 'float8'"),
    ("duplicate input name", BASE + INPUT + INPUT + OUTPUT, "inputs[1].name: duplicate name 'x'"),
    ("invalid tensor name", BASE + INPUT.replace('"x"', '"a b"') + OUTPUT,
     "inputs[0].name: invalid name 'a b'"),
    ("zero dimension", BASE + INPUT.replace("[-1, 4]", "[-1, 0]") + OUTPUT,
     "inputs[0].shape[1]: expected -1 or a positive integer, got 0"),
    ("dimension -2", BASE + INPUT.replace("[-1, 4]", "[-2, 4]") + OUTPUT, "inputs[0].shape[0]"),
    ("float dimension", BASE + INPUT.replace("[-1, 4]", "[-1, 4.0]") + OUTPUT,
     "inputs[0].shape[1]"),
    ("bool dimension", BASE + INPUT.replace("[-1, 4]", "[-1, true]") + OUTPUT,
     "inputs[0].shape[1]"),
    ("empty shape", BASE + INPUT + OUTPUT.replace("[-1, 3]", "[]"),
     "outputs[0].shape: expected a non-empty array"),
    ("default_version integer", BASE + "default_version = 2\n" + INPUT + OUTPUT,
     "default_version: expected a string, got integer"),
    ("default_version not integer", BASE + 'default_version = "v2"\n' + INPUT + OUTPUT,
     "default_version: expected an integer version string"),
    ("default_version leading zero", BASE + 'default_version = "02"\n' + INPUT + OUTPUT,
     "default_version"),
    ("device unknown", BASE + 'device = "tpu"\n' + INPUT + OUTPUT,
     "device: expected auto, cpu, cuda or cuda:N, got 'tpu'"),
    ("device cuda:x", BASE + 'device = "cuda:x"\n' + INPUT + OUTPUT, "device:"),
    ("labels not strings", BASE + "labels = [1, 2, 3]\n" + INPUT + OUTPUT,
     "labels[0]: expected a string"),
    ("labels count", BASE + 'labels = ["a", "b"]\n' + INPUT + OUTPUT,
     "labels: 2 labels, but output 'y' has 3 classes"),
    ("labels on 1-d output", BASE + 'labels = ["a"]\n' + INPUT + OUTPUT.replace("[-1, 3]", "[-1]"),
     "labels: output 'y' needs at least 2 dimensions"),
    ("limits unknown key", BASE + INPUT + OUTPUT + "[limits]\nmax_bytes = 3\n",
     "limits.max_bytes: unknown key"),
    ("max_elements zero", BASE + INPUT + OUTPUT + "[limits]\nmax_elements = 0\n",
     "limits.max_elements: must be at least 1"),
    ("allow_nonfinite string", BASE + INPUT + OUTPUT + "[limits]\nallow_nonfinite = 'yes'\n",
     "limits.allow_nonfinite: expected a boolean, got string"),
    ("batching incomplete", BASE + INPUT + OUTPUT + "[batching]\nmax_batch_size = 8\n",
     "batching.max_delay_ms: required"),
    ("batch size zero", BASE + INPUT + OUTPUT + BATCHING.format(0, 1),
     "batching.max_batch_size: must be at least 1"),
    ("negative delay", BASE + INPUT + OUTPUT + BATCHING.format(4, -1),
     "batching.max_delay_ms"),
    ("quota without per_subject", BASE + INPUT + OUTPUT + "[quota]\n",
     "quota.per_subject: required"),
    ("quota unknown key", BASE + INPUT + OUTPUT + "[quota]\nper_tenant = '5/day'\n",
     "quota.per_tenant: unknown key"),
    ("quota not a limit", BASE + INPUT + OUTPUT + "[quota]\nper_subject = 'lots'\n",
     "quota.per_subject: expected a limit like '10000/day'"),
    ("quota empty", BASE + INPUT + OUTPUT + "[quota]\nper_subject = ''\n",
     "quota.per_subject: expected a limit"),
    ("quota a number", BASE + INPUT + OUTPUT + "[quota]\nper_subject = 10000\n",
     "quota.per_subject: expected a string, got integer"),
    ("invalid TOML", BASE + "inputs = [\n", "invalid TOML"),
]


@pytest.mark.parametrize(("case", "text", "fragment"), ERRORS, ids=[e[0] for e in ERRORS])
def test_manifest_error_names_file_and_field(tmp_path, case, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, "m")
    assert str(caught.value).startswith(f"{path}: ")
    assert fragment in str(caught.value)


def test_missing_file_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "absent" / "model.toml", "m")


def test_the_quota_of_the_model_protection_doc_is_read_as_written(tmp_path):
    table = snippets(ROOT / "docs" / "model-protection.md")["quota"].code
    quota = load_manifest(write(tmp_path, BASE + INPUT + OUTPUT + table), "digits").quota
    assert [c.text for c in quota.counters("alice")] == ["10000 per 1 day"]
