"""Admission: the per-request questions for the shared store, asked in one round trip.

A model call needs three answers from the state every worker and node shares: is the token
revoked, is this envelope new (replay), and does the caller still have rate budget. Each backend
answers all three in one transaction (SQLite) or one script (Redis), in that order: a revoked
token counts nothing and claims nothing, and a request over its limit does not claim its
envelope, so a sealed request refused with 429 can be sent again once the window has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from limits import RateLimitItem, parse_many


@dataclass(frozen=True, slots=True)
class Counter:
    """One fixed-window rate counter: at most `limit` hits per `window` seconds under `key`."""

    key: str
    window: int
    limit: int
    text: str  # the limit as configured, for the 429 detail ("3 per 1 hour")


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """What to check for one request: revocation keys, an optional claim, rate counters."""

    revocation_keys: Sequence[str]
    claim_key: str | None = None
    claim_ttl: int = 0
    counters: Sequence[Counter] = ()


@dataclass(frozen=True, slots=True)
class Admission:
    """The store's answer. `spent` is the first counter over its limit, `retry_after` its
    whole seconds left; `replayed` is only ever True when the claim was asked for and lost."""

    revoked: bool = False
    spent: Counter | None = None
    retry_after: int = 0
    replayed: bool = False


ADMITTED = Admission()


@dataclass(frozen=True)
class RateLimit:
    """A rate-limit setting in the `limits` notation ("100/second;5000/hour"), parsed once."""

    scope: str
    items: tuple[RateLimitItem, ...]

    @classmethod
    def parse(cls, scope: str, text: str) -> RateLimit:
        """ValueError for text `limits` cannot read; "" (or blanks) means no limit."""
        text = text.strip()
        items = {str(item): item for item in parse_many(text)} if text else {}
        return cls(scope, tuple(items.values()))  # a limit written twice counts once

    def counters(self, identity: str) -> tuple[Counter, ...]:
        """The counters one hit by `identity` (a subject, an address) increments."""
        return tuple(Counter(key=item.key_for(self.scope, identity), window=item.get_expiry(),
                             limit=item.amount, text=str(item)) for item in self.items)


def spent_counter(counters: Sequence[Counter], counts: Sequence[int]) -> int | None:
    """Index of the first counter whose count went over its limit, or None."""
    for index, (counter, count) in enumerate(zip(counters, counts, strict=True)):
        if count > counter.limit:
            return index
    return None
