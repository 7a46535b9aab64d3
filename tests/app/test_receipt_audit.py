"""`audit verify --receipt`: a saved receipt matched to its audit record, and every mismatch."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from app.gateway import current_gateway
from security.envelope import open_envelope, request_digest
from security.receipt_algorithms import EDDSA, generate_signing_key
from security.receipts import attach_receipt, sign_receipt, split_reply, verify_receipt
from tests.app.test_audit import audit_rows
from tests.conftest import SEALED

ROWS = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}


@pytest.fixture
def reply(app, client, auth, sealer) -> bytes:
    """The plaintext of one successful sealed call, as a client saves it."""
    response = client.post("/predict/tiny", data=sealer.seal(ROWS), content_type=SEALED,
                           headers={**auth.headers(), "X-Request-ID": "receipt-audit-1"})
    assert response.status_code == 200
    return open_envelope(response.data, key_for=lambda kid: sealer.key, now=time.time(),
                         max_age=300, reply_to=request_digest(sealer.sent[-1])).plaintext


def verify(app, tmp_path, saved: bytes, *extra: str) -> tuple[int, dict]:
    path = tmp_path / "saved-receipt"
    path.write_bytes(saved)
    result = app.test_cli_runner().invoke(args=["audit", "verify", "--receipt", str(path),
                                                *extra])
    return result.exit_code, json.loads(result.stdout)


def resigned(app, reply: bytes, **changes) -> bytes:
    """The reply's receipt with claims changed, signed by the gateway's own key."""
    with app.app_context():
        keys = current_gateway().receipt_keys
    receipt, _ = split_reply(reply, ("receipt",))
    claims = dataclasses.replace(verify_receipt(receipt, keys.public_jwks()), **changes)
    return sign_receipt(claims, keys.current()).encode()


@pytest.mark.parametrize("form", ["reply", "bare receipt"])
def test_a_receipt_matches_its_record(app, tmp_path, reply, form):
    saved = reply if form == "reply" else json.loads(reply)["receipt"].encode() + b"\n"
    code, result = verify(app, tmp_path, saved)
    (row,) = audit_rows(app)
    assert (code, result) == (0, {"intact": True, "chains": 1, "records": 1, "receipt": {
        "rid": "receipt-audit-1", "matches": True, "chain": row.chain_id, "seq": row.seq,
        "differing": []}})


@pytest.mark.parametrize("changes, differing", [
    ({"sub": "mallory"}, ["subject"]),
    ({"model": "other"}, ["model"]),
    ({"version": "2"}, ["version"]),
    ({"iat": 1_000_000_000}, ["time"]),
])
def test_a_receipt_that_says_otherwise_than_its_record_does_not_match(
        app, tmp_path, reply, changes, differing):
    code, result = verify(app, tmp_path, resigned(app, reply, **changes))
    assert code == 1
    assert result["receipt"]["matches"] is False
    assert result["receipt"]["differing"] == differing


@pytest.mark.parametrize("changes", [{"rid": "another-request"}, {"body_sha256": "0" * 64}])
def test_a_receipt_of_no_recorded_request_does_not_match(app, tmp_path, reply, changes):
    code, result = verify(app, tmp_path, resigned(app, reply, **changes))
    assert (code, result["receipt"]) == (1, {
        "rid": changes.get("rid", "receipt-audit-1"), "matches": False,
        "reason": "no audit record of this request id and body"})


def test_an_edited_reply_does_not_verify(app, tmp_path, reply):
    edited = reply.replace(b'"version":"1"', b'"version":"7"')
    code, result = verify(app, tmp_path, edited)
    assert (code, result["receipt"]) == (1, {
        "matches": False, "reason": "the reply is not the one the receipt was signed for"})


def test_a_receipt_signed_by_another_key_does_not_verify(app, tmp_path, reply):
    receipt, covered = split_reply(reply, ("receipt",))
    with app.app_context():
        keys = current_gateway().receipt_keys
    claims = verify_receipt(receipt, keys.public_jwks())
    impostor = generate_signing_key(EDDSA, keys.current().kid)
    forged = attach_receipt(covered, sign_receipt(claims, impostor),
                            ("receipt",))
    code, result = verify(app, tmp_path, forged)
    assert (code, result["receipt"]["matches"]) == (1, False)
    assert "signature" in result["receipt"]["reason"]


def test_a_jwks_file_can_be_named(app, tmp_path, reply):
    with app.app_context():
        published = {"keys": current_gateway().receipt_keys.public_jwks()}
    other = {"keys": [generate_signing_key(EDDSA, "k").public_jwk()]}
    for jwks, expected in ((published, 0), (other, 1)):
        (tmp_path / "jwks.json").write_text(json.dumps(jwks))
        code, _ = verify(app, tmp_path, reply, "--jwks", str(tmp_path / "jwks.json"))
        assert code == expected
