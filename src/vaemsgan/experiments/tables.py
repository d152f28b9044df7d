"""Results tables (Markdown + JSON) and side-by-side sample grids for the experiments of `reproduce`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaemsgan.experiments.registry import ExperimentSpec
from vaemsgan.utils.io import atomic_write_json, atomic_write_text

PAPER_STATS = ("mean", "std", "entropy", "laplacian_var")  # the four columns of the paper's Table 2


def _f(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


def _pct(ci: dict[str, Any] | None) -> str:
    """An accuracy with its interval over classifier seeds, in percent."""
    if not ci or ci.get("mean") is None:
        return "-"
    if ci.get("n", 1) > 1:
        return f"{100 * ci['mean']:.1f} [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]"
    return f"{100 * ci['mean']:.1f} (n=1)"


def _mean_ci(values: Sequence[float]) -> tuple[float, float, float] | None:
    from vaemsgan.metrics import mean_ci

    vals = [v for v in values if v is not None and math.isfinite(v)]
    return mean_ci(vals) if vals else None


def _group(results: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Results of the same run spec (different training seeds) together, in the spec order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        base = r["run"].split("-seed")[0] if r.get("seed") else r["run"]
        groups.setdefault(base, []).append(r)
    return list(groups.values())


def _overall(r: dict[str, Any], stat: str) -> dict[str, Any] | None:
    for row in (r.get("eval", {}).get("stats") or {}).get("overall", []):
        if row["statistic"] == stat:
            return row
    return None


def summarise(group: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row: means over training seeds (with t-intervals when there are several)."""
    first = group[0]
    row: dict[str, Any] = {
        "run": first["run"],
        "label": first["label"],
        "preset": first["preset"],
        "overrides": first["overrides"],
        "seeds": [r["seed"] for r in group],
        "steps": [r["train"]["steps"] for r in group],
        "train_wall_s": [r["train"]["wall_s"] for r in group],
        "train_cpu_s": [r["train"]["cpu_s"] for r in group],
        "eval_s": [sum((p.get("seconds") or 0) for p in r["eval"].values()) for r in group],
    }
    fids = [r["eval"]["fid"]["overall"]["fid"] for r in group if "fid" in r["eval"]]
    if fids:
        row["fid"] = _mean_ci(fids)
        row["fid_values"] = fids
        row["fid_boot_ci"] = first["eval"]["fid"]["overall"]["fid_ci"]  # first seed's bootstrap interval
        row["fid_floor"] = first["eval"]["fid"]["reference_real_vs_real"]["fid"]
    for part in ("tstr", "crossval"):
        if part in first["eval"]:
            tables = [r["eval"][part]["table"] for r in group]
            for k in ("TRTR", "TRTS", "TSTR", "TSTS"):
                vals = [t[k]["mean"] for t in tables]
                row[k] = first["eval"][part]["table"][k] if len(group) == 1 else _seed_ci(vals)
            if part == "crossval" and "mixed" in first["eval"][part]:
                row["mixed"] = first["eval"][part]["mixed"]
    if "stats" in first["eval"]:
        row["stats"] = {}
        for s in PAPER_STATS:
            rows = [_overall(r, s) for r in group]
            row["stats"][s] = {
                "real": rows[0]["real_mean"] if rows[0] else None,
                "gen": _mean_ci([x["gen_mean"] for x in rows if x])[0] if any(rows) else None,
                "gap_pct": _mean_ci([x["gap_pct"] for x in rows if x])[0] if any(rows) else None,
            }
    return row


def _seed_ci(vals: list[float]) -> dict[str, Any]:
    m = _mean_ci(vals)
    if m is None:
        return {"mean": None}
    return {"mean": m[0], "low": max(0.0, m[1]), "high": min(1.0, m[2]), "n": len(vals), "values": vals}


def _fid_cell(row: dict[str, Any]) -> str:
    if "fid" not in row or row["fid"] is None:
        return "-"
    m, lo, hi = row["fid"]
    if len(row["fid_values"]) > 1:
        return f"{m:.2f} [{lo:.2f}, {hi:.2f}] (t, n={len(row['fid_values'])})"
    b = row["fid_boot_ci"]
    return f"{m:.2f} [{_f(b[0], 2)}, {_f(b[1], 2)}]"


def _time_cell(row: dict[str, Any]) -> str:
    w, c = row["train_wall_s"], row["train_cpu_s"]
    return f"{sum(w) / len(w):.0f} / {sum(c) / len(c):.0f}"


def main_table(rows: list[dict[str, Any]], parts: Sequence[str]) -> str:
    head = ["run", "steps", "train wall / CPU s", "domain FID [95% CI]"]
    if "tstr" in parts or "crossval" in parts:
        head += ["TSTR %", "TRTR %", "TRTS %"]
    head += [f"{s} gen / real" for s in PAPER_STATS] + ["eval s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"`{r['run']}` {r['label']}", "/".join(map(str, r["steps"])), _time_cell(r), _fid_cell(r)]
        if "tstr" in parts or "crossval" in parts:
            cells += [_pct(r.get("TSTR")), _pct(r.get("TRTR")), _pct(r.get("TRTS"))]
        for s in PAPER_STATS:
            st = (r.get("stats") or {}).get(s)
            cells.append(f"{_f(st['gen'])} / {_f(st['real'])}" if st else "-")
        cells.append(f"{sum(r['eval_s']) / len(r['eval_s']):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table2(result: dict[str, Any]) -> str:
    """The paper's Table 2 layout: per class, generated and real means of the four statistics."""
    per = (result["eval"].get("stats") or {}).get("per_class", [])
    classes = list(dict.fromkeys(r["class"] for r in per))
    lines = [
        "| class | | " + " | ".join(PAPER_STATS) + " |",
        "|---|---|" + "---|" * len(PAPER_STATS),
    ]
    for c in classes:
        rows = {r["statistic"]: r for r in per if r["class"] == c}
        for side, key in (("generated", "gen_mean"), ("real", "real_mean")):
            vals = [_f(rows[s][key], 2) if s in rows else "-" for s in PAPER_STATS]
            lines.append(f"| {c} | {side} | " + " | ".join(vals) + " |")
        gaps = [f"{_f(rows[s]['gap_pct'])}%" if s in rows else "-" for s in PAPER_STATS]
        lines.append(f"| {c} | gap | " + " | ".join(gaps) + " |")
    n = (result["eval"].get("stats") or {}).get("n_gen")
    return "\n".join(lines) + f"\n\n({n} generated images in all; real = all training images of the class.)"


def classifier_table(row: dict[str, Any], paper: bool = False) -> str:
    """The paper's cross-validation table, with our numbers (mean [95% t-interval] over classifier seeds)."""
    mixed = row.get("mixed") or {}
    cls = mixed.get("class", "?")
    lines = [
        "| trained on | real test % | generated test % | other classes, real test % |",
        "|---|---|---|---|",
        f"| real (k per class) | {_pct(row.get('TRTR'))} | {_pct(row.get('TRTS'))} | |",
        f"| generated (k per class) | {_pct(row.get('TSTR'))} | {_pct(row.get('TSTS'))} | |",
    ]
    if mixed:
        lines += [
            f"| all real ('{cls}' only, baseline) | {_pct(mixed.get('baseline/real_test_class'))} | "
            f"{_pct(mixed.get('baseline/gen_test_class'))} | {_pct(mixed.get('baseline/real_test_others'))} |",
            f"| '{cls}': {mixed.get('of', 0) - mixed.get('replaced', 0)} real + {mixed.get('replaced')} generated "
            f"| {_pct(mixed.get('mixed/real_test_class'))} | {_pct(mixed.get('mixed/gen_test_class'))} | "
            f"{_pct(mixed.get('mixed/real_test_others'))} |",
        ]
    if paper:
        lines += [
            "| *paper: real (1000)* | *96* | *90* | |",
            "| *paper: generated (1000)* | *91* | *93* | |",
            "| *paper: 500 real + 500 generated* | *93* | *92* | *unchanged* |",
        ]
    return "\n".join(lines)


def grids_figure(results: Sequence[dict[str, Any]], path: Path, title: str) -> Path | None:
    """The runs' sample grids side by side (one panel per run), as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from vaemsgan.data.check import GREY_MODES

    panels = [(r["run"], Path(r["grid"])) for r in results if Path(r["grid"]).is_file()]
    if not panels:
        return None
    n = len(panels)
    cols = min(n, 4)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, p) in zip(axes.flat, panels):
        with Image.open(p) as im:
            if im.mode in GREY_MODES:
                ax.imshow(im.convert("L"), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:  # colour runs in colour
                ax.imshow(im.convert("RGB"), interpolation="nearest")
        ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_experiment(
    exp: ExperimentSpec, results: list[dict[str, Any]], out: Path, meta: dict[str, Any]
) -> dict[str, Any]:
    """OUT/<experiment>.md, .json and .png."""
    rows = [summarise(g) for g in _group(results)]
    md = [f"## {exp.title}", "", f"Paper's claim: {exp.claim}.", ""]
    md.append(main_table(rows, exp.parts))
    if exp.name.startswith("table2"):
        for r in results[:1]:
            md += ["", f"Per class (`{r['run']}`):", "", table2(r)]
    if exp.name == "classifier":
        for r in rows:
            md += ["", f"Cross-validation, `{r['run']}`:", "", classifier_table(r, paper=True)]
    if rows and "fid_floor" in rows[0]:
        md += [
            "",
            f"FID floor (real training vs real test images, same sizes): {_f(rows[0]['fid_floor'], 2)}.",
        ]
    m = meta["machine"]
    md += [
        "",
        f"Wall time of the experiment: {meta['wall_s'] / 60:.1f} min (runs done earlier count 0). "
        f"Machine: {m['processor']}, {m['cpu_count']} CPUs, torch {m['torch']}, {m['date']}.",
        "",
        f"![{exp.name}]({exp.name}.png)",
        "",
    ]
    text = "\n".join(md)
    atomic_write_text(out / f"{exp.name}.md", text)
    table = {"experiment": exp.name, "title": exp.title, "claim": exp.claim, "rows": rows, **meta}
    atomic_write_json(out / f"{exp.name}.json", table)
    grids_figure(results, out / f"{exp.name}.png", exp.title)
    return table


def write_summary(group: str, names: Sequence[str], out: Path) -> Path:
    """OUT/<group>-summary.md: every experiment's table, in order."""
    parts = [f"# vaemsgan reproduce {group}", ""]
    for n in names:
        p = out / f"{n}.md"
        if p.is_file():
            parts += [p.read_text(), ""]
    return atomic_write_text(out / f"{group}-summary.md", "\n".join(parts))
