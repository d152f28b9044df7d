"""The learning curves' report: the table (OUT/<name>.md / .json), the plot, the grids and the paper's Table-2
gaps per class, from the evaluated snapshots that experiments/curves.py measures (never imported back)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaemsgan.data import ImageSet
from vaemsgan.utils.io import atomic_write_json, atomic_write_text, json_safe

# The paper's Table 2, per class (image_stats.STATISTICS names them).
TABLE2_STATISTICS = ("mean", "std", "entropy", "laplacian_var")
# Colour images also get what the grey statistics cannot see: each channel's mean (the colour balance) and the
# entropy of whole RGB values (docs/EVALUATION.md); `mean`, `entropy` and the Laplacian average the channels.
COLOUR_STATISTICS = ("mean_red", "mean_green", "mean_blue", "entropy_joint")


def _mean_ci(values: list[float]) -> dict[str, Any]:
    from vaemsgan.metrics.distances import mean_ci

    vals = [v for v in values if v is not None and not math.isnan(v)]
    if len(vals) < 2:
        m = vals[0] if vals else float("nan")
        return {"mean": m, "low": m, "high": m, "n": len(vals)}
    m, lo, hi = mean_ci(vals)
    return {"mean": m, "low": lo, "high": hi, "n": len(vals)}


def table2_gaps(
    class_stats: dict[str, dict[str, list[float]]], against: str = "real_train"
) -> dict[str, list[float]]:
    """{statistic: per-class gap % of the generated mean from the `against` real mean}."""
    gen, real = class_stats["generated"], class_stats[against]
    return {
        s: [100.0 * (g - r) / r if r else float("nan") for g, r in zip(gen[s], real[s])]
        for s in (*TABLE2_STATISTICS, *COLOUR_STATISTICS)
        if s in gen and s in real
    }


def largest_gap(gaps: list[float | None]) -> float | None:
    """The largest |gap| of the measured ones (None and NaN: a class without images), or None."""
    return max((abs(g) for g in gaps if g is not None and not math.isnan(g)), default=None)


def write_real_vs_generated(real: ImageSet, gen: ImageSet, path: Path, n: int = 8) -> None:
    """One row per class: `n` real images (seeded draw), a gap, then the class's first `n` generated images."""
    from PIL import Image

    from vaemsgan.utils.images import make_grid
    from vaemsgan.utils.io import atomic_write

    g = torch.Generator().manual_seed(0)
    rows = []
    for c in range(len(real.class_names)):
        r_idx = (real.labels == c).nonzero().flatten()
        r_idx = r_idx[torch.randperm(len(r_idx), generator=g)[:n]]
        g_idx = (gen.labels == c).nonzero().flatten()[:n]
        r_grid, g_grid = make_grid(real.images[r_idx], nrow=n), make_grid(gen.images[g_idx], nrow=n)
        gap = np.full((r_grid.shape[0], 8, r_grid.shape[2]), 255, np.uint8)
        rows.append(np.concatenate([r_grid, gap, g_grid[: r_grid.shape[0]]], axis=1))
    w = max(r.shape[1] for r in rows)  # a class with fewer than n images gives a shorter row
    img = np.concatenate(
        [np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    )
    img = img[..., 0] if img.shape[2] == 1 else img
    atomic_write(path, lambda f: Image.fromarray(img).save(f, format="PNG"))


# ---------------------------------------------------------------------------------------------- table
def summarise(points: list[dict[str, Any]], ref: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (run, mark): seed means with t-intervals where several training seeds exist."""
    trtr = sum(ref["trtr"]) / len(ref["trtr"])
    rows: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for p in points:
        rows.setdefault((p["model"], p["minutes"]), []).append(p)
    out = []
    for (model, minutes), ps in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        tstr_seedmeans = [sum(p["tstr"]) / len(p["tstr"]) for p in ps]
        row = {
            "model": model,
            "minutes": minutes,
            "training_seeds": len(ps),
            "steps": sum(p["step"] for p in ps) / len(ps),
            "images_per_s": _avg([p["images_per_s"] for p in ps]),
            "images_per_cpu_s": _avg([p.get("images_per_cpu_s") for p in ps]),
            "fid": _mean_ci([p["fid"] for p in ps])
            if len(ps) > 1
            else {"mean": ps[0]["fid"], "low": ps[0]["fid_ci"][0], "high": ps[0]["fid_ci"][1], "n": 1},
            "kid": _avg([p["kid"] for p in ps]),
            # One training seed: the interval is over classifier seeds; several: over training seeds.
            "tstr": _mean_ci(tstr_seedmeans) if len(ps) > 1 else _mean_ci(ps[0]["tstr"]),
            "trts": _avg([sum(p["trts"]) / len(p["trts"]) for p in ps]),
            "precision": _avg([p["precision"] for p in ps]),
            "recall": _avg([p["recall"] for p in ps]),
            "coverage": _avg([p["coverage"] for p in ps]),
            "laplacian_gap_pct": _avg([p["laplacian_gap_pct"] for p in ps]),
            "tstr_per_class": [
                _avg([p["tstr_per_class"][c] for p in ps]) for c in range(len(ps[0]["tstr_per_class"]))
            ],
        }
        gaps = [table2_gaps(p["class_statistics"]) for p in ps if "class_statistics" in p]
        row["table2_gap_pct"] = (
            {
                s: [_avg([g[s][c] for g in gaps]) for c in range(len(gaps[0][s]))]
                for s in gaps[0]
                if all(s in g for g in gaps)  # a point evaluated before a statistic existed lacks it
            }
            if gaps
            else None
        )
        row["tstr_over_trtr"] = row["tstr"]["mean"] / trtr
        row["trts_over_trtr"] = row["trts"] / trtr
        out.append(row)
    return out


def _avg(vals: list[Any]) -> float | None:
    v = [x for x in vals if x is not None]
    return sum(v) / len(v) if v else None


def _f(v: Any, fmt: str = ".1f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _domain_line(d: dict[str, Any] | None) -> list[str]:
    if not d:
        return []
    return [
        "",
        f"Domain features (FID, KID, precision/recall, density/coverage): the penultimate layer of the same "
        f"classifier trained on all {d['train_images']} real training images (seed 0, {d['steps']} steps); its "
        f"accuracy on the test split: {100 * d['test_accuracy']:.1f}%.",
    ]


def write_curves(
    rows: list[dict[str, Any]],
    ref: dict[str, Any],
    out: Path,
    meta: dict[str, Any],
    name: str = "curves",
    title: str = "Learning curves: quality against training CPU-minutes",
) -> dict[str, Any]:
    """OUT/<name>.md (table), <name>.json (every number), <name>.png (plot, log x)."""
    trtr = _mean_ci(ref["trtr"])
    trtr_all = _mean_ci(ref["trtr_all"])
    names = meta.get("class_names", [])
    lines = [
        f"# {title}",
        "",
        f"TRTR (same classifier, {ref['key']['per_class']} real images per class): "
        f"{100 * trtr['mean']:.1f}% [{100 * trtr['low']:.1f}, {100 * trtr['high']:.1f}]; "
        f"on all real training images: {100 * trtr_all['mean']:.1f}% "
        f"[{100 * trtr_all['low']:.1f}, {100 * trtr_all['high']:.1f}] "
        f"({ref['key']['seeds']} classifier seeds, {ref['key']['steps']} steps each).",
        *_domain_line(meta.get("domain_extractor")),
        "",
        "| model | CPU-min | seeds | steps | img per CPU-s | domain FID [95%] | KID | TSTR % [95%] | TSTR/TRTR | "
        "TRTS % | precision | recall | coverage | Laplacian gap % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f, t = r["fid"], r["tstr"]
        lines.append(
            f"| {r['model']} | {r['minutes']:g} | {r['training_seeds']} | {r['steps']:.0f} | "
            f"{_f(r['images_per_cpu_s'], '.0f')} | {f['mean']:.1f} [{f['low']:.1f}, {f['high']:.1f}] | "
            f"{_f(r['kid'], '.3g')} | "
            f"{100 * t['mean']:.1f} [{100 * t['low']:.1f}, {100 * t['high']:.1f}] | {r['tstr_over_trtr']:.2f} | "
            f"{_f(100 * r['trts'])} | {_f(r['precision'], '.2f')} | {_f(r['recall'], '.2f')} | "
            f"{_f(r['coverage'], '.2f')} | {_f(r['laplacian_gap_pct'], '+.0f')} |"
        )
    if names and rows:
        lines += ["", "TSTR recall per class (%), mean over classifier (and training) seeds:", ""]
        lines.append("| model | CPU-min | " + " | ".join(names) + " |")
        lines.append("|---|---|" + "---|" * len(names))
        for r in rows:
            lines.append(
                f"| {r['model']} | {r['minutes']:g} | "
                + " | ".join(_f(100 * v if v is not None else None, ".0f") for v in r["tstr_per_class"])
                + " |"
            )
    t2 = [r for r in rows if r.get("table2_gap_pct")]
    if names and t2:
        lines += [
            "",
            "Table-2 statistics per class: gap (%) of the generated images' mean from the real training images' "
            "(mean grey level, std, entropy, Laplacian variance, over all channels; colour images also each "
            "channel's mean and the joint RGB entropy; the last column the largest |gap| of the row):",
            "",
            "| model | CPU-min | statistic | " + " | ".join(names) + " | max abs |",
            "|---|---|---|" + "---|" * (len(names) + 1),
        ]
        for r in t2:
            for stat, gaps in r["table2_gap_pct"].items():
                worst = largest_gap(gaps)
                lines.append(
                    f"| {r['model']} | {r['minutes']:g} | {stat} | "
                    + " | ".join(_f(g, "+.0f") for g in gaps)
                    + f" | {_f(worst, '.0f')} |"
                )
    lines += ["", f"Machine: {meta.get('machine', {})}", ""]
    labels = meta.get("labels", {})
    if labels:
        lines[-2:-2] = ["Runs:", "", *[f"- `{k}`: {v}" for k, v in labels.items()], ""]
    atomic_write_text(out / f"{name}.md", "\n".join(lines))
    table = {
        "rows": rows,
        "trtr": trtr,
        "trtr_all": trtr_all,
        "reference": {k: v for k, v in ref.items() if k != "models"},
        **meta,
    }
    atomic_write_json(out / f"{name}.json", json_safe(table))
    plot_curves(rows, trtr["mean"], out / f"{name}.png")
    return table


def plot_curves(rows: list[dict[str, Any]], trtr: float, path: Path) -> None:
    """Four panels against CPU-minutes (log x), one line per model; intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vaemsgan.utils.io import atomic_write

    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8), constrained_layout=True)
    axes[0].set_yscale("log")  # FID and KID fall by orders of magnitude
    axes[1].set_yscale("log")
    panels = (
        ("domain FID (lower is better)", lambda r: r["fid"]),
        ("KID, domain features (lower is better)", lambda r: {"mean": r["kid"] or float("nan")}),
        ("TSTR / TRTR", lambda r: {k: v / trtr for k, v in r["tstr"].items() if k != "n"}),
        ("coverage", lambda r: {"mean": r["coverage"]}),
    )
    for ax, (title, get) in zip(axes, panels):
        for m in models:
            rs = [r for r in rows if r["model"] == m]
            xs = [r["minutes"] for r in rs]
            vals = [get(r) for r in rs]
            ys = [v["mean"] for v in vals]
            err = None
            if all("low" in v for v in vals):
                # A percentile bootstrap interval of FID need not contain the estimate (resampling duplicates
                # rows, which raises FID): at FID ~1 it lies wholly above it. Bars start at the point then.
                err = [
                    [max(0.0, y - v["low"]) for y, v in zip(ys, vals)],
                    [max(0.0, v["high"] - y) for y, v in zip(ys, vals)],
                ]
            ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, capsize=2, label=m)
        if title.startswith("TSTR"):  # 1 = as good as the same number of real images, on any data
            ax.axhline(1.0, color="grey", lw=0.7, ls="--")
        ax.set_xscale("log")
        marks = sorted({r["minutes"] for r in rows})
        ax.set_xticks(marks, [f"{m:g}" for m in marks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training CPU-minutes")
        ax.grid(alpha=0.3, which="both")
    if axes[0].lines:
        axes[0].legend(fontsize=8)
    else:  # a table written before any snapshot was evaluated
        axes[0].text(0.5, 0.5, "no snapshot evaluated yet", ha="center", transform=axes[0].transAxes)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)


def grids_image(plans: list[Any], marks: list[float], path: Path) -> None:
    """OUT/curves-grids.png: for each run a row block of its snapshot grids left to right, each grid under its
    mark ("5 min") and the block under the run's name; in colour when any grid is (grey runs stay grey)."""
    from PIL import Image, ImageDraw

    from vaemsgan.checkpoint import snapshot_path
    from vaemsgan.data.check import GREY_MODES
    from vaemsgan.utils.io import atomic_write

    blocks: list[tuple[str, list[tuple[str, Image.Image]]]] = []
    for plan in plans:
        tiles = []
        for m in marks:
            p = snapshot_path(plan.folder / "train", m).with_suffix(".png")
            if p.is_file():
                with Image.open(p) as im:
                    tiles.append((f"{m:g} CPU-min", im.copy()))
        if tiles:
            blocks.append((plan.name, tiles))
    if not blocks:
        return
    mode = "L" if all(t.mode in GREY_MODES for _, ts in blocks for _, t in ts) else "RGB"
    label_h, gap = 12, 4  # a line of PIL's built-in bitmap font; white space between grids and blocks
    width = max(sum(t.width + gap for _, t in ts) for _, ts in blocks)
    height = sum(2 * label_h + max(t.height for _, t in ts) + gap for _, ts in blocks)
    canvas = Image.new(mode, (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for name, tiles in blocks:
        draw.text((2, y), name, fill="black")
        x, y = 0, y + label_h
        for label, tile in tiles:
            draw.text((x + 2, y), label, fill="black")
            canvas.paste(tile.convert(mode), (x, y + label_h))
            x += tile.width + gap
        y += label_h + max(t.height for _, t in tiles) + gap
    atomic_write(path, lambda f: canvas.save(f, format="PNG"))
