"""Users (Argon2id passwords) and OAuth clients (hashed secrets) in the gateway's database."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field, replace

from sqlalchemy import Column, Engine, Integer, String, Table, delete, insert, select, update

from security.attributes import NO_ATTRIBUTES, Attributes
from security.identity_attributes import identity_attributes, read_attributes, write_attributes
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


# Per subject, kept when the user or client is deleted: whether it is disabled, and the
# generation its tokens carry (claim "gen"). Ending every token of a subject revokes its
# current generation in the shared store and moves it to the next one (security/tokens.py).
identity_status = Table(
    "identity_status", metadata,
    Column("subject", String(255), primary_key=True),
    Column("disabled", Integer, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("updated_at", Integer, nullable=False),
)
KINDS = {"user": (users, "username"), "client": (clients, "client_id")}


class IdentityError(Exception):
    """A user or client cannot be created as asked (duplicate, bad name, bad role)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated user or client: the subject, roles and attributes a token is issued
    for."""

    subject: str
    roles: tuple[str, ...]
    generation: int = 0
    attributes: Attributes = field(default_factory=lambda: NO_ATTRIBUTES, compare=False)


def _encode_roles(roles: tuple[str, ...] | list[str]) -> str:
    if not roles or any(not r or "," in r or r != r.strip() for r in roles):
        raise IdentityError("roles must be non-empty names without commas or spaces")
    return ",".join(roles)


def _decode_roles(text: str) -> tuple[str, ...]:
    return tuple(filter(None, text.split(",")))


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise IdentityError("a password has at least 8 characters")


def _secret_digest(secret: str) -> str:
    """Client secrets are 256-bit random: one SHA-256 is a sound, fast one-way store for them."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Directory:
    """Creates and authenticates users and clients."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def create_user(self, username: str, password: str, roles: list[str],
                    attributes: Attributes = NO_ATTRIBUTES) -> Principal:
        if not username or len(username) > 255 or username != username.strip():
            raise IdentityError("a username is 1-255 characters without surrounding spaces")
        _check_password(password)
        self._insert_unique(users, username, {
            "username": username, "password_hash": hash_password(password),
            "roles": _encode_roles(roles), "created_at": int(time.time())}, attributes)
        return Principal(username, tuple(roles), attributes=attributes)

    def create_client(self, client_id: str, roles: list[str],
                      attributes: Attributes = NO_ATTRIBUTES) -> tuple[Principal, str]:
        """Returns the principal and its secret, which is shown once and stored only hashed."""
        if not client_id or len(client_id) > 255 or client_id != client_id.strip():
            raise IdentityError("a client id is 1-255 characters without surrounding spaces")
        secret = secrets.token_urlsafe(32)
        self._insert_unique(clients, client_id, {
            "client_id": client_id, "secret_sha256": _secret_digest(secret),
            "roles": _encode_roles(roles), "created_at": int(time.time())}, attributes)
        return Principal(client_id, tuple(roles), attributes=attributes), secret

    def authenticate_user(self, username: str, password: str) -> Principal | None:
        """The user, unless the password is wrong or the user is unknown or disabled."""
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        if not verify_password(row.password_hash if row else None, password):
            return None
        if needs_rehash(row.password_hash):
            with self._engine.begin() as conn:
                conn.execute(update(users).where(users.c.username == username)
                             .values(password_hash=hash_password(password)))
        return self._enabled(Principal(row.username, _decode_roles(row.roles)))

    def authenticate_client(self, client_id: str, secret: str) -> Principal | None:
        """The client, unless the secret is wrong or the client is unknown or disabled."""
        with self._engine.connect() as conn:
            row = conn.execute(select(clients).where(clients.c.client_id == client_id)).first()
        stored = row.secret_sha256 if row else "0" * 64
        if not hmac.compare_digest(stored, _secret_digest(secret)) or row is None:
            return None
        return self._enabled(Principal(row.client_id, _decode_roles(row.roles)))

    def current_principal(self, subject: str) -> Principal | None:
        """The user or client as it is now: roles and generation; None if gone or disabled."""
        with self._engine.connect() as conn:
            row = conn.execute(select(users.c.roles).where(users.c.username == subject)).first()
            row = row or conn.execute(
                select(clients.c.roles).where(clients.c.client_id == subject)).first()
        return self._enabled(Principal(subject, _decode_roles(row.roles))) if row else None

    def _enabled(self, principal: Principal) -> Principal | None:
        disabled, generation = self.status(principal.subject)
        if disabled:
            return None
        return replace(principal, generation=generation,
                       attributes=self.attributes(principal.subject))

    def attributes(self, subject: str) -> Attributes:
        with self._engine.connect() as conn:
            return read_attributes(conn, subject)

    def set_attributes(self, subject: str, attributes: Attributes) -> None:
        """Replace the attributes of a user or client (its tokens carry the old ones until
        security/identity_admin.py ends them)."""
        with self._engine.begin() as conn:
            write_attributes(conn, subject, attributes, int(time.time()))

    # --- administration (security/identity_admin.py ends tokens and keys around these) ---

    def status(self, subject: str) -> tuple[bool, int]:
        """(disabled, generation) of a subject; (False, 0) for one never administered."""
        with self._engine.connect() as conn:
            row = conn.execute(select(identity_status)
                               .where(identity_status.c.subject == subject)).first()
        return (bool(row.disabled), row.generation) if row else (False, 0)

    def advance_generation(self, subject: str, ended: int, *, disabled: bool) -> None:
        """Tokens of generation `ended` are over: new ones carry `ended + 1`; set `disabled`."""
        values = {"disabled": int(disabled), "generation": ended + 1,
                  "updated_at": int(time.time())}
        with self._engine.begin() as conn:
            changed = conn.execute(update(identity_status).where(
                identity_status.c.subject == subject,
                identity_status.c.generation == ended).values(**values)).rowcount
            if not changed and ended == 0 and self._status_row(conn, subject) is None:
                conn.execute(insert(identity_status).values(subject=subject, **values))

    def set_disabled(self, subject: str, disabled: bool) -> None:
        _, generation = self.status(subject)
        with self._engine.begin() as conn:
            if self._status_row(conn, subject) is None:
                conn.execute(insert(identity_status).values(
                    subject=subject, disabled=int(disabled), generation=generation,
                    updated_at=int(time.time())))
            else:
                conn.execute(update(identity_status).where(identity_status.c.subject == subject)
                             .values(disabled=int(disabled), updated_at=int(time.time())))

    def exists(self, kind: str, name: str) -> bool:
        table, column = KINDS[kind]
        with self._engine.connect() as conn:
            return conn.execute(select(table.c[column])
                                .where(table.c[column] == name)).first() is not None

    def is_known(self, subject: str) -> bool:
        """Whether a user or a client of that name exists (disabled or not)."""
        return any(self.exists(kind, subject) for kind in KINDS)

    def list(self, kind: str) -> list[dict]:
        """Every user or client, by name: roles, creation time, disabled; never a secret."""
        table, column = KINDS[kind]
        status, attrs = identity_status, identity_attributes
        query = (select(table.c[column], table.c.roles, table.c.created_at, status.c.disabled,
                        attrs.c.attributes)
                 .select_from(table.outerjoin(status, status.c.subject == table.c[column])
                              .outerjoin(attrs, attrs.c.subject == table.c[column]))
                 .order_by(table.c[column]))
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [{column: row[0], "roles": list(_decode_roles(row.roles)),
                 "created_at": row.created_at, "disabled": bool(row.disabled),
                 "attributes": json.loads(row.attributes or "{}")} for row in rows]

    def delete(self, kind: str, name: str) -> bool:
        """Remove the user or client (its status row stays: generations never repeat)."""
        table, column = KINDS[kind]
        with self._engine.begin() as conn:
            deleted = bool(conn.execute(delete(table).where(table.c[column] == name)).rowcount)
        if not self.is_known(name):  # a recreated user or client must not inherit them
            self.set_attributes(name, NO_ATTRIBUTES)
        return deleted

    def set_password(self, username: str, password: str) -> None:
        _check_password(password)
        with self._engine.begin() as conn:
            conn.execute(update(users).where(users.c.username == username)
                         .values(password_hash=hash_password(password)))

    def rotate_secret(self, client_id: str) -> str:
        """A new client secret, shown once; the old one stops working."""
        secret = secrets.token_urlsafe(32)
        with self._engine.begin() as conn:
            conn.execute(update(clients).where(clients.c.client_id == client_id)
                         .values(secret_sha256=_secret_digest(secret)))
        return secret

    @staticmethod
    def _status_row(conn, subject: str):
        return conn.execute(select(identity_status.c.subject)
                            .where(identity_status.c.subject == subject)).first()

    def _insert_unique(self, table: Table, key: str, values: dict,
                       attributes: Attributes) -> None:
        with self._engine.begin() as conn:
            if conn.execute(select(table).where(table.primary_key.columns[0] == key)).first():
                raise IdentityError(f"{key!r} already exists")
            conn.execute(insert(table).values(**values))
            if attributes:
                write_attributes(conn, key, attributes, values["created_at"])
