"""HTTP with keep-alive and bounded retries of 429, 503 and connection failures (Retry-After).

Every attempt calls `prepare` again, so a sealed body is sealed afresh (new IV, new iat) each
time: the gateway refuses an envelope it has seen before, even one whose first answer was a 503.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import requests

from client.errors import TransportError, parse_retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; a wait past `max_delay` or `budget` is not made."""

    attempts: int = 4  # tries in all, the first included
    backoff: float = 0.5  # the first wait's ceiling in seconds, doubled on each retry
    max_delay: float = 10.0  # the longest single wait; a longer Retry-After ends the retries
    budget: float = 30.0  # seconds from the first try after which no retry starts
    statuses: frozenset[int] = frozenset({429, 503})

    def __post_init__(self) -> None:
        if self.attempts < 1 or min(self.backoff, self.max_delay, self.budget) < 0:
            raise ValueError("attempts must be >= 1 and the times >= 0")

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Full-jitter exponential backoff; with Retry-After, that wait plus a little jitter."""
        ceiling = min(self.max_delay, self.backoff * 2 ** retry)
        if retry_after is None:
            return rng.uniform(0, ceiling)
        return retry_after + rng.uniform(0, ceiling / 10)


@dataclass(frozen=True)
class Prepared:
    """One attempt's headers and body."""

    headers: Mapping[str, str] = field(default_factory=dict)
    data: bytes | None = None


class Transport:
    """A requests.Session bound to one gateway URL, with the retry policy applied to each call."""

    def __init__(self, base_url: str, *, timeout: float, retry: RetryPolicy,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("the gateway URL must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self.session = session or requests.Session()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not secrets)

    def send(self, method: str, path: str, prepare: Callable[[], Prepared], *,
             retry: bool = True) -> requests.Response:
        """The first answer that is not retryable, or the last one when the retries run out.

        retry=False sends once: for a request whose repetition means something else (a refresh
        token presented twice reads as theft and ends its whole token family).
        """
        started = time.monotonic()
        for attempt in range(self.retry.attempts if retry else 1):
            response, failure = self._attempt(method, path, prepare())
            if response is not None and response.status_code not in self.retry.statuses:
                return response
            retry_after = None if response is None else parse_retry_after(
                response.headers.get("Retry-After"))
            delay = self.retry.delay(attempt, retry_after, self._rng)
            if not self._may_wait(attempt, delay, started):
                break
            if response is not None:
                response.close()
            self._sleep(delay)
        if response is None:
            raise failure
        return response

    def close(self) -> None:
        self.session.close()

    def _attempt(self, method: str, path: str, prepared: Prepared
                 ) -> tuple[requests.Response | None, TransportError | None]:
        try:
            response = self.session.request(method, self.base_url + path, data=prepared.data,
                                            headers=dict(prepared.headers), timeout=self.timeout,
                                            allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as exc:
            return None, TransportError(f"{method} {path} failed: {type(exc).__name__}")
        except requests.RequestException as exc:
            raise TransportError(f"{method} {path} failed: {type(exc).__name__}") from exc
        return response, None

    def _may_wait(self, attempt: int, delay: float, started: float) -> bool:
        retry = self.retry
        return (attempt + 1 < retry.attempts and delay <= retry.max_delay
                and time.monotonic() - started + delay <= retry.budget)
