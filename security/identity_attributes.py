"""The attributes of users and clients (tenant, clearance, …), by subject, as JSON text.

A table of their own, so that a database made before attributes existed gains it at start-up
(create_all adds tables, never columns). Keyed by subject, as identity_status is: a user and a
client of one name are one subject to tokens, payload keys and revocation.
"""

from __future__ import annotations

import json

from sqlalchemy import Column, Connection, Integer, String, Table, Text, delete, insert, select

from security.attributes import NO_ATTRIBUTES, Attributes, as_claim, parse_attributes
from security.schema import metadata

identity_attributes = Table(
    "identity_attributes", metadata,
    Column("subject", String(255), primary_key=True),
    Column("attributes", Text, nullable=False),
    Column("updated_at", Integer, nullable=False),
)


def read_attributes(conn: Connection, subject: str) -> Attributes:
    row = conn.execute(select(identity_attributes.c.attributes)
                       .where(identity_attributes.c.subject == subject)).first()
    return parse_attributes(json.loads(row.attributes)) if row else NO_ATTRIBUTES


def write_attributes(conn: Connection, subject: str, attributes: Attributes, now: int) -> None:
    """Replace the subject's attributes; none at all removes its row."""
    conn.execute(delete(identity_attributes).where(identity_attributes.c.subject == subject))
    if attributes:
        conn.execute(insert(identity_attributes).values(
            subject=subject, attributes=json.dumps(as_claim(attributes), sort_keys=True),
            updated_at=now))
