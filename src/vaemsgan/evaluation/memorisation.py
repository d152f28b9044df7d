"""Memorisation and diversity: is a generated image a copy of a training image, and how varied is a class?

Distances (docs/EVALUATION.md, "Memorisation and diversity"):
- pixel distance: RMS difference in grey levels, sqrt(mean over C*H*W of (a - b)^2), 0-255;
- feature distance: Euclidean distance between domain features.
The nearest-neighbour (NN) distance of a generated image is its distance to the closest training image.
The reference is the same distance for held-out real test images: a real image that was never trained on.
A generated image is a near-copy when its NN distance is at most the 1st percentile of the real test images'
NN distances (closer to a training image than 99% of genuinely new real images are).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vaemsgan.errors import ConfigError

# Blocks of the distance matrix hold at most this many entries (bounded memory on large sets).
_BLOCK = 1 << 24
# Candidates per query whose distances are recomputed exactly (float64, from differences).
_RERANK = 8
NEAR_COPY_PERCENTILE = 1.0


def _flat_pixels(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8:
        raise ConfigError(f"pixel distances are defined on uint8 images, got {images.dtype}")
    return images.reshape(len(images), -1).float()


def nearest_neighbours(query: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of each query row's nearest row of `ref` (Euclidean), in blocks of matrix products.

    The search runs in float32 on data centred on the reference mean (`|q - r|^2 = |q|^2 + |r|^2 - 2 q.r`,
    the |q|^2 term dropped: it does not change the order); the `_RERANK` best candidates of each query are
    then compared exactly, from differences in float64, so an exact copy comes out at distance 0 and round-off
    can only matter when more than `_RERANK` references are within float32 error of the nearest one.
    Ties go to the lowest reference index.
    """
    if len(ref) == 0:
        raise ConfigError("nearest neighbours need a non-empty reference set")
    r = ref.float()
    centre = r.double().mean(0)
    rc = (r.double() - centre).float()
    qc_all = (query.double() - centre).float()
    r2 = (rc.double() ** 2).sum(1).float()
    k = min(_RERANK, len(r))
    dist = torch.empty(len(query), dtype=torch.float64)
    idx = torch.empty(len(query), dtype=torch.int64)
    step = max(1, _BLOCK // max(1, len(r)))
    for s in range(0, len(query), step):
        qc = qc_all[s : s + step]
        score = torch.addmm(r2[None, :], qc, rc.T, alpha=-2.0)  # |r|^2 - 2 q.r
        cand = score.topk(k, dim=1, largest=False).indices.sort(dim=1).values
        exact = (query[s : s + step, None, :].double() - r[cand].double()).pow(2).sum(2)
        best = exact.argmin(dim=1)  # the first of equal distances: the lowest index
        rows = torch.arange(len(cand))
        dist[s : s + step] = exact[rows, best].sqrt()
        idx[s : s + step] = cand[rows, best]
    return dist, idx


def pixel_nn(query: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NN in pixel space as RMS grey-level difference (0-255) and the index of the nearest `ref` image."""
    d, i = nearest_neighbours(_flat_pixels(query), _flat_pixels(ref))
    return d / math.sqrt(query[0].numel() if len(query) else 1), i


def near_copy_threshold(reference_nn: torch.Tensor, percentile: float = NEAR_COPY_PERCENTILE) -> float:
    """The `percentile`-th percentile (linear interpolation) of real-to-train NN distances."""
    if len(reference_nn) == 0:
        raise ConfigError("the near-copy threshold needs real reference distances (a real test set)")
    return float(np.percentile(reference_nn.double().numpy(), percentile))


def memorisation_summary(
    gen_nn: torch.Tensor, ref_nn: torch.Tensor, percentile: float = NEAR_COPY_PERCENTILE
) -> dict[str, float]:
    """Threshold, near-copy share and NN-distance summaries of generated vs real reference images."""
    thr = near_copy_threshold(ref_nn, percentile)
    g, r = gen_nn.double(), ref_nn.double()
    return {
        "threshold": thr,
        "near_copy_share": float((g <= thr).double().mean()) if len(g) else float("nan"),
        "near_copies": int((g <= thr).sum()),
        "exact_copies": int((g == 0).sum()),
        "gen_nn_median": float(g.median()) if len(g) else float("nan"),
        "gen_nn_mean": float(g.mean()) if len(g) else float("nan"),
        "real_nn_median": float(r.median()),
        "real_nn_mean": float(r.mean()),
        "percentile": percentile,
    }


def closest_pairs(
    gen_nn: torch.Tensor, gen_nn_index: torch.Tensor, k: int = 12
) -> list[tuple[int, int, float]]:
    """The k generated images closest to the training set: (generated index, training index, distance)."""
    order = torch.argsort(gen_nn, stable=True)[:k]
    return [(int(i), int(gen_nn_index[i]), float(gen_nn[i])) for i in order]


def mean_pairwise_distance(feats: torch.Tensor, max_n: int = 500, seed: int = 0) -> float:
    """Diversity: the mean Euclidean distance over distinct pairs (i < j) of a set's features.

    At most `max_n` rows (a seeded random subset) enter, to bound the cost; identical rows give 0.
    """
    x = feats.double()
    if len(x) < 2:
        return float("nan")
    if len(x) > max_n:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_n]]
    return float(torch.pdist(x).mean())  # pdist works on differences: identical rows give exactly 0
