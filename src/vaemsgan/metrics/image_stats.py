"""Per-image statistics of the paper's Table 2 (mean, std, entropy, Laplacian gradient) on uint8 images.

Every statistic is computed per image on 0-255 values, vectorised over the batch, and documented with its
exact formula in docs/EVALUATION.md. The paper does not define its own (its entropies exceed 8 bits), so
the numbers are comparable to ours in kind, not digit for digit.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch

from vaemsgan.errors import ConfigError
from vaemsgan.metrics.distances import ks_statistic, wasserstein1

STATISTICS: tuple[str, ...] = ("mean", "std", "entropy", "entropy_joint", "laplacian_var", "laplacian_abs")

# ~1M pixel values per chunk: int64 temporaries stay ~8 MB, which is measurably faster than 4M (cache).
_CHUNK_ELEMENTS = 1 << 20


def _check_images(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Validate N x C x H x W uint8 (C in 1..4, H, W >= 3); numpy arrays are accepted and wrapped."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ConfigError(f"images must be a torch uint8 tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ConfigError(
            f"image statistics are defined on 0-255 uint8 images, got dtype {images.dtype}; "
            "convert [-1, 1] floats with vaemsgan.utils.images.to_uint8 first"
        )
    if images.dim() != 4:
        raise ConfigError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    _, c, h, w = images.shape
    if not 1 <= c <= 4:
        raise ConfigError(f"images must have 1 to 4 channels, got {c}")
    if h < 3 or w < 3:
        raise ConfigError(f"images must be at least 3x3 for the 3x3 Laplacian, got {h}x{w}")
    return images.detach().cpu()


def _entropy_from_counts(counts: torch.Tensor, total: int) -> torch.Tensor:
    """Shannon entropy in bits of histograms (rows of integer counts summing to `total`).

    Written as log2(T) - (1/T) sum c log2 c so that integer counts give exact answers (a uniform 8-bit ramp
    gives exactly 8, a half/half image exactly 1) instead of summing rounded p log p terms.
    """
    c = counts.double()
    clog = torch.where(c > 0, c * torch.log2(c.clamp_min(1.0)), torch.zeros_like(c))
    return math.log2(total) - clog.sum(dim=-1) / total


def _channel_entropy(x: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the 256-bin histogram entropy of each channel; x is n x C x H x W uint8."""
    n, c, h, w = x.shape
    rows = n * c
    # One bincount for the whole chunk: offset each (image, channel) histogram by 256 * row.
    keys = x.reshape(rows, h * w).long() + (torch.arange(rows, dtype=torch.long) * 256).unsqueeze(1)
    counts = torch.bincount(keys.reshape(-1), minlength=rows * 256).reshape(rows, 256)
    return _entropy_from_counts(counts, h * w).reshape(n, c).mean(dim=1)


def _joint_entropy(x: torch.Tensor) -> torch.Tensor:
    """Entropy of the histogram of whole pixel values (R,G,B packed as one 24-bit integer); n x C x H x W."""
    n, c, h, w = x.shape
    total = h * w
    packed = torch.zeros(n, total, dtype=torch.int32 if c <= 3 else torch.int64)
    for ch in range(c):
        packed = (packed << 8) | x[:, ch].reshape(n, total).to(packed.dtype)
    # Sorting each image's pixel values makes equal colours contiguous runs; a run's length is its count.
    # (Row-wise sort of int32 is ~2x faster than a global torch.unique over image-prefixed int64 keys.)
    srt = torch.sort(packed, dim=1).values
    starts = torch.ones_like(srt, dtype=torch.bool)
    starts[:, 1:] = srt[:, 1:] != srt[:, :-1]  # column 0 always starts a run, so runs never span images
    first = torch.nonzero(starts.reshape(-1)).squeeze(1)
    counts = (torch.cat([first[1:], first.new_tensor([n * total])]) - first).double()
    clog = torch.zeros(n, dtype=torch.float64).index_add_(0, first // total, counts * torch.log2(counts))
    return math.log2(total) - clog / total


def _laplacian(x: torch.Tensor) -> torch.Tensor:
    """3x3 Laplacian [[0,1,0],[1,-4,1],[0,1,0]] on each channel, valid region only: n x C x (H-2) x (W-2).

    Done with shifted slices in int32, so the response is exact (|value| <= 4 * 255).
    """
    v = x.to(torch.int32)
    centre = v[:, :, 1:-1, 1:-1]
    return v[:, :, :-2, 1:-1] + v[:, :, 2:, 1:-1] + v[:, :, 1:-1, :-2] + v[:, :, 1:-1, 2:] - 4 * centre


def _moments(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance over the last dim of an integer tensor, from exact int64 sums.

    The sums of values and squares are exact integers (< 2^63 for any image size used here), so
    E[v^2] - E[v]^2 in float64 loses nothing that matters and avoids float64 copies of the data.
    """
    m = v.shape[-1]
    s1 = v.sum(dim=-1, dtype=torch.int64).double()
    v64 = v.to(torch.int64)
    s2 = (v64 * v64).sum(dim=-1).double()
    mean = s1 / m
    return mean, (s2 / m - mean * mean).clamp_min(0.0)


def image_statistics(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image statistics of N x C x H x W uint8 images: {name: float64 tensor of N values} for STATISTICS.

    mean / std: over all pixels and channels (population std); entropy: bits, per-channel 256-bin histogram
    entropy averaged over channels; entropy_joint: bits, histogram of whole pixel values (equals entropy for
    grey); laplacian_var / laplacian_abs: variance / mean absolute value of the valid-region 3x3 Laplacian
    response per channel, averaged over channels.
    """
    images = _check_images(images)
    n, c, h, w = images.shape
    out: dict[str, list[torch.Tensor]] = {name: [] for name in STATISTICS}
    chunk = max(1, _CHUNK_ELEMENTS // (c * h * w))
    for start in range(0, n, chunk):
        x = images[start : start + chunk]
        mean, var = _moments(x.reshape(x.shape[0], -1))
        out["mean"].append(mean)
        out["std"].append(var.sqrt())
        ent = _channel_entropy(x)
        out["entropy"].append(ent)
        out["entropy_joint"].append(ent.clone() if c == 1 else _joint_entropy(x))
        lap = _laplacian(x).flatten(2)  # n x C x valid pixels, int32
        _, lap_var = _moments(lap)
        out["laplacian_var"].append(lap_var.mean(dim=1))
        out["laplacian_abs"].append(
            lap.abs().sum(dim=2, dtype=torch.int64).double().div(lap.shape[2]).mean(dim=1)
        )
    if n == 0:
        return {name: torch.zeros(0, dtype=torch.float64) for name in STATISTICS}
    return {name: torch.cat(parts) for name, parts in out.items()}


def statistics_by_class(
    images: torch.Tensor, labels: torch.Tensor | np.ndarray | Sequence[int]
) -> dict[int, dict[str, torch.Tensor]]:
    """image_statistics split by integer class label: {class: {statistic: values of that class's images}}."""
    images = _check_images(images)
    lab = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
    if lab.numel() != images.shape[0]:
        raise ConfigError(f"{lab.numel()} labels for {images.shape[0]} images")
    stats = image_statistics(images)
    return {int(k): {s: v[lab == k] for s, v in stats.items()} for k in torch.unique(lab).tolist()}


def class_table(
    real_stats_by_class: Mapping[Hashable, Mapping[str, torch.Tensor]],
    gen_stats_by_class: Mapping[Hashable, Mapping[str, torch.Tensor]],
    statistics: Sequence[str] = STATISTICS,
) -> list[dict[str, object]]:
    """Table 2 side by side: one row per (class, statistic) of the generated classes.

    Each row: class, statistic, n_real, n_gen, real_mean, gen_mean, gap_pct = (gen - real) / real * 100
    (NaN when real_mean is 0), w1 (Wasserstein-1 between the two per-image distributions, in the
    statistic's units) and ks (two-sample Kolmogorov-Smirnov statistic).
    """
    missing = [k for k in gen_stats_by_class if k not in real_stats_by_class]
    if missing:
        raise ConfigError(
            f"no real images for generated class(es) {missing}; real classes: {list(real_stats_by_class)}"
        )
    rows: list[dict[str, object]] = []
    for cls in gen_stats_by_class:
        real, gen = real_stats_by_class[cls], gen_stats_by_class[cls]
        for name in statistics:
            if name not in real or name not in gen:
                raise ConfigError(
                    f"statistic {name!r} missing for class {cls}; known: {', '.join(STATISTICS)}"
                )
            r, g = real[name].double(), gen[name].double()
            if r.numel() == 0 or g.numel() == 0:
                raise ConfigError(f"class {cls} has no {'real' if r.numel() == 0 else 'generated'} images")
            rm, gm = float(r.mean()), float(g.mean())
            rows.append(
                {
                    "class": cls,
                    "statistic": name,
                    "n_real": int(r.numel()),
                    "n_gen": int(g.numel()),
                    "real_mean": rm,
                    "gen_mean": gm,
                    "gap_pct": (gm - rm) / rm * 100.0 if rm != 0 else float("nan"),
                    "w1": wasserstein1(r, g),
                    "ks": ks_statistic(r, g),
                }
            )
    return rows


def format_class_table(rows: Sequence[Mapping[str, object]]) -> str:
    """Render class_table rows as a Markdown table."""
    head = "| class | statistic | n real | n gen | real mean | gen mean | gap % | W1 | KS |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['class']} | {r['statistic']} | {r['n_real']} | {r['n_gen']} | {r['real_mean']:.2f} | "
            f"{r['gen_mean']:.2f} | {r['gap_pct']:+.1f} | {r['w1']:.3g} | {r['ks']:.3f} |"
        )
    return "\n".join(lines)
