"""One-dimensional distribution distances and a confidence interval over seeds.

Used to compare the per-image statistic distributions of real and generated images (not only their means)
and to summarise a metric measured over several training seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats as sps

from vaemsgan.errors import ConfigError

ArrayLike1D = torch.Tensor | np.ndarray | Sequence[float]


def _as_1d(values: ArrayLike1D, name: str) -> np.ndarray:
    """Any 1-D tensor/array/sequence -> float64 numpy vector; refuses empty or non-finite input."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ConfigError(f"{name} is empty: a distance needs at least one value")
    if not np.isfinite(arr).all():
        raise ConfigError(f"{name} contains NaN or infinite values")
    return arr


def wasserstein1(a: ArrayLike1D, b: ArrayLike1D) -> float:
    """Exact 1-D Wasserstein-1 (earth mover's) distance between the empirical distributions of `a` and `b`.

    W1 = integral over t of |F_a(t) - F_b(t)| dt (the area between the two empirical CDFs), which for
    equal sizes equals mean |sort(a) - sort(b)|. Same units as the values.
    """
    return float(sps.wasserstein_distance(_as_1d(a, "a"), _as_1d(b, "b")))


def ks_statistic(a: ArrayLike1D, b: ArrayLike1D) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup_t |F_a(t) - F_b(t)| (in [0, 1], unitless)."""
    return float(sps.ks_2samp(_as_1d(a, "a"), _as_1d(b, "b")).statistic)


def mean_ci(values: ArrayLike1D, alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval mean +- t_{1-alpha/2, n-1} * s / sqrt(n), s = std with ddof 1.

    Meant for a metric measured over n independent seeds; with one value there is no spread to estimate,
    so low = high = mean (the caller should say "n = 1", not read it as certainty).
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    arr = _as_1d(values, "values")
    mean = float(arr.mean())
    n = arr.size
    if n == 1:
        return mean, mean, mean
    half = float(sps.t.ppf(1.0 - alpha / 2.0, n - 1)) * float(arr.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half
