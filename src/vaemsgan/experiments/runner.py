"""Run an experiment: train each run under a time budget, sample, evaluate, write tables; resumable.

Layout of OUT:
    runs/<run>/train/           the training run (config.yaml, checkpoints/, samples.png, metrics.jsonl)
    runs/<run>/TRAINED.json     written once training finished: steps, wall and CPU seconds, the train key
    runs/<run>/eval/<part>.json one file per evaluation part (stats, fid, tstr, crossval), with its eval key
    runs/<run>/grid.png         8 generated images per class, one row per class
    runs/<run>/result.json      everything above merged; DONE.json when the parts asked for are all there
    <experiment>.md / .json / .png   the experiment's table and its grids side by side
(`curves`/`screen` and `gain` have their own layouts: experiments/curves.py, experiments/gain_study.py.)
Every file is written atomically. A run whose TRAINED.json matches its settings is not retrained, a part
whose file matches is not recomputed: an interrupted `reproduce` continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from vaemsgan.config import Config
from vaemsgan.data import ImageSet, load_images
from vaemsgan.errors import ConfigError, OutputExistsError
from vaemsgan.evaluation import core
from vaemsgan.evaluation.classifier import ClassifierConfig
from vaemsgan.evaluation.core import RealSide
from vaemsgan.evaluation.crossval import CrossvalOptions
from vaemsgan.evaluation.extractors import Extractor
from vaemsgan.experiments.registry import EVAL_PARTS, EXPERIMENTS, ExperimentSpec, RunSpec
from vaemsgan.training.steplog import median_images_per_s
from vaemsgan.utils.io import atomic_write_json, json_safe

# Shared by every run of `--quick` (the test suite's smoke runs): narrow networks, a few steps.
QUICK_OVERRIDES: dict[str, Any] = {
    "model.latent_dim": 16,
    "model.g_width": 8,
    "model.e_width": 8,
    "model.d_width": 8,
    "train.batch_size": 8,
    "train.log_every": 2,
    "train.sample_every": 1000,
    "train.checkpoint_every": 1000,
    "train.ema_start": 1,
}

# `reproduce gain` (experiments/gain_study.py): real images per class of the study, and under `--quick`.
DEFAULT_GAIN_PER_CLASS = (100, 1000)
QUICK_GAIN_PER_CLASS = (6, 10)


QUICK_TEST_PER_CLASS = 10  # test images per class under --quick
DEFAULT_CLASSIFIER_STEPS = 300  # per cross-validation classifier (docs/BENCHMARKS.md: accuracy vs steps)
QUICK_CLASSIFIER_STEPS = 10  # at most, with --quick


@dataclass
class ReproduceOptions:
    """Everything `vaemsgan reproduce` can be told (see cli/reproduce_cmd.py for the meaning of each)."""

    data: str = "fashion-mnist"
    data_dir: str | None = None
    per_class: int | None = None
    resolution: int = 32
    channels: int = 1
    crop: int | None = None  # centre crop (source pixels) of every image before resizing, real and training
    budget_minutes: float = 3.0
    clock: str = "cpu"  # cpu: process CPU time (fair on a shared machine); wall: time.perf_counter
    steps: int | None = None  # optional cap on generator steps (the budget usually ends a run first)
    seeds: int = 1  # training seeds per run
    eval_seeds: int = 3  # classifier seeds per TSTR / cross-validation number
    per_class_generated: int = 1000
    classifier_steps: int = DEFAULT_CLASSIFIER_STEPS
    domain_steps: int = 600
    n_boot: int = 50
    threads: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)  # --set, applied to every run
    runs: list[str] | None = None  # --runs: only these runs of the experiment (parallel workers, reruns)
    cache_dir: str | None = None
    force: bool = False
    quick: bool = False
    progress: bool = True
    train: bool = True  # False: `curves` evaluates the snapshots already there, training nothing (--no-train)
    marks: list[float] = field(default_factory=lambda: [2.0, 5.0, 15.0, 30.0, 60.0])  # `curves` snapshots
    gain_per_class: list[int] | None = None  # `gain`: real images per class (None: DEFAULT_GAIN_PER_CLASS)
    gain_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])  # `gain`: synthetic / real
    gain_temperatures: list[float] = field(default_factory=lambda: [0.5, 1.0])  # `gain`: of the variations
    gain_policy: str = "classical"  # `gain`: augmentation of the baseline and of every synthetic arm
    parts: list[str] | None = None  # `mstar`: which of its parts to run (None: all)
    classifier: str = "small"  # the judge of every accuracy (evaluation.classifier.CLASSIFIER_PRESETS)

    def validate(self) -> ReproduceOptions:
        if not self.budget_minutes > 0:
            raise ConfigError(f"--budget must be a positive number of minutes, got {self.budget_minutes}")
        if self.clock not in ("cpu", "wall"):
            raise ConfigError(f"--clock must be cpu or wall, got {self.clock!r}")
        for name in ("seeds", "eval_seeds", "classifier_steps", "domain_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.per_class_generated < 4:
            raise ConfigError(f"--per-class-generated must be at least 4, got {self.per_class_generated}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")
        if self.per_class is not None and self.per_class < 2:
            raise ConfigError(f"--per-class must be at least 2, got {self.per_class}")
        if not self.marks or not all(0 < m <= 1e6 for m in self.marks):
            raise ConfigError(f"--marks must be positive CPU-minutes, got {self.marks}")
        if self.n_boot < 2:
            raise ConfigError(f"--bootstrap must be at least 2, got {self.n_boot}")
        if self.gain_per_class is not None and (
            not self.gain_per_class or any(n < 2 for n in self.gain_per_class)
        ):
            raise ConfigError(f"--gain-per-class must be numbers of at least 2, got {self.gain_per_class}")
        from vaemsgan.evaluation.gain import GainOptions

        GainOptions(
            ratios=self.gain_ratios, temperatures=self.gain_temperatures, policy=self.gain_policy
        ).validate()
        return self


def judge_config(opts: ReproduceOptions, steps: int | None = None) -> ClassifierConfig:
    """The classifier of every accuracy and of the domain features: the `--classifier` preset trained for
    `steps` (default `--classifier-steps`)."""
    from vaemsgan.evaluation.classifier import classifier_preset

    cfg = classifier_preset(opts.classifier, steps=steps or opts.classifier_steps)
    if opts.quick:  # the smoke test: the judge's shape at its narrowest (numbers mean nothing)
        cfg = replace(cfg, width=min(cfg.width, 8), max_width=min(cfg.max_width, 16), convs_per_block=1)
    return cfg


def judge_key(opts: ReproduceOptions) -> dict[str, Any]:
    """The judge's part of an evaluation key: empty for the default `small` judge, so that results computed
    before `--classifier` existed stay valid."""
    return {} if opts.classifier == "small" else {"classifier": judge_config(opts).to_dict()}


def quick(opts: ReproduceOptions) -> ReproduceOptions:
    """The smoke-test budget: tiny networks, 3 steps, minimal evaluation (numbers mean nothing)."""
    opts.quick = True
    opts.overrides = {**QUICK_OVERRIDES, **opts.overrides}
    opts.steps = opts.steps or 3
    opts.eval_seeds = 1
    opts.per_class_generated = min(opts.per_class_generated, 8)
    opts.classifier_steps = min(opts.classifier_steps, QUICK_CLASSIFIER_STEPS)
    opts.domain_steps = min(opts.domain_steps, 10)
    opts.n_boot = min(opts.n_boot, 4)
    opts.marks = [0.002, 0.004]  # `curves`: two snapshots a fraction of a second of training apart
    opts.gain_per_class = opts.gain_per_class or list(QUICK_GAIN_PER_CLASS)  # `gain`: tiny real sets
    return opts


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


# ---------------------------------------------------------------------------------------------- data
class Context:
    """Loads real data once per class set for all runs of an invocation (evaluation.core.RealSide: the
    domain extractor, real features and real-data classifiers are cached under --cache-dir)."""

    def __init__(self, opts: ReproduceOptions, log: Callable[[str], None]) -> None:
        self.opts, self.log = opts, log
        self._real: dict[tuple[str, ...] | None, RealSide] = {}
        self._logged: set[int] = set()
        self._all: Context | None = None

    def real(self, classes: list[str] | None) -> RealSide:
        key = tuple(classes) if classes else None
        if key not in self._real:
            o = self.opts
            kw = {
                "resolution": o.resolution,
                "channels": o.channels,
                "data_dir": o.data_dir,
                "classes": classes,
                "crop": o.crop,
            }
            # Seed 0 for the subset whatever the training seed: every model sees the same images.
            train = load_images(o.data, split="train", per_class=o.per_class, seed=0, **kw)
            test = _test_split(o.data, train, kw)
            if o.quick:  # the smoke test: a few test images per class are enough to run every path
                test = test.per_class_subset(min(QUICK_TEST_PER_CLASS, min(test.counts())), 0)
            self.log(
                f"real data: {len(train)} training / {len(test)} test images, {len(train.class_names)} classes"
            )
            self._real[key] = RealSide(train, test, o.cache_dir, log=self.log)
        return self._real[key]

    def all_images(self, classes: list[str] | None) -> RealSide:
        """The real side with every training image, also when the runs train on a subset (`--per-class`): the
        feature space that measures a subset's generators is trained on everything the data has (as the gain
        study's judge), so that it is as credible as the full-data one and the same for every subset size."""
        if self.opts.per_class is None:
            return self.real(classes)
        if self._all is None:
            self._all = Context(replace(self.opts, per_class=None), self.log)
        return self._all.real(classes)

    def extractor(self, real: RealSide) -> Extractor:
        """The domain extractor of `real` (seed 0, --domain-steps), trained once and cached."""
        t0 = time.perf_counter()
        ext = real.domain_extractor(judge_config(self.opts, self.opts.domain_steps), seed=0)
        if id(real) not in self._logged:
            self._logged.add(id(real))
            self.log(
                f"domain extractor {'from cache' if ext.info['cache_hit'] else 'trained'} "
                f"in {time.perf_counter() - t0:.0f} s"
            )
        return ext


def _test_split(source: str, train: ImageSet, kw: dict[str, Any]) -> ImageSet:
    """The source's test split; a plain folder without one gets a test set of the training images (noted)."""
    from vaemsgan.data.imagefolder import split_layout

    if source in ("fashion-mnist", "fashion-mnist-mini") or split_layout(Path(source)) is not None:
        return load_images(source, split="test", **kw)
    return train


# ---------------------------------------------------------------------------------------------- runs
@dataclass
class RunPlan:
    """One concrete run: spec, training seed, config and folder."""

    spec: RunSpec
    seed: int
    cfg: Config
    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name


def plan_runs(exp: ExperimentSpec, out: Path, opts: ReproduceOptions) -> list[RunPlan]:
    """The runs of an experiment with their full configs (data, quick-mode and --set keys applied)."""
    base: dict[str, Any] = {
        "data.source": opts.data,
        "data.resolution": opts.resolution,
        "data.channels": opts.channels,
        "data.crop": opts.crop,
        "train.threads": opts.threads,
        # A run judged by a named judge (`--classifier sar`) is monitored in that judge's features: the monitor's
        # quick classifier is 72% right on SAR chips and missed a collapse there. The default judge keeps it.
        **({"train.monitor_classifier": opts.classifier} if opts.classifier != "small" else {}),
        **opts.overrides,
    }
    if opts.data_dir:
        base["data.data_dir"] = opts.data_dir
    if opts.per_class is not None:
        base["data.per_class"] = opts.per_class
    plans = []
    if opts.runs:
        known = {s.name for e in EXPERIMENTS.values() for s in e.runs}
        unknown = [r for r in opts.runs if re.sub(r"-seed\d+$", "", r) not in known]
        if unknown:
            raise ConfigError(
                f"--runs: unknown run {unknown[0]!r} (runs of {exp.name}: {', '.join(s.name for s in exp.runs)})"
            )
    for spec in exp.runs:
        for seed in range(opts.seeds):
            seed_name = f"{spec.name}-seed{seed}"
            name = spec.name if seed == 0 else seed_name  # seed 0's folder has no suffix
            # --runs names a run (all its seeds) or one seed (`default-seed1`; `default-seed0` for seed 0 alone).
            if opts.runs and spec.name not in opts.runs and seed_name not in opts.runs:
                continue
            cfg = spec.config({**base, "train.seed": seed})
            # The budget ends the run; a step count only when it is asked for.
            cfg.train.steps = opts.steps if opts.steps is not None else 10**9
            plans.append(RunPlan(spec, seed, cfg, out / "runs" / name))
    return plans


def train_key(plan: RunPlan, opts: ReproduceOptions) -> str:
    return _key({"config": plan.cfg.to_dict(), "budget": opts.budget_minutes, "clock": opts.clock})


def eval_key(part: str, opts: ReproduceOptions) -> str:
    # v2 of `fid`: the evaluation core's features part (overall / per class / real-vs-real reference).
    keys: dict[str, Any] = {
        "part": part,
        "generated": opts.per_class_generated,
        "v": 2 if part == "fid" else 1,
    }
    if part in ("fid", "tstr", "crossval"):
        keys.update(domain_steps=opts.domain_steps, n_boot=opts.n_boot)
    if part in ("tstr", "crossval"):
        keys.update(eval_seeds=opts.eval_seeds, classifier_steps=opts.classifier_steps)
    if part in ("fid", "tstr", "crossval"):
        keys.update(judge_key(opts))
    return _key(keys)


def result_stem(name: str, table: dict[str, Any]) -> str:
    """The file stem an experiment's table was written under: its name, or the table's own result name
    (a gain study under non-default classifier settings: gain-none-1500steps)."""
    return str(table.get("result_name", name))


# Config keys that do not change what a run learns: a run may be resumed with other values of these.
BOOKKEEPING = {
    "train": {
        "steps",
        "threads",
        "snapshot_minutes",
        "log_every",
        "sample_every",
        "checkpoint_every",
        "keep",
        "monitor_every",
        "best_metric",
        "monitor_classifier",  # what the monitor measures in (runs trained before it existed stay valid)
        "channels_last",  # memory layout: the same model either way
    },
}


def learning_config(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """The config without bookkeeping keys: two runs with equal learning configs learn the same."""
    from vaemsgan.config import Config

    # Through Config: a checkpoint written before a key existed holds that key's default.
    full = Config.from_dict({k: v for k, v in cfg_dict.items() if k != "preset"}).to_dict()
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in full.items() if k != "preset"}
    for section, keys in BOOKKEEPING.items():
        for k in keys:
            out.get(section, {}).pop(k, None)
    return out


def newest_state(folder: Path, cfg: Config) -> tuple[dict[str, Any] | None, bool]:
    """The newest valid checkpoint of the run in `folder` (None: none) and whether it learns what `cfg`
    learns (True when there is none)."""
    from vaemsgan.checkpoint import load_latest_valid

    state = load_latest_valid(folder)
    return state, state is None or learning_config(state["config"]) == learning_config(cfg.to_dict())


def start_trainer(
    cfg: Config, train: ImageSet, folder: Path, ctx: Context, opts: ReproduceOptions, name: str, state: Any
) -> Any:
    """The monitored Trainer of the run in `folder`, continued from `state` (a checkpoint) when given."""
    from vaemsgan.evaluation.monitor import Monitor
    from vaemsgan.training.trainer import Trainer

    monitor = Monitor(cfg, train, folder)
    trainer = Trainer(cfg, train, folder, progress=opts.progress, log=ctx.log, monitor=monitor)
    if state is not None:
        trainer.load_state_dict(state)
        ctx.log(
            f"{name}: resumed at step {trainer.state.step} ({trainer.state.cpu_seconds / 60:.1f} CPU-min)"
        )
    return trainer


def train_run(plan: RunPlan, ctx: Context, opts: ReproduceOptions) -> dict[str, Any]:
    """Train under the budget (or load the finished training); returns TRAINED.json's content. One worker
    per run folder (another `reproduce` training the same run is refused)."""
    from vaemsgan.utils.lock import folder_lock

    with folder_lock(plan.folder, "run folder"):
        return _train_run(plan, ctx, opts)


def _train_run(plan: RunPlan, ctx: Context, opts: ReproduceOptions) -> dict[str, Any]:
    from vaemsgan.training.trainer import set_threads

    marker = plan.folder / "TRAINED.json"
    key = train_key(plan, opts)
    done = _read_json(marker)
    if done is not None and done.get("train_key") == key and not opts.force:
        return done
    if done is not None and not opts.force:
        raise OutputExistsError(
            f"{plan.folder}: trained with other settings (config, budget or clock); use --force to redo it, "
            "or another --out"
        )
    folder = plan.folder / "train"
    # Interrupted: on the CPU clock the run continues from its newest checkpoint (the trainer counts its
    # training CPU time across resumes, so the budget stays fair); a wall-clock budget cannot be continued
    # fairly, and --force starts over.
    state = None
    if opts.clock == "cpu" and not opts.force:
        state, same = newest_state(folder, plan.cfg)
        if not same:
            state = None  # another configuration's run: start over
    if state is None and plan.folder.exists():
        shutil.rmtree(plan.folder)
    real = ctx.real(plan.cfg.data.classes)
    set_threads(plan.cfg.train.threads)
    ctx.log(
        f"train {plan.name} ({plan.spec.preset}, seed {plan.seed}) for {opts.budget_minutes:g} min ({opts.clock})"
    )
    trainer = start_trainer(plan.cfg, real.train, folder, ctx, opts, plan.name, state)
    # TRAINED.json's cpu_s covers the whole run, resumes included.
    w0, c0 = time.perf_counter(), time.process_time() - trainer.state.cpu_seconds
    if opts.clock == "cpu":
        clock, deadline = trainer.cpu_clock, 60.0 * opts.budget_minutes
    else:
        clock = time.perf_counter
        deadline = clock() + 60.0 * opts.budget_minutes
    trainer.train(plan.cfg.train.steps, deadline=deadline, clock=clock)
    if trainer.stop_requested and not trainer.deadline_reached:  # Ctrl-C: the trainer saved and returned
        raise KeyboardInterrupt
    info = {
        "train_key": key,
        "run": plan.name,
        "preset": plan.spec.preset,
        "overrides": plan.spec.overrides,
        "seed": plan.seed,
        "steps": trainer.state.step,
        "stopped_by": "budget" if trainer.deadline_reached else "steps",
        "wall_s": time.perf_counter() - w0,
        "cpu_s": time.process_time() - c0,
        "threads": torch.get_num_threads(),
        "images_per_s_median": median_images_per_s(trainer.state.history),
        "train_images": len(real.train),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(marker, json_safe(info))
    return info


@torch.inference_mode()
def sample_checkpoint(path: str | Path, per_class: int, seed: int = 0, name: str | None = None) -> ImageSet:
    """`per_class` images of each class from a checkpoint file or a run folder's newest checkpoint, with
    `vaemsgan generate`'s latents."""
    from vaemsgan.generation.sampler import latents, load_model
    from vaemsgan.utils.images import to_uint8

    model = load_model(path, "cpu", prefer_best=False)
    imgs, labels = [], []
    for cls in range(len(model.class_names)):
        z_all = latents(seed, cls, per_class, model.cfg.model.latent_dim, None)
        for s in range(0, per_class, 256):
            z = z_all[s : s + 256]
            imgs.append(to_uint8(model.generator(z, model.labels(cls, len(z), z.device))).cpu())
            labels.append(torch.full((len(z),), cls, dtype=torch.long))
    return ImageSet(
        torch.cat(imgs), torch.cat(labels), list(model.class_names), f"{name or path} (generated)"
    )


def _sample(plan: RunPlan, per_class: int, seed: int = 0) -> ImageSet:
    """`per_class` images of each class from the run's final checkpoint."""
    return sample_checkpoint(plan.folder / "train", per_class, seed, name=plan.name)


def crossval_options(opts: ReproduceOptions, names: list[str], mixed: bool) -> CrossvalOptions:
    """The paper's classifier experiment: TRTR/TRTS/TSTR/TSTS and, with `mixed`, 500 real + 500 generated
    images of `bag` (or the first class); real-data classifiers from the cache."""
    return CrossvalOptions(
        seeds=opts.eval_seeds,
        classifier=judge_config(opts),
        mixed_class="bag" if "bag" in names else names[0],
        experiments=("crossval", "mixed") if mixed else ("crossval",),
        cache=True,
        cache_dir=opts.cache_dir,
    )


def evaluate_part(
    part: str, ctx: Context, real: RealSide, gen: ImageSet, opts: ReproduceOptions
) -> dict[str, Any]:
    """One evaluation part of a run's generated images (evaluation/core.py does the work)."""
    if part == "stats":
        return core.stats_part(real, gen)[0]
    if part == "fid":
        ext = ctx.extractor(real)
        return core.features_part(ext, real, _first_n(gen, opts.per_class_generated), n_boot=opts.n_boot)[0]
    if part in ("tstr", "crossval"):
        sub = gen if part == "crossval" else _first_n(gen, opts.per_class_generated)
        return core.crossval_part(
            real, sub, crossval_options(opts, real.names, part == "crossval"), 0, ctx.log
        )
    # the registry only names known parts
    raise ConfigError(f"unknown evaluation part {part!r} (known: {', '.join(EVAL_PARTS)})")


def evaluate_run(
    plan: RunPlan, parts: Sequence[str], ctx: Context, opts: ReproduceOptions
) -> dict[str, dict[str, Any]]:
    """The evaluation parts of a trained run; a part already on disk with the same settings is kept."""
    out: dict[str, dict[str, Any]] = {}
    todo = []
    for part in parts:
        prev = _read_json(plan.folder / "eval" / f"{part}.json")
        if prev is not None and prev.get("eval_key") == eval_key(part, opts) and not opts.force:
            out[part] = prev
        else:
            todo.append(part)
    grid = plan.folder / "grid.png"
    if not todo and grid.is_file():
        return out
    real = ctx.real(plan.cfg.data.classes)
    n_gen = opts.per_class_generated
    if "crossval" in todo:
        # The paper's 1000 real vs 1000 generated per class: the pool must hold as many as the real set.
        n_gen = max(n_gen, max(real.train.counts()) + max(real.test.counts()))
    t0 = time.perf_counter()
    gen = _sample(plan, n_gen)
    if not grid.is_file():
        from vaemsgan.utils.images import make_grid
        from vaemsgan.utils.io import save_png

        first = torch.cat([(gen.labels == c).nonzero().flatten()[:8] for c in range(len(gen.class_names))])
        save_png(grid, make_grid(gen.images[first], nrow=8))
    t_gen = time.perf_counter() - t0
    for part in todo:
        ctx.log(f"evaluate {plan.name}: {part}")
        t0 = time.perf_counter()
        res = evaluate_part(part, ctx, real, gen, opts)
        res = {"eval_key": eval_key(part, opts), "seconds": time.perf_counter() - t0 + t_gen, **res}
        atomic_write_json(plan.folder / "eval" / f"{part}.json", json_safe(res))
        out[part] = json_safe(res)
    return out


def _first_n(gen: ImageSet, n: int) -> ImageSet:
    """The first n generated images of each class (latents depend on (seed, class) only: same images)."""
    idx = torch.cat([(gen.labels == c).nonzero().flatten()[:n] for c in range(len(gen.class_names))])
    return gen.subset(idx.sort().values)


def run_one(plan: RunPlan, parts: Sequence[str], ctx: Context, opts: ReproduceOptions) -> dict[str, Any]:
    """Train (unless done) and evaluate (missing parts) one run; writes result.json and DONE.json."""
    done = _read_json(plan.folder / "DONE.json")
    tkey = train_key(plan, opts)
    ekeys = {p: eval_key(p, opts) for p in parts}
    if (
        done is not None
        and not opts.force
        and done.get("train_key") == tkey
        and all(done.get("eval_keys", {}).get(p) == k for p, k in ekeys.items())
    ):
        res = _read_json(plan.folder / "result.json")
        if res is not None:
            ctx.log(f"{plan.name}: done earlier, kept")
            return res
    train = train_run(plan, ctx, opts)
    evals = evaluate_run(plan, parts, ctx, opts)
    prev = _read_json(plan.folder / "result.json") or {}
    result = {
        "run": plan.name,
        "label": plan.spec.label or plan.spec.name,
        "preset": plan.spec.preset,
        "overrides": plan.spec.overrides,
        "seed": plan.seed,
        "config": plan.cfg.to_dict(),
        "train": train,
        "eval": {**prev.get("eval", {}), **evals},
        "grid": str(plan.folder / "grid.png"),
    }
    atomic_write_json(plan.folder / "result.json", json_safe(result))
    marker = _read_json(plan.folder / "DONE.json") or {}
    keys = {**(marker.get("eval_keys", {}) if marker.get("train_key") == tkey else {}), **ekeys}
    atomic_write_json(plan.folder / "DONE.json", {"train_key": tkey, "eval_keys": keys})
    return result


# ---------------------------------------------------------------------------------------------- main
def _logger(enabled: bool) -> Callable[[str], None]:
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        if enabled:
            print(f"[reproduce {time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    return log


def machine_info() -> dict[str, Any]:
    import os
    import platform

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
