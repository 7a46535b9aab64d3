"""Microseconds per permission check (with and without role conditions) and per output policy.

Run from the repository root: `.venv/bin/python -m benchmarks.policy_cost [--repeat 7]`.
Each figure is the best of `repeat` timeit runs, divided by the calls in a run.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from types import MappingProxyType

import torch

from benchmarks.envelope_cost import best_micros
from models.output_policy import OutputPolicy
from security.conditions import parse_condition
from security.rbac import BUILTIN_ROLES, Grant, Policy

CALLER = MappingProxyType({"tenant": "acme", "clearance": ("internal", "public")})
MODEL = MappingProxyType({"owner": "acme", "data_class": "internal"})
OTHER = MappingProxyType({"owner": "globex", "data_class": "internal"})
SCORES = torch.randn(64, 10)  # a 64-row request to a 10-class model


def permission_checks() -> dict[str, Callable[[], object]]:
    plain = Policy(BUILTIN_ROLES)
    tenant = Policy({**BUILTIN_ROLES, "tenant_user": (Grant("predict:*", parse_condition(
        "caller.tenant == model.owner and model.data_class in caller.clearance")),)})
    return {
        "no conditions, granted": lambda: plain.allows(("analyst",), "predict:m", CALLER, MODEL),
        "no conditions, refused": lambda: plain.allows(("viewer",), "predict:m", CALLER, MODEL),
        "condition of 2 clauses, met": lambda: tenant.allows(("tenant_user",), "predict:m",
                                                             CALLER, MODEL),
        "condition of 2 clauses, not met": lambda: tenant.allows(("tenant_user",), "predict:m",
                                                                 CALLER, OTHER),
    }


def output_policies() -> dict[str, Callable[[], object]]:
    policies = {
        "full scores": OutputPolicy(),
        "top_k = 3": OutputPolicy(mode="top_k", top_k=3),
        "labels": OutputPolicy(mode="labels"),
        "decimals = 2": OutputPolicy(decimals=2),
        "noise = 0.01, decimals = 2": OutputPolicy(noise=0.01, decimals=2),
    }
    return {f"apply {name}": (lambda p=policy: p.apply({"y": SCORES}, "y"))
            for name, policy in policies.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| operation | µs per call |\n|---|---:|")
    for name, call in {**permission_checks(), **output_policies()}.items():
        print(f"| {name} | {best_micros(call, args.repeat):.2f} |")


if __name__ == "__main__":
    main()
