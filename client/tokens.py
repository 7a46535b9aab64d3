"""Access tokens from /auth/token: obtained, refreshed before expiry, renewed after a 401."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote_plus, urlencode

from client.errors import ServerError, TorchgateError, error_for_response
from client.transport import Prepared, Transport

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Token:
    """A token answer; the token strings stay out of repr so they never reach a log by accident."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    obtained_at: float
    refresh_token: str | None = field(default=None, repr=False)

    @property
    def expires_at(self) -> float:
        return self.obtained_at + self.expires_in

    def to_json(self) -> dict:
        """The RFC 6749 §5.1 answer, as the gateway gave it."""
        body: dict = {"access_token": self.access_token, "token_type": self.token_type,
                      "expires_in": self.expires_in}
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        return body


@dataclass(frozen=True)
class PasswordGrant:
    """grant_type=password: a user's name and password."""

    username: str
    password: str = field(repr=False)

    def prepare(self) -> Prepared:
        return _form({"grant_type": "password", "username": self.username,
                      "password": self.password})


@dataclass(frozen=True)
class ClientCredentialsGrant:
    """grant_type=client_credentials, the client authenticated with HTTP Basic (RFC 6749 §2.3.1)."""

    client_id: str
    client_secret: str = field(repr=False)

    def prepare(self) -> Prepared:
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}".encode()
        basic = "Basic " + base64.b64encode(pair).decode("ascii")
        return _form({"grant_type": "client_credentials"}, Authorization=basic)


Grant = PasswordGrant | ClientCredentialsGrant


class TokenSource:
    """Holds the current token; renews it `leeway` seconds before it expires, or when told to."""

    def __init__(self, transport: Transport, grant: Grant, *, leeway: float,
                 clock: Callable[[], float]):
        self._transport = transport
        self._grant = grant
        self._leeway = leeway
        self._clock = clock
        self._token: Token | None = None
        self._stale = False
        self._lock = threading.Lock()

    def current(self) -> Token:
        """A token that is not about to expire: refreshed (or obtained anew) when needed."""
        with self._lock:
            if self._token is None:
                self._token = self._request(self._grant.prepare())
            elif self._stale or self._expiring(self._token):
                self._token = self._renew(self._token)
            self._stale = False
            return self._token

    def invalidate(self) -> None:
        """The gateway refused the token (expired): renew it before the next call."""
        with self._lock:
            self._stale = True

    def forget(self) -> None:
        """Drop the token (after revocation): the next call authenticates again."""
        with self._lock:
            self._token, self._stale = None, False

    def _expiring(self, token: Token) -> bool:
        # Never more than half the lifetime early, so short-lived tokens are still used.
        leeway = min(self._leeway, token.expires_in / 2)
        return self._clock() >= token.expires_at - leeway

    def _renew(self, token: Token) -> Token:
        """The refresh_token grant when there is a refresh token, else the original grant.

        A refresh is sent once, never retried: if the server used the token but the answer was
        lost, a second try would be refresh-token reuse and end the family. Any failure falls
        back to the original grant, which is safe to repeat.
        """
        if token.refresh_token:
            try:
                return self._request(_form({"grant_type": "refresh_token",
                                            "refresh_token": token.refresh_token}), retry=False)
            except TorchgateError:
                pass  # expired, revoked, rotated away, or the answer was lost: sign in again
        return self._request(self._grant.prepare())

    def _request(self, prepared: Prepared, *, retry: bool = True) -> Token:
        sent_at = self._clock()  # the lifetime counts from the request: errs on the early side
        response = self._transport.send("POST", "/auth/token", lambda: prepared, retry=retry)
        if response.status_code != 200:
            raise error_for_response(response.status_code, response.headers, response.content)
        try:
            body = response.json()
            return Token(access_token=body["access_token"],
                         token_type=body.get("token_type", "Bearer"),
                         expires_in=int(body.get("expires_in", 0)), obtained_at=sent_at,
                         refresh_token=body.get("refresh_token"))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ServerError("The token answer is malformed.", status=200,
                              slug="invalid-answer") from exc


def _form(params: Mapping[str, str], **headers: str) -> Prepared:
    return Prepared(headers={"Content-Type": FORM, "Accept": "application/json", **headers},
                    data=urlencode(params).encode("ascii"))
