"""A `limits` storage over the gateway's SharedStore, so rate limits are shared like revocations.

The fixed-window strategy needs one atomic "count a hit in a window opened by the first hit"
operation, which SharedStore already provides for login failures (`record_failure`): one upsert
in the SQLite file every worker on the machine opens, or one Lua call in the Redis every node
uses. Reusing it keeps one implementation of each backend, with the store's timeouts, fork
safety and expired-row cleanup. Only the fixed-window strategy is supported.

`limits` finds storages by URI scheme: defining this class registers the scheme ``torchgate``,
and the store object itself is passed as the ``store`` option, e.g.
``storage_from_string("torchgate://", store=store)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from limits.storage import Storage

from errors import StoreUnavailable
from security.store import SharedStore

SCHEME = "torchgate"


class SharedStoreStorage(Storage):
    """Fixed-window counters in a SharedStore; backend failures raise StoreUnavailable."""

    STORAGE_SCHEME: ClassVar[list[str]] = [SCHEME]  # read once, by limits' registry

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, *,
                 store: SharedStore, clock: Callable[[], float] = time.time,
                 **options: float | str | bool) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.store = store
        self._clock = clock

    @property
    def base_exceptions(self) -> type[Exception]:
        return StoreUnavailable

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Count `amount` hits in key's window (opened by the first hit, `expiry` seconds long)."""
        if amount < 1:
            return self.get(key)
        for _ in range(amount - 1):  # flask-limiter's cost is 1 unless a limit says otherwise
            self.store.record_failure(key, expiry)
        return self.store.record_failure(key, expiry)

    def get(self, key: str) -> int:
        """Hits counted in key's current window (0 when none is open)."""
        return self.store.failure_state(key)[0]

    def get_expiry(self, key: str) -> float:
        """When key's window ends (now when none is open), to the next whole second."""
        return self._clock() + self.store.failure_state(key)[1]

    def check(self) -> bool:
        """Whether the backend answers; flask-limiter asks this to leave its fallback."""
        try:
            self.store.ping()
        except StoreUnavailable:
            return False
        return True

    def reset(self) -> int | None:
        """Clearing every limit at once is not offered: a SharedStore cannot list its keys."""
        raise NotImplementedError("SharedStoreStorage cannot reset all limits")

    def clear(self, key: str) -> None:
        """Forget key's window."""
        self.store.clear_failures(key)
