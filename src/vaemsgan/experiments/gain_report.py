"""The gain study's report (experiments/gain_study.py trains and evaluates; this pools and writes): per real-set
size, every (GAN seed, classifier seed) pair's difference to the baseline pooled into a mean and a 95%
Student-t interval, the verdict against the size's target, and OUT/<result_name>.md / .json / .png."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from vaemsgan.evaluation.crossval import _ci
from vaemsgan.evaluation.gain import best_verdict, paired_difference
from vaemsgan.metrics.distances import mean_ci
from vaemsgan.utils.io import atomic_write, atomic_write_json, atomic_write_text, json_safe

RECON_PER_CLASS = 100  # real test images per class whose reconstructions are measured (1,000 for 10 classes)


def target_points(per_class: int) -> float:
    """Issue 12's target gain over real + classical augmentation: 2 points at <= 100 images per class, 1 above
    (an experiment may set its own per size: `run_gain(targets=...)`)."""
    return 2.0 if per_class <= 100 else 1.0


# ---------------------------------------------------------------------------------------------- pooling
def _interval(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if len(vals) < 2:
        m = vals[0] if vals else float("nan")
        return {"mean": m, "low": float("nan"), "high": float("nan"), "n": len(vals), "values": values}
    m, lo, hi = mean_ci(vals)
    return {"mean": m, "low": lo, "high": hi, "n": len(vals), "values": values}


def _values(entry: dict[str, Any]) -> list[float]:
    return list(entry["accuracy"]["values"])


def pool_size(
    per_class: int, runs: list[dict[str, Any]], names: list[str], target: float | None
) -> dict[str, Any]:
    """One size's runs pooled: accuracies and differences over every (GAN seed, classifier seed) pair, in
    the shape of run_gain_study's result (so best_verdict and the report's figure read it). `target`: the
    gain in points the best option must reach with its interval above zero (None: reported, no target)."""
    studies = [r["study"] for r in runs]
    base = [v for s in studies for v in _values(s["baseline"])]  # paired with every run's arm values
    label = studies[0]["baseline"]["label"]
    arms: list[dict[str, Any]] = []
    for i, first in enumerate(studies[0]["arms"]):
        entries = [s["arms"][i] for s in studies]
        arm: dict[str, Any] = {k: v for k, v in first.items() if k not in ("ratios", "pool_per_class")}
        skipped = next((e.get("skipped") for e in entries if "skipped" in e), None)
        if skipped:
            arm["skipped"] = skipped
            arms.append(arm)
            continue
        arm["ratios"] = []
        for j, item in enumerate(first["ratios"]):
            items = [e["ratios"][j] for e in entries]
            out: dict[str, Any] = {"ratio": item["ratio"], "n_generated": item["n_generated"]}
            why = next((it.get("skipped") for it in items if "skipped" in it), None)
            if why:
                out["skipped"] = why
                arm["ratios"].append(out)
                continue
            acc = [v for it in items for v in _values(it)]
            out["accuracy"] = _ci(acc)
            out["difference_points"] = paired_difference(acc, base)
            out["difference_over_gan_seeds"] = _interval([it["difference_points"]["mean"] for it in items])
            out["per_class_difference_points"] = {
                name: _interval(
                    [v for it in items for v in it["per_class_difference_points"][name]["values"]]
                )
                for name in names
            }
            arm["ratios"].append(out)
        arms.append(arm)
    best, sentence = best_verdict(arms, label)
    met: bool | None = None if target is None else False
    if best is not None:
        d = best["difference_points"]
        if target is not None:
            met = d["n"] >= 2 and d["mean"] >= target and d["low"] > 0
        item = next(
            r for a in arms if a["arm"] == best["arm"] for r in a["ratios"] if r["ratio"] == best["ratio"]
        )
        best["per_class_difference_points"] = item["per_class_difference_points"]
        best["difference_over_gan_seeds"] = item["difference_over_gan_seeds"]
    judge_keys = list(runs[0].get("judge", {}))
    judge = {
        k: {
            m: _avg([r["judge"][k].get(m) for r in runs if k in r.get("judge", {})])
            for m in ("mean_confidence", "accuracy")
        }
        for k in judge_keys
    }
    recon = [{"run": r["run"], **r["reconstruction"]} for r in runs]
    return {
        "per_class": per_class,
        "gan_seeds": len(runs),
        "classifier_seeds": studies[0]["seeds"],
        "ratios": studies[0]["ratios"],
        # The real-only classifiers are the same for every GAN seed (same real images, seeds, options):
        # their accuracy is shown over the classifier seeds once; differences pair them with each run's.
        "reference": {
            "label": "real only, no augmentation",
            "accuracy": _ci(_values(studies[0]["reference"])),
            "difference_points": paired_difference(
                _values(studies[0]["reference"]), _values(studies[0]["baseline"])
            ),
        },
        "baseline": {"label": label, "accuracy": _ci(_values(studies[0]["baseline"]))},
        "arms": arms,
        "best": best,
        "verdict": sentence,
        "target_points": target,
        "target_met": met,
        "judge": judge,
        "judge_per_run": {r["run"]: r.get("judge", {}) for r in runs},
        "reconstruction": recon,
        "reconstruction_mean": {
            m: _avg([x.get(m) for x in recon]) for m in ("mae", "rmse", "psnr", "ssim", "classifier_accuracy")
        },
    }


def _avg(vals: list[Any]) -> float | None:
    v = [x for x in vals if isinstance(x, (int, float)) and not math.isnan(x)]
    return sum(v) / len(v) if v else None


# ---------------------------------------------------------------------------------------------- report
def _pct(c: dict[str, Any]) -> str:
    if not c or c.get("n", 0) == 0 or math.isnan(c["mean"]):
        return "-"
    if c["n"] < 2 or math.isnan(c.get("low", float("nan"))):
        return f"{100 * c['mean']:.1f}"
    return f"{100 * c['mean']:.1f} [{100 * c['low']:.1f}, {100 * c['high']:.1f}]"


def _pts(d: dict[str, Any] | None) -> str:
    if not d or d.get("n", 0) == 0 or math.isnan(d["mean"]):
        return "-"
    if d["n"] < 2 or math.isnan(d.get("low", float("nan"))):
        return f"{d['mean']:+.1f} (n={d['n']})"
    return f"{d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] (n={d['n']})"


def _target(points: float | None) -> str:
    return "report" if points is None else f">= +{points:g}"


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def size_lines(s: dict[str, Any], trained: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[str]:
    n = s["per_class"]
    if s["target_points"] is None:
        target = f"No target at this size (reported). {s['verdict']}"
    else:
        verdict = "**met**" if s["target_met"] else "**not met**"
        target = (
            f"Target: the best synthetic option >= +{s['target_points']:g} points over {s['baseline']['label']}, "
            f"95% interval above zero: {verdict}. {s['verdict']}"
        )
    lines = [
        f"## {n} real images per class",
        "",
        target,
        "",
        "Training (`scarce` preset, CPU-minutes of the run's own training; the evaluation uses best.pt, the "
        "monitor's best state by KID, else the newest checkpoint):",
        "",
        "| run | GAN seed | steps | CPU-min | evaluated checkpoint (step) | eval s |",
        "|---|---|---|---|---|---|",
    ]
    for t, r in zip(trained, runs):
        lines.append(
            f"| {r['run']} | {r['seed']} | {t.get('steps', '-')} | {_f(t.get('minutes'), '.1f')} | "
            f"{r['checkpoint']} ({r['checkpoint_step']}) | {_f(r.get('eval_seconds'), '.0f')} |"
        )
    lines += [
        "",
        f"Accuracy on the real test set: mean and 95% interval over {s['gan_seeds']} GAN seeds x "
        f"{s['classifier_seeds']} classifier seeds (pooled; the two real-only rows: over the classifier "
        "seeds, their classifiers do not depend on the GAN); difference to the baseline in points, paired by "
        "classifier seed and pooled, and over the GAN seeds' mean differences (n = GAN seeds).",
        "",
        "| arm | ratio | accuracy % [95%] | difference, points [95%] (pooled) | [95%] over GAN seeds | "
        "judge: p(intended class) | judge: classified as intended % |",
        "|---|---|---|---|---|---|---|",
        f"| {s['baseline']['label']} (baseline) | - | {_pct(s['baseline']['accuracy'])} | 0 | - | - | - |",
        f"| {s['reference']['label']} | - | {_pct(s['reference']['accuracy'])} | "
        f"{_pts(s['reference']['difference_points'])} | - | - | - |",
    ]
    for a in s["arms"]:
        j = s["judge"].get(a["arm"], {})
        conf, acc = (
            _f(j.get("mean_confidence"), ".2f"),
            _f(100 * j["accuracy"] if j.get("accuracy") is not None else None, ".0f"),
        )
        if "skipped" in a:
            lines.append(f"| {a['label']} | - | skipped: {a['skipped']} | | | | |")
            continue
        for r in a["ratios"]:
            if "skipped" in r:
                lines.append(f"| {a['label']} | {r['ratio']:g}x | skipped: {r['skipped']} | | | | |")
                continue
            lines.append(
                f"| {a['label']} | {r['ratio']:g}x | {_pct(r['accuracy'])} | {_pts(r['difference_points'])} | "
                f"{_pts(r['difference_over_gan_seeds'])} | {conf} | {acc} |"
            )
    jr = s["judge"].get("real test", {})
    lines += [
        "",
        "Judge: the domain classifier trained on all real training images; on the real test images it gives "
        f"p(intended class) {_f(jr.get('mean_confidence'), '.2f')} and "
        f"{_f(100 * jr['accuracy'] if jr.get('accuracy') is not None else None, '.0f')}% classified as "
        "intended. Its numbers on an arm are over the arm's whole pool (the largest ratio's), mean over GAN "
        "seeds.",
    ]
    best = s.get("best")
    if best:
        lines += [
            "",
            f"Per-class recall difference of the best arm ({best['label']}, {best['ratio']:g}x) to the "
            "baseline, points (pooled):",
            "",
            "| class | difference [95%] |",
            "|---|---|",
        ]
        for name, d in best["per_class_difference_points"].items():
            lines.append(f"| {name} | {_pts(d)} |")
    lines += [
        "",
        "Reconstruction of real test images by each GAN's encoder and generator "
        f"({RECON_PER_CLASS} per class; pixel values 0-1; the judge's accuracy on the reconstructions and on "
        "the originals; and the same images decoded with the next class's label, judged as that label / as "
        "their true one: a conditional decoder that follows its label keeps the class whatever the code):",
        "",
        "| run | images | MAE | RMSE | PSNR dB | SSIM | SSIM min | judge on reconstructions % | on originals % "
        "| label shifted: judged as given / true label % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["reconstruction"]:
        if "skipped" in r:
            lines.append(f"| {r['run']} | skipped: {r['skipped']} | | | | | | | | |")
            continue
        ca, cr = r.get("classifier_accuracy"), r.get("classifier_accuracy_real")
        sh = r.get("shifted_label")
        shifted = (
            f"{100 * sh['judged_as_given_label']:.0f} / {100 * sh['judged_as_true_label']:.0f}" if sh else "-"
        )
        lines.append(
            f"| {r['run']} | {r['images']} | {r['mae']:.3f} | {r['rmse']:.3f} | {r['psnr']:.1f} | "
            f"{r['ssim']:.3f} | {r['ssim_min']:.3f} | {_f(100 * ca if ca is not None else None, '.1f')} | "
            f"{_f(100 * cr if cr is not None else None, '.1f')} | {shifted} |"
        )
    return lines + [""]


def write_gain(
    summaries: list[dict[str, Any]],
    trained: dict[int, list[dict[str, Any]]],
    runs: dict[int, list[dict[str, Any]]],
    out: Path,
    meta: dict[str, Any],
    title: str,
) -> dict[str, Any]:
    """OUT/<name>.md, .json, .png (name: `result_name`, 'gain' with the default classifier settings)."""
    o = meta.get("command_options", {})
    name = str(meta.get("result_name", "gain"))
    # the GAN seeds pooled, not the --seeds asked: a call limited by --runs pools fewer
    gan_seeds = sorted({s["gan_seeds"] for s in summaries}) or [o.get("seeds")]
    lines = [
        f"# {title}",
        "",
        f"Real data: {o.get('data')} at {o.get('resolution')} px, a seeded subset (seed 0) of N images per "
        f"class, the whole test split; GAN: `scarce` preset, {meta.get('budget_minutes'):g} CPU-minutes per "
        f"run, {'/'.join(str(g) for g in gan_seeds)} GAN seed(s); classifiers: {o.get('classifier_steps')} steps, "
        f"augmentation of the baseline and every synthetic arm: {o.get('gain_policy', 'classical')}, "
        f"{o.get('eval_seeds')} seed(s), ratios {', '.join(f'{r:g}x' for r in o.get('gain_ratios', []))}, "
        f"variation temperatures {', '.join(f'{t:g}' for t in o.get('gain_temperatures', []))}"
        + (
            f", interpolations between latent nearest neighbours at a = {o['gain_interpolation'][0]:g} to "
            f"{o['gain_interpolation'][1]:g}."
            if o.get("gain_interpolation")
            else "."
        )
        + (
            " The weak-classes arm shares its prior samples out by the baseline's 2-fold cross-validated "
            "error per class on the real training images."
            if o.get("gain_weak_classes")
            else ""
        )
        + (" `--quick`: the numbers mean nothing." if o.get("quick") else ""),
        "",
        "| real images per class | best option | difference, points [95%] (pooled) | target | met |",
        "|---|---|---|---|---|",
    ]
    for s in summaries:
        b = s.get("best")
        what = f"{b['label']}, {b['ratio']:g}x" if b else "-"
        lines.append(
            f"| {s['per_class']} | {what} | "
            f"{_pts(b['difference_points']) if b else '-'} | {_target(s['target_points'])} | "
            f"{ {True: 'yes', False: 'no', None: '-'}[s['target_met']] } |"
        )
    lines += [
        "",
        "The best option is chosen on the same test set it is judged on, which favours it slightly; the pooled "
        "interval treats the classifier seeds of one GAN as independent (the interval over GAN seeds does not).",
        "",
    ]
    for s in summaries:
        lines += size_lines(s, trained[s["per_class"]], runs[s["per_class"]])
    lines += [f"Machine: {meta.get('machine', {})}", ""]
    atomic_write_text(out / f"{name}.md", "\n".join(lines))
    table = {"sizes": summaries, "trained": {str(k): v for k, v in trained.items()}, **meta}
    atomic_write_json(out / f"{name}.json", json_safe(table))
    plot_gain(summaries, out / f"{name}.png")
    return table


def plot_gain(summaries: list[dict[str, Any]], path: Path) -> None:
    """One panel per size (evaluation.report_figures.gain_figure_png), side by side."""
    from PIL import Image

    from vaemsgan.evaluation.report_figures import gain_figure_png

    panels = []
    for s in summaries:
        png = gain_figure_png(
            s,
            title=f"{s['per_class']} real images per class: difference to {s['baseline']['label']}\n"
            f"(mean, 95% interval over {s['gan_seeds']} GAN x {s['classifier_seeds']} classifier seeds)",
            target=s["target_points"],
        )
        if png is not None:
            panels.append(Image.open(io.BytesIO(png)).convert("RGB"))
    if not panels:
        return
    h = max(p.height for p in panels)
    img = Image.new("RGB", (sum(p.width for p in panels), h), "white")
    x = 0
    for p in panels:
        img.paste(p, (x, 0))
        x += p.width
    atomic_write(path, lambda f: img.save(f, format="PNG"))
