"""Learning curves: quality against training CPU-minutes, one long run per model, no retraining per budget.

Each run trains once to the last mark; the trainer keeps `snapshots/cpu-<M>min.pt` when its training CPU
time passes each mark M (`train.snapshot_minutes`), and every snapshot is evaluated on its own:

    steps, images/s        from the snapshot and the run's log
    domain FID [bootstrap], KID, precision / recall (k=3), density / coverage (k=5)
                            generated (per class as many as the real test set) vs the real test images,
                            in the `domain` feature space (docs/EVALUATION.md)
    TSTR, per-class recall  a classifier trained on `per_class_generated` generated images per class,
                            tested on the real test set; one per classifier seed (mean, t-interval)
    TRTS                    the TRTR classifier of the same seed tested on the generated images
    Laplacian variance      generated vs real (the sharpness gap, %)
    Table-2 statistics      per class: mean, std, entropy, Laplacian variance of the generated images
                            against the real training images (what the generator learnt) and the real
                            test images; a real-vs-generated grid per class (cpu-<M>min-real-vs-generated.png)

The table, the plot and the grids are written by experiments/curve_report.py.

TSTR is compared with TRTR classifiers of the same architecture and number of steps, trained once per
invocation (cached in OUT/reference/): on the same number of real images per class, and on all of them.

Layout (resumable: a run continues from its newest checkpoint, a snapshot evaluated with the same settings
is not evaluated again):
    OUT/runs/<run>/train/          the training run (checkpoints/, snapshots/, metrics.jsonl, samples.png)
    OUT/runs/<run>/TRAINED.json    written when the run reached its last mark
    OUT/runs/<run>/curve/cpu-<M>min.json   one evaluated snapshot (+ its real-vs-generated grid .png)
    OUT/reference/trtr.json, trtr-*.pt     the real-data classifiers
    OUT/<experiment>.md / .json / .png   table and plot (`curves` or `screen`); OUT/<experiment>-grids.png
                                   the snapshots' sample grids
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vaemsgan.config import UNCAPPED_STEPS
from vaemsgan.data import ImageSet
from vaemsgan.errors import OutputExistsError
from vaemsgan.experiments.context import _read_json, judge_config, judge_key
from vaemsgan.experiments.curve_report import (
    COLOUR_STATISTICS,
    TABLE2_STATISTICS,
    grids_image,
    summarise,
    write_curves,
    write_real_vs_generated,
)
from vaemsgan.experiments.runner import (
    learning_config,
    newest_state,
    sample_checkpoint,
    start_trainer,
)
from vaemsgan.training.steplog import median_images_per_s
from vaemsgan.utils.io import atomic_torch_save, atomic_write_json

# Seeds beyond the first train only to this mark (the 3 seeds at 2 and 5 minutes, 1 above).
EXTRA_SEED_MAX_MINUTES = 5.0


def marks_for_seed(marks: list[float], seed: int) -> list[float]:
    extra = [m for m in marks if m <= EXTRA_SEED_MAX_MINUTES]
    return sorted(marks) if seed == 0 else sorted(extra or marks[:1])


# ---------------------------------------------------------------------------------------------- training
def train_curve_run(plan: Any, ctx: Any, opts: Any, marks: list[float]) -> dict[str, Any]:
    """Train `plan` to its last mark on the training-CPU clock, resuming a run already in its folder (one
    worker per run folder: another `reproduce` training the same run is refused)."""
    from vaemsgan.utils.lock import folder_lock

    with folder_lock(plan.folder, "run folder"):
        return _train_curve_run(plan, ctx, opts, marks)


def _train_curve_run(plan: Any, ctx: Any, opts: Any, marks: list[float]) -> dict[str, Any]:
    from vaemsgan.training.trainer import set_threads

    folder = plan.folder / "train"
    cfg = plan.cfg
    cfg.train.snapshot_minutes = list(marks)
    if opts.quick:  # the smoke test's 3-step cap would end the run before its (tiny) marks
        cfg.train.steps = UNCAPPED_STEPS
    want = learning_config(cfg.to_dict())
    marker = _read_json(plan.folder / "TRAINED.json")
    if (
        marker is not None
        and not opts.force
        and isinstance(marker.get("learning_config"), dict)
        # read through Config: a marker written before a config key existed holds that key's default
        and learning_config(marker["learning_config"]) == want
        and marker.get("minutes", 0) >= max(marks)
    ):
        return marker
    state, same = (None, True) if opts.force else newest_state(folder, cfg)
    if not same:
        raise OutputExistsError(
            f"{folder}: holds a run with another config; use --force to start it over, or another --out"
        )
    if state is None and folder.exists():
        import shutil

        shutil.rmtree(folder)  # --force, or a run killed before its first checkpoint
    real = ctx.real(cfg.data.classes)
    set_threads(cfg.train.threads)
    trainer = start_trainer(cfg, real.train, folder, ctx, opts, plan.name, state)
    w0 = time.perf_counter()
    if trainer.state.cpu_seconds < 60.0 * max(marks):
        ctx.log(f"train {plan.name} ({plan.spec.preset}, seed {plan.seed}) to {max(marks):g} CPU-minutes")
        trainer.train(cfg.train.steps, deadline=60.0 * max(marks), clock=trainer.cpu_clock)
        if trainer.stop_requested and not trainer.deadline_reached:  # Ctrl-C: the trainer saved and returned
            raise KeyboardInterrupt
    # else: stopped at its budget before TRAINED.json was written; its checkpoint stays as it is
    info = {
        "run": plan.name,
        "preset": plan.spec.preset,
        "overrides": plan.spec.overrides,
        "seed": plan.seed,
        "learning_config": want,
        "minutes": trainer.state.cpu_seconds / 60.0,
        "steps": trainer.state.step,
        "marks": list(marks),
        "wall_s_last_session": time.perf_counter() - w0,
        "threads": torch.get_num_threads(),
    }
    atomic_write_json(plan.folder / "TRAINED.json", info)
    return info


# ---------------------------------------------------------------------------------------------- reference
def reference_per_class(train: ImageSet, opts: Any) -> int:
    """Images per class of the TRTR/TSTR classifiers: the generated count, at most the smallest real class."""
    return min(opts.per_class_generated, min(train.counts()))


def reference_classifiers(ctx: Any, opts: Any, out: Path, per_class: int) -> dict[str, Any]:
    """TRTR on `per_class` real images per class and on all real images, per classifier seed (cached)."""
    from vaemsgan.evaluation.classifier import accuracy, new_classifier, train_classifier

    real = ctx.real(None)
    ccfg = judge_config(opts)
    key = {"steps": opts.classifier_steps, "per_class": per_class, "seeds": opts.eval_seeds, "v": 1}
    key.update(judge_key(opts))
    ref_dir = out / "reference"
    info = _read_json(ref_dir / "trtr.json")
    n_cls = len(real.train.class_names)
    c, h = real.train.images.shape[1], real.train.images.shape[2]

    def train_trtr(seed: int) -> torch.nn.Module:
        sub = _per_class_subset(real.train, per_class, seed)
        m = train_classifier(sub.images, sub.labels, n_cls, ccfg, seed=seed)
        atomic_torch_save(ref_dir / f"trtr-seed{seed}.pt", m.state_dict())
        return m

    if info is None or info.get("key") != key:
        info = {"key": key, "trtr": [], "trtr_all": [], "per_class_recall": []}
        # Where `per_class` takes every image of every class (a 10% study's 500 per class), the subset is the
        # whole set in the same order: the same seeded classifier, not trained twice.
        whole = per_class >= max(real.train.counts())
        for seed in range(opts.eval_seeds):
            ctx.log(f"reference: real-data classifiers, seed {seed + 1}/{opts.eval_seeds}")
            m = train_trtr(seed)
            info["trtr"].append(accuracy(m, real.test.images, real.test.labels))
            info["per_class_recall"].append(_recall(m, real.test, n_cls))
            m_all = (
                m if whole else train_classifier(real.train.images, real.train.labels, n_cls, ccfg, seed=seed)
            )
            info["trtr_all"].append(accuracy(m_all, real.test.images, real.test.labels))
        atomic_write_json(ref_dir / "trtr.json", info)

    def model(seed: int) -> torch.nn.Module:
        """The TRTR classifier of `seed`, loaded when a snapshot is evaluated (a table written from evaluated
        snapshots kept from an earlier machine needs trtr.json only). Its weights are not kept with the
        results (trtr.json is), so where they are missing it is trained again, as seeded as the first time."""
        path = ref_dir / f"trtr-seed{seed}.pt"
        if not path.is_file():
            ctx.log(f"reference: {path} is missing; training the seed-{seed} real-data classifier again")
            return train_trtr(seed).eval()
        m = new_classifier(c, n_cls, h, ccfg, seed)
        m.load_state_dict(torch.load(path, weights_only=True))
        return m.eval()

    return {**info, "models": model}


def _per_class_subset(s: ImageSet, per_class: int, seed: int) -> ImageSet:
    g = torch.Generator().manual_seed(7919 * seed + 11)
    idx = []
    for c in range(len(s.class_names)):
        i = (s.labels == c).nonzero().flatten()
        idx.append(i[torch.randperm(len(i), generator=g)[:per_class]])
    return s.subset(torch.cat(idx).sort().values)


def _recall(model: Any, data: ImageSet, n_cls: int) -> list[float]:
    from vaemsgan.evaluation.classifier import predict

    pred = predict(model, data.images)
    return [float((pred[data.labels == c] == c).double().mean()) for c in range(n_cls)]


# ---------------------------------------------------------------------------------------------- snapshot
def snapshot_eval_key(opts: Any) -> dict[str, Any]:
    return {
        "generated": opts.per_class_generated,
        "classifier_steps": opts.classifier_steps,
        "eval_seeds": opts.eval_seeds,
        "domain_steps": opts.domain_steps,
        "n_boot": opts.n_boot,
        "v": 2,  # 2: per-class Table-2 statistics and the real-vs-generated grid
        **judge_key(opts),
        # A subset's curves measure FID & co. in the features of all training images (Context.all_images).
        **({"features_of": "all training images"} if opts.per_class is not None else {}),
    }


def evaluate_snapshot(
    plan: Any, minutes: float, ctx: Any, opts: Any, ref: dict[str, Any]
) -> dict[str, Any] | None:
    """Every curve measure of one snapshot (see the module docstring); None when it does not exist yet, or while
    another worker (a parallel `reproduce --no-train`) evaluates it: this one goes on to the next snapshot, and
    the table of the last worker to finish (or a final call) has it."""
    from vaemsgan.checkpoint import snapshot_path
    from vaemsgan.utils.lock import file_lock_if_free

    path = snapshot_path(plan.folder / "train", minutes)
    out_path = plan.folder / "curve" / f"cpu-{minutes:g}min.json"
    key = snapshot_eval_key(opts)

    def stored() -> dict[str, Any] | None:  # this snapshot's result, when measured with these options
        prev = _read_json(out_path)
        return prev if prev is not None and prev.get("eval_key") == key and not opts.force else None

    if (prev := stored()) is not None:
        return prev
    if not path.is_file():
        return None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock_if_free(out_path.with_suffix(".lock")) as holder:
        if holder is not None:
            by = f"PID {holder}" if holder else "another process"
            ctx.log(f"{plan.name} at {minutes:g} CPU-minutes: being evaluated by {by}; skipped here")
            return None
        # finished by another worker since the first look?
        return stored() or _evaluate_snapshot(plan, minutes, path, out_path, key, ctx, opts, ref)


def _evaluate_snapshot(
    plan: Any,
    minutes: float,
    path: Path,
    out_path: Path,
    key: dict[str, Any],
    ctx: Any,
    opts: Any,
    ref: dict[str, Any],
) -> dict[str, Any]:
    from vaemsgan.checkpoint import load_checkpoint
    from vaemsgan.evaluation.classifier import accuracy, train_classifier
    from vaemsgan.evaluation.core import feature_metrics
    from vaemsgan.metrics import image_statistics

    t0 = time.perf_counter()
    snap = load_checkpoint(path).get("snapshot", {})
    real = ctx.real(None)
    n_cls = len(real.train.class_names)
    gen = sample_checkpoint(path, opts.per_class_generated, name=f"{plan.name} at {minutes:g} CPU-minutes")
    ext = ctx.extractor(ctx.all_images(None))  # with a subset, trained on every training image
    # All generated images against all real test images (not matched per class, unlike `evaluate`).
    fm = feature_metrics(
        real.features(ext, "test"), ext(gen.images), n_boot=opts.n_boot, kid_subsets=50, seed=0
    )
    gen_stats, test_stats = image_statistics(gen.images), real.statistics("test")  # the real side's: cached
    lap_gen = float(gen_stats["laplacian_var"].mean())
    lap_real = float(test_stats["laplacian_var"].mean())
    class_stats = {
        side: _class_means(stats, images, labels, n_cls)
        for side, stats, images, labels in (
            ("generated", gen_stats, gen.images, gen.labels),
            ("real_train", real.statistics(), real.train.images, real.train.labels),
            ("real_test", test_stats, real.test.images, real.test.labels),
        )
    }
    write_real_vs_generated(real.train, gen, out_path.with_name(f"cpu-{minutes:g}min-real-vs-generated.png"))
    # TSTR on as many generated images per class as TRTR has real ones (the first k of each class).
    k = ref["key"]["per_class"]
    first = torch.cat([(gen.labels == c).nonzero().flatten()[:k] for c in range(n_cls)])
    gen_train = gen.subset(first.sort().values)
    tstr, trts, recalls = [], [], []
    for seed in range(opts.eval_seeds):
        m = train_classifier(
            gen_train.images,
            gen_train.labels,
            n_cls,
            judge_config(opts),
            seed=seed,
        )
        tstr.append(accuracy(m, real.test.images, real.test.labels))
        recalls.append(_recall(m, real.test, n_cls))
        trts.append(accuracy(ref["models"](seed), gen.images, gen.labels))
    res = {
        "eval_key": key,
        "run": plan.name,
        "seed": plan.seed,
        "minutes": minutes,
        "step": int(snap.get("step", 0)),
        "cpu_seconds": float(snap.get("cpu_seconds", 60.0 * minutes)),
        "images_per_s": median_images_per_s(
            plan.folder / "train" / "metrics.jsonl", int(snap.get("step", 0))
        ),
        "fid": fm["fid"],
        "fid_ci": fm["fid_ci"],
        "kid": fm["kid_mean"],
        "kid_std": fm["kid_std"],
        "precision": fm["precision"],
        "recall": fm["recall"],
        "density": fm["density"],
        "coverage": fm["coverage"],
        "laplacian_gen": lap_gen,
        "laplacian_real": lap_real,
        "laplacian_gap_pct": 100.0 * (lap_gen - lap_real) / lap_real,
        "tstr": tstr,
        "trts": trts,
        "tstr_per_class": [sum(r[c] for r in recalls) / len(recalls) for c in range(n_cls)],
        "class_statistics": class_stats,
        "class_names": list(real.train.class_names),
        "n_generated_per_class": opts.per_class_generated,
        "eval_seconds": time.perf_counter() - t0,
    }
    atomic_write_json(out_path, res)
    return res


def _class_means(
    stats: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor, n_cls: int
) -> dict[str, list[float]]:
    """{statistic: its mean over each class's images} for the Table-2 statistics (`stats`: image_statistics of
    `images`) and, for colour images, COLOUR_STATISTICS."""
    names = list(TABLE2_STATISTICS)
    if images.shape[1] == 3:
        # n x 3 mean levels, in chunks: a float copy of all 50,000 CIFAR-10 images at once would be 600 MB.
        per_channel = torch.cat([x.float().mean(dim=(2, 3)) for x in images.split(4096)]).double()
        stats = {**stats, **{s: per_channel[:, i] for i, s in enumerate(COLOUR_STATISTICS[:3])}}
        names += COLOUR_STATISTICS
    return {
        s: [
            float(stats[s][labels == c].mean()) if bool((labels == c).any()) else float("nan")
            for c in range(n_cls)
        ]
        for s in names
    }


# ---------------------------------------------------------------------------------------------- main
def run_curves(
    plans: list[Any],
    out: Path,
    ctx: Any,
    opts: Any,
    meta: dict[str, Any],
    log: Callable[[str], None],
    exp: Any,
) -> dict[str, Any]:
    """Train every plan to its marks (resuming), evaluate every snapshot, write the table and the plot."""
    marks = sorted(opts.marks)
    for plan in plans if opts.train else []:
        train_curve_run(plan, ctx, opts, marks_for_seed(marks, plan.seed))
    real = ctx.real(None)
    ref = reference_classifiers(ctx, opts, out, reference_per_class(real.train, opts))
    points = []
    for plan in plans:
        for m in marks_for_seed(marks, plan.seed):
            log(f"evaluate {plan.name} at {m:g} CPU-minutes")
            res = evaluate_snapshot(plan, m, ctx, opts, ref)
            if res is not None:
                t = plan.cfg.train  # training images per CPU-second: the rate that a CPU budget buys
                rate = res["step"] * t.batch_size * max(t.n_critic, 1) / max(res["cpu_seconds"], 1e-9)
                points.append({**res, "model": plan.spec.name, "images_per_cpu_s": rate})
    rows = summarise(points, ref)
    grids_image([p for p in plans if p.seed == 0], marks, out / f"{exp.name}-grids.png")
    labels = {p.spec.name: p.spec.label for p in plans if p.seed == 0 and p.spec.label}
    meta = {**meta, "class_names": list(real.train.class_names), "marks": marks, "labels": labels}
    if points:  # the feature space of FID/KID and precision/recall is only as good as its classifier
        from vaemsgan.evaluation.classifier import accuracy

        features = ctx.all_images(None)
        ext = ctx.extractor(features)
        meta["domain_extractor"] = {
            "steps": opts.domain_steps,
            "train_images": len(features.train),
            "test_accuracy": accuracy(ext.model, real.test.images, real.test.labels),
        }
    return write_curves(rows, ref, out, meta, exp.name, exp.title)
