"""A stdlib HTTP client for the operations tests: one fresh connection per call."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from security.envelope import open_envelope, request_digest, seal_envelope

SEALED = "application/jose+json"
PROBLEM = "application/problem+json"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, headers (lower-case names) and the raw body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def slug(self) -> str:
        """The problem slug of a problem+json answer ("" otherwise)."""
        if not self.headers.get("content-type", "").startswith(PROBLEM):
            return ""
        return self.json()["type"].rpartition(":")[2]


def call(base_url: str, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 30.0) -> Reply:
    """One request on its own connection (so the kernel may hand it to any worker)."""
    parts = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                     response.read())
    finally:
        conn.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_request(base_url: str, **params: str) -> Reply:
    """POST /auth/token with form parameters."""
    return call(base_url, "POST", "/auth/token", urllib.parse.urlencode(params).encode(),
                {"Content-Type": FORM})


@dataclass
class Caller:
    """A user of one gateway: password, payload key, and the tokens it got."""

    base_url: str
    username: str
    password: str
    kid: str
    key: bytes
    tokens: dict[str, str] = field(default_factory=dict)

    def login(self) -> str:
        reply = token_request(self.base_url, grant_type="password", username=self.username,
                              password=self.password)
        assert reply.status == 200, reply.body
        self.tokens = reply.json()
        return self.tokens["access_token"]

    sent: list[bytes] = field(default_factory=list)

    def seal(self, payload: dict) -> bytes:
        body = seal_envelope(json.dumps(payload).encode(), key=self.key, kid=self.kid)
        self.sent.append(body)
        return body

    def open(self, body: bytes, request: bytes | None = None) -> dict:
        """The reply to `request`, by default the last request sealed here."""
        opened = open_envelope(body, key_for=lambda _kid: self.key, now=time.time(), max_age=300,
                               reply_to=request_digest(request or self.sent[-1]))
        return json.loads(opened.plaintext)

    def predict(self, token: str, body: bytes, model: str = "tiny",
                base_url: str | None = None, **headers: str) -> Reply:
        return call(base_url or self.base_url, "POST", f"/predict/{model}", body,
                    {**bearer(token), "Content-Type": SEALED, **headers})
