"""Payload envelopes: JWE (RFC 7516) Flattened JSON, alg "dir" + enc "A256GCM", opened and sealed.

Every request and reply passes through here, so the code does one cipher setup, one JSON parse
per layer and no copies beyond base64 decoding. Measured (benchmarks/envelope_cost.py, CPython
3.11, pycryptodome 4.4, 2-core AMD EPYC dev container): open ~71 µs / seal ~64 µs for 1 KiB, of
which pycryptodome's GCM setup and tag are ~43 µs; open ~430 µs / seal ~400 µs for 64 KiB, where
CPython's base64 (~200 µs per 87 KB member) and the JSON scan of the body dominate.
Replay is not checked here: the caller claims (kid, iv) in the shared store after opening.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn

from errors import InvalidEnvelope, StaleEnvelope
from security import aead
from security.encoding import b64url_decode, b64url_encode
from security.strict_json import loads_strict

ALG = "dir"
ENC = "A256GCM"
KEY_BYTES = 32
IV_BYTES = 12
TAG_BYTES = 16
MAX_IAT = 2**53 - 1  # I-JSON's largest exact integer; also keeps `now - iat` a finite float
# Direction binding (CONTRACT §4): the protected header, which the AEAD authenticates, says
# which way an envelope travels, and a reply names the SHA-256 (hex) of the request body it
# answers. A reply posted back as a request, or a reply to another request, is refused.
REQUEST_TYP = "torchgate-request+jwe"
REPLY_TYP = "torchgate-reply+jwe"
REQUEST_DIGEST = "req_sha256"

_REQUIRED_MEMBERS = ("protected", "iv", "ciphertext", "tag")
# Members a JOSE library may emit for "dir": tolerated only when empty, since dir has no
# encrypted key and unprotected headers are not authenticated.
_EMPTY_MEMBERS: Mapping[str, object] = MappingProxyType(
    {"encrypted_key": "", "header": {}, "unprotected": {}}
)


@dataclass(frozen=True, slots=True)
class OpenedEnvelope:
    """An authenticated, decrypted envelope: who sealed it (kid), when (iat) and what."""

    kid: str
    iv: bytes
    iat: int
    header: Mapping[str, Any]
    plaintext: bytes
    aad: bytes | None = None


@dataclass(frozen=True, slots=True)
class ParsedEnvelope:
    """A Flattened JSON JWE read but not checked: its members and decoded protected header."""

    members: dict[str, Any]
    protected: str
    header: dict[str, Any]


def parse_envelope(body: bytes) -> ParsedEnvelope:
    """The members and protected header of `body`, so the opener of its `alg` can be chosen."""
    members = _loads_object(body)
    protected = members.get("protected")
    if not isinstance(protected, str):
        refuse()
    return ParsedEnvelope(members, protected, _loads_object(decode_member(protected)))


def open_envelope(
    body: bytes, *, key_for: Callable[[str], bytes], now: float, max_age: int,
    reply_to: str | None = None,
) -> OpenedEnvelope:
    """Parse, authenticate and decrypt `body`; refuse anything but a fresh dir/A256GCM JWE.

    A request unless `reply_to` is given: then a reply to the request body of that SHA-256.
    """
    return open_parsed(parse_envelope(body), key_for=key_for, now=now, max_age=max_age,
                       reply_to=reply_to)


def open_parsed(
    parsed: ParsedEnvelope, *, key_for: Callable[[str], bytes], now: float, max_age: int,
    reply_to: str | None = None,
) -> OpenedEnvelope:
    """open_envelope for a body parse_envelope already read."""
    members, protected, header = parsed.members, parsed.protected, parsed.header
    _check_members(members)
    if header.get("alg") != ALG or header.get("enc") != ENC:
        refuse()
    kid, iat = check_header(header)
    check_direction(header, reply_to)
    iv = decode_member(members["iv"])
    tag = decode_member(members["tag"])
    if len(iv) != IV_BYTES or len(tag) != TAG_BYTES:
        refuse()
    ciphertext = decode_member(members["ciphertext"])
    aad_member: str | None = members.get("aad")
    aad = None if aad_member is None else decode_member(aad_member)
    key = key_for(kid)
    _check_key(key)
    try:
        plaintext = aead.open_(key, iv, ciphertext, tag, associated_data(protected, aad_member))
    except aead.AeadError:
        refuse()
    check_fresh(iat, now, max_age)
    return OpenedEnvelope(kid=kid, iv=iv, iat=iat, header=MappingProxyType(header),
                          plaintext=plaintext, aad=aad)


def check_fresh(iat: int, now: float, max_age: int) -> None:
    """400 stale-envelope when `iat` is more than max_age seconds from the server clock."""
    if abs(now - iat) > max_age:
        raise StaleEnvelope(f"The envelope's iat is more than {max_age} seconds "
                            "from the server clock.")


def seal_envelope(
    plaintext: bytes,
    *,
    key: bytes,
    kid: str,
    now: float | None = None,
    cty: str | None = None,
    aad: bytes | None = None,
    reply_to: str | None = None,
) -> bytes:
    """Encrypt `plaintext` under `key` with a fresh random IV; compact Flattened JSON bytes.

    A request unless `reply_to` is given: then a reply to the request body of that SHA-256.
    """
    if not isinstance(kid, str) or not kid:
        raise ValueError("kid must be a non-empty string")
    _check_key(key)
    header: dict[str, Any] = {"alg": ALG, "enc": ENC, "kid": kid,
                              "iat": int(time.time() if now is None else now),
                              "typ": REQUEST_TYP if reply_to is None else REPLY_TYP}
    if reply_to is not None:
        header[REQUEST_DIGEST] = reply_to
    if cty is not None:
        header["cty"] = cty
    protected = b64url_encode(json.dumps(header, separators=(",", ":")).encode("utf-8"))
    aad_member = None if aad is None else b64url_encode(aad)
    iv = os.urandom(IV_BYTES)
    ciphertext, tag = aead.seal(key, iv, plaintext, associated_data(protected, aad_member))
    members = {"protected": protected, "iv": b64url_encode(iv),
               "ciphertext": b64url_encode(ciphertext), "tag": b64url_encode(tag)}
    if aad_member is not None:
        members["aad"] = aad_member
    return json.dumps(members, separators=(",", ":")).encode("ascii")


def associated_data(protected: str, aad_member: str | None) -> bytes:
    """RFC 7516 §5.1 step 14: ASCII(protected), plus "." + aad member when there is one."""
    if aad_member is None:
        return protected.encode("ascii")
    return f"{protected}.{aad_member}".encode("ascii")


def _check_members(members: dict[str, Any]) -> None:
    """Exactly the Flattened JSON members that dir/A256GCM needs, each a string."""
    check_members(members, _REQUIRED_MEMBERS, _EMPTY_MEMBERS)


def check_members(members: dict[str, Any], required: tuple[str, ...],
                  empty: Mapping[str, object]) -> None:
    """The `required` members as strings, an optional string `aad`, and the `empty` ones only
    with their empty value; anything else is refused."""
    for name in required:
        if not isinstance(members.get(name), str):
            refuse()
    if "aad" in members and not isinstance(members["aad"], str):
        refuse()
    for name, value in members.items():
        if name not in required and name != "aad" and name not in empty:
            refuse()
        allowed = empty.get(name)
        if allowed is not None and (type(value) is not type(allowed) or value != allowed):
            refuse()


def check_header(header: dict[str, Any]) -> tuple[str, int]:
    """The members every envelope shares (its alg checked by the caller); its kid and iat."""
    if "zip" in header or "crit" in header:  # no compression, no extensions understood
        refuse()
    kid = header.get("kid")
    iat = header.get("iat")
    if not isinstance(kid, str) or not kid:
        refuse()
    if type(iat) is not int or not 0 <= iat <= MAX_IAT:  # type() check: bool is not an iat
        refuse()
    if "cty" in header and not isinstance(header["cty"], str):
        refuse()
    return kid, iat


def check_direction(header: dict[str, Any], reply_to: str | None) -> None:
    """A reply says it is one and names the request it answers, so it can never pass for a
    request. A request may say it is one; the contract's header (alg, enc, kid, iat) does not,
    and is accepted as a request."""
    if reply_to is None:
        if header.get("typ", REQUEST_TYP) != REQUEST_TYP or REQUEST_DIGEST in header:
            refuse()
    elif header.get("typ") != REPLY_TYP or header.get(REQUEST_DIGEST) != reply_to:
        refuse()


def request_digest(body: bytes) -> str:
    """What a reply names its request by: the SHA-256 (hex) of the request body as sent."""
    return hashlib.sha256(body).hexdigest()


def decode_member(text: str) -> bytes:
    try:
        return b64url_decode(text)
    except ValueError:
        refuse()


def _loads_object(data: bytes) -> dict[str, Any]:
    """One JSON object from UTF-8 bytes; duplicate names and NaN/Infinity refused."""
    try:
        value = loads_strict(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError included
        refuse()
    if not isinstance(value, dict):
        refuse()
    return value


def _check_key(key: bytes) -> None:
    """A payload key is exactly 256 bits; anything else is a server bug, not a client error."""
    if len(key) != KEY_BYTES:
        raise ValueError("payload keys are 32 bytes")


def refuse() -> NoReturn:
    """Every parse or crypto failure ends here: one generic error, no cause, so no oracle."""
    raise InvalidEnvelope() from None
