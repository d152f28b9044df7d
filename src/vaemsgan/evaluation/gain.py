"""Augmentation gain: does adding generated images to the real ones help a classifier on real test images,
beyond the augmentation a user would apply anyway?

Arms (every classifier: same architecture, steps, seed and test set; only the training data differ):
- `real, no augmentation`: the real training images, no augmentation (reference row);
- `real + classical`: the real training images with the `classical` policy (crops, flips where allowed,
  small rotation and scale; classifier.py) - THE baseline every gain is measured against;
- `prior`: real + r x samples of the model's prior (the images `vaemsgan generate` writes);
- `curated`: real + r x prior samples kept by the classifier filter (generation/curate.py);
- `variations T=t`: real + r x encoder-anchored variations of the real training images themselves, at
  temperature t (generation/variations.py);
- `interpolations` (only with `interpolation = (lo, hi)`): real + r x decodes of latent interpolations
  between each real training image and one of its `neighbours` nearest same-class neighbours in the
  encoder's space, (1 - a) mu_x + a mu_neighbour with a ~ U[lo, hi] (variations at temperature 0 mixed with
  the nearest neighbours): images between two close views, e.g. the aspect angles a small set leaves out.
- `weak classes` (only with `weak_classes`): real + prior samples, as many in all as the prior arm adds, shared
  out over the classes in proportion to each class's cross-validated error of the baseline on the real training
  images (`class_errors`: 2 folds; each class's error counted as at least a quarter of the mean error), so the
  classes the classifier gets wrong most get the most synthetic images. The errors come from the training
  images only, never the test set.
Every synthetic arm is trained with the same policy as the baseline. The ratio r is generated / real per
class (for `weak classes`: in all). The gain of an arm at a ratio is the per-seed *paired* difference (same
classifier seed) of its accuracy and the baseline's, in points, reported as mean and 95% Student-t interval over the seeds,
overall and per class. An arm that cannot be made (no model, no encoder, too small a pool) is skipped with
the reason. The pools are made in evaluation/gain_arms.py.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from vaemsgan.errors import ConfigError
from vaemsgan.evaluation.classifier import ClassifierConfig, augment_policy, predict, train_classifier
from vaemsgan.evaluation.crossval import LabelledImages, _ci, _per_class_acc, _pick, concat
from vaemsgan.metrics.distances import mean_ci

DEFAULT_GAIN_RATIOS = (0.5, 1.0, 2.0)
DEFAULT_GAIN_TEMPERATURES = (0.5, 1.0)
DEFAULT_GAIN_SEEDS = 5
CURATE_KEEP_FRACTION = 0.5  # the curated arm keeps the best half of the candidates (classifier filter)
INTERPOLATION_NEIGHBOURS = 3  # the interpolation arm mixes each image with one of its 3 nearest neighbours
WEAKNESS_FOLDS = 2  # the weak-classes arm's cross-validation of the baseline on the real training images
WEAKNESS_FLOOR = 0.25  # ... and each class's error counted as at least this share of the mean error


@dataclass
class GainOptions:
    seeds: int = DEFAULT_GAIN_SEEDS
    ratios: Sequence[float] = DEFAULT_GAIN_RATIOS
    temperatures: Sequence[float] = DEFAULT_GAIN_TEMPERATURES
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    policy: str = "classical"  # the baseline's and every synthetic arm's augmentation policy
    keep_fraction: float = CURATE_KEEP_FRACTION
    interpolation: tuple[float, float] | None = None  # the interpolation arm's mixing range (None: no arm)
    neighbours: int = INTERPOLATION_NEIGHBOURS
    weak_classes: bool = False  # the arm of prior samples shared out by the classes' cross-validated errors

    def validate(self) -> GainOptions:
        if self.seeds < 1:
            raise ConfigError(f"--gain-seeds must be at least 1, got {self.seeds}")
        if not self.ratios or any(not (0 < r <= 100) for r in self.ratios):
            raise ConfigError(f"--gain-ratios must be numbers > 0 and <= 100, got {list(self.ratios)}")
        if any(not (0 <= t <= 100) for t in self.temperatures):
            raise ConfigError(
                f"--gain-temperatures must be numbers from 0 to 100, got {list(self.temperatures)}"
            )
        if not 0 < self.keep_fraction <= 1:
            raise ConfigError(f"keep fraction must be in (0, 1], got {self.keep_fraction}")
        if self.interpolation is not None:
            from vaemsgan.generation.variations import check_options

            lo, hi = self.interpolation
            try:
                check_options(1, 0.0, (float(lo), float(hi)), self.neighbours)
            except ConfigError as e:
                raise ConfigError(f"--gain-interpolation: {e}") from None
        augment_policy(self.policy, self.classifier.validate())
        return self


@dataclass
class Arm:
    """A synthetic arm: its key, its label in the report and its pool of images (None when skipped)."""

    key: str
    label: str
    pool: LabelledImages | None = None
    skipped: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # Each class's share of the r x (all real) images the arm adds; None: r x the class's own count.
    weights: list[float] | None = None


def _interval(diffs: list[float]) -> dict[str, Any]:
    vals = [d for d in diffs if not math.isnan(d)]
    if not vals:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0, "values": diffs}
    m, lo, hi = mean_ci(vals)
    return {"mean": m, "low": lo, "high": hi, "n": len(vals), "values": diffs}


def paired_difference(arm: Sequence[float], baseline: Sequence[float]) -> dict[str, Any]:
    """Accuracies (0-1) of an arm and the baseline, paired by seed -> the difference in points: mean and 95%
    Student-t interval of the per-seed differences 100 * (arm - baseline); seeds where either is NaN drop."""
    if len(arm) != len(baseline):
        raise ConfigError(
            f"paired difference needs one value per seed on each side ({len(arm)} vs {len(baseline)})"
        )
    return _interval([100 * (a - b) for a, b in zip(arm, baseline)])


def gain_verdict(ratio: float, gain: dict[str, Any], what: str = "synthetic images") -> str:
    """One sentence from a gain interval in points, e.g. 'adding 1x synthetic images raised accuracy by 2.4
    points (95% CI 1.1 to 3.7)'."""
    m, lo, hi, n = gain["mean"], gain["low"], gain["high"], gain.get("n", 0)
    what = f"adding {ratio:g}x {what}"
    if n == 0 or math.isnan(m):
        return f"{what}: no measurement"
    ci = f"95% CI {lo:.1f} to {hi:.1f}" if n > 1 else "one seed, no interval"
    if n > 1 and lo > 0:
        return f"{what} raised accuracy by {m:.1f} points ({ci})"
    if n > 1 and hi < 0:
        return f"{what} lowered accuracy by {-m:.1f} points ({ci}): it hurt"
    return f"{what} did not help measurably: {m:+.1f} points ({ci}{', includes zero' if n > 1 else ''})"


def augmentation_gain(sweep: list[dict[str, Any]], class_names: list[str]) -> dict[str, Any]:
    """Gains of the cross-validation sweep's ratios over its ratio 0 (real only, crops + flips), paired by seed:
    the issue-7 measure, kept for benchmarks/scarce_study.py. `evaluate --augmentation-gain` uses
    run_gain_study (against real + classical augmentation)."""
    base = next((s for s in sweep if s["ratio"] == 0.0 and "accuracy" in s), None)
    out: dict[str, Any] = {"baseline": None, "ratios": [], "verdict_lines": []}
    if base is None:
        return out
    out["baseline"] = {"accuracy": base["accuracy"], "per_class": base.get("per_class")}
    for item in sweep:
        if item["ratio"] == 0.0:
            continue
        if "accuracy" not in item:
            out["ratios"].append({"ratio": item["ratio"], "skipped": item.get("skipped", "not measured")})
            out["verdict_lines"].append(f"adding {item['ratio']:g}x: skipped ({item.get('skipped', '')})")
            continue
        entry: dict[str, Any] = {
            "ratio": item["ratio"],
            "accuracy": item["accuracy"],
            "gain_points": paired_difference(item["accuracy"]["values"], base["accuracy"]["values"]),
        }
        pcs, pcb = item.get("per_class_values"), base.get("per_class_values")
        if pcs and pcb:
            entry["per_class_gain_points"] = {
                name: paired_difference([s[c] for s in pcs], [b[c] for b in pcb])
                for c, name in enumerate(class_names)
            }
        entry["verdict"] = gain_verdict(item["ratio"], entry["gain_points"])
        out["ratios"].append(entry)
        out["verdict_lines"].append(
            entry["verdict"][0].upper()
            + entry["verdict"][1:]
            + f" on the real test set (real only: {100 * base['accuracy']['mean']:.1f}%, "
            f"{base['accuracy']['n']} seeds)."
        )
    return out


def _stream(*parts: object) -> torch.Generator:
    """A random stream that depends only on its name: picks do not change when other arms are added."""
    return torch.Generator().manual_seed(zlib.crc32("/".join(map(str, parts)).encode()))


def best_verdict(arms: list[dict[str, Any]], baseline_label: str) -> tuple[dict[str, Any] | None, str]:
    """The measured (arm, ratio) with the largest mean gain, and a sentence on whether its interval is above 0."""
    cands = [
        (a, r)
        for a in arms
        for r in a.get("ratios", [])
        if "difference_points" in r and r["difference_points"]["n"] > 0
    ]
    if not cands:
        return None, f"No synthetic arm could be measured against {baseline_label}."
    a, r = max(cands, key=lambda ar: ar[1]["difference_points"]["mean"])
    d = r["difference_points"]
    head = (
        f"Best arm: {a['label']} at {r['ratio']:g}x, {d['mean']:+.1f} points over {baseline_label} "
        f"on the real test set"
    )
    if d["n"] < 2:
        tail = "one seed, no interval: not a measurement of a gain"
    elif d["low"] > 0:
        tail = f"95% CI {d['low']:.1f} to {d['high']:.1f}, above zero: a measurable gain"
    elif d["high"] < 0:
        tail = f"95% CI {d['low']:.1f} to {d['high']:.1f}, below zero: even the best arm hurt"
    else:
        tail = f"95% CI {d['low']:.1f} to {d['high']:.1f} includes zero: no measurable gain"
    best = {"arm": a["arm"], "label": a["label"], "ratio": r["ratio"], "difference_points": d}
    return best, f"{head} ({tail})."


def class_counts(ratio: float, real_counts: Sequence[int], weights: Sequence[float] | None) -> list[int]:
    """Synthetic images per class an arm adds at `ratio`: ratio x each class's real count, or with `weights`
    round(ratio x all real images) shared out by the weights (largest remainders: the total is exact)."""
    if weights is None:
        return [int(round(ratio * n)) for n in real_counts]
    total = int(round(ratio * sum(real_counts)))
    exact = [total * w / sum(weights) for w in weights]
    counts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(exact)), key=lambda c: (counts[c] - exact[c], c))
    for c in by_remainder[: total - sum(counts)]:
        counts[c] += 1
    return counts


def _stored(entry: Sequence[Any]) -> tuple[float, list[float]]:
    """A journalled classifier result, [accuracy, per-class recall] as JSON keeps it, as fit_eval returns it."""
    acc, recalls = entry
    return float(acc), [float(r) for r in recalls]


def run_gain_study(
    real_train: LabelledImages,
    real_test: LabelledImages,
    arms: Sequence[Arm],
    class_names: list[str],
    options: GainOptions | None = None,
    progress: Callable[[str], None] | None = None,
    real_memo: MutableMapping[str, Any] | None = None,
    journal: MutableMapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train every arm's classifiers over `options.seeds` seeds; returns a JSON-ready dict (module doc).

    `real_memo` holds the two real-only arms' results by "<arm>#<seed>" as [accuracy, per-class recall]:
    given, they are read from it and written to it, so a study of several models on the same real images and
    options trains those classifiers once (the caller keeps one memo per real set and options; persisted, as
    a FitJournal, it serves studies in other processes too).
    `journal` holds every classifier's result by "<arm>[/<ratio>]#<seed>" as [accuracy, per-class recall]:
    given, a result found there is not trained again and each new one is stored as soon as it exists, so a
    caller that persists the mapping on every write makes an interrupted study resume where it stopped (the
    arms must be the same: the same model, pools and options)."""
    opt = (options or GainOptions()).validate()
    n_cls = len(class_names)
    cfg = opt.classifier
    real_counts = [len(real_train.of_class(c)) for c in range(n_cls)]
    ratios = sorted(set(float(r) for r in opt.ratios))
    log = progress or (lambda _m: None)
    timings: dict[str, float] = {}

    def fit_eval(
        data: LabelledImages, seed: int, policy: str, what: str, key: str
    ) -> tuple[float, list[float]]:
        """Accuracy and per-class recall of a classifier of `data` (`what`: its timing label), or the journal's
        result under `key`#`seed`."""
        name = f"{key}#{seed}"
        if journal is not None and name in journal:
            return _stored(journal[name])
        t0 = time.perf_counter()
        model = train_classifier(data.images, data.labels, n_cls, cfg, seed=seed, augment=policy)
        timings[what] = timings.get(what, 0.0) + time.perf_counter() - t0
        pred = predict(model, real_test.images)
        value = (
            float((pred == real_test.labels).double().mean()),
            _per_class_acc(pred, real_test.labels, n_cls),
        )
        if journal is not None:
            journal[name] = list(value)
        return value

    # The plan: per arm and ratio, how many images of each class are added, or why not.
    plans: list[dict[str, Any]] = []
    for arm in arms:
        entry: dict[str, Any] = {"arm": arm.key, "label": arm.label, **arm.info}
        if arm.pool is None:
            entry["skipped"] = arm.skipped or "no images"
            plans.append(entry)
            continue
        pool_counts = [len(arm.pool.of_class(c)) for c in range(n_cls)]
        entry["pool_per_class"] = dict(zip(class_names, pool_counts))
        entry["ratios"] = []
        for r in ratios:
            need = class_counts(r, real_counts, arm.weights)
            item: dict[str, Any] = {"ratio": r, "n_generated": sum(need), "_need": need}
            short = [c for c in range(n_cls) if need[c] > pool_counts[c]]
            if short:
                c = short[0]
                item["skipped"] = (
                    f"needs {need[c]} images of '{class_names[c]}', the pool has {pool_counts[c]}"
                )
            entry["ratios"].append(item)
        plans.append(entry)

    acc: dict[str, list[float]] = {}
    per_class: dict[str, list[list[float]]] = {}

    def put(key: str, value: tuple[float, list[float]]) -> None:
        acc.setdefault(key, []).append(value[0])
        per_class.setdefault(key, []).append(value[1])

    def real_only(what: str, seed: int, policy: str, tag: str) -> tuple[float, list[float]]:
        name = f"{what}#{seed}"
        if real_memo is not None and name in real_memo:
            value = _stored(real_memo[name])
            if journal is not None and name not in journal:
                journal[name] = list(value)  # so that this study resumes without the memo
            return value
        log(f"{tag}: real only, {'no' if policy == 'none' else policy} augmentation ({what})")
        value = fit_eval(real_train, seed, policy, what, what)
        if real_memo is not None:
            real_memo[name] = list(value)
        return value

    for seed in range(opt.seeds):
        tag = f"seed {seed + 1}/{opt.seeds}"
        put("reference", real_only("reference", seed, "none", tag))
        put("baseline", real_only("baseline", seed, opt.policy, tag))
        for arm, plan in zip(arms, plans):
            if arm.pool is None:
                continue
            for item in plan["ratios"]:
                if "skipped" in item:
                    continue
                r = item["ratio"]
                key = f"{arm.key}/{r:g}"
                if journal is None or f"{key}#{seed}" not in journal:  # said only when it is trained
                    log(f"{tag}: {arm.label}, {r:g}x")
                extra = _pick(arm.pool, item["_need"], _stream(arm.key, f"{r:g}", seed))
                put(key, fit_eval(concat(real_train, extra), seed, opt.policy, arm.key, key))

    def class_means(key: str) -> dict[str, float]:
        return {name: _ci([run[c] for run in per_class[key]])["mean"] for c, name in enumerate(class_names)}

    def class_diffs(key: str) -> dict[str, dict[str, Any]]:
        return {
            name: paired_difference(
                [run[c] for run in per_class[key]], [run[c] for run in per_class["baseline"]]
            )
            for c, name in enumerate(class_names)
        }

    baseline_label = (
        "real only, no augmentation" if opt.policy == "none" else f"real + {opt.policy} augmentation"
    )
    for plan in plans:
        for item in plan.get("ratios", []):
            item.pop("_need")
            if "skipped" in item:
                continue
            key = f"{plan['arm']}/{item['ratio']:g}"
            item["accuracy"] = _ci(acc[key])
            item["difference_points"] = paired_difference(acc[key], acc["baseline"])
            item["per_class_difference_points"] = class_diffs(key)
            item["verdict"] = gain_verdict(
                item["ratio"], item["difference_points"], plan["label"].removeprefix("real + ")
            )
    best, sentence = best_verdict(plans, baseline_label)
    ref_diff = paired_difference(acc["reference"], acc["baseline"])
    lines = [
        sentence,
        f"Baseline {baseline_label}: {100 * _ci(acc['baseline'])['mean']:.1f}% over {opt.seeds} seeds; "
        f"real only without augmentation: {100 * _ci(acc['reference'])['mean']:.1f}% "
        f"({ref_diff['mean']:+.1f} points against the baseline).",
    ]
    lines += [f"Arm '{p['label']}' skipped: {p['skipped']}." for p in plans if "skipped" in p]
    return {
        "seeds": opt.seeds,
        "ratios": ratios,
        "classifier": cfg.to_dict(),
        "policy": augment_policy(opt.policy, cfg),
        "reference_policy": augment_policy("none", cfg),
        "real_train_per_class": dict(zip(class_names, real_counts)),
        "n_real_test": len(real_test),
        "reference": {
            "label": "real only, no augmentation",
            "accuracy": _ci(acc["reference"]),
            "per_class": class_means("reference"),
            "difference_points": ref_diff,
            "per_class_difference_points": class_diffs("reference"),
        },
        "baseline": {
            "label": baseline_label,
            "accuracy": _ci(acc["baseline"]),
            "per_class": class_means("baseline"),
        },
        "arms": plans,
        "best": best,
        "verdict": sentence,
        "verdict_lines": lines,
        "train_seconds": timings,
    }


__all__ = [
    "Arm",
    "GainOptions",
    "augmentation_gain",
    "best_verdict",
    "gain_verdict",
    "paired_difference",
    "class_counts",
    "run_gain_study",
]
