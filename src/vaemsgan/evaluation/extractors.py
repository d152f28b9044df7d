"""Feature extractors for FID/KID/precision-recall/density-coverage: a registry of `name -> builder`.

`domain` (default): the penultimate layer of a SmallVGG classifier trained on the real training images,
cached on disk under a hash of the data and the classifier settings. `inception`: the standard FID
Inception-v3 from a local weights file. An extractor maps uint8 N x C x H x W images to N x D features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaemsgan.errors import ConfigError
from vaemsgan.evaluation.cache import data_hash, default_cache_dir, file_digest
from vaemsgan.evaluation.classifier import ClassifierConfig, cached_classifier, features
from vaemsgan.evaluation.inception import load_fid_inception

__all__ = ["EXTRACTORS", "Extractor", "build_extractor", "data_hash", "default_cache_dir", "domain_extractor"]


@dataclass
class Extractor:
    """A named feature map; `info` says how it was obtained (for the report). `info["key"]` identifies
    the map (the same key: the same features), so real-data features can be cached under it."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    dim: int
    info: dict[str, Any] = field(default_factory=dict)
    model: torch.nn.Module | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.fn(images)


def domain_extractor(
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    cfg: ClassifierConfig | None = None,
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Extractor:
    """The `domain` extractor: train (or load from the cache) a classifier on the real training images."""
    cfg = (cfg or ClassifierConfig()).validate()
    model, info = cached_classifier(
        images, labels, class_names, cfg, seed=seed, cache_dir=cache_dir, progress=progress
    )
    return Extractor("domain", lambda x: features(model, x), cfg.feature_dim, info, model)


def inception_extractor(weights: str | Path | None, batch_size: int = 50) -> Extractor:
    """The `inception` extractor (2048-d pool features of the FID Inception-v3)."""
    net = load_fid_inception(weights)

    @torch.inference_mode()
    def fn(x: torch.Tensor) -> torch.Tensor:
        outs = [net(x[s : s + batch_size]) for s in range(0, len(x), batch_size)]
        return torch.cat(outs) if outs else torch.zeros(0, 2048)

    info = {"weights": str(weights), "key": "inception-" + file_digest(weights)}  # type: ignore[arg-type]
    return Extractor("inception", fn, 2048, info, net)


EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "domain": domain_extractor,
    "inception": inception_extractor,
}


def build_extractor(name: str, **kwargs: Any) -> Extractor:
    """`domain` takes (images, labels, class_names, cfg, seed, cache_dir, progress); `inception` (weights)."""
    if name not in EXTRACTORS:
        raise ConfigError(f"unknown extractor {name!r} (known: {', '.join(EXTRACTORS)})")
    return EXTRACTORS[name](**kwargs)
