"""ModelCall: one model call from verified token to sealed reply, in the contract's order.

    1. authenticate   done by the caller: the token's signature and claims (cached per worker)
    2. authorize      permission "predict:<model>" from the caller's roles        403
                      (a conditional grant: the caller's and model's attributes; and not
                      flagged by the extraction monitor when it refuses)
       resolve        the model and version: known 404, loaded 503
    3. open envelope  media type 415, size 413, JWE with a payload key of the caller or to the
                      gateway's HPKE key, bound to the bearer token                 400/403
       admission      one store round trip: token revoked 401, rate limit 429, replay 400,
                      the model's quota 429 (dataplane.quota)
    4. validate       inputs against the model's declared inputs                   422
    5. infer          torch, inference_mode, on the model's device (batched when declared);
                      the extraction monitor observes the rows (dataplane.watch)         403
       cut outputs    to the caller's output policy (model.toml [output]), before rendering
    6. seal reply     a signed receipt appended (dataplane.receipt); same key (HPKE: exported
                      from the request's context), fresh IV
    7. audit          by the finishing hook, from the RequestFacts this call filled in

A request refused before its admission still asks the store whether the token is revoked (and
counts against the rate limit once the permission passed), so a revoked token always answers
401 and a spent budget 429, whichever later check would also have failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dataplane.payload import (
    Body,
    Caller,
    EnvelopeKeys,
    Opened,
    PayloadPolicy,
    open_body,
    parse_object,
    read_body,
    seal_reply,
)
from dataplane.quota import quota_counters, quota_refusal, usage_headers
from dataplane.receipt import ReceiptSigner
from dataplane.record import RequestFacts
from dataplane.watch import ExtractionWatch
from errors import (
    Forbidden,
    GatewayError,
    RateLimited,
    ReplayedEnvelope,
    TokenRevoked,
    UnsupportedMediaType,
)
from models.output_policy import OutputPolicy
from models.registry import ModelRegistry
from models.runner import ModelRunner
from security.admission import Admission, AdmissionRequest, Counter, RateLimit
from security.rbac import Policy
from security.receipts import RECEIPT_AT
from security.store import SharedStore
from security.tokens import INVALID_TOKEN_CHALLENGE, Identity, revocation_keys

# A protocol's answer for one opened request: (runner, request JSON, request id, the caller's
# output policy, which it applies between inference and rendering) -> reply JSON.
Respond = Callable[[ModelRunner, dict[str, Any], str, OutputPolicy], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class CallRequest:
    """A model call as the HTTP layer decoded it."""

    identity: Identity
    claims: Mapping[str, Any]  # the verified token's claims: revocation keys come from them
    model: str
    version: str | None
    body: Body
    respond: Respond
    token_binding: str  # `ath`: base64url SHA-256 of the bearer token (HPKE envelopes carry it)
    unsupported: str | None = None  # a protocol-level reason to answer 415 at the media step
    receipt_at: tuple[str, ...] = RECEIPT_AT  # the reply member path that carries the receipt


@dataclass(frozen=True, slots=True)
class Reply:
    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelCall:
    """The dataplane service: every dependency it needs, built once per app."""

    registry: ModelRegistry
    policy: Policy
    keys: EnvelopeKeys
    store: SharedStore
    payload: PayloadPolicy
    rate_limit: RateLimit
    receipts: ReceiptSigner
    watch: ExtractionWatch | None = None  # the extraction monitor, when EXTRACTION_MONITOR is on

    def run(self, call: CallRequest, facts: RequestFacts) -> Reply:
        """The reply to `call`, or the GatewayError of the first check that failed."""
        permitted = False
        try:
            self._authorize(call)
            permitted = True
            runner = self.registry.get(call.model, call.version)
            facts.model, facts.version = call.model, runner.version
            opened = self._open(call, facts)
        except GatewayError:  # revocation and the rate limit answer before a later refusal
            self._admit(call, None, counted=permitted)
            facts.subject = call.identity.subject  # the token holds: the caller is recorded
            raise
        admitted = self._admit(call, opened.claim_key, counted=True,
                               quota=quota_counters(runner, call.identity.subject))
        facts.subject = call.identity.subject
        if self.watch is not None:
            runner = self.watch.watched(runner, call.identity.subject, facts.request_id)
        policy = runner.manifest.output.for_roles(call.identity.roles)
        body = call.respond(runner, parse_object(opened.plaintext), facts.request_id, policy)
        text = self.receipts.reply(body, call.receipt_at, facts=facts, runner=runner,
                                   opened=opened)
        return Reply(*seal_reply(text, opened), headers=usage_headers(admitted.usage))

    def _authorize(self, call: CallRequest) -> None:
        permission = f"predict:{call.model}"  # and role conditions on both sides' attributes
        if not self.policy.allows(call.identity.roles, permission, call.identity.attributes,
                                  self.registry.attributes(call.model)):
            raise Forbidden(f"Permission {permission!r} is required.")
        if self.watch is not None:
            self.watch.check(call.identity.subject, call.model)

    def _open(self, call: CallRequest, facts: RequestFacts) -> Opened:
        if call.unsupported is not None:
            raise UnsupportedMediaType(call.unsupported)
        data = read_body(call.body, self.payload)
        opened = open_body(data, call.body.media_type,
                           Caller(call.identity.subject, call.token_binding), self.keys,
                           self.payload)
        facts.body_sha256 = opened.sha256
        return opened

    def _admit(self, call: CallRequest, claim_key: str | None, *, counted: bool,
               quota: tuple[Counter, ...] = ()) -> Admission:
        """One store round trip; raises the refusal it found (401, 429, 400 replayed)."""
        counters = self.rate_limit.counters(call.identity.subject) if counted else ()
        answer = self.store.admit(AdmissionRequest(
            revocation_keys=revocation_keys(call.claims), claim_key=claim_key,
            claim_ttl=self.payload.claim_ttl, counters=counters, quota=quota))
        raise_refusal(answer)
        return answer


def raise_refusal(answer: Admission) -> None:
    """The error an admission answer stands for, if any."""
    if answer.revoked:
        raise TokenRevoked("The token has been revoked.",
                           headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE})
    if answer.quota_spent:
        raise quota_refusal(answer)
    if answer.spent is not None:
        raise RateLimited(answer.retry_after, f"Rate limit of {answer.spent.text} exceeded; "
                                              f"retry after {answer.retry_after} seconds.")
    if answer.replayed:
        raise ReplayedEnvelope("This envelope was already received.")
