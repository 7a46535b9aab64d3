"""The extraction monitor on the model-call path, for /predict and /v2 alike.

A call's rows are observed after inference and before its reply is rendered and sealed
(ModelRunner.observe). A stream that gets flagged is reported once (metric, audit record and
log line: `on_flag`) and, with EXTRACTION_MONITOR=refuse, refused with 403 from that call on:
the flagging call's reply is withheld, and later calls stop at the permission step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from config import ConfigError, Settings
from errors import Forbidden
from models.runner import ModelRunner
from security.extraction import ExtractionMonitor, MonitorPolicy
from security.normality import MIN_SIZE

MODES = ("off", "log", "refuse")


@dataclass(frozen=True, slots=True)
class Flag:
    """A caller flagged on a model: what audit, log and metrics say (never its queries)."""

    subject: str
    model: str
    version: str
    request_id: str
    statistic: float
    queries: int
    refused: bool


@dataclass(frozen=True)
class ExtractionWatch:
    """The process's monitor, what a flag does, and whom to tell."""

    monitor: ExtractionMonitor
    refuse: bool
    on_flag: Callable[[Flag], None]

    def check(self, subject: str, model: str) -> None:
        """403 for a caller flagged on this model, when flags refuse."""
        if self.refuse and self.monitor.is_flagged(subject, model):
            raise _suspended(model)

    def watched(self, runner: ModelRunner, subject: str, request_id: str) -> ModelRunner:
        """`runner` with this call's observer: the same model, batcher and version."""
        def observe(batch: Mapping[str, torch.Tensor], outputs: Mapping[str, torch.Tensor]) -> None:
            rows, classes = query_features(runner, batch, outputs)
            verdict = self.monitor.observe(subject, runner.manifest.name, rows, classes)
            if verdict.raised:
                self.on_flag(Flag(subject, runner.manifest.name, runner.version, request_id,
                                  verdict.statistic or 0.0, verdict.queries, self.refuse))
            if verdict.flagged and self.refuse:
                raise _suspended(runner.manifest.name)
        return dataclasses.replace(runner, observe=observe)


def query_features(runner: ModelRunner, batch: Mapping[str, torch.Tensor],
                   outputs: Mapping[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's inputs, flattened and side by side, and its predicted class: the top score
    of the first output when it is rows x classes, else one class for every row."""
    tensors = [batch[spec.name] for spec in runner.manifest.inputs]
    count = tensors[0].shape[0]
    rows = np.concatenate([t.detach().reshape(count, -1).float().cpu().numpy()
                           for t in tensors], axis=1)
    scores = outputs[runner.manifest.outputs[0].name]
    if scores.dim() == 2 and scores.shape[1] > 1:
        return rows, scores.argmax(dim=1).cpu().numpy()
    return rows, np.zeros(count, dtype=np.int64)


def build_watch(settings: Settings, on_flag: Callable[[Flag], None]) -> ExtractionWatch | None:
    """The watch the EXTRACTION_* settings ask for, checked now so a typo stops start-up."""
    if settings.extraction_monitor not in MODES:
        raise ConfigError("EXTRACTION_MONITOR", f"must be one of {', '.join(MODES)}")
    policy = monitor_policy(settings)
    if settings.extraction_monitor == "off":
        return None
    return ExtractionWatch(ExtractionMonitor(policy), settings.extraction_monitor == "refuse",
                           on_flag)


def monitor_policy(settings: Settings) -> MonitorPolicy:
    try:
        threshold = float(settings.extraction_threshold)
    except ValueError:
        threshold = -1.0
    if not 0.0 < threshold < 1.0:
        raise ConfigError("EXTRACTION_THRESHOLD", "expected a number between 0 and 1, e.g. 0.90")
    if settings.extraction_min_queries < MIN_SIZE:
        raise ConfigError("EXTRACTION_MIN_QUERIES", f"must be at least {MIN_SIZE}")
    if settings.extraction_streams < 1:
        raise ConfigError("EXTRACTION_STREAMS", "must be at least 1")
    return MonitorPolicy(threshold=threshold, min_queries=settings.extraction_min_queries,
                         streams=settings.extraction_streams,
                         samples=max(MonitorPolicy.samples, settings.extraction_min_queries))


def _suspended(model: str) -> Forbidden:
    return Forbidden(f"Calls to model {model!r} by this caller are suspended: its queries look "
                     "like a model-extraction attempt.")
