"""The step log of a training run (RUN/metrics.jsonl and `TrainState.history`), read by one set of rules.

The log holds two kinds of record, interleaved by step:
- training records, every `train.log_every` steps: the mean losses since the last one and `images_per_s`;
- monitor records, every `train.monitor_every` steps: `monitor/kid`, `monitor/coverage`, ...

Every reader goes through `training_records`, `monitor_records` or `median_images_per_s`, so that none
assumes a record holds a key that only the other kind has (the demo once crashed on a monitor record).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vaemsgan.utils.io import step_records

MONITOR_PREFIX = "monitor/"


@dataclass(frozen=True)
class TrainingRecord:
    """Mean training values over the steps since the previous training record."""

    step: int
    images_per_s: float
    values: dict[str, float] = field(default_factory=dict)  # d_loss, g_loss, ada_p, ...


@dataclass(frozen=True)
class MonitorRecord:
    """One check of the training monitor; `values` without the 'monitor/' prefix."""

    step: int
    values: dict[str, float] = field(default_factory=dict)  # kid, coverage, diversity, ...


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def record_kind(rec: Mapping[str, Any]) -> str | None:
    """'training', 'monitor', or None for a record of neither kind (a half line, a foreign object)."""
    if not isinstance(rec, Mapping) or not isinstance(rec.get("step"), int) or isinstance(rec["step"], bool):
        return None
    if _number(rec.get("images_per_s")):
        return "training"
    if any(isinstance(k, str) and k.startswith(MONITOR_PREFIX) for k in rec):
        return "monitor"
    return None


def _records(source: str | os.PathLike | Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    if isinstance(source, (str, os.PathLike)):
        return [rec for _, rec in step_records(source)]
    return source


def training_records(
    source: str | os.PathLike | Iterable[Mapping[str, Any]], up_to_step: int | None = None
) -> list[TrainingRecord]:
    """The training records of a log file or of `TrainState.history`, at steps <= `up_to_step`."""
    out = []
    for rec in _records(source):
        if record_kind(rec) != "training" or (up_to_step is not None and rec["step"] > up_to_step):
            continue
        values = {k: float(v) for k, v in rec.items() if k not in ("step", "images_per_s") and _number(v)}
        out.append(TrainingRecord(rec["step"], float(rec["images_per_s"]), values))
    return out


def monitor_records(
    source: str | os.PathLike | Iterable[Mapping[str, Any]], up_to_step: int | None = None
) -> list[MonitorRecord]:
    """The monitor checks of a log file or of `TrainState.history`, at steps <= `up_to_step`."""
    out = []
    for rec in _records(source):
        if record_kind(rec) != "monitor" or (up_to_step is not None and rec["step"] > up_to_step):
            continue
        values = {
            k[len(MONITOR_PREFIX) :]: float(v)
            for k, v in rec.items()
            if isinstance(k, str) and k.startswith(MONITOR_PREFIX) and _number(v)
        }
        out.append(MonitorRecord(rec["step"], values))
    return out


def median_images_per_s(
    source: str | os.PathLike | Iterable[Mapping[str, Any]], up_to_step: int | None = None
) -> float | None:
    """Median training images/s over the training records (None when there are none)."""
    rates = [r.images_per_s for r in training_records(source, up_to_step)]
    return statistics.median(rates) if rates else None
