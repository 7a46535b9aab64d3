"""Verified token claims, remembered per worker so a token's signature is checked once.

Keyed by the SHA-256 of the token (the cache never holds a usable token), each entry dropped at
the token's expiry (plus the leeway its verifier allowed), or when its signing key's rotation
window ends, whichever comes first. Only successful verifications are
stored, so forged tokens cannot fill it. Revocation is NOT cached: callers check it on every
request, so a revoked token is refused on its very next request.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any

DEFAULT_ENTRIES = 4096


class VerifiedTokenCache:
    """A bounded map from token digest to (claims, valid until); plain dict ops, thread-safe
    under the GIL. When full, expired entries go first, then the oldest half."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES,
                 clock: Callable[[], float] = time.time) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[bytes, tuple[Mapping[str, Any], float]] = {}

    @staticmethod
    def digest(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, digest: bytes) -> Mapping[str, Any] | None:
        """The claims verified earlier, or None when unknown or past their time."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        claims, until = entry
        if self._clock() >= until:
            self._entries.pop(digest, None)
            return None
        return claims

    def put(self, digest: bytes, claims: Mapping[str, Any], until: float) -> None:
        if len(self._entries) >= self._max_entries:
            self._make_room()
        self._entries[digest] = (claims, until)

    def __len__(self) -> int:
        return len(self._entries)

    def _make_room(self) -> None:
        now = self._clock()
        entries = list(self._entries.items())
        for digest, (_, until) in entries:
            if now >= until:
                self._entries.pop(digest, None)
        if len(self._entries) >= self._max_entries:
            for digest, _ in entries[: len(entries) // 2]:
                self._entries.pop(digest, None)
