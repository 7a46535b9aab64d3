"""Output policies: how much of a model's scores a caller's reply may carry (model.toml [output]).

A model served behind an API can be copied through its answers (Tramèr et al. 2016; PRADA,
Juuti et al. 2019). A policy cuts what each answer reveals: full scores, the top k scores with
their class indices, or the top class only; scores may be rounded and take random noise. The
noise is a deterrent that blurs what repeated queries learn, not a differential-privacy bound.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import reduce
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

MODES = ("labels", "top_k", "scores")  # from least to most revealing
SCORE_DTYPES = frozenset({"float32", "float64", "float16", "bfloat16"})
INDICES_SUFFIX = ".indices"  # the /v2 tensor of a top-k output's class indices


@dataclass(frozen=True)
class ShapedOutputs:
    """A reply's outputs once the policy cut them: nothing else may be rendered."""

    tensors: Mapping[str, torch.Tensor]
    indices: Mapping[str, torch.Tensor]  # top_k: the class index of every score in `tensors`
    top_class: torch.Tensor | None  # of the first output, from its exact scores (labels)


@dataclass(frozen=True)
class OutputPolicy:
    """What one reply may carry of every floating-point (score) output."""

    mode: str = "scores"
    top_k: int | None = None  # mode "top_k" only
    decimals: int | None = None  # scores rounded to this many decimals
    noise: float | None = None  # scale b of the Laplace noise added to every score

    def join(self, other: OutputPolicy) -> OutputPolicy:
        """The most revealing of each part of two policies: roles add up, as permissions do."""
        scored = [p for p in (self, other) if p.mode != "labels"]  # labels shows no score
        if len(scored) < 2:
            return scored[0] if scored else self
        mode = max(self.mode, other.mode, key=MODES.index)
        ks = [p.top_k for p in scored if p.mode == "top_k" and p.top_k is not None]
        return OutputPolicy(mode=mode, top_k=max(ks) if mode == "top_k" else None,
                            decimals=_most(self.decimals, other.decimals, max),
                            noise=_most(self.noise, other.noise, min))

    def describe(self) -> dict[str, Any]:
        """The `output_policy` member of /models."""
        return {"mode": self.mode, "top_k": self.top_k, "decimals": self.decimals,
                "noise": self.noise}

    def reply_outputs(self, declared: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The outputs a reply under this policy carries, {"name", "shape", "dtype"} each, from
        the declared ones (the /v2 metadata: it must describe what inference returns)."""
        carried: list[dict[str, Any]] = []
        for spec in declared:
            *rows, classes = spec["shape"]
            if spec["dtype"] not in SCORE_DTYPES or self.mode == "scores":
                carried.append(dict(spec))
            elif self.mode == "labels":
                carried.append({**spec, "shape": rows, "dtype": "int64"})
            else:
                top = [*rows, classes if classes == -1 else min(self.top_k or 1, classes)]
                carried += [{**spec, "shape": top},
                            {"name": spec["name"] + INDICES_SUFFIX, "shape": top, "dtype": "int64"}]
        return carried

    def apply(self, outputs: Mapping[str, torch.Tensor], labelled: str | None) -> ShapedOutputs:
        """`outputs` cut to this policy; `labelled` names the output whose top class the reply
        labels. Integer and boolean outputs are not scores and pass unchanged."""
        tensors: dict[str, torch.Tensor] = {}
        indices: dict[str, torch.Tensor] = {}
        rng = np.random.default_rng(secrets.randbits(128)) if self.noise else None
        for name, tensor in outputs.items():
            if not tensor.is_floating_point():
                tensors[name] = tensor
            elif self.mode == "labels":
                tensors[name] = tensor.argmax(dim=-1)
            elif self.mode == "top_k":
                k = min(self.top_k or 1, tensor.shape[-1])
                values, indices[name] = tensor.topk(k, dim=-1)
                tensors[name] = self._blur(values, rng)
            else:
                tensors[name] = self._blur(tensor, rng)
        top = outputs[labelled].argmax(dim=-1) if labelled is not None else None
        return ShapedOutputs(MappingProxyType(tensors), MappingProxyType(indices), top)

    def _blur(self, scores: torch.Tensor, rng: np.random.Generator | None) -> torch.Tensor:
        """Noise, then rounding, in float64 so that a rounded score prints as few digits."""
        if rng is None and self.decimals is None:
            return scores
        values = scores.detach().cpu().to(torch.float64)
        if rng is not None:
            values = values + torch.from_numpy(rng.laplace(0.0, self.noise, tuple(values.shape)))
        return values if self.decimals is None else values.round(decimals=self.decimals)


FULL_SCORES = OutputPolicy()


@dataclass(frozen=True)
class OutputPolicies:
    """A model's policy and its per-role overrides, as model.toml declares them."""

    default: OutputPolicy = FULL_SCORES
    roles: Mapping[str, OutputPolicy] = field(default_factory=lambda: MappingProxyType({}))

    def for_roles(self, roles: Iterable[str]) -> OutputPolicy:
        """The policy of a caller: each role's override (or the model's policy), joined."""
        if not self.roles:
            return self.default
        return reduce(OutputPolicy.join, [self.roles.get(r, self.default) for r in roles]
                      or [self.default])

    def modes(self) -> set[str]:
        return {self.default.mode, *(policy.mode for policy in self.roles.values())}


def _most(a: Any, b: Any, pick: Any) -> Any:
    """None (unlimited) wins; else `pick` of the two."""
    return None if a is None or b is None else pick(a, b)
