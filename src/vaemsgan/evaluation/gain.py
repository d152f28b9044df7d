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
the reason.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from vaemsgan.errors import ConfigError
from vaemsgan.evaluation.classifier import ClassifierConfig, augment_policy, predict, train_classifier
from vaemsgan.evaluation.crossval import LabelledImages, _ci, _per_class_acc, _pick, concat
from vaemsgan.limits import check_memory
from vaemsgan.metrics.distances import mean_ci

if TYPE_CHECKING:
    from vaemsgan.inference import LoadedModel

Scorer = Callable[[torch.Tensor, int], torch.Tensor]  # as evaluation.curate.Scorer

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


def weakness_weights(errors: Sequence[float], floor: float = WEAKNESS_FLOOR) -> list[float]:
    """Per-class shares proportional to the errors, each error counted as at least `floor` x their mean (so no
    class gets nothing); equal shares when no class has an error. A NaN error (a class without images) is 0."""
    errors = [0.0 if math.isnan(e) else e for e in errors]
    mean = sum(errors) / len(errors) if errors else 0.0
    if mean <= 0:
        return [1 / len(errors)] * len(errors)
    raised = [max(e, floor * mean) for e in errors]
    return [e / sum(raised) for e in raised]


def class_errors(
    real_train: LabelledImages,
    n_cls: int,
    cfg: ClassifierConfig,
    policy: str,
    folds: int = WEAKNESS_FOLDS,
    seed: int = 0,
) -> list[float]:
    """Each class's error rate of the baseline classifier (`cfg`, `policy`) in a `folds`-fold cross-validation
    on the real training images (each class split in seeded folds); NaN for a class with no image."""
    g = torch.Generator().manual_seed(seed)
    fold_of = torch.empty(len(real_train), dtype=torch.long)
    for c in range(n_cls):
        idx = real_train.of_class(c)
        fold_of[idx[torch.randperm(len(idx), generator=g)]] = torch.arange(len(idx)) % folds
    wrong, seen = torch.zeros(n_cls, dtype=torch.long), torch.zeros(n_cls, dtype=torch.long)
    for f in range(folds):
        held = fold_of == f
        train, test = real_train.take((~held).nonzero().flatten()), real_train.take(held.nonzero().flatten())
        if len(test) == 0 or len(train) == 0:
            continue
        model = train_classifier(train.images, train.labels, n_cls, cfg, seed=seed + f, augment=policy)
        pred = predict(model, test.images)
        wrong += torch.bincount(test.labels[pred != test.labels], minlength=n_cls)
        seen += torch.bincount(test.labels, minlength=n_cls)
    return [int(w) / int(n) if n > 0 else float("nan") for w, n in zip(wrong, seen)]


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


# ------------------------------------------------------------------------------------------ the pools


def _weak_classes_arm(
    real_train: LabelledImages,
    names: Sequence[str],
    prior: LabelledImages,
    model: LoadedModel | None,
    options: GainOptions,
    seed: int,
    truncation: float | None,
    errors: Callable[[], list[float]] | None,
    log: Callable[[str], None],
) -> Arm:
    """The weak-classes arm: prior samples shared out by the baseline's cross-validated class errors; its pool
    is sampled from the model (the prior pool holds too few of a weak class), or is the prior pool itself.
    Its key names the folds and a digest of the weights: journalled results are of these shares only."""
    label = "real + prior samples, most for the weakest classes"
    if errors is None:
        return Arm("weak-classes", label, skipped="no cross-validated class errors to share out by")
    err = errors()
    weights = weakness_weights(err)
    info = {
        "class_errors": dict(zip(names, err)),
        "weights": dict(zip(names, weights)),
        "folds": WEAKNESS_FOLDS,
    }
    digest = zlib.crc32(",".join(f"{w:.6f}" for w in weights).encode())
    key = f"weak-classes-f{WEAKNESS_FOLDS}-{digest:08x}"
    real_counts = [len(real_train.of_class(c)) for c in range(len(names))]
    # The largest count of each class over the ratios (rounding can give a smaller ratio one image more).
    by_ratio = [class_counts(r, real_counts, weights) for r in options.ratios]
    need = [max(counts[c] for counts in by_ratio) for c in range(len(names))]
    pool = prior if model is None else prior_pool(model, names, need, seed, truncation)
    return Arm(key, label, pool, info=info, weights=weights)


def _class_samples(model: LoadedModel, cm: int, n: int, seed: int, truncation: float | None) -> torch.Tensor:
    """n prior samples (uint8) of the model's class cm: the images `generate --seed seed` writes."""
    from vaemsgan.inference import sample_class

    if n == 0:  # a class the weak-classes arm gives no image at any ratio
        res = model.cfg.data.resolution
        return torch.zeros(0, model.cfg.data.channels, res, res, dtype=torch.uint8)
    return sample_class(model, cm, n, seed, truncation)


@torch.inference_mode()
def prior_pool(
    model: LoadedModel,
    names: Sequence[str],
    per_class: Sequence[int],
    seed: int,
    truncation: float | None = None,
) -> LabelledImages:
    """per_class[c] prior samples of each class c (the study's class order)."""
    imgs = [
        _class_samples(model, cm, per_class[c], seed, truncation)
        for c, cm in enumerate(_model_classes(model, names))
    ]
    labels = [torch.full((len(x),), c, dtype=torch.long) for c, x in enumerate(imgs)]
    return LabelledImages(torch.cat(imgs), torch.cat(labels))


def _model_classes(model: LoadedModel, names: Sequence[str]) -> list[int]:
    missing = [n for n in names if n not in model.class_names]
    if missing:
        raise ConfigError(f"class {missing[0]!r} is not one of the model's ({', '.join(model.class_names)})")
    return [model.class_names.index(n) for n in names]


@torch.inference_mode()
def curated_pool(
    model: LoadedModel,
    names: Sequence[str],
    per_class: Sequence[int],
    scorer: Scorer,
    keep_fraction: float,
    seed: int,
    truncation: float | None = None,
) -> LabelledImages:
    """per_class[c] images of each class c: the best of ceil(n / keep_fraction) prior samples by the
    classifier filter (the first n candidates are the uncurated samples of the same seed)."""
    from vaemsgan.evaluation.curate import curate_class

    imgs, labels = [], []
    for c, cm in enumerate(_model_classes(model, names)):
        n = per_class[c]
        x = _class_samples(model, cm, math.ceil(n / keep_fraction - 1e-9), seed, truncation)
        kept, _, _ = curate_class(x, c, n, ["classifier"], {"classifier": scorer})
        imgs.append(x[kept])
        labels.append(torch.full((len(kept),), c, dtype=torch.long))
    return LabelledImages(torch.cat(imgs), torch.cat(labels))


def variations_pool(
    model: LoadedModel,
    real_train: LabelledImages,
    names: Sequence[str],
    k: int,
    temperature: float,
    seed: int,
    mix: tuple[float, float] | None = None,
    nearest: int | None = None,
) -> LabelledImages:
    """k anchored variations of every real training image (labels in the study's class order), mixed with
    same-class partners (the `nearest` nearest ones when given) when `mix` is given."""
    from vaemsgan.generation.variations import variations

    lookup = torch.tensor(_model_classes(model, names), dtype=torch.long)
    out, _ = variations(
        model, real_train.images, lookup[real_train.labels], k, temperature, mix, seed=seed, nearest=nearest
    )
    return LabelledImages(out.reshape(-1, *out.shape[2:]), real_train.labels.repeat_interleave(k))


def synthetic_arms(
    real_train: LabelledImages,
    names: list[str],
    prior: LabelledImages,
    model: LoadedModel | None,
    options: GainOptions,
    *,
    seed: int = 0,
    truncation: float | None = None,
    scorer: Callable[[], Scorer] | None = None,
    progress: Callable[[str], None] | None = None,
    errors: Callable[[], list[float]] | None = None,
) -> list[Arm]:
    """The synthetic arms: prior samples (`prior`), curated samples, variations at each temperature and,
    with `options.interpolation`, interpolations between nearest neighbours (all but the first need `model`;
    the last two need its encoder) and, with `options.weak_classes`, prior samples shared out by the classes'
    errors (`errors()`: the baseline's cross-validated error per class, `class_errors`). `scorer()` builds the
    curation classifier."""
    log = progress or (lambda _m: None)
    arms = [Arm("prior", "real + prior samples", prior)]

    def weak_classes() -> list[Arm]:
        if not options.weak_classes:
            return []
        return [_weak_classes_arm(real_train, names, prior, model, options, seed, truncation, errors, log)]

    max_r = max(options.ratios)
    need = [math.ceil(max_r * len(real_train.of_class(c))) for c in range(len(names))]
    temps = sorted(set(float(t) for t in options.temperatures))
    var_keys = [(f"variations-T{t:g}", f"real + anchored variations (T={t:g})", t) for t in temps]
    interp = options.interpolation
    interp_info: dict[str, Any] = (
        {} if interp is None else {"mix": [float(v) for v in interp], "neighbours": options.neighbours}
    )
    interp_label = f"real + interpolations of {options.neighbours} nearest neighbours"
    # The key names the arm's parameters (as variations-T<t> does): journalled results stay its own.
    interp_key = "" if interp is None else f"interpolations-n{options.neighbours}-{interp[0]:g}-{interp[1]:g}"
    if model is None:
        why = "needs a model (evaluate --checkpoint RUN), not a folder of images"
        arms.append(Arm("curated", "real + curated prior samples", skipped=why))
        arms += [Arm(k, lab, skipped=why, info={"temperature": t}) for k, lab, t in var_keys]
        if interp is not None:
            arms.append(Arm(interp_key, interp_label, skipped=why, info=interp_info))
        return arms + weak_classes()
    k = max(1, math.ceil(max_r))
    # Both pools are held in memory (uint8) next to the prior pool and the real images.
    pixels = int(real_train.images[0].numel()) if len(real_train) else 0
    n_var = len(real_train) * k * ((len(temps) + (interp is not None)) if model.encoder is not None else 0)
    n_weak = math.ceil(max_r * len(real_train)) + len(names) if options.weak_classes else 0
    check_memory(
        pixels * (n_var + n_weak + sum(math.ceil(n / options.keep_fraction) for n in need)),
        f"the gain's synthetic pools ({n_var} variations, {sum(need)} curated images, {n_weak} for weak classes)",
        "use smaller --gain-ratios or fewer --gain-temperatures",
    )
    if scorer is None:
        arms.append(Arm("curated", "real + curated prior samples", skipped="no classifier to curate with"))
    else:
        log(f"curated pool: best {options.keep_fraction:g} of the prior samples by the classifier filter")
        pool = curated_pool(model, names, need, scorer(), options.keep_fraction, seed, truncation)
        arms.append(
            Arm(
                "curated", "real + curated prior samples", pool, info={"keep_fraction": options.keep_fraction}
            )
        )
    for key, label, t in var_keys:
        if model.encoder is None:
            why = "the model has no encoder (trained without the VAE half): no anchored variations"
            arms.append(Arm(key, label, skipped=why, info={"temperature": t}))
            continue
        log(f"variations pool: {k} per real training image at temperature {t:g}")
        pool = variations_pool(model, real_train, names, k, t, seed)
        arms.append(Arm(key, label, pool, info={"temperature": t, "variations_per_image": k}))
    if interp is not None:
        if model.encoder is None:
            why = "the model has no encoder (trained without the VAE half): no latent interpolations"
            arms.append(Arm(interp_key, interp_label, skipped=why, info=interp_info))
        else:
            log(
                f"interpolation pool: {k} per real training image, toward one of its {options.neighbours} "
                f"nearest neighbours by {interp[0]:g}-{interp[1]:g}"
            )
            pool = variations_pool(
                model,
                real_train,
                names,
                k,
                0.0,
                seed,
                (float(interp[0]), float(interp[1])),
                options.neighbours,
            )
            arms.append(Arm(interp_key, interp_label, pool, info={**interp_info, "variations_per_image": k}))
    return arms + weak_classes()


__all__ = [
    "Arm",
    "GainOptions",
    "augmentation_gain",
    "best_verdict",
    "gain_verdict",
    "paired_difference",
    "run_gain_study",
    "synthetic_arms",
]
