"""The ReceiptKeys seam: what a key source must do for receipts to verify, held against the
gateway key store's source for both algorithms."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from security.gateway_key_algs import SIG
from security.gateway_keys import GatewayKeyStore, gateway_keys
from security.receipt_algorithms import ALGORITHMS, EDDSA, ML_DSA_65
from security.receipt_keys import ReceiptKeys, StoredReceiptKeys
from security.receipts import ReceiptError, sign_receipt, verify_receipt
from tests.security.test_receipts import CLAIMS

MASTER = bytes(range(32))


def stored_keys(alg: str) -> ReceiptKeys:
    """A key store in a database of its own, with one signing key of alg."""
    engine = sa.create_engine("sqlite://")
    gateway_keys.metadata.create_all(engine, tables=[gateway_keys])
    store = GatewayKeyStore(engine, MASTER, overlap=60)
    store.ensure(SIG, alg)
    return StoredReceiptKeys(store, alg)


KEY_SOURCES: dict[str, Callable[[], ReceiptKeys]] = {
    "stored EdDSA": lambda: stored_keys(EDDSA),
    "stored ML-DSA-65": lambda: stored_keys(ML_DSA_65),
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
    first, second = stored_keys(EDDSA), stored_keys(EDDSA)
    assert first.current().kid != second.current().kid
    with pytest.raises(ReceiptError):
        verify_receipt(sign_receipt(CLAIMS, first.current()), second.public_jwks())


def test_after_a_rotation_new_receipts_use_the_new_key_and_old_ones_still_verify():
    engine = sa.create_engine("sqlite://")
    gateway_keys.metadata.create_all(engine, tables=[gateway_keys])
    store = GatewayKeyStore(engine, MASTER, overlap=60)
    store.ensure(SIG, EDDSA)
    keys = StoredReceiptKeys(store, EDDSA)
    old = sign_receipt(CLAIMS, keys.current())
    rotated = store.rotate(SIG, EDDSA)
    assert keys.current().kid == rotated.kid
    assert verify_receipt(old, keys.public_jwks()) == CLAIMS  # the overlap keeps it published
