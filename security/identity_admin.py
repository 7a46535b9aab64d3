"""Administration of users and clients: disabling, deleting or re-keying one ends its tokens
(and, for disabling and deleting, its payload keys) at once, on every worker and node.

Tokens carry their subject's generation (claim "gen"); ending them puts that generation's
revocation key in the shared store (checked on every request with the token's own keys), then
moves the subject to the next generation in the database, so tokens issued afterwards, e.g.
after `users enable`, work. The store key first: if the database step fails the command can be
run again, and a login in between gets a token of the revoked generation.
"""

from __future__ import annotations

from dataclasses import dataclass

from security.attributes import Attributes
from security.identity import KINDS, Directory, IdentityError
from security.keys import PayloadKeyring
from security.store import SharedStore
from security.tokens import CLOCK_MARGIN, subject_generation_key


@dataclass(frozen=True)
class Ended:
    """What an administrative change ended: the token generation and the payload keys."""

    subject: str
    generation: int
    keys: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"subject": self.subject, "tokens_revoked_generation": self.generation,
                "keys_revoked": list(self.keys)}


class IdentityAdmin:
    """disable, enable, delete, set-password, set-attributes, rotate-secret; each ends what it
    must."""

    def __init__(self, directory: Directory, keyring: PayloadKeyring, store: SharedStore, *,
                 token_lifetime: int):
        self._directory = directory
        self._keyring = keyring
        self._store = store
        self._mark_ttl = token_lifetime + CLOCK_MARGIN  # outlives every token issued before

    def disable(self, kind: str, name: str) -> Ended:
        self._require(kind, name)
        return self._end(name, disabled=True, keys=True)

    def enable(self, kind: str, name: str) -> None:
        self._require(kind, name)
        self._directory.set_disabled(name, False)

    def delete(self, kind: str, name: str) -> Ended:
        self._require(kind, name)
        ended = self._end(name, disabled=False, keys=True)
        self._directory.delete(kind, name)
        return ended

    def set_password(self, username: str, password: str) -> Ended:
        self._require("user", username)
        self._directory.set_password(username, password)
        return self._end(username, disabled=self._directory.status(username)[0], keys=False)

    def set_attributes(self, kind: str, name: str, attributes: Attributes) -> Ended:
        """Tokens carry the attributes they were issued with: they end, and the next ones
        carry the new attributes (a tenant moved is out of its old tenant at once)."""
        self._require(kind, name)
        self._directory.set_attributes(name, attributes)
        return self._end(name, disabled=self._directory.status(name)[0], keys=False)

    def rotate_secret(self, client_id: str) -> tuple[str, Ended]:
        self._require("client", client_id)
        secret = self._directory.rotate_secret(client_id)
        return secret, self._end(client_id, disabled=self._directory.status(client_id)[0],
                                 keys=False)

    def _end(self, subject: str, *, disabled: bool, keys: bool) -> Ended:
        _, generation = self._directory.status(subject)
        self._store.revoke(subject_generation_key(subject, generation), self._mark_ttl)
        self._directory.advance_generation(subject, generation, disabled=disabled)
        revoked = self._keyring.revoke_subject(subject) if keys else []
        return Ended(subject, generation, tuple(revoked))

    def _require(self, kind: str, name: str) -> None:
        if kind not in KINDS or not self._directory.exists(kind, name):
            raise IdentityError(f"no {kind} {name!r}")
