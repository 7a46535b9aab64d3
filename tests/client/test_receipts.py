"""The client verifies receipts by default, with keys fetched once and pinned; the CLI verifies a
saved receipt offline; a forged or foreign receipt is refused by both."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from client import InvalidReceipt, TorchgateClient
from client.__main__ import main
from client.gateway_keys import JWKS_PATH
from client.receipts import ReceiptChecker, SentCall
from client.sealing import request_plaintext
from security.encoding import b64url_decode
from security.receipt_algorithms import EDDSA, generate_signing_key
from security.receipts import (
    RECEIPT_AT,
    ReceiptClaims,
    attach_receipt,
    sign_receipt,
    split_reply,
    verify_receipt,
)

ROW = [0.1, 0.2, 0.3, 0.4]
FOREIGN = {"keys": [generate_signing_key(EDDSA, "foreign").public_jwk()]}


def published(live) -> dict:
    return {"keys": live.app.extensions["torchgate"].receipt_keys.public_jwks()}


def jwks_fetches(live) -> int:
    return sum(path == JWKS_PATH for path, _ in live.recorder.paths())


def test_replies_are_verified_with_keys_fetched_once(live):
    with TorchgateClient(live.url, **live.user_kwargs()) as client:
        first = client.predict("tiny", [ROW])
        second = client.predict("tiny", [ROW, ROW])
    assert verify_receipt(first["receipt"], published(live)).rid == first["request_id"]
    assert len(second["outputs"]) == 2
    assert jwks_fetches(live) == 1


def test_keys_given_by_the_caller_are_never_fetched(live):
    with TorchgateClient(live.url, receipt_keys=published(live), **live.user_kwargs()) as client:
        client.predict("tiny", [ROW])
    assert jwks_fetches(live) == 0


def test_a_receipt_the_pinned_keys_do_not_verify_is_refused(live):
    with (TorchgateClient(live.url, receipt_keys=FOREIGN, **live.user_kwargs()) as client,
          pytest.raises(InvalidReceipt, match="no signing key") as raised):
        client.predict("tiny", [ROW])
    assert raised.value.slug == "invalid-receipt"


def test_verification_can_be_turned_off(live):
    with TorchgateClient(live.url, verify_receipts=False, receipt_keys=FOREIGN,
                         **live.user_kwargs()) as client:
        assert client.predict("tiny", [ROW])["model"] == "tiny"
    assert jwks_fetches(live) == 0


def serving_jwks_first(jwks: dict) -> Callable[[Callable], Callable]:
    """A wrapper answering the first JWKS fetch with `jwks` (keys of before a rotation)."""
    def wrap(app: Callable) -> Callable:
        answered: list[bool] = []

        def wsgi(environ: dict, start_response: Callable) -> Any:
            if environ["PATH_INFO"] == JWKS_PATH and not answered:
                answered.append(True)
                start_response("200 OK", [("Content-Type", "application/json")])
                return [json.dumps(jwks).encode()]
            return app(environ, start_response)
        return wsgi
    return wrap


def test_a_rotated_key_is_fetched_once_more(start_live):
    live = start_live(wrap=serving_jwks_first(FOREIGN))
    with TorchgateClient(live.url, **live.user_kwargs()) as client:
        with pytest.raises(InvalidReceipt):  # a fresh set that lacks the kid is not refetched
            client.predict("tiny", [ROW])
        assert client.predict("tiny", [ROW])["model"] == "tiny"  # the pinned set is stale
    assert jwks_fetches(live) == 2


def test_a_gateway_that_publishes_no_keys_fails_the_call_clearly(start_live):
    def without_jwks(app: Callable) -> Callable:
        def wsgi(environ: dict, start_response: Callable) -> Any:
            if environ["PATH_INFO"] == JWKS_PATH:
                start_response("404 Not Found", [("Content-Type", "application/json")])
                return [b"{}"]
            return app(environ, start_response)
        return wsgi
    live = start_live(wrap=without_jwks)
    with (TorchgateClient(live.url, **live.user_kwargs()) as client,
          pytest.raises(InvalidReceipt, match="could not be fetched") as raised):
        client.predict("tiny", [ROW])
    assert raised.value.status == 404


@pytest.mark.parametrize("field, sent", [
    ("model", lambda s: SentCall("digits", s.plaintext, s.body)),
    ("request_sha256", lambda s: SentCall(s.model, b'{"inputs":[]}', s.body)),
    ("body_sha256", lambda s: SentCall(s.model, s.plaintext, b"another body")),
])
def test_a_receipt_about_another_call_is_refused(live, field, sent):
    with TorchgateClient(live.url, verify_receipts=False, **live.user_kwargs()) as client:
        reply = client.predict_plaintext("tiny", [ROW])
    body = live.recorder.seen[-1].body
    actual = SentCall("tiny", request_plaintext({"inputs": [ROW]}), body)
    checker = ReceiptChecker(None, published(live))
    assert checker.check(reply, RECEIPT_AT, actual).model == "tiny"
    with pytest.raises(InvalidReceipt, match=f"does not describe this call: {field}$"):
        checker.check(reply, RECEIPT_AT, sent(actual))


def cli(capsys, argv: list[str], environ: dict[str, str]) -> tuple[int, dict | None, str]:
    code = main(argv, environ)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else None), err


@pytest.fixture
def saved(live, capsys, tmp_path) -> dict:
    """A reply saved by `predict --save-reply`, its request and the published JWKS."""
    (tmp_path / "inputs.json").write_text(json.dumps({"inputs": [ROW]}))
    code, printed, _ = cli(capsys, ["predict", "tiny", "--input", str(tmp_path / "inputs.json"),
                                    "--save-reply", str(tmp_path / "reply.json")], live.env())
    assert code == 0 and printed == json.loads((tmp_path / "reply.json").read_bytes())
    (tmp_path / "jwks.json").write_text(json.dumps(published(live)))
    (tmp_path / "request.json").write_bytes(request_plaintext({"inputs": [ROW]}))
    return {name: str(tmp_path / f"{name}.json") for name in ("reply", "jwks", "request")}


def test_verify_receipt_checks_a_saved_reply_offline(saved, capsys):
    code, claims, err = cli(capsys, ["verify-receipt", saved["reply"], "--jwks", saved["jwks"],
                                     "--request", saved["request"]], {})
    assert (code, err) == (0, "")
    assert (claims["model"], claims["sub"]) == ("tiny", "alice")


def test_verify_receipt_accepts_the_bare_receipt(saved, capsys, tmp_path):
    reply = json.loads(Path(saved["reply"]).read_bytes())
    receipt = reply["receipt"]
    (tmp_path / "receipt.jws").write_text(receipt + "\n")
    code, claims, _ = cli(capsys, ["verify-receipt", str(tmp_path / "receipt.jws"),
                                   "--jwks", saved["jwks"]], {})
    assert (code, claims["rid"]) == (0, reply["request_id"])


def forgeries(reply: bytes) -> dict[str, bytes]:
    receipt, covered = split_reply(reply, RECEIPT_AT)
    header, payload, _ = (b64url_decode(part) for part in receipt.split("."))
    impostor = generate_signing_key(EDDSA, json.loads(header)["kid"])  # same kid, another key
    return {
        "reply edited": reply.replace(b'"version":"1"', b'"version":"2"'),
        "receipt re-signed by another key": attach_receipt(covered, sign_receipt(
            ReceiptClaims.from_json(json.loads(payload)), impostor), RECEIPT_AT),
        "signature cut": reply.replace(receipt.encode(), receipt[:-4].encode()),
    }


@pytest.mark.parametrize("case", ["reply edited", "receipt re-signed by another key",
                                  "signature cut"])
def test_verify_receipt_refuses_a_forged_reply(saved, capsys, tmp_path, case):
    forged = forgeries(Path(saved["reply"]).read_bytes())[case]
    (tmp_path / "forged.json").write_bytes(forged)
    code, out, err = cli(capsys, ["verify-receipt", str(tmp_path / "forged.json"),
                                  "--jwks", saved["jwks"]], {})
    assert (code, out) == (1, None)
    assert err.startswith("torchgate: invalid-receipt: ")


def test_verify_receipt_refuses_another_request(saved, capsys, tmp_path):
    (tmp_path / "other.json").write_bytes(request_plaintext({"inputs": [ROW, ROW]}))
    code, _, err = cli(capsys, ["verify-receipt", saved["reply"], "--jwks", saved["jwks"],
                                "--request", str(tmp_path / "other.json")], {})
    assert (code, err) == (1, "torchgate: invalid-receipt: the request is not the one the "
                              "receipt was signed for\n")
