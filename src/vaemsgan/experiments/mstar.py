"""`vaemsgan reproduce mstar`: the paper's own domain, SAR chips of military vehicles (MSTAR SOC), in one
resumable command (issue 23).

Three parts, each a driver the runner's helpers already serve, on the same real data (the chips at
`--resolution` 64 with the centre `--crop` of 64 source pixels, as `vaemsgan train` loads them; `val/` is the
test split) and the same judge (`--classifier sar`, evaluation/classifier.py):

1. judge     the credible classifier: trained on all training chips with random shifts and gammas, `--eval-seeds`
             seeds, its accuracy on `val/` (the TRTR of every table below; target >= 97%).
2. curves    learning curves (experiments/curves.py) of `scarce` (ours for small sets), the AC-GAN
             attribution run, `cdcgan-wgan-gp` (the paper's baseline) and `paper` (the paper's network), on
             all training chips, snapshotted at `--marks` CPU-minutes (10, 30, 60, 120): domain FID/KID, TSTR
             and TRTS against TRTR, per-class recall, the Laplacian sharpness gap and the grids.
3. gain      the augmentation-gain study (experiments/gain_study.py) on seeded subsets of 10%, 20% and 50% of
             the training chips per class (`--gain-per-class`, 27/55/137), `--seeds` GAN seeds (3) each.

Layout: OUT/curves/ (as `reproduce curves --out OUT/curves`), OUT/gain/ (as `reproduce gain`), and
OUT/mstar.md / mstar.json, the summary. `--parts judge,curves,gain` runs some of them (parallel workers use
`--runs` as in `curves`); a rerun continues where it stopped and redoes nothing finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from vaemsgan.errors import ConfigError
from vaemsgan.evaluation.classifier import CLASSIFIER_PRESETS
from vaemsgan.experiments import curves, gain_study
from vaemsgan.experiments.context import Context, ReproduceOptions, judge_config
from vaemsgan.experiments.curve_report import largest_gap
from vaemsgan.experiments.registry import GAIN_RUNS, MSTAR_CURVE_RUNS, ExperimentSpec
from vaemsgan.experiments.runner import RunPlan, plan_runs
from vaemsgan.utils.io import atomic_write_json, atomic_write_text

PARTS = ("judge", "curves", "gain")
MSTAR_GAIN_PER_CLASS = (27, 55, 137)  # ~10/20/50% of the mean class (275 chips)
# Issue 23's targets: +3 points over real + classical augmentation at 10% and 20%; 50% is reported only.
MSTAR_GAIN_TARGETS: dict[int, float | None] = {27: 3.0, 55: 3.0, 137: None}
JUDGE_TARGET = 0.97
# Issue 23's curve targets, at 120 CPU-minutes on all training chips: TSTR and TRTS >= 0.9 x TRTR, and the
# Table-2 statistics of the generated chips within 10% of the real ones, per class.
CURVE_TARGET_MINUTES = 120.0
RATIO_TARGET = 0.9
TABLE2_TARGET_PCT = 10.0

# Options whose default differs for `mstar` (the CLI applies them where the user gave none).
DEFAULTS: dict[str, Any] = {
    "resolution": 64,
    "crop": 64,  # the centre 64 x 64 of the 128 chip: +4 points of judge accuracy over the whole chip resized
    "classifier": "sar",
    "classifier_steps": CLASSIFIER_PRESETS["sar"].steps,
    "domain_steps": CLASSIFIER_PRESETS["sar"].steps,
    "marks": [10.0, 30.0, 60.0, 120.0],
    "gain_per_class": list(MSTAR_GAIN_PER_CLASS),
    "budget_minutes": 30.0,  # per gain-study GAN
    "seeds": 3,  # GAN seeds of the gain study (the curves train one seed per model)
    # The baseline and every synthetic arm: random shifts (the judge's policy, no flips). The `classical`
    # policy's rotations and scalings cost the judge 18 points on val/ (76% against 94%, one seed).
    "gain_policy": "standard",
    # The anchored variations at temperature 1 only (not also 0.5): 9 judge trainings fewer per GAN (~30
    # CPU-minutes at ~3 each). Closer variations are near the real chips the baseline's shifts already cover; filling
    # azimuth gaps needs the farther ones. `--gain-temperatures 0.5,1` restores both.
    "gain_temperatures": [1.0],
    # The remedy when no arm gains: interpolations between latent nearest neighbours of a class (for
    # MSTAR: views a few degrees of aspect apart), from a quarter to three quarters of the way.
    "gain_interpolation": [0.25, 0.75],
    # ... and more synthetic chips for the classes the baseline gets wrong most in a cross-validation on the
    # training chips (session 14: not the classes it gets wrong on val/, whose errors come from the 15-degree chips).
    # With both, a GAN's evaluation trains 51 judges (2 real-only and 5 arms x 3 ratios, x 3 seeds; ~2.5
    # CPU-hours) and each size 2 cross-validation judges once.
    "gain_weak_classes": True,
}


def mstar_options(data: str) -> ReproduceOptions:
    """The options `reproduce mstar` measures with (the chips at 64 px, the centre crop, the `sar` judge and its
    steps), for the scripts that measure its runs again."""
    keys = ("resolution", "crop", "classifier", "classifier_steps", "domain_steps")
    return ReproduceOptions(data=data, **{k: DEFAULTS[k] for k in keys})


def curves_spec(exp: ExperimentSpec) -> ExperimentSpec:
    return ExperimentSpec("curves", f"{exp.title}: learning curves", MSTAR_CURVE_RUNS, ("curve",), exp.claim)


def gain_spec(exp: ExperimentSpec) -> ExperimentSpec:
    return ExperimentSpec("gain", f"{exp.title}: augmentation gain", GAIN_RUNS, ("gain",), exp.claim)


def _curve_opts(opts: ReproduceOptions) -> ReproduceOptions:
    return replace(opts, seeds=1)


def plan_mstar(exp: ExperimentSpec, out: Path, opts: ReproduceOptions) -> dict[str, Any]:
    """The runs of every part (bad options fail here, before any training)."""
    parts = opts.parts or list(PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ConfigError(
            f"--parts: unknown part(s) {', '.join(unknown)} of mstar; choose from {', '.join(PARTS)}"
        )
    return {
        "parts": parts,
        "curves": plan_runs(curves_spec(exp), out / "curves", _curve_opts(opts)),
        "gain": gain_study.plan_gain(gain_spec(exp), out / "gain", opts),
    }


def judge(ctx: Context, opts: ReproduceOptions, out: Path) -> dict[str, Any]:
    """The judge's accuracy on the test split (`val/`), per seed: the curves' TRTR on all training chips
    (cached in OUT/curves/reference, so the curves reuse it)."""
    real = ctx.real(None)
    ref = curves.reference_classifiers(
        ctx, opts, out / "curves", curves.reference_per_class(real.train, opts)
    )
    acc = [float(a) for a in ref["trtr_all"]]
    mean = sum(acc) / len(acc)
    return {
        "classifier": opts.classifier,
        "config": judge_config(opts).to_dict(),
        "train_images": len(real.train),
        "test_images": len(real.test),
        "accuracy_per_seed": acc,
        "accuracy_mean": mean,
        "target": JUDGE_TARGET,
        "met": mean >= JUDGE_TARGET,
    }


def run_mstar(
    exp: ExperimentSpec,
    plans: dict[str, Any],
    out: Path,
    opts: ReproduceOptions,
    meta: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Run the parts asked for (resuming), then write OUT/mstar.md/json from what is there."""
    parts = plans["parts"]
    copts = _curve_opts(opts)
    ctx = Context(copts, log)
    summary: dict[str, Any] = {"meta": meta, "parts": parts, "gain_result": gain_study.result_name(opts)}
    if "judge" in parts:
        summary["judge"] = judge(ctx, copts, out)
        j = summary["judge"]
        log(
            f"judge: {100 * j['accuracy_mean']:.1f}% on the test split over {len(j['accuracy_per_seed'])} seed(s)"
        )
    if "curves" in parts:
        cplans: list[RunPlan] = plans["curves"]
        summary["curves"] = curves.run_curves(cplans, out / "curves", ctx, copts, meta, log, curves_spec(exp))
    if "gain" in parts:
        summary["gain"] = gain_study.run_gain(
            gain_spec(exp), plans["gain"], out / "gain", opts, meta, log, targets=MSTAR_GAIN_TARGETS
        )
    atomic_write_json(out / "mstar.json", summary)
    atomic_write_text(out / "mstar.md", summary_markdown(summary))
    return summary


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = ["# MSTAR SOC: judge, learning curves, augmentation gain", ""]
    j = summary.get("judge")
    if j:
        per_seed = ", ".join(f"{100 * a:.1f}" for a in j["accuracy_per_seed"])
        lines += [
            "## The judge",
            "",
            f"`{j['classifier']}` classifier, {j['train_images']} training chips, random shifts; accuracy on the "
            f"{j['test_images']} test chips: **{100 * j['accuracy_mean']:.1f}%** (seeds: {per_seed}); target "
            f"{100 * j['target']:.0f}%: {'met' if j['met'] else 'not met'}.",
            "",
        ]
    lines += target_lines(summary)
    for part, name in (("curves", "curves"), ("gain", summary["gain_result"])):
        if part in summary:
            lines += [f"## {part}", "", f"See [{part}/{name}.md]({part}/{name}.md).", ""]
    return "\n".join(lines) + "\n"


def _worst_gap(row: dict[str, Any]) -> float | None:
    """The largest |gap| of any Table-2 statistic in any class."""
    worst = [largest_gap(vals) for vals in (row.get("table2_gap_pct") or {}).values()]
    return max((w for w in worst if w is not None), default=None)


def target_lines(summary: dict[str, Any]) -> list[str]:
    """Where each curve run stands against the issue's targets at its latest evaluated mark, and each gain
    size against its own."""
    latest: dict[str, dict[str, Any]] = {}
    for r in (summary.get("curves") or {}).get("rows", []):
        if r["model"] not in latest or r["minutes"] > latest[r["model"]]["minutes"]:
            latest[r["model"]] = r
    sizes = (summary.get("gain") or {}).get("sizes", [])
    if not latest and not sizes:
        return []

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines = ["## Targets", ""]
    if latest:
        lines += [
            f"Curves, at each run's latest evaluated snapshot (the targets hold at {CURVE_TARGET_MINUTES:g} "
            f"CPU-minutes): TSTR and TRTS >= {RATIO_TARGET:g} x TRTR, every Table-2 statistic within "
            f"{TABLE2_TARGET_PCT:g}% of the real training chips' per class.",
            "",
            "| run | CPU-min | steps | TSTR / TRTR | TRTS / TRTR | largest Table-2 gap |",
            "|---|---|---|---|---|---|",
        ]
        for model, r in latest.items():
            worst = _worst_gap(r)
            gap = "-" if worst is None else f"{worst:.0f}% ({verdict(worst <= TABLE2_TARGET_PCT)})"
            lines.append(
                f"| {model} | {r['minutes']:g} | {r['steps']:.0f} | {r['tstr_over_trtr']:.2f} "
                f"({verdict(r['tstr_over_trtr'] >= RATIO_TARGET)}) | {r['trts_over_trtr']:.2f} "
                f"({verdict(r['trts_over_trtr'] >= RATIO_TARGET)}) | {gap} |"
            )
        lines.append("")
    if sizes:
        lines += [
            "| gain: chips per class | best option over the baseline (points) | target | met |",
            "|---|---|---|---|",
        ]
        for sz in sizes:
            b = sz.get("best")
            diff = "-" if not b else f"{b['difference_points']['mean']:+.1f} ({b['label']}, {b['ratio']:g}x)"
            target = "report" if sz["target_points"] is None else f">= +{sz['target_points']:g}"
            met = {True: "met", False: "**not met**", None: "-"}[sz["target_met"]]
            lines.append(f"| {sz['per_class']} | {diff} | {target} | {met} |")
        lines.append("")
    return lines
