"""`vaemsgan reproduce gain`: the augmentation-gain study of issue 12 as one resumable command.

For each real-set size N in `--gain-per-class` (default 100 and 1,000 images per class: a seeded subset,
seed 0, so every GAN seed sees the same real images) and each GAN training seed (`--seeds`, default 3), the
`scarce` preset trains on the N-per-class subset for `--budget` CPU-minutes (default 30; the run's own
training CPU time, counted across resumes as `vaemsgan train --clock cpu` does: an interrupted run continues
from its newest checkpoint, a run that reached its budget has TRAINED.json and is not trained again, a
larger `--budget` continues it). The run's best.pt (kept by the monitor; the newest checkpoint when the
monitor never ran) then feeds the augmentation-gain study of `vaemsgan evaluate --augmentation-gain`
(evaluation/gain.py through core.gain_arms / core.gain_part): real only, real + classical augmentation (THE
baseline), real + prior samples, real + curated prior samples and real + anchored variations at each
`--gain-temperatures`, at each `--gain-ratios`, over `--eval-seeds` classifier seeds, paired by seed.

Per run it also records, for the "why" when a target is missed:
- the judge's view of each arm's synthetic pool: the mean probability of the intended class and the share
  classified as it, where the judge is the domain classifier trained on ALL real training images (not the
  N-per-class one the curated arm is filtered with, so that arm is not judged by its own filter), next to
  the same numbers on the real test images;
- the encoder's reconstruction quality on `RECON_PER_CLASS` real test images per class
  (metrics/reconstruction.py: pixel error, PSNR, SSIM, the judge's accuracy on the reconstructions and on
  the originals) and, decoded with the next class's label instead, how often the judge sees the given
  label: the share of the class a conditional decoder takes from its label rather than from the code.

Per size, the differences to the baseline of every (GAN seed, classifier seed) pair are pooled: mean and 95%
Student-t interval over them (the issue's criterion; the baseline's classifiers are the same for every GAN
seed, since the real images are). The interval over the GAN seeds' mean differences (n = GAN seeds) is
shown next to it: it does not treat the classifier seeds of one GAN as independent. Target: the best
(arm, ratio) at least `target_points(N)` points above the baseline (2 at <= 100 per class, 1 above) with
the pooled interval above zero. The best arm is chosen on the same test set it is judged on: read a
narrow pass with that in mind.

Layout (every file written atomically; a rerun with the same settings trains and evaluates nothing):
    OUT/n<N>/runs/scarce[-seed<S>]/train/       the training run (checkpoints/, best.pt, metrics.jsonl, ...)
    OUT/n<N>/runs/<run>/TRAINED.json            written when the run reached its budget
    OUT/n<N>/runs/<run>/gain.json               the run's evaluation, keyed by its settings and the
                                                checkpoint's hash (a retrained model is evaluated again)
    OUT/gain.md / gain.json / gain.png           tables, every number, one plot panel per size
With another classifier augmentation policy (--gain-policy) or step count (--classifier-steps), `gain`
above reads `gain-<policy>`, `gain-<steps>steps` or `gain-<policy>-<steps>steps` (`result_name`: the settings
that differ from the defaults): the same GANs judged otherwise, written beside.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from vaemsgan.data import ImageSet
from vaemsgan.evaluation import core
from vaemsgan.evaluation.classifier import SmallVGG, folded_for_inference, logits
from vaemsgan.evaluation.crossval import LabelledImages, _ci
from vaemsgan.evaluation.gain import GainOptions, best_verdict, paired_difference
from vaemsgan.experiments.curves import train_curve_run
from vaemsgan.experiments.runner import (
    DEFAULT_CLASSIFIER_STEPS,
    DEFAULT_GAIN_PER_CLASS,
    QUICK_CLASSIFIER_STEPS,
    Context,
    ReproduceOptions,
    RunPlan,
    _read_json,
    judge_config,
    judge_key,
    plan_runs,
)
from vaemsgan.metrics.distances import mean_ci
from vaemsgan.utils.io import atomic_write, atomic_write_json, atomic_write_text, json_safe

RECON_PER_CLASS = 100  # real test images per class whose reconstructions are measured (1,000 for 10 classes)
QUICK_BUDGET_MINUTES = 0.003  # `--quick`: a fraction of a CPU-second of training per run
EVAL_VERSION = 1


def target_points(per_class: int) -> float:
    """The issue's target gain over real + classical augmentation: 2 points at <= 100 images per class, 1 above."""
    return 2.0 if per_class <= 100 else 1.0


def sizes(opts: ReproduceOptions) -> list[int]:
    return sorted(set(opts.gain_per_class or DEFAULT_GAIN_PER_CLASS))


def budget_minutes(opts: ReproduceOptions) -> float:
    return min(opts.budget_minutes, QUICK_BUDGET_MINUTES) if opts.quick else opts.budget_minutes


def plan_gain(exp: Any, out: Path, opts: ReproduceOptions) -> dict[int, list[RunPlan]]:
    """The runs of every size: OUT/n<N>/runs/<run>, each trained on the N-per-class subset."""
    return {n: plan_runs(exp, out / f"n{n}", replace(opts, per_class=n)) for n in sizes(opts)}


def gain_options(opts: ReproduceOptions) -> GainOptions:
    return GainOptions(
        seeds=opts.eval_seeds,
        ratios=tuple(opts.gain_ratios),
        temperatures=tuple(opts.gain_temperatures),
        classifier=judge_config(opts),
        policy=opts.gain_policy,
    ).validate()


def result_name(opts: ReproduceOptions) -> str:
    """'gain', or 'gain-<policy>-<steps>steps' when the classifiers' augmentation policy or step count
    differ from the defaults: a study of the same GANs under other classifier settings is written beside
    the default one (gain-none-1500steps.md, runs' gain-none-1500steps.json) instead of replacing it."""
    parts = [opts.gain_policy] if opts.gain_policy != "classical" else []
    if opts.classifier != "small":
        parts.append(opts.classifier)
    if opts.classifier_steps != (QUICK_CLASSIFIER_STEPS if opts.quick else DEFAULT_CLASSIFIER_STEPS):
        parts.append(f"{opts.classifier_steps}steps")
    return "-".join(["gain", *parts])


# ---------------------------------------------------------------------------------------------- measures
def judge_pool(judge: SmallVGG, pool: LabelledImages, names: list[str]) -> dict[str, Any]:
    """The judge's mean probability of each image's intended class, and the share it classifies as that
    class, overall and per class."""
    if len(pool) == 0:
        return {"n": 0}
    p = torch.softmax(logits(judge, pool.images).double(), dim=1)
    conf = p[torch.arange(len(pool)), pool.labels]
    right = (p.argmax(1) == pool.labels).double()
    per_class = {
        name: {"confidence": float(conf[m].mean()), "accuracy": float(right[m].mean()), "n": int(m.sum())}
        for c, name in enumerate(names)
        if bool((m := pool.labels == c).any())
    }
    return {
        "n": len(pool),
        "mean_confidence": float(conf.mean()),
        "accuracy": float(right.mean()),
        "per_class": per_class,
    }


def reconstruction_part(
    model: Any,
    test: ImageSet,
    judge: SmallVGG | None,
    per_class: int = RECON_PER_CLASS,
    seed: int = 0,
) -> dict[str, Any]:
    """The encoder-decoder's reconstruction quality (metrics/reconstruction.py) on up to `per_class` real
    test images per class (seeded), with the judge's accuracy on the reconstructions and on the originals.
    Reconstructions are decoded as `vaemsgan reconstruct` decodes them (inference.reconstruct_images)."""
    from vaemsgan.inference import reconstruct_images
    from vaemsgan.metrics.reconstruction import reconstruction_quality

    if model.encoder is None:
        return {"skipped": "the model has no encoder"}
    names = list(test.class_names)
    missing = [n for n in names if n not in model.class_names]
    if missing:
        return {"skipped": f"class {missing[0]!r} is not one of the model's"}
    idx = core.matched_subset(test, [per_class] * len(names), seed)
    x, y = test.images[idx], test.labels[idx]
    to_model = torch.tensor([model.class_names.index(n) for n in names], dtype=torch.long)
    t0 = time.perf_counter()
    rec = reconstruct_images(model, x, to_model[y])
    net = None if judge is None else folded_for_inference(judge)  # folded once, reused for every batch
    classifier = None if net is None else (lambda b: logits(net, b))
    q = reconstruction_quality(x, rec, y, classifier)
    res: dict[str, Any] = {**q.to_dict(), "per_class": per_class, "seed": seed}
    if judge is not None and model.conditional and len(names) > 1:
        # The same images decoded with the next class's label: how much of the class the decoder takes
        # from its label rather than from the code (a judge accuracy on reconstructions near that on the
        # originals says little when the decoder follows the label).
        shifted = (y + 1) % len(names)
        pred = logits(net, reconstruct_images(model, x, to_model[shifted])).argmax(1)
        res["shifted_label"] = {
            "judged_as_given_label": float((pred == shifted).double().mean()),
            "judged_as_true_label": float((pred == y).double().mean()),
        }
    return {**res, "seconds": time.perf_counter() - t0}


def prior_samples(model: Any, names: list[str], per_class: int, seed: int = 0) -> ImageSet:
    """`per_class` prior samples of every class, the images `vaemsgan generate --seed seed` writes."""
    from vaemsgan.inference import sample_class

    imgs, labels = [], []
    for c, name in enumerate(names):
        imgs.append(sample_class(model, model.class_names.index(name), per_class, seed))
        labels.append(torch.full((per_class,), c, dtype=torch.long))
    return ImageSet(torch.cat(imgs), torch.cat(labels), list(names), "prior samples")


# ---------------------------------------------------------------------------------------------- one run
def eval_key(opts: ReproduceOptions, checkpoint_sha: str) -> dict[str, Any]:
    return {
        "v": EVAL_VERSION,
        "checkpoint_sha256": checkpoint_sha,
        "eval_seeds": opts.eval_seeds,
        "classifier_steps": opts.classifier_steps,
        "domain_steps": opts.domain_steps,
        "ratios": sorted(float(r) for r in opts.gain_ratios),
        "temperatures": sorted(float(t) for t in opts.gain_temperatures),
        "recon_per_class": RECON_PER_CLASS,
        # Only when not the default, so that studies evaluated before the option existed stay valid.
        **({"policy": opts.gain_policy} if opts.gain_policy != "classical" else {}),
        **judge_key(opts),
    }


def evaluate_gain_run(
    plan: RunPlan,
    ctx: Context,
    judge_of: Callable[[], SmallVGG],
    opts: ReproduceOptions,
    real_memo: dict[Any, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The gain study, the judge's view of the pools and the reconstruction quality of one trained run;
    read from OUT/.../<result_name>.json when it holds the same settings and checkpoint."""
    from vaemsgan.checkpoint import resolve_checkpoint
    from vaemsgan.inference import load_model
    from vaemsgan.utils.io import file_sha256

    ckpt = resolve_checkpoint(plan.folder / "train", prefer_best=True)
    key = eval_key(opts, file_sha256(ckpt))
    path = plan.folder / f"{result_name(opts)}.json"
    prev = _read_json(path)
    if prev is not None and prev.get("eval_key") == key and not opts.force:
        log(f"{plan.name}: evaluated earlier, kept")
        return prev
    t0 = time.perf_counter()
    model = load_model(ckpt, "cpu")
    real = ctx.real(plan.cfg.data.classes)
    names = real.names
    gopts = gain_options(opts)
    domain_cfg = judge_config(opts, opts.domain_steps)
    log(f"evaluate {plan.name}: {ckpt.name} (step {model.step})")
    # The prior arm needs max-ratio x the real count per class (the pool `generate` would write).
    gen = prior_samples(model, names, math.ceil(max(gopts.ratios) * max(real.train.counts())))
    arms = core.gain_arms(model, real, gen, gopts, domain_cfg=domain_cfg, log=log)
    judge = judge_of()
    judged = {"real test": judge_pool(judge, core.labelled(real.test), names)}
    judged.update({a.key: judge_pool(judge, a.pool, names) for a in arms if a.pool is not None})
    study = core.gain_part(
        model, real, gen, gopts, domain_cfg=domain_cfg, log=log, arms=arms, real_memo=real_memo
    )
    recon = reconstruction_part(model, real.test, judge)
    res = {
        "eval_key": key,
        "run": plan.name,
        "seed": plan.seed,
        "per_class": plan.cfg.data.per_class,
        "checkpoint": ckpt.name,
        "checkpoint_step": model.step,
        "study": study,
        "judge": judged,
        "reconstruction": recon,
        "eval_seconds": time.perf_counter() - t0,
    }
    res = json_safe(res)
    atomic_write_json(path, res)
    return res


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


def pool_size(per_class: int, runs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One size's runs pooled: accuracies and differences over every (GAN seed, classifier seed) pair, in
    the shape of run_gain_study's result (so best_verdict and the report's figure read it)."""
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
    target = target_points(per_class)
    met = False
    if best is not None:
        d = best["difference_points"]
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


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def size_lines(s: dict[str, Any], trained: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[str]:
    n = s["per_class"]
    verdict = "**met**" if s["target_met"] else "**not met**"
    lines = [
        f"## {n} real images per class",
        "",
        f"Target: the best synthetic option >= +{s['target_points']:g} points over {s['baseline']['label']}, "
        f"95% interval above zero: {verdict}. {s['verdict']}",
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
    lines = [
        f"# {title}",
        "",
        f"Real data: {o.get('data')} at {o.get('resolution')} px, a seeded subset (seed 0) of N images per "
        f"class, the whole test split; GAN: `scarce` preset, {meta.get('budget_minutes'):g} CPU-minutes per "
        f"run, {o.get('seeds')} GAN seed(s); classifiers: {o.get('classifier_steps')} steps, "
        f"augmentation of the baseline and every synthetic arm: {o.get('gain_policy', 'classical')}, "
        f"{o.get('eval_seeds')} seed(s), ratios {', '.join(f'{r:g}x' for r in o.get('gain_ratios', []))}, "
        f"variation temperatures {', '.join(f'{t:g}' for t in o.get('gain_temperatures', []))}."
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
            f"{_pts(b['difference_points']) if b else '-'} | >= +{s['target_points']:g} | "
            f"{'yes' if s['target_met'] else 'no'} |"
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
    """One panel per size (evaluation.report.gain_figure_png), side by side."""
    from PIL import Image

    from vaemsgan.evaluation.report import gain_figure_png

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


# ---------------------------------------------------------------------------------------------- main
def run_gain(
    exp: Any,
    plans: dict[int, list[RunPlan]],
    out: Path,
    opts: ReproduceOptions,
    meta: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Train every run of every size (resuming), evaluate each (cached), pool per size, write the report."""

    minutes = budget_minutes(opts)
    gain_options(opts)  # bad options fail before any training
    # The judge: the domain classifier of ALL real training images (seed 0, --domain-steps, cached).
    ctx_all = Context(replace(opts, per_class=None), log)
    judges: dict[Any, SmallVGG] = {}

    def judge_for(classes: list[str] | None) -> Callable[[], SmallVGG]:
        def get() -> SmallVGG:
            k = tuple(classes) if classes else None
            if k not in judges:
                ext = ctx_all.extractor(ctx_all.real(classes))
                assert isinstance(ext.model, SmallVGG)
                judges[k] = ext.model
            return judges[k]

        return get

    summaries, trained, results = [], {}, {}
    for n, size_plans in plans.items():
        ctx = Context(replace(opts, per_class=n), log)
        trained[n] = [train_curve_run(p, ctx, opts, [minutes]) for p in size_plans]
        memo: dict[Any, Any] = {}  # the real-only classifiers, shared by the runs of this size
        results[n] = [
            evaluate_gain_run(p, ctx, judge_for(p.cfg.data.classes), opts, memo, log) for p in size_plans
        ]
        if results[n]:
            names = ctx.real(size_plans[0].cfg.data.classes).names
            summaries.append(pool_size(n, results[n], names))
            log(f"{n} per class: {summaries[-1]['verdict']}")
    meta = {**meta, "budget_minutes": minutes, "eval_version": EVAL_VERSION, "result_name": result_name(opts)}
    trained_info = {
        n: [{k: v for k, v in t.items() if k != "learning_config"} for t in ts] for n, ts in trained.items()
    }
    return write_gain(summaries, trained_info, results, out, meta, exp.title)
