"""The HTML report: one self-contained file (plain HTML + CSS, images embedded as base64 PNG), and the verdict.

`make_figures(result, assets)` draws every picture (matplotlib, Agg backend) as a data URI;
`render_html(result, figures)` lays out the numbers and pictures; `verdict(result)` turns the numbers into
short sentences. A small script in the page writes `images-ok N/N` into #render-check once every <img> has
decoded (naturalWidth > 0), and `js-error` if a script error occurs, so a headless browser can check it.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from vaemsgan.evaluation.memorisation import TWIN_WARN_SHARE  # noqa: E402
from vaemsgan.metrics import STATISTICS  # noqa: E402
from vaemsgan.utils.images import make_grid  # noqa: E402
from vaemsgan.utils.io import atomic_write_text  # noqa: E402

STAT_LABELS = {
    "mean": "mean (brightness)",
    "std": "std (contrast)",
    "entropy": "entropy, bits/channel",
    "entropy_joint": "joint entropy, bits",
    "laplacian_var": "Laplacian variance (sharpness)",
    "laplacian_abs": "mean |Laplacian|",
}
REAL_COLOUR, GEN_COLOUR = "#3b6ea5", "#d9822b"


# ------------------------------------------------------------------------------------------ helpers


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


def _num(v: Any, fmt: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, fmt)


def _ci_text(d: dict[str, Any] | None, fmt: str = ".3f") -> str:
    """'0.845 [0.832, 0.858]' (or 'n = 1' when there is no interval)."""
    if not d or d.get("mean") is None:
        return "–"
    if d.get("n", 0) <= 1:
        return f"{_num(d['mean'], fmt)} (n = 1)"
    return f"{_num(d['mean'], fmt)} [{_num(d['low'], fmt)}, {_num(d['high'], fmt)}]"


def _e(s: Any) -> str:
    return html.escape(str(s))


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    h = "".join(f"<th>{_e(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(x)}</td>" for x in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


# ------------------------------------------------------------------------------------------ verdict


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return not (a["low"] > b["high"] or b["low"] > a["high"])


def judge_failed(trtr: float, n_classes: int) -> bool:
    """Is a real-trained classifier's accuracy `trtr` near chance: within a tenth of the way from chance
    (1 / n_classes) to perfect?"""
    if n_classes < 2:
        return False
    chance = 1.0 / n_classes
    return trtr <= chance + 0.1 * (1.0 - chance)


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    """Plain-language conclusions computed from the numbers: {'overall': [...], 'per_class': {name: text}}."""
    lines: list[str] = []
    cv = result.get("classifier") or {}
    table = cv.get("table") or {}
    trtr, tstr, trts = (_get(table, k, "mean") for k in ("TRTR", "TSTR", "TRTS"))
    n_classes = len(result.get("classes") or [])
    if trtr is not None and judge_failed(trtr, n_classes):
        # A judge at chance tells nothing about the generated images: say so, praise nothing.
        lines.append(
            f"The judge itself failed: a classifier trained on real images reaches only {trtr:.2f} on real test "
            f"images, near chance (1/{n_classes} = {1 / n_classes:.2f}), so TSTR and TRTS say nothing about the "
            "generated images. Check the real data (enough images per class? the right test split?) and the "
            "classifier budget (--classifier-steps)."
        )
        trtr = tstr = trts = None
    if trtr and tstr is not None:
        r = tstr / trtr
        qual = (
            "classify almost like real ones"
            if r >= 0.9
            else "carry much of the class information but do not replace real images"
            if r >= 0.7
            else "are a poor substitute for real training images"
        )
        lines.append(
            f"A classifier trained only on generated images reaches {tstr:.2f} accuracy on real test images, "
            f"{r:.2f} of the {trtr:.2f} reached with as many real images (TSTR / TRTR): generated images {qual}."
        )
    if trtr and trts is not None:
        looks = (
            "they look like their class to it"
            if trts >= 0.9 * trtr
            else "many do not look like their class to it"
        )
        lines.append(
            f"A classifier trained on real images labels the generated images correctly {trts:.0%} of the time "
            f"(TRTS; {trtr:.0%} on real test images): {looks}."
        )
    sweep = [s for s in cv.get("sweep", []) if "accuracy" in s]
    base = next((s for s in sweep if s["ratio"] == 0.0), None)
    extra = [s for s in sweep if s["ratio"] > 0]
    if base and extra:
        best = max(extra, key=lambda s: s["accuracy"]["mean"])
        diff = (best["accuracy"]["mean"] - base["accuracy"]["mean"]) * 100
        sig = (
            "the 95% intervals overlap, so this is within seed noise"
            if _overlap(best["accuracy"], base["accuracy"])
            else "the 95% intervals do not overlap"
        )
        lead = "Adding generated images to all real training images" + ("" if diff > 0 else " does not help")
        lines.append(
            f"{lead}: best at {best['ratio']:g}x the real count, "
            f"{best['accuracy']['mean']:.3f} vs {base['accuracy']['mean']:.3f} with real images only "
            f"({diff:+.1f} points; {sig})."
        )
    lines.extend((result.get("augmentation_gain") or {}).get("verdict_lines", []))
    mixed = cv.get("mixed")
    if mixed and _get(mixed, "mixed/real_test_class", "mean") is not None:
        lines.append(
            f"Replacing {mixed['replaced']} of the {mixed['of']} real training images of '{mixed['class']}' by "
            f"generated ones: accuracy on its real test images {mixed['mixed/real_test_class']['mean']:.2f} "
            f"(real only: {mixed['baseline/real_test_class']['mean']:.2f}), on its generated test images "
            f"{mixed['mixed/gen_test_class']['mean']:.2f} ({mixed['baseline/gen_test_class']['mean']:.2f}), on the "
            f"other classes {mixed['mixed/real_test_others']['mean']:.2f} ({mixed['baseline/real_test_others']['mean']:.2f})."
        )
    feats = result.get("features") or {}
    ov = feats.get("overall") or {}
    if ov.get("fid") is not None:
        ref = _get(feats, "reference_real_vs_real", "fid")
        ci = ov.get("fid_ci")
        ci_s = f" (95% bootstrap interval {ci[0]:.1f} to {ci[1]:.1f})" if ci and None not in ci else ""
        ref_s = (
            f"; real training vs real test images at the same size give {ref:.1f}, the floor"
            if ref is not None
            else ""
        )
        lines.append(f"FID in {feats.get('extractor')} features: {ov['fid']:.1f}{ci_s}{ref_s}.")
        if ov.get("precision") is not None and ov.get("recall") is not None:
            lines.append(
                f"Precision {ov['precision']:.2f} (share of generated images that fall among real ones) and "
                f"recall {ov['recall']:.2f} (share of real images the generated ones cover)."
            )
        if ov.get("warning"):
            lines.append(ov["warning"])
    mem = result.get("memorisation") or {}
    if mem.get("pixels"):
        p = mem["pixels"]
        lines.append(
            f"{p['near_copy_share']:.1%} of the generated images are near-copies of a training image (closer in "
            f"pixels than the closest 1% of unseen real images are; {p['exact_copies']} exact copies). Median "
            f"nearest-training-image distance: {p['gen_nn_median']:.1f} grey levels RMS for generated, "
            f"{p['real_nn_median']:.1f} for real test images."
        )
    rp = mem.get("repeats") or {}
    if rp.get("share") is not None and not math.isnan(rp["share"]):
        worst = max(
            ((n, v) for n, v in rp["per_class"].items() if not math.isnan(v)),
            key=lambda t: t[1],
            default=None,
        )
        lines.append(
            f"{rp['share']:.0%} of the generated images have a near-twin in their class (another generated image "
            f"closer than {rp['fraction']:g} of the real images' typical nearest-other distance; real training "
            f"images: {rp['real_training_share']:.0%})"
            + (
                f": the generator repeats itself within classes (worst: {worst[0]}, {worst[1]:.0%})."
                if rp["share"] > TWIN_WARN_SHARE and worst is not None
                else "."
            )
        )
    per_class: dict[str, str] = {}
    for name in result.get("classes", []):
        bits = []
        pc = _get(cv, "per_class", name) or {}
        if pc.get("TRTR") and pc.get("TSTR") is not None:
            r = pc["TSTR"] / pc["TRTR"]
            how = (
                "classify like real ones"
                if r >= 0.9
                else "classify somewhat worse than real ones"
                if r >= 0.7
                else "classify much worse than real ones"
            )
            bits.append(f"generated images {how} (TSTR {r:.2f} of TRTR)")
        rows = {r["statistic"]: r for r in _get(result, "stats", "per_class") or [] if r["class"] == name}
        lap = rows.get("laplacian_var")
        if lap and lap.get("gap_pct") is not None:
            g = lap["gap_pct"]
            bits.append(f"sharpness {abs(g):.0f}% {'below' if g < 0 else 'above'} real")
        sd = rows.get("std")
        if sd and sd.get("gap_pct") is not None and abs(sd["gap_pct"]) >= 10:
            bits.append(
                f"contrast {abs(sd['gap_pct']):.0f}% {'below' if sd['gap_pct'] < 0 else 'above'} real"
            )
        div = _get(mem, "diversity", name)
        if div and div.get("ratio") is not None:
            ratio = div["ratio"]
            if ratio < 0.8:
                bits.append(f"less varied than real images (diversity {ratio:.2f} of real)")
            elif ratio > 1.25:
                bits.append(
                    f"more varied than real images (diversity {ratio:.2f} of real, often a sign of noise)"
                )
            else:
                bits.append(f"about as varied as real images (diversity {ratio:.2f} of real)")
        if bits:
            per_class[name] = f"class '{name}': " + "; ".join(bits) + "."
    for part, why in (result.get("skipped_parts") or {}).items():
        lines.append(f"Not measured: the {part} part was skipped, {why}.")
    if result.get("classes_only_real"):
        lines.append(
            f"No generated images for: {', '.join(result['classes_only_real'])} (left out of every number)."
        )
    if result.get("classes_only_generated"):
        lines.append(
            f"Generated classes with no real counterpart: {', '.join(result['classes_only_generated'])} (left out)."
        )
    return {"overall": lines, "per_class": per_class}


# ------------------------------------------------------------------------------------------ figures


def _class_grids(real: Any, gen: Any, names: list[str], n: int = 8) -> dict[str, str]:
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


def _classifier_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, str]:
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


def _memorisation_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, str]:
    if "memorisation" not in assets:
        return {}
    arrays = assets["memorisation"]
    out = {}
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
    for ax, (g, r, title) in zip(
        axes,
        (
            (arrays["gen_pix"], arrays["real_pix"], "pixels (RMS grey levels)"),
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
    ref = _get(gain, "reference", "difference_points", "mean")
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
        or f"gain over {_get(gain, 'baseline', 'label') or 'the baseline'} (mean, 95% interval over seeds)",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _stats_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, Any]:
    return {"hist": _hist_figure(assets["stats"])} if "stats" in assets else {}


def _features_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, Any]:
    return {"fid": _fid_figure(result["features"], result["classes"])}


def _gain_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, Any]:
    png = gain_figure_png(result["augmentation_gain"])
    if png is None:
        return {}
    return {"gain_png": png, "gain": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}


def make_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, Any]:
    """Every picture of the report, as data URIs: the class grids, then each part's (SECTIONS)."""
    figs: dict[str, Any] = {"grids": _class_grids(assets["real"], assets["gen"], result["classes"])}
    for section in SECTIONS:
        if result.get(section.part):
            figs.update(section.figures(result, assets))
    return figs


# ------------------------------------------------------------------------------------------ HTML

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em} th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2} td:first-child,th:first-child{text-align:left}
.stats td:nth-child(2){text-align:left}
.verdict{background:#f6f9fc;border-left:4px solid #3b6ea5;padding:.6em 1.2em}
.note{color:#555;font-size:.9em} .warn{background:#fff6e5;border-left:4px solid #d9822b;padding:.4em 1em}
.grid td{vertical-align:middle;text-align:left} img{image-rendering:pixelated;max-width:100%}
.small{font-size:.8em;color:#666}
"""

SCRIPT = """
<script>
(function(){
  var errors = 0;
  window.addEventListener('error', function(){ errors += 1; });
  function check(){
    var imgs = document.images, ok = 0;
    for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok += 1; }
    var el = document.getElementById('render-check');
    el.textContent = (errors ? 'js-error ' : '') + 'images-ok ' + ok + '/' + imgs.length;
    el.setAttribute('data-ok', (!errors && ok === imgs.length) ? 'yes' : 'no');
  }
  window.addEventListener('load', check);
})();
</script>
"""


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_e(alt)}">' if uri else ""


def _stats_section(result: dict[str, Any], figs: dict[str, Any]) -> str:
    st = result["stats"]
    head = ["class", "statistic", "real mean", "generated mean", "gap %", "W1", "KS"]
    rows = [
        [
            r["class"],
            STAT_LABELS[r["statistic"]],
            _num(r["real_mean"], ".2f"),
            _num(r["gen_mean"], ".2f"),
            _num(r["gap_pct"], "+.1f"),
            _num(r["w1"], ".3g"),
            _num(r["ks"], ".3f"),
        ]
        for r in st["overall"] + st["per_class"]
    ]
    return (
        "<h2>3. Image statistics (the paper's Table 2)</h2>"
        f"<p>Per image on 0-255 values, then averaged per class: {len(result['classes'])} classes, "
        f"{st['n_real']} real training images, {st['n_gen']} generated images. gap % = (generated - real) / real. "
        "W1 (Wasserstein-1, in the statistic's units) and KS (Kolmogorov-Smirnov, 0 = same distribution, 1 = no "
        "overlap) compare the whole per-image distributions, not only the means. Entropy is per channel (at most 8 "
        "bits), so it is not comparable digit for digit with the paper's values above 8.</p>"
        + _img(figs.get("hist", ""), "histograms of the statistics")
        + _table(head, rows, cls="stats")
    )


def _features_section(result: dict[str, Any], figs: dict[str, Any]) -> str:
    f = result["features"]
    ov, ref = f["overall"], f["reference_real_vs_real"]

    def row(name: str, d: dict[str, Any]) -> list[str]:
        ci = d.get("fid_ci")
        return [
            name,
            f"{d.get('n_real', 0)} / {d.get('n_gen', 0)}",
            _num(d.get("fid"), ".2f") + (f" [{_num(ci[0], '.2f')}, {_num(ci[1], '.2f')}]" if ci else ""),
            _num(d.get("reference_fid"), ".2f"),
            f"{_num(d.get('kid_mean'), '.4f')} ± {_num(d.get('kid_std'), '.4f')}",
            _num(d.get("precision"), ".2f"),
            _num(d.get("recall"), ".2f"),
            _num(d.get("density"), ".2f"),
            _num(d.get("coverage"), ".2f"),
        ]

    ov_row = row("all classes", ov)
    ov_row[3] = _num(ref.get("fid"), ".2f")
    rows = [ov_row] + [row(n, f["per_class"][n]) for n in result["classes"]]
    head = [
        "set",
        "n real / gen",
        "FID [95% bootstrap]",
        "floor FID",
        "KID ± std",
        "precision",
        "recall",
        "density",
        "coverage",
    ]
    info = f.get("extractor_info", {})
    ext = (
        f"a classifier trained on the real training images ({_num(f.get('extractor_real_test_accuracy'), '.1%')} "
        f"accuracy on real test images), features from its penultimate layer ({info.get('classifier', {}).get('feature_dim')}-d); "
        f"{'loaded from the cache' if info.get('cache_hit') else 'trained now and cached'}"
        if f["extractor"] == "domain"
        else "the standard FID Inception-v3 (2048-d pool features)"
    )
    warns = {d.get("warning") for d in [ov, *f["per_class"].values()] if d.get("warning")}
    warn = (
        '<p class="warn">'
        + _e(ov.get("warning") or next(iter(warns)))
        + " Per-class sets are smaller still: read per-class FIDs only against their floor.</p>"
        if warns
        else ""
    )
    return (
        "<h2>4. Feature-space metrics</h2>"
        f"<p>Features: {_e(ext)}. Real test images (never seen by the extractor) against generated images, "
        "matched to the same number per class. <b>floor FID</b>: real training vs real test images at the same sizes, "
        "what a perfect generator would get. FID and KID: lower is better. Precision: share of generated images "
        "inside the real images' k-NN manifold (fidelity); recall: share of real images inside the generated "
        "manifold (diversity); density (can exceed 1) and coverage: the same ideas, robust to outliers.</p>"
        + warn
        + _table(head, rows)
        + _img(figs.get("fid", ""), "per-class FID")
    )


def _classifier_section(result: dict[str, Any], figs: dict[str, Any]) -> str:
    cv = result["classifier"]
    c = cv["classifier"]
    parts = [
        "<h2>5. Classifier cross-validation</h2>",
        f"<p>A VGG-style classifier ({c['depth']} blocks of {c['convs_per_block']} conv3x3-BN-ReLU + max pool, width "
        f"{c['width']} doubling to {c['max_width']}, {c['feature_dim']}-d penultimate layer), trained for a fixed "
        f"{c['steps']} steps of batch {c['batch_size']} with random crops"
        f"{' and horizontal flips' if c['flip'] else ''}, {cv['seeds']} seeds; numbers are mean [95% interval "
        "over seeds]. TRTR: trained on real, tested on real; TRTS: trained on real, tested on generated; TSTR "
        "(Classification Accuracy Score): trained on generated, tested on real; TSTS: trained and tested on "
        f"generated. Real- and generated-trained classifiers see the same number of images per class "
        f"({', '.join(f'{k}: {v}' for k, v in list(cv['train_per_class'].items())[:4])}{', ...' if len(cv['train_per_class']) > 4 else ''}); "
        f"test sets: {cv['n_real_test']} real, {cv['n_gen_test']} held-out generated images.</p>",
    ]
    if "table" in cv:
        parts.append(_table(["experiment", "accuracy"], [[k, _ci_text(v)] for k, v in cv["table"].items()]))
        parts.append(_img(figs.get("crossval", ""), "cross-validation accuracies"))
    mixed = cv.get("mixed")
    if mixed and "mixed/real_test_class" in mixed:
        parts.append(
            f"<h3>Mixed training set (the paper's 500 + 500 experiment)</h3><p>{mixed['replaced']} of the "
            f"{mixed['of']} real training images of class '{_e(mixed['class'])}' replaced by generated ones; every "
            "other class unchanged. Compared with the classifier trained on all real images.</p>"
        )
        rows = [
            [lab, _ci_text(mixed[f"baseline/{k}"]), _ci_text(mixed[f"mixed/{k}"])]
            for k, lab in (
                ("real_test_class", "real test images of this class"),
                ("gen_test_class", "generated test images of this class"),
                ("real_test_others", "real test images of the other classes"),
            )
        ]
        parts.append(_table(["accuracy on", "real only", "half replaced"], rows))
        parts.append(_img(figs.get("mixed", ""), "mixed experiment"))
    if cv.get("sweep"):
        parts.append(
            "<h3>Augmentation sweep</h3><p>All real training images plus generated ones (ratio = generated / real "
            "per class), accuracy on real test images.</p>"
        )
        rows = [
            [
                "real only" if s["ratio"] == 0 else f"+{s['ratio']:g}x",
                s["n_generated"],
                _ci_text(s.get("accuracy")) if "accuracy" in s else "skipped: " + s["skipped"],
            ]
            for s in cv["sweep"]
        ]
        parts.append(_table(["training set", "generated images", "accuracy"], rows))
        parts.append(_img(figs.get("sweep", ""), "augmentation sweep"))
    return "".join(parts)


def _diff_text(d: dict[str, Any] | None) -> str:
    """'+2.1 [0.4, 3.8]' points (or 'n = 1')."""
    return _ci_text(d, "+.1f")


def _gain_section(result: dict[str, Any], figs: dict[str, Any]) -> str:
    g = result["augmentation_gain"]
    pol = g["policy"]
    base, ref = g["baseline"], g["reference"]
    policy_text = (
        f"random crops of the image padded by {pol['crop_pad']} px"
        + (", horizontal flips" if pol["flip"] else " (no flips)")
        + (
            f", rotation within ±{pol['rotate_degrees']:g}° and scale {pol['scale'][0]:g}-{pol['scale'][1]:g}"
            if pol["rotate_degrees"] or pol["scale"] != [1.0, 1.0]
            else ""
        )
    )
    parts = [
        "<h2>Augmentation gain</h2>",
        f"<p>Does adding synthetic images help a classifier on the real test images ({g['n_real_test']}) beyond "
        f"the augmentation one would use anyway? Baseline: <b>{_e(base['label'])}</b> ({_e(pol['name'])} policy: "
        f"{_e(policy_text)}). Every synthetic arm adds r synthetic images per real training image of each class "
        f"and is trained with the same policy, the same classifier, steps and seeds ({g['seeds']}), so only the "
        "data differ. Difference = arm minus baseline in accuracy points, paired by classifier seed: mean "
        "[95% interval over seeds]. Definitions: docs/EVALUATION.md.</p>",
        f'<p class="verdict">{_e(g["verdict"])}</p>',
    ]
    rows = [
        [ref["label"], "-", "-", _ci_text(ref["accuracy"]), _diff_text(ref["difference_points"])],
        [base["label"] + " (baseline)", "-", "-", _ci_text(base["accuracy"]), "0"],
    ]
    for a in g["arms"]:
        if "skipped" in a:
            rows.append([a["label"], "-", "-", "skipped: " + a["skipped"], "-"])
            continue
        for r in a["ratios"]:
            if "skipped" in r:
                rows.append(
                    [a["label"], f"{r['ratio']:g}x", r["n_generated"], "skipped: " + r["skipped"], "-"]
                )
            else:
                rows.append(
                    [
                        a["label"],
                        f"{r['ratio']:g}x",
                        r["n_generated"],
                        _ci_text(r["accuracy"]),
                        _diff_text(r["difference_points"]),
                    ]
                )
    parts.append(_table(["arm", "ratio", "synthetic images", "accuracy", "difference (points)"], rows))
    parts.append(_img(figs.get("gain", ""), "accuracy difference to the baseline against the ratio"))
    names = result["classes"]
    pc_rows = [
        [
            "real only, no augmentation",
            "-",
            *[_num(_get(ref, "per_class_difference_points", n, "mean"), "+.1f") for n in names],
        ]
    ]
    for a in g["arms"]:
        for r in a.get("ratios", []):
            if "per_class_difference_points" in r:
                pc_rows.append(
                    [
                        a["label"],
                        f"{r['ratio']:g}x",
                        *[_num(r["per_class_difference_points"][n]["mean"], "+.1f") for n in names],
                    ]
                )
    base_pc = ", ".join(f"{n} {_num(base['per_class'].get(n), '.2f')}" for n in names)
    parts.append(
        "<h3>Per class: accuracy difference to the baseline (points, mean over seeds)</h3>"
        f"<p>Baseline per-class accuracy: {_e(base_pc)}. "
        "Positive: the arm helps that class; negative: it hurts. Intervals per class are in metrics.json.</p>"
    )
    parts.append(_table(["arm", "ratio", *names], pc_rows))
    return "".join(parts)


def _memorisation_section(result: dict[str, Any], figs: dict[str, Any]) -> str:
    m = result["memorisation"]
    rows = [
        [
            space,
            _num(m[k]["threshold"], ".3g"),
            f"{m[k]['near_copy_share']:.2%} ({m[k]['near_copies']})",
            m[k]["exact_copies"],
            _num(m[k]["gen_nn_median"], ".3g"),
            _num(m[k]["real_nn_median"], ".3g"),
        ]
        for k, space in (("pixels", "pixels (RMS grey levels)"), ("features", "domain features"))
    ]
    twins = (m.get("repeats") or {}).get("per_class", {})
    div = [
        [n, _num(d["real"], ".3g"), _num(d["gen"], ".3g"), _num(d["ratio"], ".2f"), _num(twins.get(n), ".0%")]
        for n, d in m["diversity"].items()
    ]
    pairs = ", ".join(f"{p['class']} {p['pixel_rms']:.1f}" for p in m["closest_pairs"])
    return (
        "<h2>6. Memorisation and diversity</h2>"
        f"<p>For each of the {m['n_gen']} generated images, the distance to its nearest image among the "
        f"{m['n_train']} training images; the reference is the same distance for the {m['n_reference']} real test "
        "images (real images that were never trained on). A generated image is a <b>near-copy</b> when it is at "
        "least as close to a training image as the closest 1% of the real test images are (threshold = 1st "
        "percentile of their distances).</p>"
        + _table(
            [
                "space",
                "threshold",
                "near-copies",
                "exact copies",
                "median NN distance, generated",
                "median, real test",
            ],
            rows,
        )
        + _img(figs.get("nn_hist", ""), "nearest-neighbour distances")
        + "<h3>The closest generated images (top row) and their nearest training images (bottom row)</h3>"
        + _img(figs.get("pairs", ""), "closest pairs")
        + f'<p class="small">class and RMS pixel distance, left to right: {_e(pairs)}</p>'
        + "<h3>Diversity per class</h3><p>Mean Euclidean distance between the domain features of two images of "
        "the class (all pairs, up to 500 images); ratio = generated / real. Much below 1: the generator repeats "
        "itself (mode collapse); well above 1: noisy or off-class images. A mean distance hardly moves when a "
        "part of the samples repeat: the <b>twin share</b> is the share of generated images whose nearest other "
        "generated image of the class is closer than 0.4 of the median such distance among as many real test "
        "images (real images: about 0).</p>"
        + _table(["class", "real", "generated", "ratio", "twin share"], div)
    )


def render_html(result: dict[str, Any], figs: dict[str, Any]) -> str:
    """The whole page as one string."""
    names = result["classes"]
    v = result.get("verdict", {"overall": [], "per_class": {}})
    tm = result.get("timings_s", {})
    headline = []
    t = _get(result, "classifier", "table") or {}
    for k in ("TRTR", "TRTS", "TSTR", "TSTS"):
        if k in t:
            headline.append([k, _ci_text(t[k])])
    fo = _get(result, "features", "overall") or {}
    if fo.get("fid") is not None:
        ci = fo.get("fid_ci")
        headline.append(
            ["FID", _num(fo["fid"], ".2f") + (f" [{_num(ci[0], '.2f')}, {_num(ci[1], '.2f')}]" if ci else "")]
        )
        headline.append(
            [
                "FID floor (real vs real)",
                _num(_get(result, "features", "reference_real_vs_real", "fid"), ".2f"),
            ]
        )
    mem = _get(result, "memorisation", "pixels")
    if mem:
        headline.append(["near-copies (pixels)", f"{mem['near_copy_share']:.2%}"])
    counts = result["counts"]
    count_rows = [[n, counts[n]["real_train"], counts[n]["real_test"], counts[n]["generated"]] for n in names]
    grid_rows = "".join(
        f"<tr><td>{_e(n)}</td><td>{_img(figs['grids'][n]['real'], 'real ' + n)}</td>"
        f"<td>{_img(figs['grids'][n]['gen'], 'generated ' + n)}</td></tr>"
        for n in names
    )
    one_sided = ""
    if result.get("classes_only_real") or result.get("classes_only_generated"):
        one_sided = (
            '<p class="warn">Classes on one side only (left out of every number): real only: '
            f"{_e(', '.join(result['classes_only_real']) or '-')}; generated only: "
            f"{_e(', '.join(result['classes_only_generated']) or '-')}.</p>"
        )
    body = [
        "<h1>vaemsgan evaluation report</h1>",
        f'<p class="note">Real: {_e(result["real_source"])} (test images: {_e(result["test_images"])}). '
        f"Generated: {_e(result['generated_source'])}. {result['resolution']} px, {result['channels']} channel(s), "
        f"{len(names)} classes. Metric definitions: docs/EVALUATION.md.</p>",
        '<p class="small" id="render-check" data-ok="pending">images not checked yet</p>',
        one_sided,
        '<h2>1. Verdict</h2><div class="verdict"><ul>'
        + "".join(f"<li>{_e(x)}</li>" for x in v["overall"])
        + "</ul><ul>"
        + "".join(f"<li>{_e(x)}</li>" for x in v["per_class"].values())
        + "</ul></div>",
        _table(["headline", "value"], headline) if headline else "",
        "<h2>2. Images: real (left) and generated (right), 8 random images per class</h2>",
        f'<table class="grid"><thead><tr><th>class</th><th>real</th><th>generated</th></tr></thead><tbody>{grid_rows}</tbody></table>',
        _table(["class", "real training", "real test", "generated"], count_rows),
    ]
    body += [section.html(result, figs) for section in SECTIONS if result.get(section.part)]
    body.append(
        "<h2>7. Wall time per part</h2>"
        + _table(["part", "seconds"], [[k, _num(s, ".1f")] for k, s in tm.items()])
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>vaemsgan evaluation</title>'
        f"<style>{CSS}</style></head><body>" + "\n".join(body) + SCRIPT + "</body></html>\n"
    )


@dataclass(frozen=True)
class Section:
    """One evaluation part's share of the report, drawn from the part's results (`result[part]`) alone:
    its pictures (from the results and the arrays the part returned) and its HTML. A new part adds one."""

    part: str
    figures: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]  # (result, assets) -> figures
    html: Callable[[dict[str, Any], dict[str, Any]], str]  # (result, figures) -> HTML


# In the order of the page.
SECTIONS = (
    Section("stats", _stats_figures, _stats_section),
    Section("features", _features_figures, _features_section),
    Section("classifier", _classifier_figures, _classifier_section),
    Section("augmentation_gain", _gain_figures, _gain_section),
    Section("memorisation", _memorisation_figures, _memorisation_section),
)


def write_report(result: dict[str, Any], assets: dict[str, Any], out: str | Path) -> Path:
    """Draw the figures and write out/report.html atomically."""
    path = Path(out) / "report.html"
    atomic_write_text(path, render_html(result, make_figures(result, assets)))
    return path
