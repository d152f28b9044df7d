"""Memorisation and diversity: is a generated image a copy of a training image, and how varied is a class?

Distances (docs/EVALUATION.md, "Memorisation and diversity"):
- pixel distance, contrast-normalised: each image standardised by its own pixels (minus its mean, over its
  standard deviation, at least 1 grey level), then the RMS difference, sqrt(mean over C*H*W of (a' - b')^2);
  0 for the same picture at any brightness and contrast, about 1.4 for unrelated pictures, 2 for a negative.
  Plain grey levels would call two bland, low-contrast images close without their being the same picture
  (a CIFAR-10 generator of bland, varied images had 4.4% "near-copies" in plain pixels, 0% normalised);
- plain pixel distance (`contrast=False`): the RMS difference in grey levels, 0-255;
- feature distance: Euclidean distance between domain features.
The nearest-neighbour (NN) distance of a generated image is its distance to the closest training image.
The reference is the same distance for held-out real test images: a real image that was never trained on.
A generated image is a near-copy when its NN distance is at most the 1st percentile of the real test images'
NN distances (closer to a training image than 99% of genuinely new real images are).

Repetition within a class (a partial mode collapse that a mean pairwise distance hardly sees): a generated
image has a twin when its nearest *other* generated image of the same class is closer, contrast-normalised,
than `TWIN_FRACTION` of the median of the same distance among as many real images of the class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import torch

from vaemsgan.errors import ConfigError

# Blocks of the distance matrix hold at most this many entries (bounded memory on large sets).
_BLOCK = 1 << 24
# Candidates per query whose distances are recomputed exactly (float64, from differences).
_RERANK = 8
# Pruned search (long vectors, many pairs): a lower bound of every distance from a projection on the
# reference's `PROJ_DIMS` principal directions, exact distances for the `_PROJ_CANDIDATES` smallest bounds.
PROJ_DIMS = 256
_PROJ_CANDIDATES = 64
_PRUNE_MIN_PAIRS = 1 << 26
_EXACT_F64_MAX_DIM = 512
NEAR_COPY_PERCENTILE = 1.0
# A twin is closer than this share of the class's real median nearest-other distance (50 per class). Real images
# have none at 0.4 (MSTAR chips and CIFAR-10 photographs alike); healthy MSTAR generators none; an AC-GAN that
# collapsed within classes 14% (60 CPU-minutes) and 73% (120); a CIFAR-10 run whose grids repeat 22-38% from 15
# CPU-minutes on, 0% at 5. In plain pixels a bland CIFAR-10 run without repeats had 24%: hence the normalising.
TWIN_FRACTION = 0.4
TWIN_PER_CLASS = 50
# A standard deviation under this many grey levels counts as this many (a flat image is not blown up to noise).
MIN_PIXEL_STD = 1.0
# What `pixel_nn` measures by default (evaluation caches key their pixel distances and indexes by it).
PIXEL_DISTANCE = f"standardised, std at least {MIN_PIXEL_STD:g}"
# A twin share above this is a generator repeating itself (the monitor warns, the report says so).
TWIN_WARN_SHARE = 0.1


def pixel_rows(images: torch.Tensor, contrast: bool) -> torch.Tensor:
    """uint8 images as float32 rows of grey levels (exact), or with `contrast` each row standardised (module
    docstring), in float64 a block of rows at a time (bounded memory): two equal images give equal rows, so an
    exact copy stays at distance 0."""
    if images.dtype != torch.uint8:
        raise ConfigError(f"pixel distances are defined on uint8 images, got {images.dtype}")
    x = images.reshape(len(images), -1)
    if not contrast:
        return x.float()
    out = torch.empty(x.shape, dtype=torch.float32)
    for s in range(0, len(x), 2048):
        b = x[s : s + 2048].double()
        std = b.std(1, unbiased=False, keepdim=True).clamp_min(MIN_PIXEL_STD)
        out[s : s + 2048] = (b - b.mean(1, keepdim=True)) / std
    return out


def _exact_best(
    query: torch.Tensor, ref: torch.Tensor, cand: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Of each query row's candidate references (indices, sorted), the nearest: (squared distance from
    differences, summed in float64, index); the first of equal distances, i.e. the lowest index.

    Short vectors (features) are differenced in float64; long ones (images) in float32, which is exact for
    integer-valued data such as pixels (differences and their squares are small integers)."""
    if query.shape[1] > _EXACT_F64_MAX_DIM:
        diff = query[:, None, :].float() - ref[cand].float()
    else:
        diff = query[:, None, :].double() - ref[cand].double()
    exact = (diff * diff).sum(2, dtype=torch.float64)
    best = exact.argmin(dim=1)
    rows = torch.arange(len(cand))
    return exact[rows, best], cand[rows, best]


def _full_search(query: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every distance in float32 matrix-product blocks, the `_RERANK` best candidates compared exactly."""
    r = ref.float()
    rc = r - r.double().mean(0).float()  # centred: smaller numbers, smaller float32 round-off
    qc_all = query.float() - r.double().mean(0).float()
    r2 = (rc * rc).sum(1)
    k = min(_RERANK, len(r))
    d2 = torch.empty(len(query), dtype=torch.float64)
    idx = torch.empty(len(query), dtype=torch.int64)
    step = max(1, _BLOCK // max(1, len(r)))
    for s in range(0, len(query), step):
        score = torch.addmm(r2[None, :], qc_all[s : s + step], rc.T, alpha=-2.0)  # |r|^2 - 2 q.r
        cand = score.topk(k, dim=1, largest=False).indices.sort(dim=1).values
        d2[s : s + step], idx[s : s + step] = _exact_best(query[s : s + step], r, cand)
    return d2, idx


@dataclass
class ProjectionIndex:
    """What `_pruned_search` needs of the reference set alone (cacheable with the real data): the centre c,
    the top `PROJ_DIMS` principal directions P (orthonormal, from a seeded subset) and, per reference row,
    p(r) = P^T (r - c), |p(r)|^2 and e(r) = |r - c - P p(r)|."""

    LAYOUT: ClassVar[int] = 1  # bump when the fields change (cached indexes are keyed by it)

    centre: torch.Tensor  # D, float64
    basis: torch.Tensor  # D x k, float32
    proj: torch.Tensor  # N x k, float32
    proj_sq: torch.Tensor  # N, float64
    rest: torch.Tensor  # N, float64

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(p(x), |p(x)|^2, e(x)) of query rows `x`."""
        return _project(x, self.centre, self.basis)

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor]) -> ProjectionIndex:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


def _project(
    x: torch.Tensor, centre: torch.Tensor, basis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(p(x), |p(x)|^2, e(x)): the projection in float32, the squared norms summed in float64."""
    c32 = centre.float()
    ps, p2s, es = [], [], []
    for s in range(0, len(x), 4096):
        xc = x[s : s + 4096].float() - c32
        p = xc @ basis
        p2 = (p * p).sum(1, dtype=torch.float64)
        ps.append(p)
        p2s.append(p2)
        es.append(((xc * xc).sum(1, dtype=torch.float64) - p2).clamp_min(0.0).sqrt())
    return torch.cat(ps), torch.cat(p2s), torch.cat(es)


def projection_index(ref: torch.Tensor) -> ProjectionIndex:
    """The `ProjectionIndex` of reference rows `ref` (N x D)."""
    r = ref.float()
    c = r.double().mean(0)
    g = torch.Generator().manual_seed(0)
    sub = r[torch.randperm(len(r), generator=g)[:4096]].double() - c
    _, vecs = torch.linalg.eigh(sub.T @ sub)
    basis = vecs[:, -PROJ_DIMS:].float()
    return ProjectionIndex(c, basis, *_project(r, c, basis))


def _pruned_search(
    query: torch.Tensor, ref: torch.Tensor, index: ProjectionIndex | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest neighbours found from lower bounds; returns (squared distance, index, unresolved rows).

    With p, e as in `ProjectionIndex` (`index`: the reference's, computed here when not given),
    |q - r|^2 = |p(q) - p(r)|^2 + |rest(q) - rest(r)|^2 >= |p(q) - p(r)|^2 + (e(q) - e(r))^2 =: L(q, r).
    The `_PROJ_CANDIDATES` references with the smallest L get exact distances; when the best of them is no
    larger than the next smallest L (less a margin that covers float32 round-off in L), no other reference
    can be nearer and the row is resolved. Unresolved rows are left to the full search.
    """
    r = ref.float()
    if index is None:
        index = projection_index(r)
    rp, rp2, re = index.proj, index.proj_sq, index.rest
    qp, qp2, qe = index.project(query)
    m = min(_PROJ_CANDIDATES, len(r) - 1)
    rp2f, ref_scale = rp2.float(), float((rp2 + re * re).max())
    d2 = torch.empty(len(query), dtype=torch.float64)
    idx = torch.empty(len(query), dtype=torch.int64)
    open_rows = torch.zeros(len(query), dtype=torch.bool)
    step = max(1, min(128, _BLOCK // max(1, len(r))))
    for s in range(0, len(query), step):
        sl = slice(s, s + step)
        lb = torch.addmm(rp2f[None, :], qp[sl], rp.T, alpha=-2.0)
        lb += qp2[sl, None].float()
        lb += (qe[sl, None].float() - re[None, :].float()) ** 2
        vals, cand = lb.topk(m + 1, dim=1, largest=False)
        d2[sl], idx[sl] = _exact_best(query[sl], r, cand[:, :m].sort(dim=1).values)
        # Round-off in L (float32 projections and products): far below 1e-4 of the squared norms involved.
        margin = 1e-4 * (qp2[sl] + qe[sl] ** 2 + ref_scale) + 1.0
        open_rows[sl] = d2[sl] > vals[:, m].double() - margin
    return d2, idx, open_rows


def uses_projection_index(n_query: int, n_ref: int, dim: int) -> bool:
    """Whether `nearest_neighbours` searches from a ProjectionIndex: long vectors (images) against many
    references."""
    return dim > 2 * PROJ_DIMS and n_query * n_ref >= _PRUNE_MIN_PAIRS and n_ref > _PROJ_CANDIDATES


def nearest_neighbours(
    query: torch.Tensor, ref: torch.Tensor, index: ProjectionIndex | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of each query row's nearest row of `ref` (Euclidean); ties go to the lowest index.

    Candidates are found in float32 matrix-product blocks and compared exactly (float64, from differences),
    so an exact copy comes out at distance 0. Long vectors (images) against many references first use
    lower bounds from a principal-component projection (`_pruned_search`), which settle most rows with a
    fraction of the arithmetic; the rest, and short vectors (features), search every distance in float32
    and compare the `_RERANK` best exactly: round-off can only matter when more than `_RERANK` references
    lie within float32 error of the nearest one. `index`: `projection_index(ref)` when the caller has it
    (it depends on `ref` alone: the evaluation cache keeps the real training images' one).
    """
    if len(ref) == 0:
        raise ConfigError("nearest neighbours need a non-empty reference set")
    if uses_projection_index(len(query), len(ref), query.shape[1] if query.dim() == 2 else 0):
        d2, idx, todo = _pruned_search(query, ref, index)
        if bool(todo.any()):
            d2[todo], idx[todo] = _full_search(query[todo], ref)
    else:
        d2, idx = _full_search(query, ref)
    return d2.sqrt(), idx


def pixel_nn(
    query: torch.Tensor,
    ref: torch.Tensor,
    index: ProjectionIndex | None = None,
    *,
    contrast: bool = True,
    ref_rows: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NN in pixel space, contrast-normalised (module docstring) or with `contrast=False` as the RMS grey-level
    difference (0-255), and the index of the nearest `ref` image. `index`: `pixel_index(ref, contrast=...)`,
    `ref_rows`: `pixel_rows(ref, contrast)`, when the caller has them (the same `contrast`)."""
    q = pixel_rows(query, contrast)
    r = pixel_rows(ref, contrast) if ref_rows is None else ref_rows
    d, i = nearest_neighbours(q, r, index)
    return d / math.sqrt(query[0].numel() if len(query) else 1), i


def pixel_index(ref: torch.Tensor, *, contrast: bool = True) -> ProjectionIndex:
    """The ProjectionIndex of uint8 reference images for `pixel_nn` with the same `contrast`."""
    return projection_index(pixel_rows(ref, contrast))


def near_copy_threshold(reference_nn: torch.Tensor, percentile: float = NEAR_COPY_PERCENTILE) -> float:
    """The `percentile`-th percentile (linear interpolation) of real-to-train NN distances."""
    if len(reference_nn) == 0:
        raise ConfigError("the near-copy threshold needs real reference distances (a real test set)")
    return float(np.percentile(reference_nn.double().numpy(), percentile))


def memorisation_summary(
    gen_nn: torch.Tensor,
    ref_nn: torch.Tensor,
    percentile: float = NEAR_COPY_PERCENTILE,
    exact_copies: int | None = None,
) -> dict[str, float]:
    """Threshold, near-copy share and NN-distance summaries of generated vs real reference images.
    `exact_copies`: the count when the caller compares the images themselves (None: those at distance 0)."""
    thr = near_copy_threshold(ref_nn, percentile)
    g, r = gen_nn.double(), ref_nn.double()
    return {
        "threshold": thr,
        "near_copy_share": float((g <= thr).double().mean()) if len(g) else float("nan"),
        "near_copies": int((g <= thr).sum()),
        "exact_copies": int((g == 0).sum()) if exact_copies is None else exact_copies,
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


def leave_one_out_nn(
    images: torch.Tensor, *, contrast: bool = True, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """The pixel distance of each image to its nearest *other* image of the set: contrast-normalised (module
    docstring), or with `contrast=False` the RMS grey-level difference (0-255). `rows`: `pixel_rows(images,
    contrast)` when the caller has them."""
    x = (pixel_rows(images, contrast) if rows is None else rows).double()
    out = torch.empty(len(x), dtype=torch.float64)
    sq = (x * x).sum(1)
    for s in range(0, len(x), 512):
        d2 = (sq[s : s + 512, None] + sq[None, :] - 2.0 * x[s : s + 512] @ x.T).clamp_min(0.0)
        d2[torch.arange(len(d2)), torch.arange(s, s + len(d2))] = float("inf")
        out[s : s + 512] = d2.min(1).values.sqrt()
    return out / math.sqrt(max(x.shape[1], 1))


def twin_thresholds(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int = TWIN_PER_CLASS
) -> list[tuple[float, int]]:
    """Per class: (`TWIN_FRACTION` of the median nearest-other contrast-normalised distance among its first n
    real images, n = min(`per_class`, its count)); (nan, n) for a class with fewer than 2, or whose images are
    all alike (a threshold of 0 would find no twin whatever the generator does). Nearest-neighbour distances
    shrink as a set grows, so the generated side is measured at the same n. Pass a seeded shuffle: the first
    images of a class are used."""
    out = []
    for c in range(num_classes):
        x = images[labels == c][:per_class]
        thr = TWIN_FRACTION * float(leave_one_out_nn(x).median()) if len(x) >= 2 else float("nan")
        out.append((thr if thr > 0 else float("nan"), len(x)))
    return out


def twin_shares(images: torch.Tensor, labels: torch.Tensor, refs: list[tuple[float, int]]) -> list[float]:
    """Per class: the share of its first n generated images (n as the real side's, `twin_thresholds`) with a
    same-class twin, a nearest other one closer than the class's threshold; nan where the class has no
    threshold or fewer than n generated images."""
    out = []
    for c, (thr, n) in enumerate(refs):
        x = images[labels == c][:n]
        ok = n >= 2 and len(x) == n and not math.isnan(thr)
        out.append(float((leave_one_out_nn(x) < thr).double().mean()) if ok else float("nan"))
    return out


def mean_share(shares: list[float]) -> float:
    """The mean over the classes that have a share (nan: none has)."""
    vals = [v for v in shares if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")
