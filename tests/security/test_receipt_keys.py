"""The ReceiptKeys seam: what any key source must do for receipts to verify. Add the gateway key
store to KEY_SOURCES when it implements the protocol."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from security.receipt_algorithms import ALGORITHMS, EDDSA, ML_DSA_65
from security.receipt_keys import EphemeralReceiptKeys, ReceiptKeys
from security.receipts import ReceiptError, sign_receipt, verify_receipt
from tests.security.test_receipts import CLAIMS

KEY_SOURCES: dict[str, Callable[[], ReceiptKeys]] = {
    "ephemeral EdDSA": lambda: EphemeralReceiptKeys(EDDSA),
    "ephemeral ML-DSA-65": lambda: EphemeralReceiptKeys(ML_DSA_65),
}


@pytest.fixture(params=list(KEY_SOURCES))
def keys(request) -> ReceiptKeys:
    return KEY_SOURCES[request.param]()


def test_the_current_key_signs_receipts_its_published_keys_verify(keys):
    assert verify_receipt(sign_receipt(CLAIMS, keys.current()), keys.public_jwks()) == CLAIMS


def test_published_keys_are_public_signing_keys_with_unique_kids(keys):
    published = keys.public_jwks()
    assert {key["use"] for key in published} == {"sig"}
    assert {key["alg"] for key in published} <= set(ALGORITHMS)
    assert len({key["kid"] for key in published}) == len(published)
    assert not any({"d", "priv", "seed"} & set(key) for key in published)
    assert keys.current().kid in {key["kid"] for key in published}


def test_two_sources_do_not_share_keys():
    first, second = EphemeralReceiptKeys(EDDSA), EphemeralReceiptKeys(EDDSA)
    assert first.current().kid != second.current().kid
    with pytest.raises(ReceiptError):
        verify_receipt(sign_receipt(CLAIMS, first.current()), second.public_jwks())
