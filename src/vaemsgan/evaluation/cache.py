"""The evaluation cache: what is computed from real data alone, stored on disk by a hash of that data.

One folder (`~/.cache/vaemsgan/domain`, `$XDG_CACHE_HOME` respected, or `--cache-dir`) holds:
    <key>.pt           a classifier trained on real images: the `domain` extractor, and the real-data
                       classifiers of cross-validation (the same file when data, settings and seed agree)
    features-<key>.pt  an extractor's features of a real image set
    nn-<key>.pt        nearest-neighbour distances of the real test images to the real training images
    ref-<key>.pt       feature metrics of real training vs real test images (the real-vs-real reference)
Every key is a sha256 of the image bytes (and labels, class names) and of every setting the value depends
on, so other data or settings can never load a stale value. Files are written atomically and read with
`torch.load(weights_only=True)`; an unreadable file is recomputed and replaced, an unwritable folder costs
time, never correctness.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from vaemsgan.utils.io import atomic_torch_save

CACHE_VERSION = 1  # bump when the classifier code changes what a cached file means

T = TypeVar("T")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vaemsgan" / "domain"


def cache_folder(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


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


def digest(meta: dict[str, Any], *tensors: torch.Tensor) -> str:
    """sha256 of `meta` (JSON) and of the tensors' shapes, dtypes and bytes."""
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, **meta}, sort_keys=True, default=str).encode())
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (e.g. the Inception weights: features depend on them)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load(path: Path) -> Any | None:
    """The cached object at `path`, or None when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a corrupt or stale cache file is recomputed, not fatal
        return None


def save(path: Path, obj: Any) -> None:
    try:
        atomic_torch_save(path, obj)
    except Exception:  # noqa: BLE001 - an unwritable cache costs time, not correctness
        pass


def cached(path: Path | None, compute: Callable[[], T]) -> tuple[T, bool]:
    """(value, loaded from the cache): the file at `path` if readable, else compute() stored there.

    `path=None` computes without caching."""
    if path is not None:
        hit = load(path)
        if hit is not None:
            return hit, True
    value = compute()
    if path is not None:
        save(path, value)
    return value, False
