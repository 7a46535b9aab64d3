"""The audit trail's format: its two tables, the record, and the one keyed hash that links them.

Every worker process writes a chain of its own (security.audit_trail); chains are linked to one
another in `audit_chains` when they start, and each chain's head (last seq, its hash and a MAC
over both) moves in the same transaction as the records. docs/audit.md explains the design.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from errors import ServiceUnavailable
from security.schema import metadata

GENESIS = "0" * 64  # prev_chain_hash of the first chain ever started
AUDIT_KEY_INFO = b"torchgate:audit-chain:v1"

audit_chains = sa.Table(
    "audit_chains", metadata,
    sa.Column("chain_id", sa.String(128), primary_key=True),
    sa.Column("ordinal", sa.BigInteger, nullable=False, unique=True),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("prev_chain_hash", sa.String(64), nullable=False),
    sa.Column("chain_hash", sa.String(64), nullable=False),
    sa.Column("head_seq", sa.BigInteger, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("head_mac", sa.String(64), nullable=False),
)

audit_records = sa.Table(
    "audit_records", metadata,
    sa.Column("chain_id", sa.String(128), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time", sa.String(32), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text, nullable=True),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("version", sa.Text, nullable=True),
    sa.Column("decision", sa.String(8), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("latency_us", sa.BigInteger, nullable=True),
    sa.Column("body_sha256", sa.String(64), nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("record_hash", sa.String(64), nullable=False),
)


class AuditUnavailable(ServiceUnavailable):
    """503: the record could not be written, so the answer is withheld (fail closed)."""

    def __init__(self) -> None:
        super().__init__("The audit trail is unreachable; the request was refused.")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What one request leaves behind: who asked for what, and what the gateway answered."""

    time: str
    request_id: str
    subject: str | None
    action: str
    model: str | None
    version: str | None
    decision: str
    status: int
    latency_us: int | None
    body_sha256: str | None


AUDIT_FIELDS = tuple(f.name for f in fields(AuditRecord))


@dataclass(frozen=True)
class ChainHead:
    """Where this process's chain ends: the next record gets seq + 1 and links to record_hash."""

    chain_id: str
    pid: int
    seq: int
    record_hash: str


def utc_now() -> str:
    """The record time format: ISO-8601 UTC with microseconds, sortable as text."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_key(master_key: bytes) -> bytes:
    """The chain MAC key, derived from MASTER_KEY: a database writer alone cannot forge links."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=AUDIT_KEY_INFO).derive(master_key)


def key_id(key: bytes) -> str:
    """A public name for the audit key, so verify can tell 'another key' from 'edited'."""
    return hmac.new(key, b"torchgate:audit-key-id", hashlib.sha256).hexdigest()[:16]


def link(key: bytes, kind: str, prev: str, fields: dict[str, Any]) -> str:
    """HMAC-SHA256(key, prev || canonical JSON of kind + fields): the one hash of the trail."""
    # default=repr: a tampered row holding a non-JSON value hashes wrong instead of crashing verify
    canonical = json.dumps({"kind": kind, **fields}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=True, default=repr)
    prev_bytes = prev.encode() if isinstance(prev, str) else repr(prev).encode()  # tampered type
    return hmac.new(key, prev_bytes + canonical.encode(), hashlib.sha256).hexdigest()


def record_values(record: AuditRecord) -> dict[str, Any]:
    """The record's fields by name (dataclasses.asdict without its deep copy)."""
    return {name: getattr(record, name) for name in AUDIT_FIELDS}


def record_fields(chain_id: str, seq: int, record: AuditRecord) -> dict[str, Any]:
    """What a record's hash covers: its place in the chain and every field."""
    return {"chain_id": chain_id, "seq": seq, **record_values(record)}


def head_mac(key: bytes, chain_id: str, seq: int, record_hash: str) -> str:
    """Binds a chain's head to its seq and hash, so moving the head back needs the key."""
    return link(key, "head", record_hash, {"chain_id": chain_id, "seq": seq})
