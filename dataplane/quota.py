"""A model's per-subject query budget (model.toml `[quota]`): its counters and what the caller
is told about them.

The caller sees its use in the IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers):
`RateLimit-Policy: "quota-86400";q=10000;w=86400` names each window of the model's quota, and
`RateLimit: "quota-86400";r=9958;t=5400` says what is left of it and in how many seconds the
window ends. Both ride on every admitted model call and on its 429 `quota-exceeded`.
"""

from __future__ import annotations

from collections.abc import Sequence

from errors import QuotaExceeded
from models.runner import ModelRunner
from security.admission import Admission, Counter, Usage


def quota_counters(runner: ModelRunner, subject: str) -> tuple[Counter, ...]:
    """The quota counters one call by `subject` increments (none without `[quota]`)."""
    quota = runner.manifest.quota
    return () if quota is None else quota.counters(subject)


def usage_headers(usage: Sequence[Usage]) -> dict[str, str]:
    """RateLimit-Policy and RateLimit for the quota's windows; nothing without a quota."""
    if not usage:
        return {}
    policy = ", ".join(f'"{_name(u)}";q={u.counter.limit};w={u.counter.window}' for u in usage)
    state = ", ".join(f'"{_name(u)}";r={u.remaining};t={u.reset}' for u in usage)
    return {"RateLimit-Policy": policy, "RateLimit": state}


def quota_refusal(answer: Admission) -> QuotaExceeded:
    """The 429 of a spent quota, with Retry-After and the RateLimit fields."""
    spent = answer.spent.text if answer.spent is not None else "this model"
    error = QuotaExceeded(answer.retry_after, f"Query quota of {spent} on this model "
                          f"exceeded; retry after {answer.retry_after} seconds.")
    error.headers.update(usage_headers(answer.usage))
    return error


def _name(usage: Usage) -> str:
    return f"quota-{usage.counter.window}"
