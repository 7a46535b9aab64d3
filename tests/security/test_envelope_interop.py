"""Envelopes against jwcrypto, an independent JOSE implementation: each side opens the other's."""

from __future__ import annotations

import hashlib
import json

import pytest
from jwcrypto.jwe import JWE, InvalidJWEData
from jwcrypto.jwk import JWK

from errors import InvalidEnvelope, KeyNotAllowed
from security.encoding import b64url_encode
from security.envelope import (
    REPLY_TYP,
    REQUEST_TYP,
    open_envelope,
    request_digest,
    seal_envelope,
)

KEY = bytes(range(32))
KID = "pk_interop"
NOW = 1_700_000_000
PLAINTEXT = b'{"inputs": [[0.5, 1.5]]}'
HEADER = {"alg": "dir", "enc": "A256GCM", "kid": KID, "iat": NOW, "typ": REQUEST_TYP}


def jwk(key: bytes = KEY) -> JWK:
    return JWK(kty="oct", k=b64url_encode(key))


def key_for(kid: str) -> bytes:
    if kid != KID:
        raise KeyNotAllowed()
    return KEY


def jwcrypto_seal(aad: bytes | None = None, header: dict | None = None,
                  key: bytes = KEY) -> bytes:
    """Flattened JSON Serialization, as any standard client would send it."""
    jwe = JWE(PLAINTEXT, protected=json.dumps(header or HEADER), aad=aad)
    jwe.add_recipient(jwk(key))
    return jwe.serialize().encode()


def jwcrypto_open(body: bytes) -> JWE:
    jwe = JWE()
    jwe.deserialize(body.decode(), key=jwk())
    return jwe


def test_jwcrypto_writes_flattened_json() -> None:
    assert set(json.loads(jwcrypto_seal())) == {"protected", "iv", "ciphertext", "tag"}


def test_open_what_jwcrypto_sealed() -> None:
    opened = open_envelope(jwcrypto_seal(), key_for=key_for, now=NOW, max_age=300)
    assert (opened.plaintext, opened.kid, opened.iat) == (PLAINTEXT, KID, NOW)


def test_open_what_jwcrypto_sealed_with_aad() -> None:
    opened = open_envelope(jwcrypto_seal(aad=b"request-7"), key_for=key_for, now=NOW,
                           max_age=300)
    assert (opened.plaintext, opened.aad) == (PLAINTEXT, b"request-7")


def test_jwcrypto_seal_with_a128gcm_is_refused() -> None:
    body = jwcrypto_seal(header={**HEADER, "enc": "A128GCM"}, key=KEY[:16])
    with pytest.raises(InvalidEnvelope):
        open_envelope(body, key_for=lambda kid: KEY[:16], now=NOW, max_age=300)


def test_jwcrypto_opens_what_we_sealed() -> None:
    jwe = jwcrypto_open(seal_envelope(PLAINTEXT, key=KEY, kid=KID, now=NOW))
    assert jwe.payload == PLAINTEXT
    assert jwe.jose_header == HEADER


def test_jwcrypto_opens_what_we_sealed_with_aad() -> None:
    body = seal_envelope(PLAINTEXT, key=KEY, kid=KID, now=NOW, cty="application/json",
                         aad=b"request-7")
    jwe = jwcrypto_open(body)
    assert jwe.payload == PLAINTEXT
    assert jwe.jose_header == {**HEADER, "cty": "application/json"}
    assert jwe.objects["aad"] == b"request-7"


def test_jwcrypto_refuses_what_we_sealed_under_another_key() -> None:
    body = seal_envelope(PLAINTEXT, key=bytes(32), kid=KID, now=NOW)
    with pytest.raises(InvalidJWEData):
        jwcrypto_open(body)


def test_jwcrypto_reads_a_reply_and_checks_it_answers_its_request() -> None:
    """What docs/clients.md tells a JOSE library user to check, done with jwcrypto."""
    request = jwcrypto_seal()
    reply = seal_envelope(PLAINTEXT, key=KEY, kid=KID, now=NOW, reply_to=request_digest(request))
    header = jwcrypto_open(reply).jose_header
    assert header["typ"] == REPLY_TYP
    assert header["req_sha256"] == hashlib.sha256(request).hexdigest()


def test_a_reply_posted_back_as_a_request_is_refused() -> None:
    request = jwcrypto_seal()
    reply = seal_envelope(PLAINTEXT, key=KEY, kid=KID, now=NOW, reply_to=request_digest(request))
    with pytest.raises(InvalidEnvelope):
        open_envelope(reply, key_for=lambda kid: KEY, now=NOW, max_age=300)


@pytest.mark.parametrize(("case", "header"), [
    ("a reply's typ", {**HEADER, "typ": REPLY_TYP}),
    ("another typ", {**HEADER, "typ": "JWE"}),
    ("a request naming a request", {**HEADER, "req_sha256": "00" * 32}),
])
def test_nothing_that_says_it_is_a_reply_passes_for_a_request(case, header) -> None:
    with pytest.raises(InvalidEnvelope):
        open_envelope(jwcrypto_seal(header=header), key_for=lambda kid: KEY, now=NOW,
                      max_age=300)


def test_the_contracts_request_header_without_typ_is_a_request() -> None:
    """CONTRACT §4's header (alg, enc, kid, iat) stays valid: only replies must say what they
    are, and a reply can never drop its typ, which the AEAD authenticates."""
    header = {k: v for k, v in HEADER.items() if k != "typ"}
    opened = open_envelope(jwcrypto_seal(header=header), key_for=lambda kid: KEY, now=NOW,
                           max_age=300)
    assert opened.plaintext == PLAINTEXT


def test_a_reply_to_another_request_is_refused() -> None:
    reply = seal_envelope(PLAINTEXT, key=KEY, kid=KID, now=NOW,
                          reply_to=request_digest(jwcrypto_seal()))
    other = request_digest(jwcrypto_seal())
    with pytest.raises(InvalidEnvelope):
        open_envelope(reply, key_for=lambda kid: KEY, now=NOW, max_age=300, reply_to=other)
