"""`vaemsgan reproduce gain`: the augmentation-gain study of issue 12 as one resumable command.

For each real-set size N in `--gain-per-class` (default 100 and 1,000 images per class: a seeded subset,
seed 0, so every GAN seed sees the same real images) and each GAN training seed (`--seeds`, default 3), the
`scarce` preset trains on the N-per-class subset for `--budget` CPU-minutes (default 30; the run's own
training CPU time, counted across resumes as `vaemsgan train --clock cpu` does: an interrupted run continues
from its newest checkpoint, a run that reached its budget has TRAINED.json and is not trained again, a
larger `--budget` continues it). The run's best.pt (kept by the monitor; the newest checkpoint when the
monitor never ran or the run never reached quality) then feeds the augmentation-gain study of `vaemsgan evaluate --augmentation-gain`
(evaluation/gain.py through core.gain_arms / core.gain_part): real only, real + classical augmentation (THE
baseline), real + prior samples, real + curated prior samples and real + anchored variations at each
`--gain-temperatures`, with `--gain-interpolation` real + latent interpolations between nearest neighbours,
with `--gain-weak-classes yes` real + prior samples shared out by the baseline's cross-validated class errors,
at each `--gain-ratios`, over `--eval-seeds` classifier seeds, paired by seed.

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
    OUT/n<N>/runs/<run>/gain.fits.json          each classifier's result as it comes (FitJournal): a stopped
                                                evaluation resumes, and one with another arm, temperature,
                                                smaller ratio or more seeds trains only what is new
    OUT/n<N>/gain.real-fits.json                the real-only classifiers' results (baseline, no augmentation),
                                                shared by every GAN seed of the size (the same real images)
    OUT/gain.md / gain.json / gain.png           tables, every number, one plot panel per size
With another classifier augmentation policy (--gain-policy) or step count (--classifier-steps), `gain`
above reads `gain-<policy>`, `gain-<steps>steps` or `gain-<policy>-<steps>steps` (`result_name`: the settings
that differ from the defaults): the same GANs judged otherwise, written beside.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from vaemsgan.data import ImageSet
from vaemsgan.evaluation import core
from vaemsgan.evaluation.classifier import SmallVGG, folded_for_inference, logits
from vaemsgan.evaluation.core import RealSide
from vaemsgan.evaluation.crossval import LabelledImages
from vaemsgan.experiments.context import (
    DEFAULT_CLASSIFIER_STEPS,
    DEFAULT_GAIN_PER_CLASS,
    QUICK_CLASSIFIER_STEPS,
    Context,
    ReproduceOptions,
    _read_json,
    judge_config,
    judge_key,
)
from vaemsgan.experiments.curves import train_curve_run
from vaemsgan.experiments.gain_report import RECON_PER_CLASS, pool_size, target_points, write_gain
from vaemsgan.experiments.runner import RunPlan, plan_runs
from vaemsgan.utils.io import atomic_write_json, json_safe
from vaemsgan.utils.lock import exclusive_file_lock

QUICK_BUDGET_MINUTES = 0.003  # `--quick`: a fraction of a CPU-second of training per run
EVAL_VERSION = 1


def sizes(opts: ReproduceOptions) -> list[int]:
    return sorted(set(opts.gain_per_class or DEFAULT_GAIN_PER_CLASS))


def budget_minutes(opts: ReproduceOptions) -> float:
    return min(opts.budget_minutes, QUICK_BUDGET_MINUTES) if opts.quick else opts.budget_minutes


def plan_gain(exp: Any, out: Path, opts: ReproduceOptions) -> dict[int, list[RunPlan]]:
    """The runs of every size: OUT/n<N>/runs/<run>, each trained on the N-per-class subset."""
    return {n: plan_runs(exp, out / f"n{n}", replace(opts, per_class=n)) for n in sizes(opts)}


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
        **({"interpolation": list(opts.gain_interpolation)} if opts.gain_interpolation is not None else {}),
        **({"weak_classes": True} if opts.gain_weak_classes else {}),
        **judge_key(opts),
    }


# What a single classifier's result does not depend on: which other arms, temperatures, seeds and (smaller)
# ratios are measured beside it, and the reconstruction part. Its journal name holds its arm (with the arm's
# parameters), ratio and seed; the largest ratio sizes the pools.
_NOT_FIT_SETTINGS = ("eval_seeds", "temperatures", "interpolation", "weak_classes", "recon_per_class")


def _same_but_checkpoint(key: Any, want: dict[str, Any]) -> bool:
    """Whether an evaluation key holds the settings of `want` (an eval_key), whatever its checkpoint."""
    if not isinstance(key, dict) or not key.get("checkpoint_sha256"):
        return False
    return {k: v for k, v in key.items() if k != "checkpoint_sha256"} == {
        k: v for k, v in want.items() if k != "checkpoint_sha256"
    }


def fits_key(key: dict[str, Any]) -> dict[str, Any]:
    """The part of an evaluation key (eval_key) that every journalled classifier result depends on."""
    out = {k: v for k, v in key.items() if k not in _NOT_FIT_SETTINGS}
    if "ratios" in out:
        out["ratios"] = max(out["ratios"], default=None)
    return out


def real_fits_key(opts: ReproduceOptions, real: RealSide) -> dict[str, Any]:
    """What the real-only classifiers of a size depend on: the real training and test images (a digest of
    their bytes and labels) and the classifiers' settings and policy; not the GANs, ratios or temperatures."""
    from vaemsgan.evaluation.cache import digest

    gopts = opts.gain_options()
    settings = {"v": EVAL_VERSION, "classifier": gopts.classifier.to_dict(), "policy": gopts.policy}
    tensors = (real.train.images, real.train.labels, real.test.images, real.test.labels)
    return {**settings, "real_images": digest(settings, *tensors)}


def evaluate_gain_run(
    plan: RunPlan,
    ctx: Context,
    judge_of: Callable[[], SmallVGG],
    opts: ReproduceOptions,
    real_memo: MutableMapping[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The gain study, the judge's view of the pools and the reconstruction quality of one trained run;
    read from OUT/.../<result_name>.json when it holds the same settings and checkpoint."""
    from vaemsgan.checkpoint import resolve_checkpoint
    from vaemsgan.errors import CheckpointError
    from vaemsgan.inference import load_model
    from vaemsgan.utils.io import file_sha256

    path = plan.folder / f"{result_name(opts)}.json"
    prev = _read_json(path)
    try:
        ckpt = resolve_checkpoint(plan.folder / "train", prefer_best=True)
    except CheckpointError:
        # Checkpoints deleted to save disk (or lost with a machine) after the run was evaluated: its training
        # marker matched (train_curve_run), so its evaluation under the same settings still stands.
        if prev is None or opts.force or not _same_but_checkpoint(prev.get("eval_key"), eval_key(opts, "")):
            raise
        log(f"{plan.name}: no checkpoint left, its evaluation on disk ({path.name}) is pooled")
        return prev
    key = eval_key(opts, file_sha256(ckpt))
    if prev is not None and prev.get("eval_key") == key and not opts.force:
        log(f"{plan.name}: evaluated earlier, kept")
        return prev
    t0 = time.perf_counter()
    journal = FitJournal(path.with_suffix(".fits.json"), key, fresh=opts.force)
    if journal:
        log(
            f"{plan.name}: {len(journal)} classifier(s) of this model measured earlier, read from {journal.path.name}"
        )
    model = load_model(ckpt, "cpu")
    real = ctx.real(plan.cfg.data.classes)
    names = real.names
    gopts = opts.gain_options()
    domain_cfg = judge_config(opts, opts.domain_steps)
    log(f"evaluate {plan.name}: {ckpt.name} (step {model.step})")
    # The prior arm needs max-ratio x the real count per class (the pool `generate` would write).
    gen = prior_samples(model, names, math.ceil(max(gopts.ratios) * max(real.train.counts())))
    arms = core.gain_arms(model, real, gen, gopts, domain_cfg=domain_cfg, log=log, real_memo=real_memo)
    judge = judge_of()
    judged = {"real test": judge_pool(judge, core.labelled(real.test), names)}
    judged.update({a.key: judge_pool(judge, a.pool, names) for a in arms if a.pool is not None})
    study = core.gain_part(
        model,
        real,
        gen,
        gopts,
        domain_cfg=domain_cfg,
        log=log,
        arms=arms,
        real_memo=real_memo,
        journal=journal,
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


class FitJournal(dict):
    """A gain evaluation's classifier results as they come (run_gain_study's `journal`), written to `path`
    with the evaluation's key on every new one, so that an evaluation stopped at a session's end resumes
    there; read back under a key that agrees on what the results depend on (`fits_key`: same checkpoint,
    classifier settings and largest ratio), so an evaluation with an arm more trains only that arm. Item
    assignment, the only write run_gain_study makes, is what persists."""

    def __init__(self, path: Path, key: dict[str, Any], fresh: bool = False) -> None:
        self.path, self.key = path, key
        super().__init__({} if fresh else self._fits_on_disk())

    def _fits_on_disk(self) -> dict[str, Any]:
        """The results the file holds under this key (none under another)."""
        prev = _read_json(self.path)
        same = prev is not None and fits_key(prev.get("eval_key") or {}) == fits_key(self.key)
        return prev.get("fits", {}) if same else {}

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, value)
        atomic_write_json(self.path, {"eval_key": self.key, "fits": dict(self)})


class SharedFits(FitJournal):
    """A FitJournal that several processes add to (the real-only classifiers of a size, which every GAN seed's
    evaluation needs): a lookup that misses reads the file again, and each write merges with what the file
    holds, under an exclusive lock, so no worker's results are lost and each is trained once."""

    def _merge_file(self) -> None:
        for name, value in self._fits_on_disk().items():
            dict.setdefault(self, name, value)

    def __contains__(self, name: object) -> bool:
        if not dict.__contains__(self, name):
            self._merge_file()
        return dict.__contains__(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        with exclusive_file_lock(self.path.with_name(self.path.name + ".lock")):
            self._merge_file()
            super().__setitem__(name, value)  # writes the merged results


# ---------------------------------------------------------------------------------------------- main
def run_gain(
    exp: Any,
    plans: dict[int, list[RunPlan]],
    out: Path,
    opts: ReproduceOptions,
    meta: dict[str, Any],
    log: Callable[[str], None],
    targets: Mapping[int, float | None] | None = None,
) -> dict[str, Any]:
    """Train every run of every size (resuming), evaluate each (cached), pool per size, write the report.
    `targets`: the gain in points each size must reach (None: reported only); sizes it does not name get
    issue 12's `target_points`."""

    minutes = budget_minutes(opts)
    opts.gain_options()  # bad options fail before any training
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
        # The real-only classifiers, shared by the runs of this size, on disk: the real images are the same for
        # every GAN seed, so parallel workers and later sessions do not train them again. Not emptied by
        # --force: the key holds everything they depend on.
        memo = (
            SharedFits(
                out / f"n{n}" / f"{result_name(opts)}.real-fits.json",
                real_fits_key(opts, ctx.real(size_plans[0].cfg.data.classes)),
            )
            if size_plans
            else {}
        )
        results[n] = [
            evaluate_gain_run(p, ctx, judge_for(p.cfg.data.classes), opts, memo, log) for p in size_plans
        ]
        if results[n]:
            names = ctx.real(size_plans[0].cfg.data.classes).names
            target = targets[n] if targets is not None and n in targets else target_points(n)
            summaries.append(pool_size(n, results[n], names, target))
            log(f"{n} per class: {summaries[-1]['verdict']}")
    meta = {**meta, "budget_minutes": minutes, "eval_version": EVAL_VERSION, "result_name": result_name(opts)}
    trained_info = {
        n: [{k: v for k, v in t.items() if k != "learning_config"} for t in ts] for n, ts in trained.items()
    }
    return write_gain(summaries, trained_info, results, out, meta, exp.title)
