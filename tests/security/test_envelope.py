"""open_envelope / seal_envelope: round trips, and every way a body is refused, as tables."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from Crypto.Cipher import AES

from errors import GatewayError, InvalidEnvelope, KeyNotAllowed, StaleEnvelope
from security.encoding import b64url_decode, b64url_encode
from security.envelope import REQUEST_TYP, OpenedEnvelope, open_envelope, seal_envelope

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
KID = "pk_test"
NOW = 1_700_000_000
MAX_AGE = 300
PLAINTEXT = b'{"inputs": [[1.0, 2.0, 3.0]]}'
HEADER = {"alg": "dir", "enc": "A256GCM", "kid": KID, "iat": NOW, "typ": REQUEST_TYP}

B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

Members = dict[str, object]


def key_for(kid: str) -> bytes:
    if kid != KID:
        raise KeyNotAllowed()
    return KEY


def open_body(body: bytes, now: float = NOW) -> OpenedEnvelope:
    return open_envelope(body, key_for=key_for, now=now, max_age=MAX_AGE)


def seal_members(header: object = None, *, key: bytes = KEY, aad: bytes | None = None,
                 protected: str | None = None, iv: bytes = bytes(12),
                 tag_bytes: int = 16) -> Members:
    """An independent sealer, so that each check is tested with an otherwise valid tag."""
    if protected is None:
        header = HEADER if header is None else header
        protected = b64url_encode(json.dumps(header).encode())
    aad_member = None if aad is None else b64url_encode(aad)
    cipher = AES.new(key, AES.MODE_GCM, nonce=iv, mac_len=tag_bytes)
    cipher.update(protected.encode() + (b"" if aad_member is None else b"." + aad_member.encode()))
    ciphertext, tag = cipher.encrypt_and_digest(PLAINTEXT)
    members: Members = {"protected": protected, "iv": b64url_encode(iv),
                        "ciphertext": b64url_encode(ciphertext), "tag": b64url_encode(tag)}
    if aad_member is not None:
        members["aad"] = aad_member
    return members


def dump(members: Members) -> bytes:
    return json.dumps(members).encode()


def flip(member: str, index: int = 0) -> Callable[[], bytes]:
    """A valid envelope with one bit flipped in one byte of a decoded member."""
    def make() -> bytes:
        members = seal_members()
        raw = bytearray(b64url_decode(members[member]))
        raw[index] ^= 0x01
        members[member] = b64url_encode(bytes(raw))
        return dump(members)
    return make


def with_header(**changes: object) -> Callable[[], bytes]:
    """A correctly sealed envelope whose protected header has `changes` (None deletes)."""
    def make() -> bytes:
        header = {**HEADER, **changes}
        return dump(seal_members({k: v for k, v in header.items() if v is not None}))
    return make


def with_members(**changes: object) -> Callable[[], bytes]:
    """A valid envelope with top-level members set (None deletes)."""
    def make() -> bytes:
        members = {**seal_members(), **changes}
        return dump({k: v for k, v in members.items() if v is not None})
    return make


def protected_bytes(raw: bytes) -> Callable[[], bytes]:
    return lambda: dump(seal_members(protected=b64url_encode(raw)))


def edited_protected() -> bytes:
    """Same ciphertext and tag under a protected header re-encoded with other whitespace."""
    members = seal_members()
    members["protected"] = b64url_encode(json.dumps(HEADER, separators=(",", ":")).encode())
    return dump(members)


def edited_aad() -> bytes:
    members = seal_members(aad=b"request-7")
    members["aad"] = b64url_encode(b"request-8")
    return dump(members)


def removed_aad() -> bytes:
    members = seal_members(aad=b"request-7")
    del members["aad"]
    return dump(members)


def tamper_b64(member: str, text_edit: Callable[[str], str]) -> Callable[[], bytes]:
    def make() -> bytes:
        members = seal_members()
        members[member] = text_edit(members[member])
        return dump(members)
    return make


def noncanonical_tag(text: str) -> str:
    """Set an unused low bit of the last character: a lax decoder yields the same 16 bytes."""
    return text[:-1] + B64_ALPHABET[B64_ALPHABET.index(text[-1]) | 1]


INVALID = [
    ("wrong key", lambda: dump(seal_members(key=OTHER_KEY))),
    ("edited tag", flip("tag", 15)),
    ("edited ciphertext", flip("ciphertext", 3)),
    ("edited iv", flip("iv", 11)),
    ("edited protected header", edited_protected),
    ("edited aad", edited_aad),
    ("aad removed", removed_aad),
    ("alg A256KW", with_header(alg="A256KW")),
    ("alg none", with_header(alg="none")),
    ("alg missing", with_header(alg=None)),
    ("enc A128GCM", with_header(enc="A128GCM")),
    ("enc A256CBC-HS512", with_header(enc="A256CBC-HS512")),
    ("zip", with_header(zip="DEF")),
    ("crit", with_header(crit=["exp"], exp=NOW + 60)),
    ("empty crit", with_header(crit=[])),
    ("kid missing", with_header(kid=None)),
    ("kid empty", with_header(kid="")),
    ("kid not a string", with_header(kid=7)),
    ("iat missing", with_header(iat=None)),
    ("iat bool", with_header(iat=True)),
    ("iat float", with_header(iat=float(NOW))),
    ("iat string", with_header(iat=str(NOW))),
    ("iat negative", with_header(iat=-1)),
    ("iat beyond 2**53", with_header(iat=10**400)),
    ("cty not a string", with_header(cty=1)),
    ("header not JSON", protected_bytes(b"not json")),
    ("header not an object", protected_bytes(json.dumps([HEADER]).encode())),
    ("header duplicate alg", protected_bytes(
        b'{"alg":"A256KW","alg":"dir","enc":"A256GCM","kid":"pk_test","iat":1700000000}')),
    ("header NaN", protected_bytes(
        b'{"alg":"dir","enc":"A256GCM","kid":"pk_test","iat":1700000000,"x":NaN}')),
    ("missing protected", with_members(protected=None)),
    ("missing iv", with_members(iv=None)),
    ("missing ciphertext", with_members(ciphertext=None)),
    ("missing tag", with_members(tag=None)),
    ("iv not a string", with_members(iv=[0] * 12)),
    ("aad not a string", with_members(aad=1)),
    ("extra member", with_members(note="hi")),
    ("recipients member", with_members(recipients=[{}])),
    ("encrypted_key", with_members(encrypted_key="AAAA")),
    ("unprotected header", with_members(unprotected={"kid": KID})),
    ("per-recipient header", with_members(header={"alg": "dir"})),
    ("iv of 16 bytes", lambda: dump(seal_members(iv=bytes(16)))),
    ("12-byte tag", lambda: dump(seal_members(tag_bytes=12))),
    ("truncated tag", tamper_b64("tag", lambda t: b64url_encode(b64url_decode(t)[:12]))),
    ("padded tag", tamper_b64("tag", lambda t: t + "==")),
    ("non-canonical tag", tamper_b64("tag", noncanonical_tag)),
    ("junk in ciphertext", tamper_b64("ciphertext", lambda t: t[:4] + "****" + t[4:])),
    ("newlines in ciphertext", tamper_b64("ciphertext", lambda t: t[:4] + "\n" * 4 + t[4:])),
    ("standard alphabet", tamper_b64("ciphertext", lambda t: t[:4] + "+/" + t[6:])),
    ("non-JSON body", lambda: b"not json"),
    ("empty body", lambda: b""),
    ("JSON array body", lambda: b"[]"),
    ("JSON string body", lambda: b'"eyJ"'),
    ("invalid UTF-8 body", lambda: b'{"protected": "\xff"}'),
    ("deeply nested body", lambda: b"[" * 100_000 + b"]" * 100_000),
    ("duplicate member", lambda: dump(seal_members())[:-1] + b', "iv": "AAAAAAAAAAAAAAAA"}'),
]


REFUSALS = [
    *((case, make, NOW, InvalidEnvelope) for case, make in INVALID),
    ("unknown kid", with_header(kid="pk_unknown"), NOW, KeyNotAllowed),
    ("iat in the past", with_header(iat=NOW - MAX_AGE - 1), NOW, StaleEnvelope),
    ("iat in the future", with_header(iat=NOW + MAX_AGE + 1), NOW, StaleEnvelope),
    ("server clock ahead", with_header(), NOW + MAX_AGE + 0.5, StaleEnvelope),
]


@pytest.mark.parametrize(("case", "make_body", "now", "expected"), REFUSALS,
                         ids=[row[0] for row in REFUSALS])
def test_refused(case: str, make_body: Callable[[], bytes], now: float,
                 expected: type[GatewayError]) -> None:
    with pytest.raises(expected) as caught:
        open_body(make_body(), now=now)
    assert type(caught.value) is expected
    if expected is InvalidEnvelope:
        assert caught.value.detail == InvalidEnvelope.GENERIC
        assert str(caught.value) == InvalidEnvelope.GENERIC
        assert caught.value.__cause__ is None


def test_failures_leak_no_plaintext() -> None:
    with pytest.raises(StaleEnvelope) as caught:
        open_body(with_header(iat=NOW - 10_000)())
    assert b"inputs" not in str(caught.value).encode()
    assert str(MAX_AGE) in caught.value.detail


def test_key_for_is_not_called_for_a_malformed_envelope() -> None:
    calls: list[str] = []

    def recording_key_for(kid: str) -> bytes:
        calls.append(kid)
        return KEY

    with pytest.raises(InvalidEnvelope):
        open_envelope(with_header(zip="DEF")(), key_for=recording_key_for, now=NOW,
                      max_age=MAX_AGE)
    assert calls == []


def test_unknown_kid_answers_before_the_tag_is_checked() -> None:
    members = seal_members({**HEADER, "kid": "pk_unknown"}, key=OTHER_KEY)
    with pytest.raises(KeyNotAllowed):
        open_body(dump(members))


def test_wrong_key_answers_before_freshness() -> None:
    with pytest.raises(InvalidEnvelope):
        open_body(dump(seal_members({**HEADER, "iat": 0}, key=OTHER_KEY)))


@pytest.mark.parametrize("skew", [-MAX_AGE, 0, MAX_AGE])
def test_iat_within_max_age_is_accepted(skew: int) -> None:
    assert open_body(with_header(iat=NOW + skew)()).iat == NOW + skew


def test_round_trip() -> None:
    body = seal_envelope(PLAINTEXT, key=KEY, kid=KID, now=NOW + 0.9)
    opened = open_body(body)
    assert opened.plaintext == PLAINTEXT
    assert (opened.kid, opened.iat, opened.aad) == (KID, NOW, None)
    assert dict(opened.header) == HEADER
    assert len(opened.iv) == 12


def test_seal_writes_compact_flattened_json() -> None:
    body = seal_envelope(PLAINTEXT, key=KEY, kid=KID, now=NOW)
    members = json.loads(body)
    assert b" " not in body
    assert set(members) == {"protected", "iv", "ciphertext", "tag"}
    assert json.loads(b64url_decode(members["protected"])) == HEADER
    assert len(b64url_decode(members["tag"])) == 16


def test_round_trip_with_cty() -> None:
    body = seal_envelope(PLAINTEXT, key=KEY, kid=KID, now=NOW, cty="application/json")
    assert open_body(body).header["cty"] == "application/json"


def test_round_trip_of_empty_plaintext() -> None:
    assert open_body(seal_envelope(b"", key=KEY, kid=KID, now=NOW)).plaintext == b""


def test_aad_member_round_trip() -> None:
    body = seal_envelope(PLAINTEXT, key=KEY, kid=KID, now=NOW, aad=b"request-7")
    opened = open_body(body)
    assert (opened.plaintext, opened.aad) == (PLAINTEXT, b"request-7")


def test_aad_member_from_another_sealer_is_accepted() -> None:
    assert open_body(dump(seal_members(aad=b"request-7"))).aad == b"request-7"


@pytest.mark.parametrize("member", [{"encrypted_key": ""}, {"header": {}}, {"unprotected": {}}])
def test_empty_members_of_other_jose_libraries_are_tolerated(member: Members) -> None:
    assert open_body(dump({**seal_members(), **member})).plaintext == PLAINTEXT


def test_unknown_header_parameters_are_ignored() -> None:
    assert open_body(with_header(x_client="cli/1", x_trace="7")()).plaintext == PLAINTEXT


def test_opened_header_is_read_only() -> None:
    header = open_body(with_header()()).header
    with pytest.raises(TypeError):
        header["kid"] = "pk_other"  # type: ignore[index]


def test_fresh_iv_on_every_seal() -> None:
    bodies = [json.loads(seal_envelope(PLAINTEXT, key=KEY, kid=KID, now=NOW))
              for _ in range(200)]
    assert len({b["iv"] for b in bodies}) == 200
    assert len({b["ciphertext"] for b in bodies}) == 200


def test_seal_uses_the_clock_when_now_is_omitted() -> None:
    before = int(time.time())
    iat = open_envelope(seal_envelope(PLAINTEXT, key=KEY, kid=KID), key_for=key_for,
                        now=time.time(), max_age=MAX_AGE).iat
    assert before <= iat <= int(time.time())


@pytest.mark.parametrize(("case", "key", "kid"), [
    ("short key", bytes(16), KID),
    ("long key", bytes(64), KID),
    ("empty kid", KEY, ""),
])
def test_seal_refuses_bad_arguments(case: str, key: bytes, kid: str) -> None:
    with pytest.raises(ValueError):
        seal_envelope(PLAINTEXT, key=key, kid=kid, now=NOW)


def test_open_refuses_a_key_for_that_returns_a_short_key() -> None:
    """AES-128 must never be chosen silently because a lookup returned 16 bytes."""
    with pytest.raises(ValueError):
        open_envelope(with_header()(), key_for=lambda kid: KEY[:16], now=NOW, max_age=MAX_AGE)
