"""Feature extractors for FID/KID/precision-recall/density-coverage: a registry of `name -> builder`.

`domain` (default): the penultimate layer of a SmallVGG classifier trained on the real training images,
cached on disk under a hash of the data and the classifier settings. `inception`: the standard FID
Inception-v3 from a local weights file. An extractor maps uint8 N x C x H x W images to N x D features.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaemsgan.errors import ConfigError
from vaemsgan.evaluation.classifier import ClassifierConfig, SmallVGG, features, train_classifier
from vaemsgan.evaluation.inception import load_fid_inception
from vaemsgan.utils.io import atomic_torch_save

CACHE_VERSION = 1  # bump when the classifier code changes what a cached file means


@dataclass
class Extractor:
    """A named feature map; `info` says how it was obtained (for the report)."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    dim: int
    info: dict[str, Any] = field(default_factory=dict)
    model: torch.nn.Module | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.fn(images)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vaemsgan" / "domain"


def data_hash(
    images: torch.Tensor, labels: torch.Tensor, class_names: list[str], extra: dict[str, Any]
) -> str:
    """sha256 of the image bytes, labels, class names and the classifier settings (`extra`)."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"shape": list(images.shape), "classes": class_names, "v": CACHE_VERSION, **extra}
        ).encode()
    )
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


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
    key = data_hash(images, labels, class_names, {"classifier": cfg.to_dict(), "seed": seed})
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"{key}.pt"
    n_classes = len(class_names)
    model: SmallVGG | None = None
    cached = False
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model = SmallVGG(images.shape[1], n_classes, images.shape[2], cfg)
            model.load_state_dict(state["state_dict"])
            cached = True
        except Exception:  # noqa: BLE001 - a corrupt or stale cache file is retrained, not fatal
            model = None
    if model is None:
        model = train_classifier(images, labels, n_classes, cfg, seed=seed, progress=progress)
        try:
            atomic_torch_save(
                path, {"state_dict": model.state_dict(), "classifier": cfg.to_dict(), "key": key}
            )
        except Exception:  # noqa: BLE001 - an unwritable cache costs time, not correctness
            pass
    model.eval().requires_grad_(False)
    m = model
    return Extractor(
        "domain",
        lambda x: features(m, x),
        cfg.feature_dim,
        {"cache_file": str(path), "cache_hit": cached, "classifier": cfg.to_dict(), "seed": seed},
        model,
    )


def inception_extractor(weights: str | Path | None, batch_size: int = 50) -> Extractor:
    """The `inception` extractor (2048-d pool features of the FID Inception-v3)."""
    net = load_fid_inception(weights)

    @torch.inference_mode()
    def fn(x: torch.Tensor) -> torch.Tensor:
        outs = [net(x[s : s + batch_size]) for s in range(0, len(x), batch_size)]
        return torch.cat(outs) if outs else torch.zeros(0, 2048)

    return Extractor("inception", fn, 2048, {"weights": str(weights)}, net)


EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "domain": domain_extractor,
    "inception": inception_extractor,
}


def build_extractor(name: str, **kwargs: Any) -> Extractor:
    """`domain` takes (images, labels, class_names, cfg, seed, cache_dir, progress); `inception` (weights)."""
    if name not in EXTRACTORS:
        raise ConfigError(f"unknown extractor {name!r} (known: {', '.join(EXTRACTORS)})")
    return EXTRACTORS[name](**kwargs)
