"""The database tables of identity and payload keys, on one SQLAlchemy MetaData."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()
