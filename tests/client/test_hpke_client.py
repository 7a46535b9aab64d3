"""The client seals to the gateway's published HPKE key by default, with the key set pinned."""

from __future__ import annotations

import json
import secrets

import pytest

from client import KeyNotAllowed, TorchgateClient
from client.__main__ import main
from client.errors import InvalidEnvelope
from security.gateway_key_algs import ALGORITHMS, XWING
from tests.client.conftest import Fault
from tests.security.hpke_reference import unb64

ROW = [0.1, 0.2, 0.3, 0.4]
JWKS = "/.well-known/jwks.json"


def sent_members(live) -> list[set[str]]:
    return [set(json.loads(s.body)) for s in live.recorder.seen if s.path == "/predict/tiny"]


def jwks_fetches(live) -> int:
    return sum(1 for s in live.recorder.seen if s.path == JWKS)


def test_auto_seals_to_the_published_key_and_fetches_the_set_once(live) -> None:
    with TorchgateClient(live.url, username="alice", password=live.user.secret) as gateway:
        first = gateway.predict("tiny", [ROW])
        second = gateway.predict("tiny", [ROW, ROW])
    assert (first["model"], len(second["outputs"])) == ("tiny", 2)
    assert sent_members(live) == [{"protected", "encrypted_key", "ciphertext"}] * 2
    assert jwks_fetches(live) == 1


def test_hpke_is_preferred_to_a_payload_key_and_the_x_wing_key_to_x25519(live) -> None:
    with TorchgateClient(live.url, **live.user_kwargs(envelope="auto")) as gateway:
        gateway.predict("tiny", [ROW])
    body = next(s.body for s in live.recorder.seen if s.path == "/predict/tiny")
    assert json.loads(unb64(json.loads(body)["protected"]))["alg"] == XWING


def test_a_retried_call_seals_again_and_opens_the_last_reply(start_live) -> None:
    live = start_live()
    live.recorder.fail("/predict/tiny", Fault(503, after_app=True))
    with TorchgateClient(live.url, username="alice", password=live.user.secret,
                         retries=2) as gateway:
        result = gateway.predict("tiny", [ROW])
    bodies = [s.body for s in live.recorder.seen if s.path == "/predict/tiny"]
    assert result["model"] == "tiny" and len(bodies) == 2 and bodies[0] != bodies[1]


def test_trust_on_first_use_pins_the_set_in_a_file(live, tmp_path) -> None:
    pin = tmp_path / "gateway-keys.json"
    for _ in range(2):
        with TorchgateClient(live.url, username="alice", password=live.user.secret,
                             pin_file=pin) as gateway:
            gateway.predict("tiny", [ROW])
    assert jwks_fetches(live) == 1
    assert json.loads(pin.read_text()) == live.app.test_client().get(JWKS).json


def foreign_jwks(**extra) -> dict:
    _, public = ALGORITHMS[XWING].derive(secrets.token_bytes(32))
    return {"keys": [{**ALGORITHMS[XWING].jwk_members(public), "kid": "gk_enc_mallory",
                      "use": "enc", "alg": XWING, **extra}]}


def test_a_pinned_set_is_not_replaced_by_what_the_gateway_serves(live, tmp_path) -> None:
    """A key set substituted after pinning (or a pin the gateway never had) is not followed."""
    pin = tmp_path / "pin.json"
    pin.write_text(json.dumps(foreign_jwks()))
    with TorchgateClient(live.url, username="alice", password=live.user.secret,
                         pin_file=pin) as gateway, pytest.raises(KeyNotAllowed):
        gateway.predict("tiny", [ROW])
    assert jwks_fetches(live) == 0


def test_the_operators_file_is_trusted_instead_of_fetching(live, tmp_path) -> None:
    given = tmp_path / "operator-jwks.json"
    given.write_text(json.dumps(live.app.test_client().get(JWKS).json))
    with TorchgateClient(live.url, username="alice", password=live.user.secret,
                         gateway_keys=given) as gateway:
        assert gateway.predict("tiny", [ROW])["model"] == "tiny"
    assert jwks_fetches(live) == 0


def test_expired_pinned_keys_ask_for_a_new_pin(live, tmp_path) -> None:
    pin = tmp_path / "pin.json"
    pin.write_text(json.dumps(foreign_jwks(exp=1)))
    with TorchgateClient(live.url, username="alice", password=live.user.secret,
                         pin_file=pin) as gateway, pytest.raises(KeyNotAllowed) as refused:
        gateway.predict("tiny", [ROW])
    assert refused.value.slug == "pinned-keys-expired" and str(pin) in refused.value.detail


@pytest.mark.parametrize(("envelope", "outcome"), [
    ("auto", {"protected", "iv", "ciphertext", "tag"}),  # falls back to the payload key
    ("hpke", "no-gateway-key"),
])
def test_a_gateway_without_published_keys(start_live, envelope, outcome) -> None:
    live = start_live()
    live.recorder.fail(JWKS, Fault(500, retry_after=None))
    with TorchgateClient(live.url, **live.user_kwargs(envelope=envelope)) as gateway:
        if isinstance(outcome, str):
            with pytest.raises(InvalidEnvelope) as refused:
                gateway.predict("tiny", [ROW])
            assert refused.value.slug == outcome
        else:
            assert gateway.predict("tiny", [ROW])["model"] == "tiny"
            assert sent_members(live) == [outcome]


def test_the_cli_seals_with_hpke_by_default(live, capsys, tmp_path) -> None:
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps([ROW]))
    environ = {k: v for k, v in live.env().items() if k != "TORCHGATE_ENVELOPE"}
    pin = tmp_path / "pin.json"
    code = main(["--pin-file", str(pin), "predict", "tiny", "--input", str(sample)], environ)
    out = json.loads(capsys.readouterr().out)
    assert (code, out["model"]) == (0, "tiny") and pin.exists()
    assert sent_members(live) == [{"protected", "encrypted_key", "ciphertext"}]
