"""Users (Argon2id passwords) and OAuth clients (hashed secrets) in the gateway's database."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Column, Engine, Integer, String, Table, insert, select, update

from security.passwords import hash_password, needs_rehash, verify_password
from security.schema import metadata

users = Table(
    "users", metadata,
    Column("username", String(255), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("roles", String(1024), nullable=False),
    Column("created_at", Integer, nullable=False),
)

clients = Table(
    "clients", metadata,
    Column("client_id", String(255), primary_key=True),
    Column("secret_sha256", String(64), nullable=False),
    Column("roles", String(1024), nullable=False),
    Column("created_at", Integer, nullable=False),
)


class IdentityError(Exception):
    """A user or client cannot be created as asked (duplicate, bad name, bad role)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated user or client: the subject and roles a token is issued for."""

    subject: str
    roles: tuple[str, ...]


def _encode_roles(roles: tuple[str, ...] | list[str]) -> str:
    if not roles or any(not r or "," in r or r != r.strip() for r in roles):
        raise IdentityError("roles must be non-empty names without commas or spaces")
    return ",".join(roles)


def _decode_roles(text: str) -> tuple[str, ...]:
    return tuple(filter(None, text.split(",")))


def _secret_digest(secret: str) -> str:
    """Client secrets are 256-bit random: one SHA-256 is a sound, fast one-way store for them."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Directory:
    """Creates and authenticates users and clients."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def create_user(self, username: str, password: str, roles: list[str]) -> Principal:
        if not username or len(username) > 255 or username != username.strip():
            raise IdentityError("a username is 1-255 characters without surrounding spaces")
        if len(password) < 8:
            raise IdentityError("a password has at least 8 characters")
        self._insert_unique(users, username, {
            "username": username, "password_hash": hash_password(password),
            "roles": _encode_roles(roles), "created_at": int(time.time())})
        return Principal(username, tuple(roles))

    def create_client(self, client_id: str, roles: list[str]) -> tuple[Principal, str]:
        """Returns the principal and its secret, which is shown once and stored only hashed."""
        if not client_id or len(client_id) > 255 or client_id != client_id.strip():
            raise IdentityError("a client id is 1-255 characters without surrounding spaces")
        secret = secrets.token_urlsafe(32)
        self._insert_unique(clients, client_id, {
            "client_id": client_id, "secret_sha256": _secret_digest(secret),
            "roles": _encode_roles(roles), "created_at": int(time.time())})
        return Principal(client_id, tuple(roles)), secret

    def authenticate_user(self, username: str, password: str) -> Principal | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        if not verify_password(row.password_hash if row else None, password):
            return None
        if needs_rehash(row.password_hash):
            with self._engine.begin() as conn:
                conn.execute(update(users).where(users.c.username == username)
                             .values(password_hash=hash_password(password)))
        return Principal(row.username, _decode_roles(row.roles))

    def authenticate_client(self, client_id: str, secret: str) -> Principal | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(clients).where(clients.c.client_id == client_id)).first()
        stored = row.secret_sha256 if row else "0" * 64
        if not hmac.compare_digest(stored, _secret_digest(secret)) or row is None:
            return None
        return Principal(row.client_id, _decode_roles(row.roles))

    def current_roles(self, subject: str) -> tuple[str, ...] | None:
        """The roles a user or client holds now (None when it no longer exists)."""
        with self._engine.connect() as conn:
            row = conn.execute(select(users.c.roles).where(users.c.username == subject)).first()
            row = row or conn.execute(
                select(clients.c.roles).where(clients.c.client_id == subject)).first()
        return _decode_roles(row.roles) if row else None

    def _insert_unique(self, table: Table, key: str, values: dict) -> None:
        with self._engine.begin() as conn:
            if conn.execute(select(table).where(table.primary_key.columns[0] == key)).first():
                raise IdentityError(f"{key!r} already exists")
            conn.execute(insert(table).values(**values))
