"""A receipt matched to its audit record: the record of that request id and sealed body, in a
verified trail, must say what the receipt says.

The record's place (chain id, seq) is assigned when it commits, after the reply was sealed, so
the receipt cannot carry it; it names its record by `rid` and `body_sha256` instead (the sealed
body's digest is unique: a replayed envelope is refused), and the match reports the place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from dataplane.record import storable
from security.audit import audit_records
from security.receipt_files import check_saved, parse_saved
from security.receipts import ReceiptClaims, ReceiptError

RECORD_DELAY_MAX = 60  # seconds a record's time may follow the receipt's iat (write queue)
RECORD_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # security.audit.utc_now
NOT_FOUND = "no audit record of this request id and body"


@dataclass(frozen=True)
class ReceiptMatch:
    """Where the receipt's record is, and which of its fields disagree with the receipt."""

    chain: str | None
    seq: int | None
    differing: tuple[str, ...] = ()

    @property
    def matches(self) -> bool:
        return self.chain is not None and not self.differing

    def to_json(self) -> dict[str, Any]:
        if self.chain is None:
            return {"matches": False, "reason": NOT_FOUND}
        return {"matches": self.matches, "chain": self.chain, "seq": self.seq,
                "differing": list(self.differing)}


def receipt_report(engine: sa.Engine, saved: bytes, jwks: Any) -> dict[str, Any]:
    """{"matches": bool, ...}: the saved receipt verified, then matched to its record."""
    try:
        claims = check_saved(parse_saved(saved), jwks)
    except ReceiptError as exc:
        return {"matches": False, "reason": str(exc)}
    return {"rid": claims.rid, **match_receipt(engine, claims).to_json()}


def match_receipt(engine: sa.Engine, claims: ReceiptClaims) -> ReceiptMatch:
    """The record of the receipt's request: a full match if one exists, else the first found."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_records)
            .where(audit_records.c.request_id == claims.rid,
                   audit_records.c.body_sha256 == claims.body_sha256)
            .order_by(audit_records.c.chain_id, audit_records.c.seq)).all()
    matches = [ReceiptMatch(row.chain_id, row.seq, differing(row, claims)) for row in rows]
    fallback = matches[0] if matches else ReceiptMatch(None, None)
    return next((m for m in matches if m.matches), fallback)


def differing(row: Any, claims: ReceiptClaims) -> tuple[str, ...]:
    """The record's fields that do not say what the receipt says."""
    expected = {"subject": storable(claims.sub), "model": storable(claims.model),
                "version": storable(claims.version), "decision": "allow", "status": 200}
    names = [name for name, value in expected.items() if getattr(row, name) != value]
    if not _written_after(row.time, claims.iat):
        names.append("time")
    return tuple(names)


def _written_after(record_time: Any, iat: int) -> bool:
    try:
        written = datetime.strptime(record_time, RECORD_TIME).replace(tzinfo=UTC).timestamp()
    except (TypeError, ValueError):
        return False
    return 0 <= written - iat <= RECORD_DELAY_MAX
