"""Known-answer tests for vaemsgan.metrics (image statistics, feature metrics, distances)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import linalg

from vaemsgan.errors import ConfigError
from vaemsgan.metrics import (
    STATISTICS,
    bootstrap_ci,
    class_table,
    density_coverage,
    fid,
    fid_sample_warning,
    format_class_table,
    frechet_distance,
    image_statistics,
    kid,
    ks_statistic,
    mean_ci,
    precision_recall,
    precision_recall_density_coverage,
    statistics_by_class,
    wasserstein1,
)

# ------------------------------------------------------------------------------ image statistics


def _img(arr: np.ndarray) -> torch.Tensor:
    """H x W (grey) or C x H x W array -> 1 x C x H x W uint8 tensor."""
    a = np.asarray(arr, dtype=np.uint8)
    if a.ndim == 2:
        a = a[None]
    return torch.from_numpy(a.copy())[None]


def _checkerboard(n: int) -> np.ndarray:
    i, j = np.indices((n, n))
    return ((i + j) % 2 * 255).astype(np.uint8)


def test_statistics_names_and_shapes() -> None:
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    s = image_statistics(x)
    assert tuple(s) == STATISTICS
    assert all(v.shape == (5,) and v.dtype == torch.float64 for v in s.values())


def test_mean_std_match_numpy() -> None:
    x = torch.randint(0, 256, (7, 3, 9, 11), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    s = image_statistics(x)
    a = x.numpy().reshape(7, -1).astype(np.float64)
    np.testing.assert_allclose(s["mean"].numpy(), a.mean(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(s["std"].numpy(), a.std(axis=1), rtol=0, atol=1e-10)


def test_constant_image() -> None:
    s = image_statistics(_img(np.full((3, 10, 10), 77)))
    assert s["mean"].item() == 77.0
    for name in ("std", "entropy", "entropy_joint", "laplacian_var", "laplacian_abs"):
        assert s[name].item() == 0.0, name


def test_entropy_uniform_ramp_is_8_bits() -> None:
    ramp = np.arange(256).reshape(16, 16)
    s = image_statistics(_img(ramp))
    assert s["entropy"].item() == pytest.approx(8.0, abs=1e-12)
    assert s["entropy_joint"].item() == pytest.approx(8.0, abs=1e-12)  # grey: joint == entropy
    rgb = image_statistics(_img(np.stack([ramp, ramp, ramp])))  # R = G = B: 256 distinct colours
    assert rgb["entropy"].item() == pytest.approx(8.0, abs=1e-12)
    assert rgb["entropy_joint"].item() == pytest.approx(8.0, abs=1e-12)


def test_entropy_half_half_is_1_bit() -> None:
    a = np.zeros((8, 8))
    a[:, 4:] = 200
    assert image_statistics(_img(a))["entropy"].item() == pytest.approx(1.0, abs=1e-12)


def test_joint_entropy_exceeds_channel_entropy() -> None:
    # R = row (16 values), G = column (16 values), B = 0: channels 4, 4, 0 bits; joint 256 colours = 8 bits.
    i, j = np.indices((16, 16))
    s = image_statistics(_img(np.stack([i, j, np.zeros_like(i)])))
    assert s["entropy"].item() == pytest.approx(8.0 / 3.0, abs=1e-12)
    assert s["entropy_joint"].item() == pytest.approx(8.0, abs=1e-12)


def test_laplacian_checkerboard_even_and_odd() -> None:
    # Each valid pixel has 4 neighbours of the other colour: response +-4*255; 6x6 valid region is half/half.
    s = image_statistics(_img(_checkerboard(8)))
    assert s["laplacian_var"].item() == (4 * 255) ** 2
    assert s["laplacian_abs"].item() == 4 * 255
    # 7x7: 5x5 valid region holds 13 of one sign and 12 of the other, so the mean is +-1020/25.
    s7 = image_statistics(_img(_checkerboard(7)))
    assert s7["laplacian_var"].item() == pytest.approx((4 * 255) ** 2 * (1 - 1 / 625), rel=1e-12)


def test_laplacian_of_linear_ramp_is_zero() -> None:
    i, j = np.indices((12, 12))
    s = image_statistics(_img(i + 2 * j))
    assert s["laplacian_var"].item() == 0.0 and s["laplacian_abs"].item() == 0.0


def test_laplacian_matches_conv2d_reference() -> None:
    x = torch.randint(0, 256, (4, 3, 10, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    k = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float64).view(1, 1, 3, 3)
    resp = torch.nn.functional.conv2d(x.double().view(12, 1, 10, 9), k).view(4, 3, -1)
    s = image_statistics(x)
    torch.testing.assert_close(s["laplacian_var"], resp.var(dim=2, correction=0).mean(dim=1))
    torch.testing.assert_close(s["laplacian_abs"], resp.abs().mean(dim=2).mean(dim=1))


def test_statistics_reject_float_and_small_images() -> None:
    with pytest.raises(ConfigError, match="uint8"):
        image_statistics(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ConfigError, match="3x3"):
        image_statistics(torch.zeros(2, 1, 2, 8, dtype=torch.uint8))


def test_statistics_of_random_colours() -> None:
    # Speed is measured by benchmarks/eval_speed.py, not asserted here (a timed test tests the machine's load).
    x = torch.randint(
        0, 256, (2_500, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    s = image_statistics(x)
    assert s["entropy_joint"].shape == (2_500,)
    assert s["entropy_joint"].mean() > 9.9  # 1024 random 24-bit colours: almost all distinct (log2 1024 = 10)


def test_class_table_and_by_class() -> None:
    g = torch.Generator().manual_seed(3)
    real = torch.randint(0, 128, (20, 1, 8, 8), dtype=torch.uint8, generator=g)
    gen = real + 10  # same images, brighter
    labels = torch.arange(20) % 2
    rows = class_table(statistics_by_class(real, labels), statistics_by_class(gen, labels))
    assert len(rows) == 2 * len(STATISTICS)
    row = next(r for r in rows if r["class"] == 0 and r["statistic"] == "mean")
    assert row["gen_mean"] == pytest.approx(row["real_mean"] + 10)
    assert row["gap_pct"] == pytest.approx(10 / row["real_mean"] * 100)
    assert row["w1"] == pytest.approx(10.0) and 0.0 < row["ks"] <= 1.0
    lap = next(r for r in rows if r["statistic"] == "laplacian_var")
    assert lap["gap_pct"] == pytest.approx(0.0) and lap["w1"] == pytest.approx(0.0)
    assert format_class_table(rows).count("\n") == len(rows) + 1
    with pytest.raises(ConfigError, match="no real images"):  # real class 1 missing
        class_table({0: statistics_by_class(real, labels)[0]}, statistics_by_class(gen, labels))


# ------------------------------------------------------------------------------------ FID


def test_frechet_distance_exact_1d() -> None:
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with s the standard deviations.
    d = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]]))
    assert d == pytest.approx((1 - 3) ** 2 + (2 - 3) ** 2, rel=1e-14)


def test_frechet_distance_matches_sqrtm_on_general_covariances() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T, b @ b.T  # non-commuting SPD matrices
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-9)


def test_fid_self_is_zero() -> None:
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    assert abs(fid(x, x)) < 1e-9


def test_fid_gaussians_match_closed_form() -> None:
    rng = np.random.default_rng(0)
    var1, var2 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 2.0, 1.0, 1.0])
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, 0.0, 0.0])
    n = 20_000
    a = mu1 + rng.normal(size=(n, 4)) * np.sqrt(var1)
    b = mu2 + rng.normal(size=(n, 4)) * np.sqrt(var2)
    # Diagonal covariances: ||mu1-mu2||^2 + sum (sqrt v1 - sqrt v2)^2 = 1 + 1 + 0 + (sqrt3-1)^2 + 1.
    closed = 1.0 + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    assert closed == pytest.approx(1 + 1 + 0 + (math.sqrt(3) - 1) ** 2 + 1, rel=1e-12)
    assert fid(a, b) == pytest.approx(closed, abs=0.1)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(closed, rel=1e-12)


def test_fid_agrees_with_torchmetrics() -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Identity(torch.nn.Module):
        """Stands in for Inception: the 'images' given to torchmetrics are already features."""

        num_features = 5

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    g = torch.Generator().manual_seed(4)
    a = torch.randn(300, 5, generator=g, dtype=torch.float64)
    b = torch.randn(400, 5, generator=g, dtype=torch.float64) @ torch.randn(
        5, 5, generator=g, dtype=torch.float64
    )
    metric = FrechetInceptionDistance(feature=Identity())
    metric.update(a, real=True)
    metric.update(b + 0.5, real=False)
    assert fid(a, b + 0.5) == pytest.approx(float(metric.compute()), rel=1e-6)


def test_fid_sample_warning() -> None:
    assert fid_sample_warning(5000, 2000) is None
    msg = fid_sample_warning(5000, 100)
    assert msg is not None and "2,000" in msg and "equal set sizes" in msg


# ------------------------------------------------------------------------------------ KID


def test_kid_same_and_shifted() -> None:
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    mean, std = kid(a, b, subsets=20, subset_size=300)
    assert abs(mean) < 2 * std + 1e-3
    shifted, _ = kid(a, b + 1.0, subsets=20, subset_size=300)
    assert shifted > 0.05 and shifted > 20 * abs(mean)


def test_kid_of_whole_sets_is_one_value() -> None:
    # Subsets as large as both sets are both sets (in another order): one value, no spread.
    g = torch.Generator().manual_seed(9)
    a = torch.randn(60, 4, generator=g, dtype=torch.float64)
    b = torch.randn(60, 4, generator=g, dtype=torch.float64) + 0.3
    mean, std = kid(a, b, subsets=7, subset_size=1000)
    kern = lambda x, y: (x @ y.T / 4 + 1) ** 3  # noqa: E731 - the default kernel, gamma = 1 / D
    off = lambda k: (k.sum() - k.diagonal().sum()) / (60 * 59)  # noqa: E731
    expected = float(off(kern(a, a)) + off(kern(b, b)) - 2 * kern(a, b).mean())
    assert std == 0.0 and mean == pytest.approx(expected, rel=1e-12) and mean > 0


def test_kid_subset_size_capped_and_seeded() -> None:
    g = torch.Generator().manual_seed(6)
    a, b = torch.randn(50, 4, generator=g), torch.randn(40, 4, generator=g)
    assert kid(a, b, subsets=5, subset_size=1000, seed=1) == kid(a, b, subsets=5, subset_size=1000, seed=1)


# ---------------------------------------------------------------------- precision / recall etc.


def test_precision_recall_identical_and_far() -> None:
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert precision_recall(x, x, k=3) == (1.0, 1.0)
    p, r = precision_recall(x, x + 100.0, k=3)
    assert p == 0.0 and r == 0.0


def test_prdc_in_one_pass_matches_the_separate_metrics() -> None:
    g = torch.Generator().manual_seed(11)
    real, fake = torch.randn(700, 6, generator=g), torch.randn(500, 6, generator=g) * 1.3 + 0.2
    both = precision_recall_density_coverage(real, fake, k_pr=3, k_dc=5)
    p, r = precision_recall(real, fake, k=3)
    d, c = density_coverage(real, fake, k=5)
    assert both == pytest.approx({"precision": p, "recall": r, "density": d, "coverage": c}, abs=2e-3)
    assert both["precision"] < 1 and both["recall"] < 1 and both["coverage"] < 1
    with pytest.raises(ConfigError):
        precision_recall_density_coverage(real[:5], fake, k_pr=3, k_dc=5)
    # The real set's radii given from a cache: the same numbers; radii of another set are refused.
    from vaemsgan.metrics import knn_radii, knn_radii_pair

    radii = knn_radii_pair(real, 3, 5)
    assert torch.equal(radii[0], knn_radii(real, 3)) and torch.equal(radii[1], knn_radii(real, 5))
    line = torch.tensor([[0.0], [1.0], [3.0], [6.0]])  # hand-computed: k-th nearest other point
    one, two = knn_radii_pair(line, 1, 2)
    assert one.tolist() == [1.0, 1.0, 2.0, 3.0] and two.tolist() == [3.0, 2.0, 3.0, 5.0]
    with pytest.raises(ConfigError, match="got 4"):
        knn_radii(line, 4)
    assert precision_recall_density_coverage(real, fake, k_pr=3, k_dc=5, real_radii=radii) == both
    with pytest.raises(ConfigError, match="real_radii"):
        precision_recall_density_coverage(real, fake, k_pr=3, k_dc=5, real_radii=knn_radii_pair(fake, 3, 5))


def test_density_coverage_identical() -> None:
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    density, coverage = density_coverage(x, x, k=5)
    assert coverage == 1.0
    # Each open real ball holds itself and its k - 1 nearest neighbours (the k-th lies on the boundary):
    # sum of counts = N k -> density 1 (up to the odd last-bit tie flip of the k-th distance).
    assert density == pytest.approx(1.0, abs=0.01)
    d_far, c_far = density_coverage(x, x + 100.0, k=5)
    assert d_far == 0.0 and c_far == 0.0


def test_bootstrap_ci_brackets_and_repeats() -> None:
    g = torch.Generator().manual_seed(9)
    a, b = torch.randn(200, 3, generator=g), torch.randn(200, 3, generator=g) + 1.0
    lo, hi = bootstrap_ci(fid, a, b, n_boot=50, seed=1)
    assert lo < fid(a, b) < hi
    assert (lo, hi) == bootstrap_ci(fid, a, b, n_boot=50, seed=1)


# ------------------------------------------------------------------------------------ distances


def test_distances() -> None:
    assert wasserstein1([2.0, 2.0], [5.0]) == pytest.approx(3.0)
    assert ks_statistic([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.0
    assert ks_statistic([1.0, 2.0], [3.0, 4.0]) == 1.0
    with pytest.raises(ConfigError):
        wasserstein1([], [1.0])


def test_mean_ci() -> None:
    assert mean_ci([0.7]) == (0.7, 0.7, 0.7)
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2} * s / sqrt(n) with s = 1
    assert (m, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half))


def test_feature_metrics_side_by_side_give_the_one_thread_numbers() -> None:
    """Per-class feature metrics run two at a time on single-thread workers (evaluation/core.py) give
    exactly the numbers of the same calls one after another on one thread; the workers see one intra-op
    thread and the caller's thread count is restored."""
    from vaemsgan.evaluation.core import feature_metrics
    from vaemsgan.utils.threads import map_side_by_side

    g = torch.Generator().manual_seed(3)
    jobs = [(torch.randn(60, 8, generator=g), torch.randn(50, 8, generator=g) * 1.2 + 0.1) for _ in range(5)]

    def metrics(a: torch.Tensor, b: torch.Tensor) -> dict:
        return {**feature_metrics(a, b, n_boot=10, kid_subsets=5, seed=1), "threads": torch.get_num_threads()}

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    sequential = [metrics(a, b) for a, b in jobs]
    torch.set_num_threads(2)
    side_by_side = map_side_by_side(metrics, jobs)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(before)
    assert [r["threads"] for r in side_by_side] == [1] * len(jobs)
    assert side_by_side == sequential  # fid, its interval, kid, precision/recall, density/coverage
    assert len({r["fid"] for r in sequential}) == len(jobs)  # five different jobs, in the order given
