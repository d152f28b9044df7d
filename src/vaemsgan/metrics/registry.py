"""Metric registry (after stylegan2-ada's): name -> callable(MetricInputs) -> {key: float}."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vaemsgan.errors import ConfigError
from vaemsgan.metrics.feature_metrics import Features, density_coverage, fid, kid, precision_recall
from vaemsgan.metrics.image_stats import STATISTICS, image_statistics


@dataclass
class MetricInputs:
    """Everything a metric may need; each metric checks that the fields it uses are set.

    real_feats / fake_feats: N x D features (torch or numpy). real_images / fake_images: N x C x H x W uint8.
    real_labels / fake_labels: optional integer class labels of the images (per-class image statistics).
    options: per-metric keyword overrides, e.g. {"kid": {"subsets": 10}, "pr": {"k": 5}}.
    """

    real_feats: Features | None = None
    fake_feats: Features | None = None
    real_images: torch.Tensor | None = None
    fake_images: torch.Tensor | None = None
    real_labels: torch.Tensor | np.ndarray | None = None
    fake_labels: torch.Tensor | np.ndarray | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def feats(self, metric: str) -> tuple[Features, Features]:
        if self.real_feats is None or self.fake_feats is None:
            raise ConfigError(f"metric {metric!r} needs real and generated features (real_feats, fake_feats)")
        return self.real_feats, self.fake_feats


MetricFn = Callable[[MetricInputs], dict[str, float]]
METRICS: dict[str, MetricFn] = {}


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator: add a metric under `name` (names are unique)."""

    def deco(fn: MetricFn) -> MetricFn:
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = fn
        return fn

    return deco


def _opts(inputs: MetricInputs, name: str) -> dict[str, Any]:
    return dict(inputs.options.get(name, {}))


@register_metric("fid")
def _fid(inputs: MetricInputs) -> dict[str, float]:
    real, fake = inputs.feats("fid")
    return {"fid": fid(real, fake)}


@register_metric("kid")
def _kid(inputs: MetricInputs) -> dict[str, float]:
    real, fake = inputs.feats("kid")
    mean, std = kid(real, fake, **_opts(inputs, "kid"))
    return {"kid_mean": mean, "kid_std": std}


@register_metric("pr")
def _pr(inputs: MetricInputs) -> dict[str, float]:
    real, fake = inputs.feats("pr")
    p, r = precision_recall(real, fake, **_opts(inputs, "pr"))
    return {"precision": p, "recall": r}


@register_metric("dc")
def _dc(inputs: MetricInputs) -> dict[str, float]:
    real, fake = inputs.feats("dc")
    d, c = density_coverage(real, fake, **_opts(inputs, "dc"))
    return {"density": d, "coverage": c}


def _stat_means(prefix: str, images: torch.Tensor, labels: Any, out: dict[str, float]) -> None:
    """Add `{prefix}_{stat}` means and, with labels, `{prefix}_{stat}/class_{c}` per-class means."""
    stats = image_statistics(images)
    for s in STATISTICS:
        out[f"{prefix}_{s}"] = float(stats[s].mean())
    if labels is not None:
        lab = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
        if lab.numel() != images.shape[0]:
            raise ConfigError(f"{lab.numel()} {prefix} labels for {images.shape[0]} {prefix} images")
        for c in torch.unique(lab).tolist():
            for s in STATISTICS:
                out[f"{prefix}_{s}/class_{c}"] = float(stats[s][lab == c].mean())


@register_metric("stats")
def _stats(inputs: MetricInputs) -> dict[str, float]:
    """Means of the per-image statistics for each image set given, and the gap % when both are."""
    if inputs.real_images is None and inputs.fake_images is None:
        raise ConfigError("metric 'stats' needs real_images and/or fake_images (uint8)")
    out: dict[str, float] = {}
    if inputs.real_images is not None:
        _stat_means("real", inputs.real_images, inputs.real_labels, out)
    if inputs.fake_images is not None:
        _stat_means("fake", inputs.fake_images, inputs.fake_labels, out)
    if inputs.real_images is not None and inputs.fake_images is not None:
        for s in STATISTICS:
            r, f = out[f"real_{s}"], out[f"fake_{s}"]
            out[f"gap_pct_{s}"] = (f - r) / r * 100.0 if r != 0 else float("nan")
    return out


def compute_metrics(names: Iterable[str], inputs: MetricInputs) -> dict[str, float]:
    """Run the named metrics and merge their results; unknown names fail before anything is computed."""
    names = list(names)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ConfigError(
            f"unknown metric(s) {', '.join(unknown)}; known metrics: {', '.join(sorted(METRICS))}"
        )
    result: dict[str, float] = {}
    for n in names:
        result.update(METRICS[n](inputs))
    return result
