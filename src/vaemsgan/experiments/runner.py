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

import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from vaemsgan.config import UNCAPPED_STEPS, Config
from vaemsgan.data import ImageSet
from vaemsgan.errors import ConfigError, OutputExistsError
from vaemsgan.evaluation import core
from vaemsgan.evaluation.core import RealSide
from vaemsgan.evaluation.crossval import CrossvalOptions
from vaemsgan.experiments.context import (
    SUBSET_SEED,
    Context,
    ReproduceOptions,
    _key,
    _read_json,
    judge_config,
    judge_key,
)
from vaemsgan.experiments.registry import EVAL_PARTS, EXPERIMENTS, ExperimentSpec, RunSpec
from vaemsgan.training.steplog import median_images_per_s
from vaemsgan.utils.io import atomic_write_json, json_safe


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
        # The subset the runs train on: Context draws it with SUBSET_SEED for every training seed.
        base.update({"data.per_class": opts.per_class, "data.subset_seed": SUBSET_SEED})
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
            cfg.train.steps = opts.steps if opts.steps is not None else UNCAPPED_STEPS
            plans.append(RunPlan(spec, seed, cfg, out / "runs" / name))
    return plans


# Config keys added after runs were trained, with the value their absence meant: the train key leaves such a key
# out at that value, so a finished run's TRAINED.json still matches when a key is added (a run with another value
# is another configuration). Append only.
# data.subset_seed: the runs always trained on Context's seed-0 subset; a checkpoint without the key (None) was
# trained on it too.
LATER_KEYS: dict[tuple[str, str], tuple[Any, ...]] = {
    ("model", "g_upsample"): ("transpose",),
    ("data", "subset_seed"): (None, SUBSET_SEED),
}


def _without_legacy_keys(out: dict[str, Any]) -> dict[str, Any]:
    for (section, key), legacy in LATER_KEYS.items():
        if out.get(section, {}).get(key, legacy[0]) in legacy:
            out.get(section, {}).pop(key, None)
    return out


def keyed_config(cfg: Config) -> dict[str, Any]:
    """`cfg` as the train key hashes it: its dict without the LATER_KEYS at their legacy values."""
    return _without_legacy_keys(cfg.to_dict())


def train_key(plan: RunPlan, opts: ReproduceOptions) -> str:
    return _key({"config": keyed_config(plan.cfg), "budget": opts.budget_minutes, "clock": opts.clock})


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
    return _without_legacy_keys(out)


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
def sample_checkpoint(
    path: str | Path, per_class: int, seed: int = 0, name: str | None = None, truncation: float | None = None
) -> ImageSet:
    """`per_class` images of each class from a checkpoint file or a run folder's newest checkpoint (not its
    best.pt): for a checkpoint file, the images `vaemsgan generate --per-class N --seed S [--truncation T]`
    writes."""
    from vaemsgan.generation.sampler import load_model
    from vaemsgan.inference import sample_class

    model = load_model(path, "cpu", prefer_best=False)
    classes = range(len(model.class_names))
    return ImageSet(
        torch.cat([sample_class(model, c, per_class, seed, truncation) for c in classes]),
        torch.arange(len(classes)).repeat_interleave(per_class),
        list(model.class_names),
        f"{name or path} (generated)",
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
