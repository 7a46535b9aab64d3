"""HPKE envelopes: the gateway's opener against pycryptodome's and pyca/cryptography's senders."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from Crypto.Protocol import HPKE
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from errors import InvalidEnvelope, KeyNotAllowed, StaleEnvelope
from security.envelope import parse_envelope
from security.envelope_hpke import REPLY_EXPORT_LABEL, open_hpke, seal_hpke, token_binding
from security.gateway_key_algs import ALGORITHMS, X25519, XWING, hpke_public_key
from tests.security import hpke_reference as ref

NOW = 1_800_000_000
TOKEN = "header.payload.signature"
KID = "gk_enc_test"
PLAINTEXT = b'{"inputs": [[1, 2, 3, 4]]}'
PYCA_SUITES = {X25519: (hpke.KEM.X25519, hpke.AEAD.AES_128_GCM),
               XWING: (hpke.KEM.MLKEM768_X25519, hpke.AEAD.AES_256_GCM)}


def gateway_key(alg: str):
    """(private key, public JWK) of a fresh gateway key of `alg`."""
    private, public = ALGORITHMS[alg].derive(secrets.token_bytes(32))
    members = ALGORITHMS[alg].jwk_members(public)
    return private, {**members, "kid": KID, "use": "enc", "alg": alg}


def open_with(private, alg: str, body: bytes, *, ath: str = token_binding(TOKEN),
              now: float = NOW):
    def private_key_for(kid: str, header_alg: str):
        if kid != KID:
            raise KeyNotAllowed()
        if header_alg != alg:
            raise InvalidEnvelope()
        return private
    return open_hpke(parse_envelope(body), private_key_for=private_key_for, ath=ath, now=now,
                     max_age=300)


def header(alg: str, **changes) -> dict:
    base = {"alg": alg, "kid": KID, "iat": NOW, "ath": ref.ath(TOKEN),
            "typ": "torchgate-request+jwe"}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


@pytest.mark.parametrize("alg", [X25519, XWING])
def test_reference_matches_pyca_suite(alg):
    """The test's own HPKE sender is RFC 9180: pyca's Suite opens what it seals (empty aad)."""
    kem, aead = PYCA_SUITES[alg]
    if alg == X25519:
        private = x25519.X25519PrivateKey.generate()
        public = private.public_key().public_bytes_raw()
    else:
        parts = mlkem.MLKEM768PrivateKey.generate(), x25519.X25519PrivateKey.generate()
        private = hpke.MLKEM768X25519PrivateKey(*parts)
        public = parts[0].public_key().public_bytes_raw() + parts[1].public_key() \
            .public_bytes_raw()
    context = ref.setup_sender(alg, public)
    sealed = context.enc + context.seal(b"anchor", b"")
    assert hpke.Suite(kem, hpke.KDF.HKDF_SHA256, aead).decrypt(sealed, private) == b"anchor"


@pytest.mark.parametrize("alg", [X25519, XWING])
def test_pyca_suite_seals_what_pycryptodome_opens(alg):
    """pyca's own single-shot Suite, with no code of the test in between."""
    private, jwk = gateway_key(alg)
    kem, aead = PYCA_SUITES[alg]
    raw = ref.jwk_public_bytes(jwk)
    public = (x25519.X25519PublicKey.from_public_bytes(raw) if alg == X25519 else
              hpke.MLKEM768X25519PublicKey(mlkem.MLKEM768PublicKey.from_public_bytes(raw[:-32]),
                                           x25519.X25519PublicKey.from_public_bytes(raw[-32:])))
    sealed = hpke.Suite(kem, hpke.KDF.HKDF_SHA256, aead).encrypt(b"from pyca", public)
    enc_length = kem.enc_length()
    context = HPKE.new(receiver_key=private, aead_id=ALGORITHMS[alg].hpke_aead,
                       enc=sealed[:enc_length])
    assert context.unseal(sealed[enc_length:]) == b"from pyca"


@pytest.mark.parametrize("alg", [X25519, XWING])
def test_gateway_opens_a_reference_envelope_and_both_export_the_reply_key(alg):
    private, jwk = gateway_key(alg)
    body, reply_key = ref.seal_request(PLAINTEXT, jwk, header(alg))
    opened = open_with(private, alg, body)
    assert (opened.plaintext, opened.kid, opened.iat) == (PLAINTEXT, KID, NOW)
    assert opened.reply_key == reply_key and len(reply_key) == 32


@pytest.mark.parametrize("alg", [X25519, XWING])
def test_seal_hpke_round_trip(alg):
    private, jwk = gateway_key(alg)
    algorithm, public = hpke_public_key(jwk)
    sealed = seal_hpke(PLAINTEXT, public_key=public, algorithm=algorithm, kid=KID, token=TOKEN,
                       now=NOW)
    opened = open_with(private, alg, sealed.body)
    assert opened.plaintext == PLAINTEXT and opened.reply_key == sealed.reply_key
    assert set(json.loads(sealed.body)) == {"protected", "encrypted_key", "ciphertext"}


def flip(text: str) -> str:
    raw = bytearray(ref.unb64(text))
    raw[len(raw) // 2] ^= 1
    return ref.b64(bytes(raw))


def edit_members(**changes):
    def edit(members: dict) -> dict:
        out = {**members, **changes}
        return {k: v for k, v in out.items() if v is not None}
    return edit


REFUSALS = [
    ("ciphertext tampered", {}, lambda m: {**m, "ciphertext": flip(m["ciphertext"])}),
    ("encapsulated key tampered", {}, lambda m: {**m, "encrypted_key": flip(m["encrypted_key"])}),
    ("encapsulated key cut", {}, lambda m: {**m, "encrypted_key": m["encrypted_key"][:-8]}),
    ("protected header swapped", {}, lambda m: {
        **m, "protected": ref.b64(json.dumps(header(m["_alg"], iat=NOW + 1)).encode())}),
    ("foreign token binding", {"ath": ref.ath("another.token.entirely")}, None),
    ("no token binding", {"ath": None}, None),
    ("enc present", {"enc": "A256GCM"}, None),
    ("ek header present", {"ek": "AAAA"}, None),
    ("psk mode", {"psk_id": "cHNr"}, None),
    ("zip", {"zip": "DEF"}, None),
    ("crit", {"crit": ["exp"]}, None),
    ("reply direction", {"typ": "torchgate-reply+jwe"}, None),
    ("no kid", {"kid": None}, None),
    ("iat as text", {"iat": str(NOW)}, None),
    ("non-empty iv", {}, edit_members(iv="AAAAAAAAAAAAAAAA")),
    ("non-empty tag", {}, edit_members(tag="AAAAAAAAAAAAAAAAAAAAAA")),
    ("unknown member", {}, edit_members(recipients=[])),
    ("unprotected header", {}, edit_members(unprotected={"kid": KID})),
    ("no encrypted key", {}, edit_members(encrypted_key=None)),
    ("aad added after sealing", {}, edit_members(aad="ZXh0cmE")),
]


@pytest.mark.parametrize("alg", [X25519, XWING])
@pytest.mark.parametrize(("case", "header_changes", "edit"), REFUSALS,
                         ids=[case for case, *_ in REFUSALS])
def test_refused_as_invalid_envelope(alg, case, header_changes, edit):
    private, jwk = gateway_key(alg)
    body, _ = ref.seal_request(PLAINTEXT, jwk, header(alg, **header_changes))
    if edit is not None:
        members = edit({**json.loads(body), "_alg": alg})
        members.pop("_alg")
        body = json.dumps(members).encode()
    with pytest.raises(InvalidEnvelope):
        open_with(private, alg, body)


def test_an_envelope_for_the_other_suite_is_refused():
    private, _ = gateway_key(XWING)
    _, x25519_jwk = gateway_key(X25519)
    body, _ = ref.seal_request(PLAINTEXT, x25519_jwk, header(X25519))
    with pytest.raises(InvalidEnvelope):
        open_with(private, XWING, body)


def test_a_wrong_key_of_the_right_suite_is_refused():
    _, jwk = gateway_key(XWING)
    other, _ = gateway_key(XWING)
    body, _ = ref.seal_request(PLAINTEXT, jwk, header(XWING))
    with pytest.raises(InvalidEnvelope):
        open_with(other, XWING, body)


def test_an_unknown_kid_is_the_key_lookups_refusal():
    private, jwk = gateway_key(X25519)
    body, _ = ref.seal_request(PLAINTEXT, jwk, header(X25519, kid="gk_enc_elsewhere"))
    with pytest.raises(KeyNotAllowed):
        open_with(private, X25519, body)


@pytest.mark.parametrize(("skew", "stale"), [(-301, True), (301, True), (300, False)])
def test_freshness(skew, stale):
    private, jwk = gateway_key(X25519)
    body, _ = ref.seal_request(PLAINTEXT, jwk, header(X25519, iat=NOW + skew))
    if stale:
        with pytest.raises(StaleEnvelope):
            open_with(private, X25519, body)
    else:
        assert open_with(private, X25519, body).plaintext == PLAINTEXT


def test_the_reply_key_is_the_rfc_9180_export_with_torchgates_label():
    private, jwk = gateway_key(X25519)
    context = ref.setup_sender(X25519, ref.jwk_public_bytes(jwk))
    protected = ref.b64(json.dumps(header(X25519)).encode())
    body = json.dumps({"protected": protected, "encrypted_key": ref.b64(context.enc),
                       "ciphertext": ref.b64(context.seal(PLAINTEXT, protected.encode()))})
    opened = open_with(private, X25519, body.encode())
    assert opened.reply_key == context.export(b"torchgate hpke reply v1", 32)
    assert REPLY_EXPORT_LABEL == b"torchgate hpke reply v1"


VECTORS = json.loads((Path(__file__).parent / "hpke_vectors.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["alg"] for v in VECTORS])
def test_the_published_vectors_open_in_both_implementations(vector):
    """docs/envelope-hpke.md's vectors: the gateway opens the request and exports the reply key
    from the seed alone; the independent code opens the reply under that key."""
    alg = vector["alg"]
    private, public = ALGORITHMS[alg].derive(bytes.fromhex(vector["seed_hex"]))
    assert ref.jwk_public_bytes(vector["public_jwk"]) == public
    request = vector["request_body"].encode()
    header = json.loads(ref.unb64(json.loads(request)["protected"]))
    opened = open_hpke(parse_envelope(request),
                       private_key_for=lambda kid, header_alg: private,
                       ath=token_binding(vector["token"]), now=header["iat"], max_age=300)
    assert opened.plaintext == vector["request_plaintext"].encode()
    assert opened.reply_key.hex() == vector["reply_key_hex"]
    reply = ref.open_reply(vector["reply_body"].encode(), opened.reply_key, request)
    assert reply == json.loads(vector["reply_plaintext"])
