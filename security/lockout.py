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
    """Refuses the next attempt with 429 once either counter reaches the limit in its window."""

    store: SharedStore
    max_failures: int
    window: int

    def attempt(self, username: str, address: str,
                authenticate: Callable[[], T | None]) -> T | None:
        """Refuse a locked account or address, else authenticate and count the outcome."""
        self.check(username, address)
        principal = authenticate()
        if principal is None:
            self.failed(username, address)
        else:
            self.succeeded(username)
        return principal

    def check(self, username: str, address: str) -> None:
        """Raise RateLimited when the account or the address is locked, password right or not."""
        for key in self._keys(username, address):
            count, remaining = self.store.failure_state(key)
            if count >= self.max_failures:
                raise RateLimited(remaining or self.window,
                                  "Too many failed sign-ins; try again later.")

    def failed(self, username: str, address: str) -> None:
        """Count one failure on both counters, then slow the answer a little more each time."""
        counts = [self.store.record_failure(key, self.window)
                  for key in self._keys(username, address)]
        time.sleep(min(SLOWDOWN_CAP, SLOWDOWN_PER_FAILURE * max(counts)))

    def succeeded(self, username: str) -> None:
        self.store.clear_failures(f"login:user:{username}")

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return f"login:user:{username}", f"login:addr:{address}"
