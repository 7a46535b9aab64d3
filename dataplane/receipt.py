"""The receipt of one model call: its claims gathered from the call, signed, appended."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from config import ConfigError, Settings
from dataplane.payload import Opened
from dataplane.record import RequestFacts
from models.runner import ModelRunner
from security.gateway_key_algs import SIG
from security.gateway_keys import GatewayKeyStore
from security.receipt_algorithms import ALGORITHMS
from security.receipt_keys import ReceiptKeys, StoredReceiptKeys
from security.receipts import ReceiptClaims, attach_receipt, sha256_hex, sign_receipt


@dataclass(frozen=True)
class ReceiptSigner:
    """Signs every successful reply with the key source's current key."""

    keys: ReceiptKeys
    issuer: str

    def reply(self, body: dict[str, Any], at: Sequence[str], *, facts: RequestFacts,
              runner: ModelRunner, opened: Opened) -> bytes:
        """The reply plaintext: `body` as compact JSON, its signed receipt appended at the
        member path `at`.

        orjson writes compact JSON (floats in their shortest round-trip form) about 20 times
        faster than json.dumps: 16 against 362 µs for 1,000 floats."""
        if at[0] in body or runner.weights_sha256 is None or facts.subject is None:
            raise RuntimeError("a receipt needs its member free, the weights' digest and the "
                               "subject")
        reply = orjson.dumps(body)
        claims = ReceiptClaims(
            iss=self.issuer, iat=int(time.time()), rid=facts.request_id, sub=facts.subject,
            model=runner.manifest.name, version=runner.version,
            weights_sha256=runner.weights_sha256,
            request_sha256=sha256_hex(opened.plaintext), body_sha256=opened.sha256,
            reply_sha256=sha256_hex(reply))
        return attach_receipt(reply, sign_receipt(claims, self.keys.current()), at)


def receipt_signer(settings: Settings, store: GatewayKeyStore) -> ReceiptSigner:
    """The signer for these settings; RECEIPT_ALGORITHM is checked here, at start-up, and a
    signing key of it is made when the store has none (every reply carries a receipt)."""
    if settings.receipt_algorithm not in ALGORITHMS:
        raise ConfigError("RECEIPT_ALGORITHM", f"must be one of {', '.join(ALGORITHMS)}")
    store.ensure(SIG, settings.receipt_algorithm)
    return ReceiptSigner(StoredReceiptKeys(store, settings.receipt_algorithm), settings.jwt_issuer)
