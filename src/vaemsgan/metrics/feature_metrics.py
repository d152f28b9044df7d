"""Metrics on feature matrices (N x D): FID, KID, improved precision/recall, density/coverage, bootstrap.

The feature extractor is someone else's job; everything here takes two matrices of features (real, fake)
as torch tensors or numpy arrays and returns plain floats. Formulas: docs/EVALUATION.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vaemsgan.errors import ConfigError

Features = torch.Tensor | np.ndarray

# FID/KID are unstable below this many images per set (see fid_sample_warning).
MIN_RECOMMENDED_FID_SAMPLES = 2000

# Distance blocks hold at most this many entries (~64 MB in float64) to bound memory on large sets.
_CDIST_BLOCK_ELEMENTS = 1 << 23


def _as_tensor(feats: Features, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Features -> 2-D CPU float tensor (float64 unless `dtype`/a float32 input says otherwise); validated."""
    t = torch.from_numpy(np.asarray(feats)) if not isinstance(feats, torch.Tensor) else feats.detach().cpu()
    if t.dim() != 2:
        raise ConfigError(f"{name} must be an N x D feature matrix, got shape {tuple(t.shape)}")
    if dtype is None:
        dtype = torch.float32 if t.dtype == torch.float32 else torch.float64
    t = t.to(dtype)
    if not torch.isfinite(t).all():
        raise ConfigError(f"{name} contains NaN or infinite values")
    return t


def _check_pair(a: torch.Tensor, b: torch.Tensor, min_n: int) -> None:
    """Both sets need >= min_n rows and the same feature dimension."""
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if a.shape[0] < min_n or b.shape[0] < min_n:
        raise ConfigError(f"need at least {min_n} samples per set, got {a.shape[0]} and {b.shape[0]}")


# ---------------------------------------------------------------------------------------------- FID


def _mean_cov(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean vector and unbiased (N - 1) covariance of the rows, float64. In torch, not numpy: numpy's
    OpenBLAS starts its own threads for every small product and, beside torch's threads, made the FID
    bootstrap 2-3x slower in wall time on two cores (and ~25x in CPU time on a loaded machine)."""
    x = x.to(torch.float64)
    mu = x.mean(0)
    xc = x - mu
    return mu, (xc.T @ xc) / (x.shape[0] - 1)


def gaussian_stats(feats: Features) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and unbiased (N - 1) covariance matrix of the features, float64 (as pytorch-fid)."""
    x = _as_tensor(feats, "features", torch.float64)
    if x.shape[0] < 2:
        raise ConfigError(f"need at least 2 samples to fit a covariance, got {x.shape[0]}")
    mu, cov = _mean_cov(x)
    return mu.numpy(), cov.numpy()


def _trace_sqrt_product(a: torch.Tensor, b: torch.Tensor) -> float:
    """Tr((A B)^(1/2)) for symmetric PSD A, B as sum_i sqrt(lambda_i(A^(1/2) B A^(1/2))): that matrix is
    symmetric PSD and similar to A B, so its eigenvalues are real and there is no imaginary part to discard
    (what scipy.linalg.sqrtm produces on ill-conditioned input)."""
    w, v = torch.linalg.eigh((a + a.T) / 2.0)
    r = (v * w.clamp(min=0.0).sqrt()) @ v.T
    m = r @ b @ r
    lam = torch.linalg.eigvalsh((m + m.T) / 2.0)
    return float(lam.clamp(min=0.0).sqrt().sum())


def _frechet(mu1: torch.Tensor, s1: torch.Tensor, mu2: torch.Tensor, s2: torch.Tensor, eps: float) -> float:
    diff = mu1 - mu2
    try:
        tr_covmean = _trace_sqrt_product(s1, s2)
    except torch.linalg.LinAlgError:
        offset = torch.eye(s1.shape[0], dtype=s1.dtype) * eps
        tr_covmean = _trace_sqrt_product(s1 + offset, s2 + offset)
    return float(diff @ diff + s1.trace() + s2.trace() - 2.0 * tr_covmean)


def frechet_distance(
    mu1: Features, sigma1: Features, mu2: Features, sigma2: Features, eps: float = 1e-6
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2)).

    The trace of the square root is computed from eigenvalues of a symmetric matrix (_trace_sqrt_product).
    If the eigen-solver fails, eps * I is added to both covariances and it is retried, as pytorch-fid does.
    """

    def vec(x: Features) -> torch.Tensor:
        t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, np.float64))
        return t.double()

    mu1, mu2 = vec(mu1).reshape(-1), vec(mu2).reshape(-1)
    s1, s2 = torch.atleast_2d(vec(sigma1)), torch.atleast_2d(vec(sigma2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.numel(), mu1.numel()):
        raise ConfigError(
            f"shape mismatch: mu {tuple(mu1.shape)}/{tuple(mu2.shape)}, sigma {tuple(s1.shape)}/{tuple(s2.shape)}"
        )
    return _frechet(mu1, s1, mu2, s2, eps)


def fid(feat_a: Features, feat_b: Features) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (FID on Inception features)."""
    a, b = _as_tensor(feat_a, "feat_a", torch.float64), _as_tensor(feat_b, "feat_b", torch.float64)
    _check_pair(a, b, 2)
    return _frechet(*_mean_cov(a), *_mean_cov(b), eps=1e-6)


def fid_sample_warning(n_real: int, n_fake: int, min_n: int = MIN_RECOMMENDED_FID_SAMPLES) -> str | None:
    """A sentence to show next to an FID when either set is small, else None."""
    if min(n_real, n_fake) >= min_n:
        return None
    return (
        f"FID is biased upward and unstable with fewer than {min_n:,} images per set "
        f"(here {n_real:,} real, {n_fake:,} generated); compare only at equal set sizes, "
        "and read the interval."
    )


# ---------------------------------------------------------------------------------------------- KID


def _poly_kernel(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef: float) -> torch.Tensor:
    return (x @ y.T * gamma + coef) ** degree


def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef: float) -> float:
    """Unbiased MMD^2 of two equal-size samples: off-diagonal means of k(x,x), k(y,y) minus 2 mean k(x,y)."""
    m = x.shape[0]
    kxx = _poly_kernel(x, x, degree, gamma, coef)
    kyy = _poly_kernel(y, y, degree, gamma, coef)
    kxy = _poly_kernel(x, y, degree, gamma, coef)
    sxx = kxx.sum() - kxx.diagonal().sum()
    syy = kyy.sum() - kyy.diagonal().sum()
    return float((sxx + syy) / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


def kid(
    feat_a: Features,
    feat_b: Features,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: (mean, std) over `subsets` random subsets of the unbiased MMD^2 with
    k(x, y) = (gamma x.y + coef)^degree, gamma = 1/D by default (Binkowski et al. 2018, torchmetrics' KID).

    Each subset draws `subset_size` rows without replacement from each set (capped at the smaller set);
    std is the population std of the subset values (as torchmetrics).
    """
    a, b = _as_tensor(feat_a, "feat_a", torch.float64), _as_tensor(feat_b, "feat_b", torch.float64)
    _check_pair(a, b, 2)
    if subsets < 1:
        raise ConfigError(f"subsets must be >= 1, got {subsets}")
    if subset_size < 2:
        raise ConfigError(f"subset_size must be >= 2, got {subset_size}")
    m = min(subset_size, a.shape[0], b.shape[0])
    g = 1.0 / a.shape[1] if gamma is None else float(gamma)
    if m == a.shape[0] == b.shape[0]:
        # Every subset is both whole sets (in another order): one value, no spread. Only the summation
        # order would differ from subset to subset, so this is the loop's result up to round-off.
        return _mmd2_unbiased(a, b, degree, g, coef), 0.0
    gen = torch.Generator().manual_seed(seed)
    vals = torch.empty(subsets, dtype=torch.float64)
    for i in range(subsets):
        ia = torch.randperm(a.shape[0], generator=gen)[:m]
        ib = torch.randperm(b.shape[0], generator=gen)[:m]
        vals[i] = _mmd2_unbiased(a[ia], b[ib], degree, g, coef)
    return float(vals.mean()), float(vals.std(correction=0))


# ------------------------------------------------------------------------ k-NN manifold metrics


def _block_rows(n_cols: int) -> int:
    return max(1, _CDIST_BLOCK_ELEMENTS // max(1, n_cols))


def knn_radii(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row of the same set (self excluded), block-wise."""
    return knn_radii_pair(feats, k, k)[0]


def _in_any_ball(
    query: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, strict: bool = False
) -> torch.Tensor:
    """Per query row: how many balls B(centre_j, radius_j) contain it (distance <= radius; < if strict)."""
    counts = torch.empty(query.shape[0], dtype=torch.long)
    step = _block_rows(centres.shape[0])
    for s in range(0, query.shape[0], step):
        d = torch.cdist(query[s : s + step], centres)
        inside = d < radii.unsqueeze(0) if strict else d <= radii.unsqueeze(0)
        counts[s : s + step] = inside.sum(dim=1)
    return counts


def _nearest_distance(query: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per query row: distance to its nearest row of `ref`."""
    out = torch.empty(query.shape[0], dtype=query.dtype)
    step = _block_rows(ref.shape[0])
    for s in range(0, query.shape[0], step):
        out[s : s + step] = torch.cdist(query[s : s + step], ref).min(dim=1).values
    return out


def precision_recall(real: Features, fake: Features, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019), as fractions in [0, 1].

    precision = share of fake samples inside at least one real k-NN ball B(r, d_k(r));
    recall = share of real samples inside at least one fake k-NN ball. Balls are closed (distance <= radius),
    as in the authors' and stylegan2-ada's code.
    """
    r, f = _as_tensor(real, "real"), _as_tensor(fake, "fake")
    _check_pair(r, f, k + 1)
    f = f.to(r.dtype)
    precision = (_in_any_ball(f, r, knn_radii(r, k)) > 0).double().mean()
    recall = (_in_any_ball(r, f, knn_radii(f, k)) > 0).double().mean()
    return float(precision), float(recall)


def density_coverage(real: Features, fake: Features, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020).

    density = 1/(k M) sum_j #{i : fake_j in B(real_i, d_k(real_i))} (can exceed 1);
    coverage = share of real samples whose ball B(real_i, d_k(real_i)) contains at least one fake sample.
    Balls are open (distance < radius), as in the authors' `prdc` code, so identical sets give density 1.
    """
    r, f = _as_tensor(real, "real"), _as_tensor(fake, "fake")
    _check_pair(r, f, k + 1)
    f = f.to(r.dtype)
    radii = knn_radii(r, k)
    density = _in_any_ball(f, r, radii, strict=True).double().sum() / (k * f.shape[0])
    coverage = (_nearest_distance(r, f) < radii).double().mean()
    return float(density), float(coverage)


def knn_radii_pair(feats: Features, k_a: int, k_b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`knn_radii(feats, k_a)` and `knn_radii(feats, k_b)` from one pass over the distance matrix."""
    r = _as_tensor(feats, "feats", feats.dtype if isinstance(feats, torch.Tensor) else None)
    n = r.shape[0]
    kmax = max(k_a, k_b)
    if not (min(k_a, k_b) >= 1 and kmax < n):
        bad = k_a if not 1 <= k_a < n else k_b
        raise ConfigError(f"k must be in [1, {n - 1}] for a set of {n} samples, got {bad}")
    r_a, r_b = torch.empty(n, dtype=r.dtype), torch.empty(n, dtype=r.dtype)
    step = _block_rows(n)
    for s in range(0, n, step):
        # The (k+1)-th smallest of each row: the smallest is the point itself at distance 0.
        v = torch.cdist(r[s : s + step], r).topk(kmax + 1, dim=1, largest=False).values
        r_a[s : s + step], r_b[s : s + step] = v[:, k_a], v[:, k_b]
    return r_a, r_b


def precision_recall_density_coverage(
    real: Features,
    fake: Features,
    k_pr: int = 3,
    k_dc: int = 5,
    real_radii: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, float]:
    """`precision_recall(real, fake, k_pr)` and `density_coverage(real, fake, k_dc)` in one go: the three
    distance matrices (real-real, fake-fake, real-fake) are computed once, block-wise, instead of seven
    times; `real_radii` = `knn_radii_pair(real, k_pr, k_dc)` when the caller has them (they depend on the
    real set alone, so an evaluation cache keeps them). Returns {"precision", "recall", "density", "coverage"}."""
    r, f = _as_tensor(real, "real"), _as_tensor(fake, "fake")
    _check_pair(r, f, max(k_pr, k_dc) + 1)
    f = f.to(r.dtype)
    n_r, n_f = r.shape[0], f.shape[0]
    if real_radii is None:
        real_radii = knn_radii_pair(r, k_pr, k_dc)
    r_pr, r_dc = (t.to(r.dtype) for t in real_radii)
    if r_pr.shape != (n_r,) or r_dc.shape != (n_r,):
        raise ConfigError(
            f"real_radii must hold {n_r} radii each, got {tuple(r_pr.shape)}, {tuple(r_dc.shape)}"
        )
    f_pr = knn_radii(f, k_pr)
    in_real_ball = torch.zeros(n_f, dtype=torch.bool)  # precision: fake j within d_k(real i) of some i
    density_count = torch.zeros(n_f, dtype=torch.long)
    recall_hit = torch.empty(n_r, dtype=torch.bool)
    covered = torch.empty(n_r, dtype=torch.bool)
    step = _block_rows(n_f)
    for s in range(0, n_r, step):
        d = torch.cdist(r[s : s + step], f)  # real rows x fake columns
        in_real_ball |= (d <= r_pr[s : s + step, None]).any(0)
        density_count += (d < r_dc[s : s + step, None]).sum(0)
        recall_hit[s : s + step] = (d <= f_pr[None, :]).any(1)
        covered[s : s + step] = d.min(1).values < r_dc[s : s + step]
    return {
        "precision": float(in_real_ball.double().mean()),
        "recall": float(recall_hit.double().mean()),
        "density": float(density_count.double().sum() / (k_dc * n_f)),
        "coverage": float(covered.double().mean()),
    }


# --------------------------------------------------------------------------------------- bootstrap


def bootstrap_ci(
    metric_fn: Callable[[torch.Tensor, torch.Tensor], Any],
    feat_a: Features,
    feat_b: Features,
    n_boot: int = 100,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) of metric_fn(a*, b*), both sets resampled with replacement.

    If metric_fn returns a tuple (e.g. kid's (mean, std)), its first element is used. Note that resampling
    duplicates rows, which itself shifts set-level metrics like FID; read the interval as a spread.
    """
    if n_boot < 2:
        raise ConfigError(f"n_boot must be >= 2, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    a, b = _as_tensor(feat_a, "feat_a"), _as_tensor(feat_b, "feat_b")
    gen = torch.Generator().manual_seed(seed)
    vals = np.empty(n_boot, dtype=np.float64)
    for i in range(n_boot):
        ia = torch.randint(0, a.shape[0], (a.shape[0],), generator=gen)
        ib = torch.randint(0, b.shape[0], (b.shape[0],), generator=gen)
        v = metric_fn(a[ia], b[ib])
        vals[i] = float(v[0] if isinstance(v, tuple) else v)
    low, high = np.quantile(vals, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


DEFAULT_KID_SUBSETS = 50
KID_SUBSET_SIZE = 1000
PR_K, DC_K = 3, 5  # neighbours of precision/recall and of density/coverage


def feature_metrics(
    fr: torch.Tensor,
    fg: torch.Tensor,
    *,
    n_boot: int | None,
    kid_subsets: int = DEFAULT_KID_SUBSETS,
    seed: int = 0,
    real_radii: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """FID (with a percentile bootstrap interval of `n_boot` draws; None: no interval), KID (mean, std over
    `kid_subsets` subsets of at most 1,000 rows), precision/recall (k = 3) and density/coverage (k = 5)
    of real features `fr` vs generated features `fg`; metrics that need more rows are left out.
    `real_radii`: `fr`'s k-NN radii (k = 3, 5) when the caller has them cached."""
    n = min(len(fr), len(fg))
    out: dict[str, Any] = {"n_real": len(fr), "n_gen": len(fg)}
    if n < 2:
        out["error"] = f"too few images ({len(fr)} real, {len(fg)} generated)"
        return out
    out["fid"] = fid(fr, fg)
    if n_boot is not None:
        lo, hi = bootstrap_ci(fid, fr, fg, n_boot=n_boot, seed=seed)
        out["fid_ci"] = [lo, hi]
    km, ks = kid(fr, fg, subsets=kid_subsets, subset_size=min(KID_SUBSET_SIZE, n), seed=seed)
    out["kid_mean"], out["kid_std"] = km, ks
    if n >= max(PR_K, DC_K) + 1:
        out.update(precision_recall_density_coverage(fr, fg, k_pr=PR_K, k_dc=DC_K, real_radii=real_radii))
    elif n >= PR_K + 1:
        out["precision"], out["recall"] = precision_recall(fr, fg, k=PR_K)
    out["warning"] = fid_sample_warning(len(fr), len(fg))
    return out
