"""Properties, checked on generated cases (hypothesis): mutated envelopes and sealed files are
never accepted and never crash, random roles never grant more than the roles file, and the
input checker lets no malformed tensor reach a model.

Bounded for `make test` (a few seconds each); a longer fuzz run of the same properties:
`TORCHGATE_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -p no:cacheprovider
tests/security/test_properties.py` (docs/threat-model.md).
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from errors import GatewayError, InvalidInput
from security.envelope import open_envelope, parse_envelope, seal_envelope
from security.envelope_hpke import open_hpke, seal_hpke, token_binding
from security.gateway_key_algs import ALGORITHMS, X25519, XWING, hpke_public_key
from security.rbac import BUILTIN_ROLES, Policy
from security.sealed import open_sealed, seal_bytes
from security.sealed_header import SealedFileError
from tests.models.conftest import Echo, echo_manifest, make_runner

EXAMPLES = int(os.environ.get("TORCHGATE_FUZZ_EXAMPLES", "300"))
# No example database: nothing written into the checkout; each run draws afresh.
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow])
KEY, KID, NOW = bytes(range(32)), "pk_prop", 1_700_000_000
KEK = bytes(range(1, 33))
PLAINTEXT = b'{"inputs": [[1, 2, 3]]}'


def mutations(original: bytes) -> st.SearchStrategy[bytes]:
    """A changed copy of `original`: bits flipped, bytes cut, inserted or overwritten."""
    positions = st.integers(0, len(original) - 1)
    flipped = st.tuples(positions, st.integers(1, 255)).map(
        lambda pair: original[:pair[0]] + bytes([original[pair[0]] ^ pair[1]])
        + original[pair[0] + 1:])
    cut = st.tuples(positions, positions).map(
        lambda pair: original[:min(pair)] + original[max(pair) + 1:])
    inserted = st.tuples(positions, st.binary(min_size=1, max_size=16)).map(
        lambda pair: original[:pair[0]] + pair[1] + original[pair[0]:])
    return st.one_of(flipped, cut, inserted).filter(lambda changed: changed != original)


ENVELOPE = seal_envelope(PLAINTEXT, key=KEY, kid=KID, now=NOW)


@pytest.mark.timeout(60)
@BOUNDED
@given(mutations(ENVELOPE))
def test_a_mutated_envelope_is_never_accepted(body: bytes) -> None:
    try:
        open_envelope(body, key_for=lambda kid: KEY, now=NOW, max_age=300)
    except GatewayError as refused:  # invalid, key-not-allowed or stale: never anything else
        assert refused.status in (400, 403)
    else:  # only JSON whitespace may change: the same members, so the same authenticated bytes
        assert json.loads(body) == json.loads(ENVELOPE), "a mutated envelope was accepted"


def hpke_envelope(alg: str) -> tuple[object, bytes]:
    """(gateway private key, HPKE envelope of PLAINTEXT sealed to it), for `alg`."""
    private, public = ALGORITHMS[alg].derive(bytes(range(2, 34)))
    jwk = {**ALGORITHMS[alg].jwk_members(public), "alg": alg, "kid": KID}
    algorithm, public_key = hpke_public_key(jwk)
    body = seal_hpke(PLAINTEXT, public_key=public_key, algorithm=algorithm, kid=KID,
                     token="a.b.c", now=NOW).body
    return private, body


HPKE_ENVELOPES = {alg: hpke_envelope(alg) for alg in (X25519, XWING)}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("alg", [X25519, XWING])
@BOUNDED
@given(data=st.data())
def test_a_mutated_hpke_envelope_is_never_accepted(alg: str, data) -> None:
    private, original = HPKE_ENVELOPES[alg]
    body = data.draw(mutations(original))
    try:
        open_hpke(parse_envelope(body), private_key_for=lambda kid, header_alg: private,
                  ath=token_binding("a.b.c"), now=NOW, max_age=300)
    except GatewayError as refused:
        assert refused.status in (400, 403)
    else:
        assert json.loads(body) == json.loads(original), "a mutated envelope was accepted"


SEALED = seal_bytes(PLAINTEXT * 40, model="m", version="1", kek_id="k", kek=KEK, chunk_size=256)


@pytest.mark.timeout(60)
@BOUNDED
@given(mutations(SEALED))
def test_a_mutated_sealed_file_is_never_accepted(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors.sealed"
        path.write_bytes(data)
        try:
            open_sealed(path, {"k": KEK}, model="m", version="1")
        except SealedFileError:
            return
    raise AssertionError("a mutated sealed file was accepted")


ROLE_NAMES = st.one_of(st.sampled_from(sorted(BUILTIN_ROLES)), st.text(max_size=12))
PERMISSIONS = st.one_of(
    st.sampled_from(["models:read", "models:admin", "tokens:revoke", "predict:digits"]),
    st.text(max_size=20).map(lambda name: f"predict:{name}"), st.text(max_size=24))


@pytest.mark.timeout(60)
@BOUNDED
@given(roles=st.lists(ROLE_NAMES, max_size=5).map(tuple), permission=PERMISSIONS)
def test_random_roles_never_grant_more_than_the_roles_file(roles, permission) -> None:
    granted = Policy(BUILTIN_ROLES).allows(roles, permission)
    backed = any(fnmatch.fnmatchcase(permission, pattern)
                 for role in roles if role in BUILTIN_ROLES for pattern in BUILTIN_ROLES[role])
    assert granted == backed


SCALARS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70),
                    st.booleans(), st.none(), st.text(max_size=3), st.just({}))
NESTED = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4), max_leaves=24)
RUNNER = make_runner(echo_manifest(), Echo())


@pytest.mark.timeout(60)
@BOUNDED
@given(NESTED)
def test_the_input_checker_lets_no_malformed_tensor_reach_the_model(inputs) -> None:
    try:
        batch = RUNNER.prepare({"inputs": inputs})
    except InvalidInput:
        return
    (tensor,) = batch.values()
    assert tensor.dtype == torch.float32 and tensor.dim() == 2 and tensor.shape[1] == 3
    assert bool(torch.isfinite(tensor).all())
    assert all(math.isfinite(v) for v in tensor.flatten().tolist())

