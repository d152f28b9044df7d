"""Classifier cross-validation (the paper's experiment 4, with seeds, fixed budgets and intervals).

All sets share one class index space (the classes present on both sides). Per seed:
- TRTR / TRTS: a classifier trained on k_c real training images of each class c, tested on real / generated
  test images; TSTR / TSTS: trained on k_c generated images, tested on real / generated test images.
  k_c = min(real training images of c, generated training pool of c), so both classifiers see equally many
  images of every class (a fair comparison); TSTR is the Classification Accuracy Score.
- mixed: all real training images, except that a share (default half) of one class's are replaced by as
  many generated images of that class; accuracy on that class's real and generated test images and on the
  other classes' real test images, next to the same numbers for the classifier trained on real images only.
- sweep: all real training images plus generated ones, ratio r = generated / real per class
  (0 = real only); accuracy on the real test set. A ratio needing more generated images than the pool holds
  is skipped with the reason.
Every classifier gets the same fixed number of steps, so only the data differ. Each number is reported as
mean and 95% Student-t interval over the seeds (vaemsgan.metrics.mean_ci).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaemsgan.errors import ConfigError
from vaemsgan.evaluation import cache
from vaemsgan.evaluation.classifier import (
    ClassifierConfig,
    SmallVGG,
    cached_classifier,
    predict,
    train_classifier,
)
from vaemsgan.metrics.distances import mean_ci
from vaemsgan.utils.threads import single_threaded

DEFAULT_RATIOS = (0.5, 1.0, 2.0, 4.0)


@dataclass
class LabelledImages:
    """uint8 N x C x H x W images and int64 labels in the shared class index space."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)

    def of_class(self, c: int) -> torch.Tensor:
        return (self.labels == c).nonzero().flatten()

    def take(self, idx: torch.Tensor) -> LabelledImages:
        return LabelledImages(self.images[idx], self.labels[idx])


def concat(*parts: LabelledImages) -> LabelledImages:
    return LabelledImages(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))


@dataclass
class CrossvalOptions:
    seeds: int = 3
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    ratios: Sequence[float] = DEFAULT_RATIOS
    mixed_class: str | None = None  # default: the first class
    mixed_share: float = 0.5
    experiments: Sequence[str] = ("crossval", "mixed", "sweep")
    # Real-data classifiers (TRTR and the real-only baseline) and their predictions on the real test
    # images from the evaluation cache (evaluation/cache.py) when `cache` is set: they depend on the real
    # data, the settings and the seed alone, so a second evaluation of the same real data reuses them.
    cache: bool = False
    cache_dir: str | Path | None = None
    # Classifiers trained at once, each on one intra-op thread (0: torch's thread count). Small networks
    # use two cores far better as two single-thread trainings than as one two-thread training; each
    # classifier's numbers depend on its seed and data alone, not on which thread trained it.
    workers: int = 0


def _ci(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0, "values": values}
    m, lo, hi = mean_ci(vals)
    # Accuracies live in [0, 1]; a t-interval over few seeds can reach past that, which means nothing.
    return {"mean": m, "low": max(0.0, lo), "high": min(1.0, hi), "n": len(vals), "values": values}


def _acc(pred: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    if mask is not None:
        pred, labels = pred[mask], labels[mask]
    return float((pred == labels).double().mean()) if len(labels) else float("nan")


def _per_class_acc(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> list[float]:
    return [_acc(pred, labels, labels == c) for c in range(n_classes)]


def _pick(data: LabelledImages, counts: list[int], gen: torch.Generator) -> LabelledImages:
    """counts[c] images of each class c, chosen at random with `gen`."""
    idx = []
    for c, k in enumerate(counts):
        pool = data.of_class(c)
        if k > len(pool):
            raise ConfigError(f"class {c}: {k} images wanted, {len(pool)} available")
        idx.append(pool[torch.randperm(len(pool), generator=gen)[:k]])
    return data.take(torch.cat(idx) if idx else torch.zeros(0, dtype=torch.long))


def run_crossval(
    real_train: LabelledImages,
    real_test: LabelledImages,
    gen_train: LabelledImages,
    gen_test: LabelledImages,
    class_names: list[str],
    options: CrossvalOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the experiments over `options.seeds` seeds; returns a JSON-ready dict (module docstring)."""
    opt = options or CrossvalOptions()
    n_cls = len(class_names)
    if opt.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {opt.seeds}")
    if not 0 < opt.mixed_share <= 1:
        raise ConfigError(f"mixed share must be in (0, 1], got {opt.mixed_share}")
    real_counts = [len(real_train.of_class(c)) for c in range(n_cls)]
    gen_counts = [len(gen_train.of_class(c)) for c in range(n_cls)]
    k = [min(r, g) for r, g in zip(real_counts, gen_counts)]
    if min(k) < 1:
        empty = [class_names[c] for c in range(n_cls) if k[c] < 1]
        raise ConfigError(
            f"cross-validation needs real and generated training images of every class: {empty}"
        )
    mixed_name = opt.mixed_class or class_names[0]
    if mixed_name not in class_names:
        raise ConfigError(f"--mixed-class {mixed_name!r} is not a shared class ({', '.join(class_names)})")
    mc = class_names.index(mixed_name)
    n_replace = min(int(round(opt.mixed_share * real_counts[mc])), gen_counts[mc])

    def log(msg: str) -> None:
        if progress is not None:
            progress(msg)

    timings: dict[str, float] = {}
    lock = threading.Lock()

    real_keys: dict[int, str] = {}  # id(model) -> cache key, for the real-data classifiers

    def train_one(data: LabelledImages, seed: int, what: str, real: bool) -> SmallVGG:
        t0 = time.perf_counter()
        if real and opt.cache:
            model, info = cached_classifier(
                data.images, data.labels, class_names, opt.classifier, seed=seed, cache_dir=opt.cache_dir
            )
            with lock:
                real_keys[id(model)] = info["key"]
                if info["cache_hit"]:
                    cache_hits.append(what)
        else:
            model = train_classifier(data.images, data.labels, n_cls, opt.classifier, seed=seed)
        with lock:
            timings[what] = timings.get(what, 0.0) + time.perf_counter() - t0
            alive.append(model)  # ids stay unique while the memos below are keyed by them
        return model

    def fit(data: LabelledImages, seed: int, what: str, real: bool = False) -> Future[SmallVGG]:
        """Start training (or loading) a classifier; its predictions wait for it (`pred`)."""
        return pool.submit(train_one, data, seed, what, real)

    alive: list[SmallVGG] = []
    cache_hits: list[str] = []
    preds: dict[tuple[int, str], Future[torch.Tensor]] = {}
    # The mixed experiment reads the generated test images of its class only: predict just those.
    gen_test_mc = gen_test.take(gen_test.of_class(mc))
    test_sets = {"real": real_test, "gen": gen_test, "gen_mixed_class": gen_test_mc}
    real_test_digest: list[str] = []

    def predict_one(model: SmallVGG, which: str) -> torch.Tensor:
        t0 = time.perf_counter()
        key = real_keys.get(id(model)) if which == "real" else None
        if key is not None:
            with lock:
                if not real_test_digest:
                    real_test_digest.append(cache.digest({"kind": "test images"}, real_test.images))
            path = cache.cache_folder(opt.cache_dir) / f"pred-{key[:32]}-{real_test_digest[0][:32]}.pt"
            out, _ = cache.cached(path, lambda: predict(model, real_test.images))
        else:
            out = predict(model, test_sets[which].images)
        with lock:
            timings["predict"] = timings.get("predict", 0.0) + time.perf_counter() - t0
        return out

    def start_pred(job: Future[SmallVGG], which: str) -> Future[torch.Tensor]:
        """Start the predictions of the classifier `job` trains on the real or generated test set, once per
        model (a cached real-data classifier's predictions on the real test images come from the cache too);
        they run on the pool's workers, side by side like the trainings."""
        model = job.result()
        memo = (id(model), which)
        if memo not in preds:
            preds[memo] = pool.submit(predict_one, model, which)
        return preds[memo]

    raw: dict[str, list[float]] = {}
    per_class: dict[str, list[list[float]]] = {}

    def put(key: str, value: float) -> None:
        raw.setdefault(key, []).append(value)

    sweep_plan: list[dict[str, Any]] = []
    for r in [0.0, *sorted(set(float(x) for x in opt.ratios))]:
        need = [int(round(r * n)) for n in real_counts]
        short = [class_names[c] for c in range(n_cls) if need[c] > gen_counts[c]]
        item: dict[str, Any] = {"ratio": r, "n_generated": sum(need)}
        if short:
            item["skipped"] = (
                f"needs {max(need)} generated training images per class, the pool has {min(gen_counts)} "
                f"(generate more, e.g. with --checkpoint and --per-class)"
            )
        sweep_plan.append(item)

    n_seeds = opt.seeds

    def submit_seed(seed: int) -> dict[str, Any]:
        """Draw this seed's training sets (in a fixed order from its generator) and start their classifiers."""
        g = torch.Generator().manual_seed(10_007 * seed + 17)
        jobs: dict[str, Any] = {}
        full: Future[SmallVGG] | None = None
        if "crossval" in opt.experiments:
            log(f"seed {seed + 1}/{n_seeds}: train on real (TRTR/TRTS) and on generated (TSTR/TSTS)")
            real_k = real_train if k == real_counts else _pick(real_train, k, g)
            jobs["real"] = fit(real_k, seed, "real", real=True)
            if k == real_counts:
                full = jobs["real"]
            jobs["gen"] = fit(_pick(gen_train, k, g), seed, "generated")
        if full is None and ("mixed" in opt.experiments or "sweep" in opt.experiments):
            log(f"seed {seed + 1}/{n_seeds}: train on all real images (baseline)")
            full = fit(real_train, seed, "real_all", real=True)
        jobs["full"] = full
        if "mixed" in opt.experiments and full is not None:
            log(f"seed {seed + 1}/{n_seeds}: mixed experiment (class '{mixed_name}')")
            keep_mask = torch.ones(len(real_train), dtype=torch.bool)
            mine = real_train.of_class(mc)
            keep_mask[mine[torch.randperm(len(mine), generator=g)[:n_replace]]] = False
            added = gen_train.of_class(mc)
            added = added[torch.randperm(len(added), generator=g)[:n_replace]]
            mixed = concat(real_train.take(keep_mask.nonzero().flatten()), gen_train.take(added))
            jobs["mixed"] = fit(mixed, seed, "mixed")
        if "sweep" in opt.experiments and full is not None:
            for item in sweep_plan:
                if "skipped" in item:
                    continue
                r = item["ratio"]
                if r == 0.0:
                    jobs[f"sweep/{r:g}"] = full
                else:
                    log(f"seed {seed + 1}/{n_seeds}: real + {r:g}x generated")
                    extra = _pick(gen_train, [int(round(r * n)) for n in real_counts], g)
                    jobs[f"sweep/{r:g}"] = fit(concat(real_train, extra), seed, f"sweep_{r:g}")
        return jobs

    def collect_seed(jobs: dict[str, Any]) -> None:
        """This seed's accuracies, from its classifiers' predictions: every prediction it needs is started
        first (they run side by side), then read."""
        wanted = [(j, w) for j in ("real", "gen") for w in ("real", "gen")] if "gen" in jobs else []
        if "mixed" in jobs:
            wanted += [(j, w) for j in ("full", "mixed") for w in ("real", "gen_mixed_class")]
        wanted += [(key, "real") for key in jobs if key.startswith("sweep/")]
        started = {(j, w): start_pred(jobs[j], w) for j, w in wanted}

        def pred(j: str, w: str) -> torch.Tensor:
            return started[(j, w)].result()

        if "gen" in jobs:
            for key, (j, w), lab in (
                ("TRTR", ("real", "real"), real_test.labels),
                ("TRTS", ("real", "gen"), gen_test.labels),
                ("TSTR", ("gen", "real"), real_test.labels),
                ("TSTS", ("gen", "gen"), gen_test.labels),
            ):
                p = pred(j, w)
                put(key, _acc(p, lab))
                per_class.setdefault(key, []).append(_per_class_acc(p, lab, n_cls))
        if "mixed" in jobs:
            for prefix, j in (("baseline", "full"), ("mixed", "mixed")):
                pr, pg = pred(j, "real"), pred(j, "gen_mixed_class")
                put(f"{prefix}/real_test_class", _acc(pr, real_test.labels, real_test.labels == mc))
                put(f"{prefix}/gen_test_class", _acc(pg, gen_test_mc.labels))
                put(f"{prefix}/real_test_others", _acc(pr, real_test.labels, real_test.labels != mc))
        for key in [key for key in jobs if key.startswith("sweep/")]:
            p = pred(key, "real")
            put(key, _acc(p, real_test.labels))
            # Per-seed, per-class accuracies: the augmentation gain (gain.py) pairs them by seed.
            per_class.setdefault(key, []).append(_per_class_acc(p, real_test.labels, n_cls))

    workers = max(1, opt.workers or torch.get_num_threads())
    # Every seed's classifiers are started first (up to `workers` train at once), then read in seed order.
    with single_threaded(workers > 1), ThreadPoolExecutor(max_workers=workers) as pool:
        for jobs in [submit_seed(seed) for seed in range(n_seeds)]:
            collect_seed(jobs)

    out: dict[str, Any] = {
        "seeds": n_seeds,
        "classifier": opt.classifier.to_dict(),
        "train_per_class": dict(zip(class_names, k)),
        "real_train_per_class": dict(zip(class_names, real_counts)),
        "gen_train_pool_per_class": dict(zip(class_names, gen_counts)),
        "n_real_test": len(real_test),
        "n_gen_test": len(gen_test),
        # Per kind, summed over classifiers and predictions; they run side by side, so a sum can exceed the
        # wall time of the whole part.
        "train_seconds": timings,
    }
    if opt.cache:
        out["real_classifiers_from_cache"] = cache_hits
    if "crossval" in opt.experiments:
        out["table"] = {key: _ci(raw[key]) for key in ("TRTR", "TRTS", "TSTR", "TSTS")}
        out["per_class"] = {
            name: {
                key: _ci([run[c] for run in per_class[key]])["mean"]
                for key in ("TRTR", "TRTS", "TSTR", "TSTS")
            }
            for c, name in enumerate(class_names)
        }
    if "mixed" in opt.experiments:
        out["mixed"] = {
            "class": mixed_name,
            "replaced": n_replace,
            "of": real_counts[mc],
            **{key: _ci(vals) for key, vals in raw.items() if key.startswith(("baseline/", "mixed/"))},
        }
    if "sweep" in opt.experiments:
        for item in sweep_plan:
            if "skipped" not in item:
                item["accuracy"] = _ci(raw[f"sweep/{item['ratio']:g}"])
                item["per_class_values"] = per_class[f"sweep/{item['ratio']:g}"]
        out["sweep"] = sweep_plan
    return out
