"""HPKE envelopes: a JWE sealed to the gateway's public key, with no shared key to issue.

draft-ietf-jose-hpke-encrypt, Integrated Encryption, Flattened JSON: `alg` names the HPKE suite
and there is no `enc`; the JWE Encrypted Key is the HPKE encapsulated key (ek); the JWE IV and
Authentication Tag are empty; the HPKE aad is ASCII(protected) (plus "." + aad member) and the
HPKE info is empty. The protected header also carries `kid`, `iat` and `ath`, the base64url
SHA-256 of the bearer token (as DPoP's `ath`), so a captured envelope cannot travel under
another token. The reply is a dir/A256GCM envelope (security/envelope.py) under a 32-byte key
exported from the request's HPKE context with REPLY_EXPORT_LABEL, so only the requester, who
holds that context, can read it. docs/envelope-hpke.md is the exact wire format.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from Crypto.Protocol import HPKE

from security.encoding import b64url_encode
from security.envelope import (
    REQUEST_TYP,
    ParsedEnvelope,
    associated_data,
    check_direction,
    check_fresh,
    check_header,
    check_members,
    decode_member,
    refuse,
)
from security.gateway_key_algs import ALGORITHMS, ENC, KeyAlgorithm

REPLY_EXPORT_LABEL = b"torchgate hpke reply v1"
REPLY_KEY_BYTES = 32
HPKE_ALGS = frozenset(name for name, a in ALGORITHMS.items() if a.use == ENC)
# Members a flattened JWE may carry here: the IV and tag only empty (the draft's empty octet
# sequences), unprotected headers only empty, since nothing outside `protected` is trusted.
_REQUIRED = ("protected", "encrypted_key", "ciphertext")
_EMPTY: Mapping[str, object] = MappingProxyType({"iv": "", "tag": "", "header": {},
                                                 "unprotected": {}})
_FORBIDDEN_HEADER = ("enc", "ek", "psk_id")  # no enc in Integrated Encryption; no PSK mode


@dataclass(frozen=True, slots=True)
class OpenedHpke:
    """An authenticated, decrypted HPKE request and the key its reply is sealed under."""

    kid: str
    ek: bytes
    iat: int
    header: Mapping[str, Any]
    plaintext: bytes
    reply_key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SealedHpke:
    """A sealed request body and the key its reply will be sealed under (kept by the caller)."""

    body: bytes
    kid: str
    reply_key: bytes = field(repr=False)


def token_binding(token: str) -> str:
    """The `ath` of a bearer token: base64url(SHA-256(ASCII token)), as RFC 9449 defines it."""
    return b64url_encode(hashlib.sha256(token.encode("ascii")).digest())


def is_hpke(parsed: ParsedEnvelope) -> bool:
    return parsed.header.get("alg") in HPKE_ALGS


def open_hpke(
    parsed: ParsedEnvelope, *, private_key_for: Callable[[str, str], Any], ath: str,
    now: float, max_age: int,
) -> OpenedHpke:
    """Authenticate and decrypt an HPKE request; `private_key_for(kid, alg)` finds the key
    (raising the refusal for an unknown one). One generic invalid-envelope for the rest."""
    members, header = parsed.members, parsed.header
    check_members(members, _REQUIRED, _EMPTY)
    alg = header.get("alg")
    if alg not in HPKE_ALGS or any(name in header for name in _FORBIDDEN_HEADER):
        refuse()
    kid, iat = check_header(header)
    check_direction(header, None)
    bound = header.get("ath")
    if not isinstance(bound, str) or not hmac.compare_digest(bound.encode(), ath.encode()):
        refuse()
    ek = decode_member(members["encrypted_key"])
    ciphertext = decode_member(members["ciphertext"])
    aad_member: str | None = members.get("aad")
    private_key = private_key_for(kid, alg)
    try:
        context = HPKE.new(receiver_key=private_key, aead_id=ALGORITHMS[alg].hpke_aead, enc=ek)
        plaintext = context.unseal(ciphertext, associated_data(parsed.protected, aad_member))
    except ValueError:  # a bad ek, tag, header or key: DeserializeError is a ValueError
        refuse()
    check_fresh(iat, now, max_age)
    return OpenedHpke(kid=kid, ek=ek, iat=iat, header=MappingProxyType(header),
                      plaintext=plaintext,
                      reply_key=context.export(REPLY_EXPORT_LABEL, REPLY_KEY_BYTES))


def seal_hpke(
    plaintext: bytes, *, public_key: Any, algorithm: KeyAlgorithm, kid: str, token: str,
    now: float | None = None, cty: str | None = None,
) -> SealedHpke:
    """A request sealed to the gateway key `kid` (a pycryptodome public key of `algorithm`)."""
    header: dict[str, Any] = {"alg": algorithm.name, "kid": kid,
                              "iat": int(time.time() if now is None else now),
                              "ath": token_binding(token), "typ": REQUEST_TYP}
    if cty is not None:
        header["cty"] = cty
    protected = b64url_encode(json.dumps(header, separators=(",", ":")).encode("utf-8"))
    context = HPKE.new(receiver_key=public_key, aead_id=algorithm.hpke_aead)
    ciphertext = context.seal(plaintext, associated_data(protected, None))
    body = json.dumps({"protected": protected, "encrypted_key": b64url_encode(context.enc),
                       "ciphertext": b64url_encode(ciphertext)}, separators=(",", ":"))
    return SealedHpke(body=body.encode("ascii"), kid=kid,
                      reply_key=context.export(REPLY_EXPORT_LABEL, REPLY_KEY_BYTES))
