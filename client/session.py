"""TorchgateClient: token handling, sealed predictions and the catalogue, over one HTTP session."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import requests

from client.errors import (
    InvalidEnvelope,
    InvalidReceipt,
    ServerError,
    TokenExpired,
    error_for_response,
)
from client.gateway_keys import JWKS_PATH, GatewayKey, KeyPin
from client.receipts import Jwks, ReceiptChecker, SentCall
from client.sealing import SEALED, PayloadKey, request_plaintext
from client.tokens import ClientCredentialsGrant, Grant, PasswordGrant, Token, TokenSource
from client.transport import Prepared, RetryPolicy, Transport
from security.receipts import RECEIPT_AT

PLAIN = "application/json"
DEFAULT_RETRY = RetryPolicy()
ENVELOPES = ("auto", "hpke", "dir", "plain")
Body = Callable[[str], tuple[bytes, str]]  # access token -> (body, content type)
ReplyKeys = dict[bytes, PayloadKey]  # each attempt's request body -> the key its reply opens with


class TorchgateClient:
    """A torchgate caller: one identity (user or client); its calls sealed to the gateway's
    published HPKE key when there is one (`envelope="auto"`), else with its payload key.

    envelope: "auto", "hpke" (refuse to send without a gateway key), "dir" (the payload key
    kid/key) or "plain". The gateway's key set is pinned on first use, in memory or in
    `pin_file`; `gateway_keys` names a JWKS file from the operator, trusted instead.
    """

    def __init__(self, base_url: str, *, username: str | None = None,
                 password: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None, kid: str | None = None,
                 key: str | bytes | None = None, timeout: float = 10.0,
                 retries: RetryPolicy | int = DEFAULT_RETRY, refresh_leeway: float = 30.0,
                 envelope_max_age: int = 300, clock: Callable[[], float] = time.time,
                 session: requests.Session | None = None, envelope: str = "auto",
                 pin_file: str | Path | None = None, gateway_keys: str | Path | None = None,
                 verify_receipts: bool = True, receipt_keys: Jwks | None = None):
        """verify_receipts: check every reply's receipt (docs/receipts.md) with receipt_keys,
        a JWKS pinned by the caller, or else the gateway's, fetched on first use and pinned."""
        retry = retries if isinstance(retries, RetryPolicy) else RetryPolicy(attempts=retries + 1)
        self._transport = Transport(base_url, timeout=timeout, retry=retry, session=session)
        grant = _grant(username, password, client_id, client_secret)
        self._tokens = TokenSource(self._transport, grant, leeway=refresh_leeway, clock=clock)
        if (kid is None) != (key is None):
            raise ValueError("give kid and key, or neither (plain JSON, if the gateway allows it)")
        self._key = None if kid is None or key is None else PayloadKey.from_text(kid, key)
        if envelope not in ENVELOPES or (envelope == "dir" and self._key is None):
            raise ValueError(f"envelope must be one of {', '.join(ENVELOPES)}; dir needs kid "
                             "and key")
        self._envelope = envelope
        self._pin = KeyPin(operator_file=None if gateway_keys is None else Path(gateway_keys),
                           tofu_file=None if pin_file is None else Path(pin_file))
        self._max_age = envelope_max_age
        self._clock = clock
        self._receipts = (ReceiptChecker(self._fetch_receipt_keys, receipt_keys)
                          if verify_receipts else None)
        self._pinned_for_receipts: Callable[[], Jwks | None] | None = self._pin.pinned_signing_set

    def __enter__(self) -> TorchgateClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def token(self) -> Token:
        """The current access token, obtained or refreshed when needed."""
        return self._tokens.current()

    def predict(self, model: str, inputs: Any, *, version: str | None = None,
                parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One model call: sealed request, opened reply {"model", "version", "outputs", ...,
        "receipt"}; InvalidReceipt when the receipt does not verify."""
        return _object(self.predict_plaintext(model, inputs, version=version,
                                              parameters=parameters))

    def predict_plaintext(self, model: str, inputs: Any, *, version: str | None = None,
                          parameters: Mapping[str, Any] | None = None) -> bytes:
        """predict's reply as the exact bytes the gateway sealed: what its receipt covers, so
        a saved copy can be verified offline (`python -m client verify-receipt`)."""
        payload: dict[str, Any] = {"inputs": _plain(inputs)}
        if parameters is not None:
            payload["parameters"] = dict(parameters)
        path = f"/predict/{quote(model, safe='')}"
        if version is not None:
            path += f"/versions/{quote(str(version), safe='')}"
        plaintext = request_plaintext(payload)
        reply_keys: ReplyKeys = {}
        response = self._call("POST", path, self._body(plaintext, reply_keys))
        reply = self._reply(response, reply_keys)
        _object(reply, response.status_code)  # not JSON is invalid-answer, not a bad receipt
        if self._receipts is not None:
            sent = SentCall(model=model, plaintext=plaintext, body=response.request.body)
            self._receipts.check(reply, RECEIPT_AT, sent)
        return reply

    def models(self) -> list[dict[str, Any]]:
        """The models this caller may use or read."""
        return _json(self._call("GET", "/models"))["models"]

    def model(self, name: str) -> dict[str, Any]:
        """One model's description: versions, inputs, outputs, device, ready."""
        return _json(self._call("GET", f"/models/{quote(name, safe='')}"))

    def whoami(self) -> dict[str, Any]:
        """{"sub", "roles", "permissions", "exp"} of the current token."""
        return _json(self._call("GET", "/auth/whoami"))

    def revoke(self) -> None:
        """Revoke this session's tokens, then forget them; the next call signs in again.

        Revoking the refresh token ends its whole family, the access token included.
        """
        token = self._tokens.current()
        form = urlencode({"token": token.refresh_token or token.access_token}).encode("ascii")
        self._call("POST", "/auth/revoke",
                   lambda token: (form, "application/x-www-form-urlencoded"))
        self._tokens.forget()

    def _body(self, plaintext: bytes, reply_keys: ReplyKeys) -> Body:
        """Each call seals anew: a retried request must never reuse an envelope."""
        gateway_key = self._gateway_key()
        if gateway_key is not None:
            def sealed_to_gateway(token: str) -> tuple[bytes, str]:
                body, reply_key = gateway_key.seal(plaintext, token, self._clock)
                reply_keys[body] = reply_key
                return body, SEALED
            return sealed_to_gateway
        key = self._key
        if key is None or self._envelope == "plain":
            return lambda token: (plaintext, PLAIN)

        def sealed_with_payload_key(token: str) -> tuple[bytes, str]:
            body = key.seal(plaintext, self._clock)
            reply_keys[body] = key
            return body, SEALED
        return sealed_with_payload_key

    def _gateway_key(self) -> GatewayKey | None:
        """The pinned HPKE key to seal to, in modes auto and hpke; None for dir and plain."""
        if self._envelope not in ("auto", "hpke"):
            return None
        found = self._pin.key(self._fetch_jwks, self._clock)
        if found is None and self._envelope == "hpke":
            raise InvalidEnvelope("The gateway publishes no HPKE key to seal to.",
                                  slug="no-gateway-key")
        return found

    def _fetch_jwks(self) -> dict[str, Any] | None:
        """The gateway's published keys (HPKE and receipt keys), or None when it has none."""
        response = self._get_jwks()
        return _json(response) if response.status_code == 200 else None

    def _fetch_receipt_keys(self) -> Jwks:
        """First the key set this client already pinned (one fetch, or none, serves both);
        the receipt checker asks again only for a kid that set lacks: then the gateway's."""
        pinned, self._pinned_for_receipts = self._pinned_for_receipts, None
        if pinned is not None and (found := pinned()) is not None:
            return found
        response = self._get_jwks()
        if not response.ok:
            raise InvalidReceipt(f"The gateway's receipt keys could not be fetched from "
                                 f"{JWKS_PATH}.", status=response.status_code,
                                 slug="invalid-receipt")
        return _json(response)

    def _get_jwks(self) -> requests.Response:
        return self._transport.send("GET", JWKS_PATH, lambda: Prepared(
            headers={"Accept": PLAIN}))

    def _call(self, method: str, path: str, body: Body | None = None) -> requests.Response:
        """Send with a bearer token; after a 401 token-expired, renew it and send once more."""
        for renewed in (False, True):
            response = self._transport.send(method, path, lambda: self._prepare(body))
            if response.ok:
                return response
            error = error_for_response(response.status_code, response.headers, response.content)
            if renewed or not isinstance(error, TokenExpired):
                raise error
            self._tokens.invalidate()
        raise AssertionError("unreachable")

    def _prepare(self, body: Body | None) -> Prepared:
        token = self._tokens.current().access_token
        headers = {"Authorization": f"Bearer {token}", "Accept": f"{SEALED}, {PLAIN}"}
        if body is None:
            return Prepared(headers=headers)
        data, content_type = body(token)  # an HPKE envelope is bound to this very token
        return Prepared(headers={**headers, "Content-Type": content_type}, data=data)

    def _reply(self, response: requests.Response, reply_keys: ReplyKeys) -> bytes:
        """The reply plaintext: opened with the key of the request it answers."""
        sealed = response.headers.get("Content-Type", "").startswith(SEALED)
        if not reply_keys:
            return response.content
        if not sealed:  # a sealed request must get a sealed answer: never accept a downgrade
            raise InvalidEnvelope("The reply was not sealed.", status=response.status_code,
                                  slug="invalid-reply-envelope")
        sent = response.request.body  # the last attempt's envelope: each retry seals anew
        key = reply_keys.get(sent)
        if key is None:
            raise InvalidEnvelope("The reply answers no request of this call.",
                                  slug="invalid-reply-envelope")
        return key.open_plaintext(response.content, request=sent, max_age=self._max_age)


def _grant(username: str | None, password: str | None, client_id: str | None,
           client_secret: str | None) -> Grant:
    if username is not None and password is not None and client_id is None:
        return PasswordGrant(username, password)
    if client_id is not None and client_secret is not None and username is None:
        return ClientCredentialsGrant(client_id, client_secret)
    raise ValueError("give username and password, or client_id and client_secret")


def _json(response: requests.Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer; ServerError when it is anything else."""
    return _object(response.content, response.status_code)


def _object(text: bytes, status: int = 200) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise ServerError("The gateway's answer is not a JSON object.", status=status,
                          slug="invalid-answer")
    return value


def _plain(value: Any) -> Any:
    """Inputs as JSON values: numpy arrays and torch tensors become nested lists."""
    if isinstance(value, Mapping):
        return {name: _plain(item) for name, item in value.items()}
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value
