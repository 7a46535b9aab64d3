"""Admission: the per-request questions for the shared store, asked in one round trip.

A model call needs four answers from the state every worker and node shares: is the token
revoked, does the caller still have rate budget, is this envelope new (replay), and is the
caller's query budget on this model (its quota) left. Each backend answers all four in one
statement (SQLite) or one script (Redis), in that order: a revoked token counts nothing and
claims nothing; a request over its rate limit does not claim its envelope and spends no quota;
a replayed envelope spends no quota; and a request over its quota claims nothing either, so a
sealed request refused with 429 can be sent again once the window has passed.
"""

from __future__ import annotations

import math
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
    quota: Sequence[Counter] = ()  # counted only when every other check admitted the call


@dataclass(frozen=True, slots=True)
class Usage:
    """One quota counter after this call: `used` of `counter.limit`, `reset` seconds left."""

    counter: Counter
    used: int
    reset: int

    @property
    def remaining(self) -> int:
        return max(0, self.counter.limit - self.used)


@dataclass(frozen=True, slots=True)
class Admission:
    """The store's answer. `spent` is the first counter over its limit (a quota counter when
    `quota_spent`), `retry_after` its whole seconds left; `replayed` is only ever True when the
    claim was asked for and lost; `usage` is each quota counter once it was counted."""

    revoked: bool = False
    spent: Counter | None = None
    retry_after: int = 0
    replayed: bool = False
    quota_spent: bool = False
    usage: tuple[Usage, ...] = ()


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


def quota_answer(quota: Sequence[Counter], windows: Sequence[tuple[int, float]]) -> Admission:
    """The answer once the quota counters were counted: (count, seconds left) for each."""
    usage = tuple(Usage(counter, count, max(1, math.ceil(left)))
                  for counter, (count, left) in zip(quota, windows, strict=True))
    spent = spent_counter(quota, [count for count, _ in windows])
    if spent is None:
        return Admission(usage=usage)
    return Admission(spent=quota[spent], retry_after=usage[spent].reset, quota_spent=True,
                     usage=usage)
