"""The report's pictures (matplotlib, Agg backend), each as a PNG data URI: per-class grids of real and
generated images, statistics and distance histograms, classifier and FID bars, the augmentation-gain figure."""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from vaemsgan.evaluation.report_verdict import dig  # noqa: E402
from vaemsgan.metrics import STATISTICS  # noqa: E402
from vaemsgan.utils.images import make_grid  # noqa: E402

STAT_LABELS = {
    "mean": "mean (brightness)",
    "std": "std (contrast)",
    "entropy": "entropy, bits/channel",
    "entropy_joint": "joint entropy, bits",
    "laplacian_var": "Laplacian variance (sharpness)",
    "laplacian_abs": "mean |Laplacian|",
}
REAL_COLOUR, GEN_COLOUR = "#3b6ea5", "#d9822b"


def png_data_uri(array: np.ndarray) -> str:
    """H x W (x C) uint8 array -> 'data:image/png;base64,...'."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fig_data_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _upscaled_grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=255)
    scale = max(1, 64 // images.shape[-1])  # small images are hard to see: nearest-neighbour 2x for 32 px
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid


def class_grids(real: Any, gen: Any, names: list[str], n: int = 8) -> dict[str, str]:
    out = {}
    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(names):
        parts = []
        for s in (real, gen):
            idx = (s.labels == c).nonzero().flatten()
            idx = idx[torch.randperm(len(idx), generator=g)[:n]]
            parts.append(_upscaled_grid(s.images[idx], nrow=n) if len(idx) else None)
        out[name] = {
            "real": png_data_uri(parts[0]) if parts[0] is not None else "",
            "gen": png_data_uri(parts[1]) if parts[1] is not None else "",
        }  # type: ignore[assignment]
    return out  # type: ignore[return-value]


def _hist_figure(arrays: dict[str, dict[str, np.ndarray]]) -> str:
    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    for ax, s in zip(axes.flat, STATISTICS):
        r, g = arrays["real"][s], arrays["gen"][s]
        lo, hi = float(min(r.min(), g.min())), float(max(r.max(), g.max()))
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
        ax.hist(r, bins=bins, density=True, alpha=0.55, color=REAL_COLOUR, label=f"real (n={len(r)})")
        ax.hist(g, bins=bins, density=True, alpha=0.55, color=GEN_COLOUR, label=f"generated (n={len(g)})")
        ax.set_title(STAT_LABELS[s], fontsize=10)
        ax.tick_params(labelsize=8)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Per-image statistics, all classes: real vs generated", fontsize=11)
    fig.tight_layout()
    return fig_data_uri(fig)


def _bar_ci(ax: Any, labels: list[str], items: list[dict[str, Any]], colours: list[str]) -> None:
    means = [i["mean"] if i and i.get("mean") is not None else 0.0 for i in items]
    err = [
        [max(0.0, m - (i.get("low") or m)) for m, i in zip(means, items)],
        [max(0.0, (i.get("high") or m) - m) for m, i in zip(means, items)],
    ]
    ax.bar(labels, means, yerr=err, capsize=4, color=colours)
    for x, m in enumerate(means):
        ax.text(x, m / 2, f"{m:.2f}", ha="center", color="white", fontsize=9, fontweight="bold")


def classifier_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, str]:
    cv, names = result["classifier"], result["classes"]
    out = {}
    if "table" in cv:
        fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 3]})
        keys = ["TRTR", "TRTS", "TSTR", "TSTS"]
        _bar_ci(
            axes[0], keys, [cv["table"][k] for k in keys], [REAL_COLOUR, REAL_COLOUR, GEN_COLOUR, GEN_COLOUR]
        )
        axes[0].set_ylim(0, 1)
        axes[0].set_ylabel("accuracy")
        axes[0].set_title("train on / test on (mean, 95% interval)", fontsize=10)
        x = np.arange(len(names))
        for off, k, col in ((-0.2, "TRTR", REAL_COLOUR), (0.2, "TSTR", GEN_COLOUR)):
            vals = [cv["per_class"][n].get(k) or 0.0 for n in names]
            axes[1].bar(
                x + off,
                vals,
                0.4,
                color=col,
                label=f"{k} ({'real' if k == 'TRTR' else 'generated'} training)",
            )
        axes[1].set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        axes[1].set_ylim(0, 1)
        axes[1].legend(fontsize=8, loc="lower right")
        axes[1].set_title("per class, real test images", fontsize=10)
        fig.tight_layout()
        out["crossval"] = fig_data_uri(fig)
    sweep = [s for s in cv.get("sweep", []) if "accuracy" in s]
    if sweep:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        xs = [s["ratio"] for s in sweep]
        m = [s["accuracy"]["mean"] for s in sweep]
        lo = [
            max(0.0, a - (s["accuracy"]["low"] if s["accuracy"]["low"] is not None else a))
            for a, s in zip(m, sweep)
        ]
        hi = [
            max(0.0, (s["accuracy"]["high"] if s["accuracy"]["high"] is not None else a) - a)
            for a, s in zip(m, sweep)
        ]
        ax.errorbar(range(len(xs)), m, yerr=[lo, hi], marker="o", capsize=4, color=GEN_COLOUR)
        ax.set_xticks(range(len(xs)), ["real only" if r == 0 else f"+{r:g}x" for r in xs])
        ax.set_ylabel("accuracy on real test images")
        ax.set_title("real + generated training images (generated / real per class)", fontsize=10)
        fig.tight_layout()
        out["sweep"] = fig_data_uri(fig)
    mixed = cv.get("mixed")
    if mixed and "mixed/real_test_class" in mixed:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        groups = [
            ("real_test_class", "real test, this class"),
            ("gen_test_class", "generated test, this class"),
            ("real_test_others", "real test, other classes"),
        ]
        x = np.arange(len(groups))
        for off, pre, col, lab in (
            (-0.2, "baseline", REAL_COLOUR, "real only"),
            (0.2, "mixed", GEN_COLOUR, "half replaced"),
        ):
            items = [mixed[f"{pre}/{g}"] for g, _ in groups]
            means = [i["mean"] or 0.0 for i in items]
            err = [
                [max(0.0, mm - (i["low"] if i["low"] is not None else mm)) for mm, i in zip(means, items)],
                [max(0.0, (i["high"] if i["high"] is not None else mm) - mm) for mm, i in zip(means, items)],
            ]
            ax.bar(x + off, means, 0.4, yerr=err, capsize=4, color=col, label=lab)
        ax.set_xticks(x, [lab for _, lab in groups], fontsize=9)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title(f"mixed training set: class '{mixed['class']}'", fontsize=10)
        fig.tight_layout()
        out["mixed"] = fig_data_uri(fig)
    return out


def memorisation_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, str]:
    if "memorisation" not in assets:
        return {}
    arrays = assets["memorisation"]
    out = {}
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
    for ax, (g, r, title) in zip(
        axes,
        (
            (arrays["gen_pix"], arrays["real_pix"], "pixels (contrast-normalised RMS)"),
            (arrays["gen_feat"], arrays["real_feat"], "domain features (Euclidean)"),
        ),
    ):
        hi = float(max(g.max(), r.max())) if len(g) and len(r) else 1.0
        bins = np.linspace(0, hi if hi > 0 else 1.0, 40)
        ax.hist(r, bins=bins, density=True, alpha=0.55, color=REAL_COLOUR, label="real test -> training set")
        ax.hist(g, bins=bins, density=True, alpha=0.55, color=GEN_COLOUR, label="generated -> training set")
        ax.axvline(float(np.percentile(r, 1)), color="k", ls="--", lw=1, label="near-copy threshold")
        ax.set_title(f"distance to the nearest training image: {title}", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out["nn_hist"] = fig_data_uri(fig)
    pairs = arrays["pairs"]
    if pairs:
        imgs = torch.stack([p[0] for p in pairs] + [p[1] for p in pairs])
        out["pairs"] = png_data_uri(_upscaled_grid(imgs, nrow=len(pairs)))
    return out


def _fid_figure(feats: dict[str, Any], names: list[str]) -> str:
    fig, ax = plt.subplots(figsize=(12, 3.5))
    x = np.arange(len(names))
    vals = [feats["per_class"][n].get("fid") or 0.0 for n in names]
    cis = [feats["per_class"][n].get("fid_ci") or [v, v] for v, n in zip(vals, names)]
    err = [
        [max(0.0, v - (c[0] if c[0] is not None else v)) for v, c in zip(vals, cis)],
        [max(0.0, (c[1] if c[1] is not None else v) - v) for v, c in zip(vals, cis)],
    ]
    ref = [feats["per_class"][n].get("reference_fid") or 0.0 for n in names]
    ax.bar(x - 0.2, vals, 0.4, yerr=err, capsize=3, color=GEN_COLOUR, label="generated vs real test")
    ax.bar(x + 0.2, ref, 0.4, color=REAL_COLOUR, label="real train vs real test (floor)")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("FID")
    ax.legend(fontsize=8)
    ax.set_title("intra-class FID (lower is better; bars: 95% bootstrap interval)", fontsize=10)
    fig.tight_layout()
    return fig_data_uri(fig)


GAIN_PNG = "augmentation_gain.png"


def gain_figure_png(
    gain: dict[str, Any], title: str | None = None, target: float | None = None
) -> bytes | None:
    """Accuracy difference to the baseline (points) against the ratio, one line per measured arm, 95% interval
    error bars; the no-augmentation reference as a dashed line, `target` (points) as a dotted one. PNG
    bytes, or None when nothing was measured."""
    arms = [a for a in gain.get("arms", []) if any("difference_points" in r for r in a.get("ratios", []))]
    if not arms:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    n_arms = len(arms)
    for i, a in enumerate(arms):
        pts = [
            r
            for r in a["ratios"]
            if "difference_points" in r and r["difference_points"].get("mean") is not None
        ]
        # Slight horizontal offsets keep overlapping error bars apart.
        xs = [r["ratio"] * (1 + 0.04 * (i - (n_arms - 1) / 2)) for r in pts]
        m = [r["difference_points"]["mean"] for r in pts]
        lo = [
            max(
                0.0,
                v
                - (r["difference_points"].get("low") if r["difference_points"].get("low") is not None else v),
            )
            for v, r in zip(m, pts)
        ]
        hi = [
            max(
                0.0,
                (r["difference_points"].get("high") if r["difference_points"].get("high") is not None else v)
                - v,
            )
            for v, r in zip(m, pts)
        ]
        ax.errorbar(xs, m, yerr=[lo, hi], marker="o", capsize=4, label=a["label"])
    ref = dig(gain, "reference", "difference_points", "mean")
    if ref is not None:
        ax.axhline(ref, color="#888", linestyle="--", linewidth=1, label="real only, no augmentation")
    ax.axhline(0.0, color="black", linewidth=1)
    if target is not None:
        ax.axhline(target, color="#c33", linestyle=":", linewidth=1.2, label=f"target (+{target:g} points)")
    ratios = gain.get("ratios") or []
    ax.set_xscale("log", base=2)
    ax.set_xticks(ratios, [f"{r:g}x" for r in ratios])
    ax.set_xlabel("synthetic images per real image (per class)")
    ax.set_ylabel("accuracy difference to the baseline (points)")
    ax.set_title(
        title
        or f"gain over {dig(gain, 'baseline', 'label') or 'the baseline'} (mean, 95% interval over seeds)",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def stats_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, Any]:
    return {"hist": _hist_figure(assets["stats"])} if "stats" in assets else {}


def features_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, Any]:
    return {"fid": _fid_figure(result["features"], result["classes"])}


def gain_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, Any]:
    png = gain_figure_png(result["augmentation_gain"])
    if png is None:
        return {}
    return {"gain_png": png, "gain": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}
