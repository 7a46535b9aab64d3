"""Strict base64url: the decoder behind every JOSE member and configured key."""

from __future__ import annotations

import pytest

from security.encoding import b64url_decode, b64url_encode


@pytest.mark.parametrize("data", [b"", b"f", b"fo", b"foo", bytes(range(256))])
def test_round_trip(data):
    assert b64url_decode(b64url_encode(data)) == data


@pytest.mark.parametrize(("case", "text"), [
    ("standard alphabet plus", "ab+c"),
    ("standard alphabet slash", "ab/c"),
    ("padding in a JOSE member", "Zm8="),
    ("space", "Zm 8"),
    ("newline", "Zm8\n"),
    ("impossible length", "Zm9vY"),
    ("non-canonical last character", "Zm9"),
    ("non-ASCII", "Zm8é"),
])
def test_refuses_anything_not_canonical_base64url(case, text):
    with pytest.raises(ValueError):
        b64url_decode(text)


def test_padding_is_optional_for_configured_keys():
    assert b64url_decode("Zm8=", allow_padding=True) == b"fo"
    assert b64url_decode("Zm8", allow_padding=True) == b"fo"
