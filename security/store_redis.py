"""Shared security state in Redis, shared by every worker of every node.

Each call is one round trip: a single command, a MULTI pipeline or a small Lua script, so claims
and counters are atomic on the server. Short socket timeouts and one quick retry keep a sick
Redis from stalling workers; any Redis error becomes StoreUnavailable (fail closed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from errors import StoreUnavailable
from security.admission import Admission, AdmissionRequest, quota_answer, spent_counter

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "torchgate"
HEALTH_CHECK_INTERVAL = 30

# A revocation is only ever extended (a key without expiry is left alone): a late, shorter revoke
# of the same family must not make it valid again early.
REVOKE_LUA = """
local ms = tonumber(ARGV[1]) * 1000
local left = redis.call('PTTL', KEYS[1])
if left ~= -1 and left < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) end
"""
# The window opens with the first failure; later failures do not move its end.
RECORD_FAILURE_LUA = """
local count = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
# security.admission in one script. KEYS: revocation keys, rate counter keys, quota counter keys,
# then the claim key (if any). ARGV: #revocation keys, #rate counters, #quota counters, the
# claim's seconds (0: no claim), then each counter's window and limit (rate, then quota).
# Returns {revoked, claimed (-1: not asked), count1, pttl1, ...}: the quota's pairs only when the
# call got that far (not over its rate limit, not a replay); a spent quota gives the claim back.
ADMIT_LUA = """
local nrev, nrate, nquota = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local claim_ttl, claim = tonumber(ARGV[4]), KEYS[#KEYS]
for i = 1, nrev do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {1, -1} end
end
local result = {0, -1}
local function count(first, last)
  local spent = false
  for j = first, last do
    local key, window = KEYS[nrev + j], tonumber(ARGV[3 + 2 * j])
    local n = redis.call('INCR', key)
    local left = redis.call('PTTL', key)
    if left < 0 then redis.call('EXPIRE', key, window); left = window * 1000 end
    if n > tonumber(ARGV[4 + 2 * j]) then spent = true end
    result[#result + 1] = n
    result[#result + 1] = left
  end
  return spent
end
if count(1, nrate) then return result end
if claim_ttl > 0 then
  result[2] = redis.call('SET', claim, '1', 'NX', 'EX', claim_ttl) and 1 or 0
  if result[2] == 0 then return result end
end
if count(nrate + 1, nrate + nquota) and claim_ttl > 0 then redis.call('DEL', claim) end
return result
"""
# An anchor only ever moves forward: a late publish of an older head leaves the newer one.
PUT_ANCHOR_LUA = """
local kept = redis.call('HGET', KEYS[1], ARGV[1])
if kept and cjson.decode(kept).seq >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
RELEASE_FAILURE_LUA = """
if (tonumber(redis.call('GET', KEYS[1]) or '0')) > 0 then redis.call('DECR', KEYS[1]) end
"""


class RedisStore:
    """SharedStore on Redis; keys live under "<namespace>:mark:" and "<namespace>:fail:"."""

    def __init__(self, url: str, namespace: str = DEFAULT_NAMESPACE, timeout: float = 0.5) -> None:
        self.url = url
        self.namespace = namespace
        self._timeout = timeout
        # Options in the URL's query string (e.g. ?socket_timeout=1) override these defaults.
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout,
            health_check_interval=HEALTH_CHECK_INTERVAL, retry=Retry(NoBackoff(), 1))
        self._revoke = self._client.register_script(REVOKE_LUA)
        self._record_failure = self._client.register_script(RECORD_FAILURE_LUA)
        self._release_failure = self._client.register_script(RELEASE_FAILURE_LUA)
        self._admit = self._client.register_script(ADMIT_LUA)
        self._put_anchor = self._client.register_script(PUT_ANCHOR_LUA)

    def __reduce__(self) -> tuple:
        """Pickle as configuration, so a store can be handed to another process."""
        return (type(self), (self.url, self.namespace, self._timeout))

    def revoke(self, key: str, ttl: int) -> None:
        """Mark key revoked for at least ttl seconds."""
        with _unavailable_on_error():
            self._revoke(keys=[self._mark(key)], args=[_seconds(ttl)])

    def any_revoked(self, keys: Sequence[str]) -> bool:
        """Whether any of keys is revoked: one EXISTS over all of them."""
        if isinstance(keys, str):
            raise TypeError("any_revoked takes a sequence of keys, not one string")
        if not keys:
            return False
        with _unavailable_on_error():
            return self._client.exists(*(self._mark(key) for key in keys)) > 0

    def claim_once(self, key: str, ttl: int) -> bool:
        """SET NX: True for the first claim within ttl seconds, False on a replay."""
        with _unavailable_on_error():
            return bool(self._client.set(self._mark(key), 1, nx=True, ex=_seconds(ttl)))

    def admit(self, request: AdmissionRequest) -> Admission:
        """Revocation, rate counters, replay claim and quota in one Lua call (ADMIT_LUA)."""
        rate, quota = request.counters, request.quota
        claim = request.claim_key is not None
        keys = [*(self._mark(k) for k in request.revocation_keys),
                *(self._fail(c.key) for c in (*rate, *quota)),
                *([self._mark(request.claim_key)] if claim else [])]
        args = [len(request.revocation_keys), len(rate), len(quota),
                _seconds(request.claim_ttl) if claim else 0]
        for counter in (*rate, *quota):
            args += [_seconds(counter.window), counter.limit]
        with _unavailable_on_error():
            revoked, claimed, *windows = self._admit(keys=keys, args=args)
        if revoked:
            return Admission(revoked=True)
        spent = spent_counter(rate, windows[0:2 * len(rate):2])
        if spent is not None:
            return Admission(spent=rate[spent],
                             retry_after=max(1, math.ceil(windows[2 * spent + 1] / 1000)))
        if claimed == 0:
            return Admission(replayed=True)
        counted = windows[2 * len(rate):]
        return quota_answer(quota, [(int(n), ms / 1000) for n, ms in zip(
            counted[0::2], counted[1::2], strict=True)])

    def record_failure(self, key: str, window: int) -> int:
        """Count one failure in the fixed window opened by the first; return the count."""
        with _unavailable_on_error():
            return int(self._record_failure(keys=[self._fail(key)], args=[_seconds(window)]))

    def failure_state(self, key: str) -> tuple[int, int]:
        """(count, whole seconds left in the window), or (0, 0) when no window is open."""
        with _unavailable_on_error():
            pipe = self._client.pipeline(transaction=True)
            count, left_ms = pipe.get(self._fail(key)).pttl(self._fail(key)).execute()
        if count is None:
            return 0, 0
        return int(count), max(0, math.ceil(left_ms / 1000))

    def release_failure(self, key: str) -> None:
        """Give back one count, never below zero (DECR keeps the key's expiry)."""
        with _unavailable_on_error():
            self._release_failure(keys=[self._fail(key)])

    def clear_failures(self, key: str) -> None:
        """Forget key's failures."""
        with _unavailable_on_error():
            self._client.delete(self._fail(key))

    def put_anchor(self, chain_id: str, seq: int, anchor: str) -> None:
        """Keep anchor as chain_id's, unless one of a later seq is kept already."""
        with _unavailable_on_error():
            self._put_anchor(keys=[f"{self.namespace}:anchors"], args=[chain_id, seq, anchor])

    def anchors(self) -> list[str]:
        """Every chain's newest anchor (one hash, no expiry)."""
        with _unavailable_on_error():
            kept = self._client.hgetall(f"{self.namespace}:anchors")
        return [kept[chain].decode() for chain in sorted(kept)]

    def ping(self) -> None:
        """Check that Redis answers."""
        with _unavailable_on_error():
            self._client.ping()

    def close(self) -> None:
        """Close the pool's connections; the next call reconnects."""
        self._client.close()

    def _mark(self, key: str) -> str:
        """Redis key of a revocation or claim (they share one keyspace, as in SQLite)."""
        return f"{self.namespace}:mark:{key}"

    def _fail(self, key: str) -> str:
        """Redis key of a failure counter."""
        return f"{self.namespace}:fail:{key}"


def _seconds(ttl: float) -> int:
    """Whole seconds for EX/EXPIRE: rounded up, at least one."""
    return max(1, math.ceil(ttl))


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
    """Turn any Redis failure into StoreUnavailable, so the request is refused, never let in."""
    try:
        yield
    except redis.RedisError as exc:
        log.warning("redis store failed: %s: %s", type(exc).__name__, exc)
        raise StoreUnavailable() from exc
