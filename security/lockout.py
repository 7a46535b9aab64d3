"""Login throttling: failures counted per username and per address in the shared store."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from errors import RateLimited
from security.store import SharedStore

T = TypeVar("T")
SLOWDOWN_PER_FAILURE = 0.05
SLOWDOWN_CAP = 0.5


@dataclass(frozen=True)
class LoginThrottle:
    """Refuses sign-ins with 429 once the account or the address has too many failures."""

    store: SharedStore
    max_failures: int
    window: int

    def attempt(self, account: str, address: str,
                authenticate: Callable[[], T | None]) -> T | None:
        """Count the attempt, refuse it past the limit, then authenticate; success gives it back.

        Counting before the password hash runs is what makes the limit hold for a burst of
        concurrent guesses: each increment is atomic, so only the first `max_failures` get
        through to the check, whatever the timing. `account` names its kind ("user:alice",
        "client:batch-job") so users and clients never share a counter.
        """
        keys = (f"login:{account}", f"login:addr:{address}")
        counts = [self.store.record_failure(key, self.window) for key in keys]
        if max(counts) > self.max_failures:
            raise self._refusal(keys)
        principal = authenticate()
        if principal is None:
            time.sleep(min(SLOWDOWN_CAP, SLOWDOWN_PER_FAILURE * max(counts)))
            return None
        self.store.clear_failures(keys[0])
        self.store.release_failure(keys[1])
        return principal

    def refuse_if_locked(self, account: str) -> None:
        """429 while `account` is locked out: the next sign-in would be refused, and so is a
        refresh, which must not outlive a lockout (a stolen refresh token keeps no access)."""
        key = f"login:{account}"
        count, _ = self.store.failure_state(key)
        if count >= self.max_failures:
            raise self._refusal((key,))

    def _refusal(self, keys: tuple[str, ...]) -> RateLimited:
        return RateLimited(self._retry_after(keys), "Too many failed sign-ins; try again later.")

    def _retry_after(self, keys: tuple[str, ...]) -> int:
        """Seconds until every counter that is over the limit has its window closed."""
        states = [self.store.failure_state(key) for key in keys]
        return max((left for count, left in states if count > self.max_failures),
                   default=0) or self.window
