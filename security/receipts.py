"""Signed receipts: a compact JWS by the gateway over what one model call asked and answered.

A receipt travels inside the reply plaintext as its last member; `reply_sha256` covers the reply
byte for byte without that member, so a verifier needs no canonical JSON (docs/receipts.md).
Signature and claims are checked as separate steps, against a JWKS, with an allow-list.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import jwt
import orjson

from security.encoding import b64url_decode
from security.receipt_algorithms import (
    ALGORITHMS,
    KeyFormatError,
    SigningKey,
    public_key_from_jwk,
    receipt_jws,
)

RECEIPT_TYPE = "torchgate-receipt+jwt"
HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
MAX_RECEIPT_CHARS = 16_384  # an ML-DSA-65 receipt is ~6,000
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
RECEIPT_AT = ("receipt",)  # where /predict replies carry it; /v2 uses parameters.receipt


class ReceiptError(Exception):
    """A receipt that does not verify, or a reply that does not carry one properly."""


class UnknownReceiptKey(ReceiptError):
    """No signing key of the JWKS has the receipt's kid (a client may refetch the JWKS)."""


@dataclass(frozen=True, slots=True)
class ReceiptClaims:
    """What the gateway signs; docs/receipts.md defines each member and digest."""

    iss: str
    iat: int
    rid: str
    sub: str
    model: str
    version: str
    weights_sha256: str
    request_sha256: str
    body_sha256: str
    reply_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, value: Any) -> ReceiptClaims:
        """Exactly these members, of exactly these types; ReceiptError otherwise."""
        names = [f.name for f in fields(cls)]
        if not isinstance(value, dict) or set(value) != set(names):
            raise ReceiptError("the receipt's claims are not the receipt claim set")
        for name in names:
            item = value[name]
            if name == "iat":
                if type(item) is not int or item < 0:
                    raise ReceiptError("claim 'iat' must be a non-negative integer")
            elif not isinstance(item, str) or (
                    name.endswith("_sha256") and not _SHA256_HEX.fullmatch(item)):
                raise ReceiptError(f"claim {name!r} is malformed")
        return cls(**value)


def sha256_hex(data: bytes) -> str:
    """The digest form of every receipt claim: SHA-256, lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def sign_receipt(claims: ReceiptClaims, key: SigningKey) -> str:
    """The compact JWS of `claims` under `key` (header: alg, kid, typ)."""
    return receipt_jws().encode(orjson.dumps(claims), key.private, algorithm=key.alg,
                                headers={"kid": key.kid, "typ": RECEIPT_TYPE})


def verify_receipt(receipt: Any, jwks: Mapping[str, Any] | Sequence[Mapping[str, Any]]
                   ) -> ReceiptClaims:
    """The claims of a receipt whose signature a `use: "sig"` key of `jwks` verifies."""
    if not isinstance(receipt, str) or len(receipt) > MAX_RECEIPT_CHARS or \
            not _COMPACT_JWS.fullmatch(receipt):
        raise ReceiptError("the receipt is not a compact JWS")
    header = _checked_header(receipt)
    jwk = select_key(jwks, header["kid"], header["alg"])
    try:
        public = public_key_from_jwk(jwk, header["alg"])
        payload = receipt_jws().decode_complete(receipt, key=public,
                                                algorithms=[header["alg"]])["payload"]
    except (KeyFormatError, jwt.PyJWTError) as exc:
        raise ReceiptError("the receipt's signature does not verify") from exc
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ReceiptError("the receipt's claims are not JSON") from exc
    return ReceiptClaims.from_json(value)


def _checked_header(receipt: str) -> dict[str, Any]:
    """The protected header, read once here (PyJWT's own reader is ~1 µs per character)."""
    try:
        header = json.loads(b64url_decode(receipt.partition(".")[0]))
    except (ValueError, RecursionError) as exc:
        raise ReceiptError("the receipt's header is malformed") from exc
    if not isinstance(header, dict) or set(header) != HEADER_MEMBERS or \
            header["typ"] != RECEIPT_TYPE:
        raise ReceiptError("the receipt's header must be exactly alg, kid and typ "
                           f"{RECEIPT_TYPE!r}")
    if header["alg"] not in ALGORITHMS or not isinstance(header["kid"], str):
        raise ReceiptError(f"the receipt's alg must be one of {', '.join(ALGORITHMS)}")
    return header


def select_key(jwks: Mapping[str, Any] | Sequence[Mapping[str, Any]], kid: str,
               alg: str) -> Mapping[str, Any]:
    """The one `use: "sig"` key named `kid`, whose own alg is the receipt's."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else jwks
    if not isinstance(keys, Sequence):
        raise ReceiptError("the JWKS has no keys")
    named = [key for key in keys if isinstance(key, Mapping) and key.get("kid") == kid
             and key.get("use") == "sig"]
    if not named:
        raise UnknownReceiptKey(f"no signing key {kid!r} in the JWKS")
    if len(named) != 1:
        raise ReceiptError(f"more than one signing key {kid!r} in the JWKS")
    if named[0].get("alg") != alg:
        raise ReceiptError(f"signing key {kid!r} is not an {alg} key")
    return named[0]


def receipt_suffix(receipt: str, at: Sequence[str]) -> bytes:
    """The bytes that carry `receipt` at the member path `at` as the reply's last member."""
    inner = f'"{at[-1]}":"{receipt}"'
    for name in reversed(at[:-1]):
        inner = f'"{name}":{{{inner}}}'
    return f",{inner}}}".encode("ascii")


def attach_receipt(reply: bytes, receipt: str, at: Sequence[str]) -> bytes:
    """`reply` (a compact JSON object of at least one member, without `at[0]`) with the
    receipt appended as its last member."""
    return reply[:-1] + receipt_suffix(receipt, at)


def split_reply(plaintext: bytes, at: Sequence[str]) -> tuple[Any, bytes]:
    """(the receipt found at `at`, the reply bytes its reply_sha256 covers)."""
    try:
        value = json.loads(plaintext)
    except (ValueError, RecursionError) as exc:
        raise ReceiptError("the reply is not JSON") from exc
    for name in at:
        if not isinstance(value, dict) or name not in value:
            raise ReceiptError(f"the reply carries no {'.'.join(at)}")
        value = value[name]
    if not isinstance(value, str) or not _COMPACT_JWS.fullmatch(value):
        raise ReceiptError("the reply's receipt is not a compact JWS")
    suffix = receipt_suffix(value, at)
    if not plaintext.endswith(suffix):
        raise ReceiptError("the receipt is not the reply's last member")
    return value, plaintext[:-len(suffix)] + b"}"
