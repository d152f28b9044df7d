"""The real side of an evaluation: the real training and test images and everything computed from them alone
(the domain extractor, features, the nearest-neighbour reference, k-NN radii, real-vs-real metrics and image
statistics), each computed once per process and cached on disk by a hash of the data (cache.py), so a second
evaluation against the same real data pays only for the generated side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vaemsgan.data import ImageSet
from vaemsgan.evaluation import cache
from vaemsgan.evaluation.classifier import ClassifierConfig
from vaemsgan.evaluation.extractors import Extractor, build_extractor
from vaemsgan.evaluation.memorisation import (
    PIXEL_DISTANCE,
    PROJ_DIMS,
    ProjectionIndex,
    nearest_neighbours,
    pixel_index,
    pixel_nn,
    uses_projection_index,
)
from vaemsgan.metrics import fid, image_statistics, knn_radii_pair
from vaemsgan.metrics.feature_metrics import DC_K, PR_K, feature_metrics

Log = Callable[[str], None]


def quiet(msg: str) -> None:
    """A log that says nothing."""


def matched_subset(s: ImageSet, counts: list[int], seed: int = 0) -> torch.Tensor:
    """Indices of up to counts[c] images of each class c (seeded): FIDs are only comparable at equal sizes."""
    g = torch.Generator().manual_seed(seed + 3)
    out = []
    for c, n in enumerate(counts):
        idx = (s.labels == c).nonzero().flatten()
        out.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    return torch.cat(out).sort().values


class RealSide:
    """The real training and test images of an evaluation and what is computed from them alone.

    `cache=False` keeps values in memory only (nothing is written); otherwise they are read from and
    written to `cache_dir` (default: the domain extractor's cache folder). `hits` lists what was loaded.
    """

    def __init__(
        self,
        train: ImageSet,
        test: ImageSet,
        cache_dir: str | Path | None = None,
        *,
        cache: bool = True,
        log: Log | None = None,
    ) -> None:
        self.train, self.test = train, test
        self.cache_dir, self.cache = cache_dir, cache
        self.log = log or quiet
        self.hits: list[str] = []
        self._memo: dict[str, Any] = {}
        self._digests: dict[str, str] = {}

    @property
    def names(self) -> list[str]:
        return list(self.train.class_names)

    def digest(self, split: str) -> str:
        """Hash of a split's images, labels and class names (memoised: hashing 60k images takes ~0.1 s)."""
        if split not in self._digests:
            s = self.train if split == "train" else self.test
            self._digests[split] = cache.digest({"classes": s.class_names}, s.images, s.labels)
        return self._digests[split]

    def _cached(self, kind: str, meta: dict[str, Any], compute: Callable[[], Any]) -> Any:
        key = cache.digest({"kind": kind, **meta})
        if key not in self._memo:
            path = cache.cache_folder(self.cache_dir) / f"{kind}-{key[:40]}.pt" if self.cache else None
            self._memo[key], hit = cache.cached(path, compute)
            if hit:
                self.hits.append(kind)
        return self._memo[key]

    def domain_extractor(
        self,
        cfg: ClassifierConfig,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> Extractor:
        """The `domain` extractor of the real training images (trained once, cached as before)."""
        memo = cache.digest({"extractor": "domain", "cfg": cfg.to_dict(), "seed": seed})
        if memo not in self._memo:
            self._memo[memo] = build_extractor(
                "domain",
                images=self.train.images,
                labels=self.train.labels,
                class_names=self.names,
                cfg=cfg,
                seed=seed,
                cache_dir=self.cache_dir,
                progress=progress,
            )
        return self._memo[memo]

    def features(self, ext: Extractor, split: str) -> torch.Tensor:
        """`ext`'s features of the real training or test images."""
        images = (self.train if split == "train" else self.test).images
        if "key" not in ext.info:  # an extractor that cannot say what it computes is not cached
            return ext(images)
        return self._cached(
            "features", {"extractor": ext.info["key"], "data": self.digest(split)}, lambda: ext(images)
        )

    def nn_reference(self, ext: Extractor) -> dict[str, torch.Tensor]:
        """Nearest-neighbour distances of every real test image to the real training images, in pixels
        (contrast-normalised, memorisation.py) and in `ext`'s features: the memorisation reference."""

        def compute() -> dict[str, torch.Tensor]:
            pix, _ = pixel_nn(
                self.test.images, self.train.images, self.training_pixel_index(len(self.test)), contrast=True
            )
            feat, _ = nearest_neighbours(self.features(ext, "test"), self.features(ext, "train"))
            return {"pixel": pix, "feature": feat}

        meta = {"extractor": ext.info.get("key"), "train": self.digest("train"), "test": self.digest("test")}
        meta["pixels"] = PIXEL_DISTANCE  # entries of the plain grey-level distance are not read as these
        if meta["extractor"] is None:
            return compute()
        return self._cached("nn", meta, compute)

    def training_pixel_index(self, n_query: int) -> ProjectionIndex | None:
        """The training images' pixel ProjectionIndex when a search of `n_query` images uses one (None
        when it would not: then nothing is computed)."""
        images = self.train.images
        if not uses_projection_index(n_query, len(images), images[0].numel() if len(images) else 0):
            return None
        # The index's layout enters the key: a file from another layout is recomputed, never misread.
        meta = {"train": self.digest("train"), "dims": PROJ_DIMS, "layout": ProjectionIndex.LAYOUT}
        meta["pixels"] = PIXEL_DISTANCE
        d = self._cached("pixel-index", meta, lambda: pixel_index(images, contrast=True).as_dict())
        return ProjectionIndex.from_dict(d)

    def test_radii(self, ext: Extractor) -> dict[str, Any]:
        """k-NN radii (k = PR_K, DC_K) of the real test features, over the whole set and within each class:
        the real-real third of precision/recall/density/coverage, the same for every generated set."""

        def compute() -> dict[str, Any]:
            fr, labels = self.features(ext, "test"), self.test.labels
            out: dict[str, Any] = {"overall": None, "per_class": []}
            if len(fr) > max(PR_K, DC_K):
                out["overall"] = knn_radii_pair(fr, PR_K, DC_K)
            for c in range(len(self.names)):
                fc = fr[labels == c]
                out["per_class"].append(knn_radii_pair(fc, PR_K, DC_K) if len(fc) > max(PR_K, DC_K) else None)
            return out

        meta = {"extractor": ext.info.get("key"), "test": self.digest("test"), "k": [PR_K, DC_K]}
        if meta["extractor"] is None:
            return compute()
        return self._cached("radii", meta, compute)

    def statistics(self, split: str = "train") -> dict[str, torch.Tensor]:
        """image_statistics of the real training (or test) images."""
        images = self.train.images if split == "train" else self.test.images
        return self._cached("stats", {"data": self.digest(split)}, lambda: image_statistics(images))

    def reference_metrics(self, ext: Extractor, seed: int, kid_subsets: int) -> dict[str, Any]:
        """Feature metrics of real training images (as many per class as the test set has, seeded) vs the
        real test images, overall and per-class FID: what a generator that reproduced the real distribution
        exactly would score at these set sizes."""

        def compute() -> dict[str, Any]:
            fr, ftr = self.features(ext, "test"), self.features(ext, "train")
            sel = matched_subset(self.train, self.test.counts(), seed)
            ref = feature_metrics(fr, ftr[sel], n_boot=None, kid_subsets=kid_subsets, seed=seed)
            lab = self.train.labels[sel]
            ref["per_class_fid"] = [
                fid(fr[self.test.labels == c], ftr[sel][lab == c])
                if int((self.test.labels == c).sum()) >= 2 and int((lab == c).sum()) >= 2
                else float("nan")
                for c in range(len(self.names))
            ]
            return ref

        meta = {
            "extractor": ext.info.get("key"),
            "train": self.digest("train"),
            "test": self.digest("test"),
            "seed": seed,
            "kid_subsets": kid_subsets,
        }
        if meta["extractor"] is None:
            return compute()
        return dict(self._cached("ref", meta, compute))
