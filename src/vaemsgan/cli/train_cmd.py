"""`vaemsgan train`: its options (every config key a flag), the config they resolve to, and the run."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch

from vaemsgan.cli.options import (
    CLASSES,
    MAX_MINUTES,
    RESOLUTIONS,
    Num,
    NumList,
    add_crop_option,
    add_limit_options,
    device_of,
)
from vaemsgan.cli.paths import refuse_nested
from vaemsgan.config import D_KERNELS, Config, apply_overrides, validate
from vaemsgan.errors import ConfigError, OutputExistsError, VaemsganError
from vaemsgan.presets import PRESETS, build_config

KERNEL_LIST = NumList(Num(int, 1, 9, values=D_KERNELS), max_items=len(D_KERNELS))


def add_data_options(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        required=required,
        metavar="SOURCE",
        help="ImageFolder path (root/<class>/<images>), 'fashion-mnist' or 'fashion-mnist-mini'",
    )
    g.add_argument("--data-dir", help="folder holding the Fashion-MNIST idx .gz files")
    g.add_argument(
        "--resolution",
        type=Num.key("data.resolution", values=RESOLUTIONS),
        help="image size: a power of two from 16 to 256 (default 32)",
    )
    g.add_argument("--channels", type=Num.key("data.channels"), help="1 = grey, 3 = RGB (default 1)")
    g.add_argument(
        "--per-class",
        type=Num.key("data.per_class"),
        metavar="N",
        help="seeded subset of N training images per class (drawn with --seed, or --set data.subset_seed=S)",
    )
    add_crop_option(g, "keep the centre N x N source pixels of each image before resizing (SAR chips: 64-88)")
    g.add_argument("--classes", type=CLASSES, help="comma-separated class names to keep")
    g.add_argument("--strict", action="store_true", help="fail on non-image files instead of skipping them")


# CLI flag -> (config key, converter). Only flags the user gave override the config.
TRAIN_FLAGS: dict[str, tuple[str, Any]] = {
    "data": ("data.source", str),
    "data_dir": ("data.data_dir", str),
    "resolution": ("data.resolution", int),
    "channels": ("data.channels", int),
    "per_class": ("data.per_class", int),
    "classes": ("data.classes", list),
    "crop": ("data.crop", int),
    "batch_size": ("train.batch_size", int),
    "steps": ("train.steps", int),
    "n_critic": ("train.n_critic", int),
    "lr_g": ("train.lr_g", float),
    "lr_d": ("train.lr_d", float),
    "lr_e": ("train.lr_e", float),
    "seed": ("train.seed", int),
    "augment": ("train.augment", str),
    "ada_target": ("train.ada_target", float),
    "sample_every": ("train.sample_every", int),
    "checkpoint_every": ("train.checkpoint_every", int),
    "log_every": ("train.log_every", int),
    "keep": ("train.keep", int),
    "threads": ("train.threads", int),
    "latent_dim": ("model.latent_dim", int),
    "g_kernel": ("model.g_kernel", int),
    "d_kernels": ("model.d_kernels", list),
    "d_norm": ("model.d_norm", str),
    "pooling": ("model.pooling", str),
    "scales": ("model.scales", int),
    "g_width": ("model.g_width", int),
    "d_width": ("model.d_width", int),
    "adversarial": ("loss.adversarial", str),
    "gp_weight": ("loss.gp_weight", float),
    "gp_every": ("loss.gp_every", int),
    "snapshot_minutes": ("train.snapshot_minutes", str),
}


def _set_keys(args: argparse.Namespace) -> set[str]:
    """The config keys named by --set."""
    return {item.split("=", 1)[0].strip() for item in (getattr(args, "set", None) or []) if "=" in item}


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flag, (key, _) in TRAIN_FLAGS.items():
        v = getattr(args, flag, None)
        if v is not None:
            out[key] = v
    if getattr(args, "d_kernel", None) is not None:
        out["model.d_kernels"] = [args.d_kernel]
    if getattr(args, "unconditional", False):
        out["model.conditional"] = False
    if getattr(args, "strict", False):
        out["data.strict"] = True
    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. --set loss.kl_weight=0.5")
        k, v = item.split("=", 1)
        if "." not in k:
            raise ConfigError(f"--set {item!r}: the key must be SECTION.KEY, e.g. model.latent_dim")
        out[k.strip()] = v.strip()
    return out


# train
def add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on an image folder or a built-in set",
        description="Train VAE-MSGAN. Outputs in RUN_DIR: config.yaml, checkpoints/, samples.png, "
        "samples/, metrics.jsonl, tensorboard/.",
    )
    add_data_options(p, required=False)
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (checkpoints, samples, logs)")
    p.add_argument("--config", metavar="FILE.yaml", help="config file (a run's config.yaml works)")
    p.add_argument("--preset", choices=list(PRESETS), help="named configuration (default: 'default')")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=Num.key("train.steps"), help="generator steps")
    length.add_argument(
        "--epochs",
        type=Num(float, 0, 1e6, lo_open=True),
        help="passes over the training images (sets --steps)",
    )
    p.add_argument(
        "--budget-minutes",
        type=Num(float, 0, MAX_MINUTES, lo_open=True),
        metavar="M",
        help="stop cleanly after M minutes of training (checkpoint and samples saved); without --steps/"
        "--epochs the step count is then unlimited",
    )
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what --budget-minutes counts: wall time of this command (default), or the run's training CPU "
        "time across resumes (fair on a shared machine; a resumed run continues the same budget)",
    )
    p.add_argument(
        "--snapshot-minutes",
        type=NumList(Num(float, 0, MAX_MINUTES, lo_open=True), max_items=1000),
        metavar="M1,M2,...",
        help="keep RUN/snapshots/cpu-<M>min.pt at these training CPU-minutes (sets train.snapshot_minutes)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from the newest valid checkpoint in RUN_DIR"
    )
    p.add_argument("--force", action="store_true", help="train into a non-empty RUN_DIR, replacing its run")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("--unconditional", action="store_true", help="ignore class labels")
    p.add_argument(
        "--d-kernel", type=Num(int, 1, 9, values=D_KERNELS), help="single critic kernel size (one branch)"
    )
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="any config key, e.g. loss.kl_weight=0.5"
    )
    for flag, (key, conv) in TRAIN_FLAGS.items():
        if flag in {
            "data",
            "data_dir",
            "resolution",
            "channels",
            "per_class",
            "classes",
            "crop",
            "steps",
            "snapshot_minutes",
        }:
            continue
        p.add_argument(
            "--" + flag.replace("_", "-"),
            type=Num.key(key) if conv in (int, float) else KERNEL_LIST if conv is list else str,
            metavar=key.split(".")[1].upper(),
            help=f"sets {key}",
        )
    add_limit_options(p, config=True)
    p.set_defaults(func=cmd_train)


def resolve_train_config(args: argparse.Namespace) -> Config:
    """Config = defaults <- preset <- config file (only the keys it sets) <- command-line flags."""
    from vaemsgan.config import read_yaml

    file_values = read_yaml(args.config) if args.config else {}
    preset = args.preset or str(file_values.get("preset", "default"))
    overrides = {k: v for k, v in file_values.items() if k != "preset"}
    try:
        cfg = build_config(preset, overrides, check=False)
    except ConfigError as exc:
        raise ConfigError(f"{args.config}: {exc}" if args.config else str(exc)) from None
    # The rules between keys once, after the last option: their order never matters.
    return validate(apply_overrides(cfg, overrides_from_args(args)))


def cmd_train(args: argparse.Namespace) -> int:
    """Train; under torchrun every process runs this, rank 0 alone prints and writes (see distributed.py)."""
    import contextlib
    import os

    from vaemsgan.training import distributed as ddp

    device = ddp.local_device(device_of(args.device))
    ddp.init_from_env(device)
    try:
        if ddp.is_main():
            return _train(args, device)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            return _train(args, device)
    finally:
        ddp.shutdown()


def _train(args: argparse.Namespace, device: torch.device) -> int:
    """One owner per run folder: rank 0 locks it for the whole command (torchrun's other ranks share it)."""
    import contextlib

    from vaemsgan.training import distributed as ddp
    from vaemsgan.utils.lock import folder_lock

    lock = folder_lock(args.out, "run folder") if ddp.is_main() else contextlib.nullcontext()
    with lock:
        return _train_in(args, device)


def _train_in(args: argparse.Namespace, device: torch.device) -> int:
    import os

    from vaemsgan.checkpoint import list_checkpoints, load_latest_valid
    from vaemsgan.data import load_from_config
    from vaemsgan.evaluation.monitor import Monitor
    from vaemsgan.training import distributed as ddp
    from vaemsgan.training.trainer import Trainer, set_threads
    from vaemsgan.utils.io import ensure_writable_dir

    out = Path(args.out)
    if args.resume:
        state = load_latest_valid(out)
        if state is None:
            raise VaemsganError(f"{out}: nothing to resume (no valid checkpoint in {out / 'checkpoints'})")
        cfg = Config.from_dict(state["config"])
        if args.preset and args.preset != cfg.preset:
            # Resuming under another preset would train the run's own networks and losses while the user
            # believes they get the other ones: refuse rather than ignore.
            raise ConfigError(
                f"--preset {args.preset}: {out} is a '{cfg.preset}' run; --resume continues it as it is (drop "
                f"--preset, or train a new '{args.preset}' run into another --out)"
            )
        extra = overrides_from_args(args)
        # A longer run may add learning-curve marks and take this machine's thread count; everything else
        # stays the run's own.
        kept = ("train.steps", "train.snapshot_minutes", "train.threads")
        set_keys = _set_keys(args)
        ignored = sorted(f"--set {k}" if k in set_keys else k for k in extra if k not in kept)
        if args.config:
            ignored.insert(0, f"--config {args.config}")
        if args.epochs is not None:
            ignored.append("--epochs (give --steps)")
        if ignored:
            print(f"note: --resume uses the run's own config; ignoring {', '.join(ignored)}")
        if args.steps:
            cfg.train.steps = args.steps
        if "train.snapshot_minutes" in extra:
            apply_overrides(cfg, {"train.snapshot_minutes": extra["train.snapshot_minutes"]})
        if "train.threads" in extra:
            apply_overrides(cfg, {"train.threads": extra["train.threads"]})
            print(f"note: --resume runs with --threads {cfg.train.threads} (the run had its own setting)")
    else:
        if out.exists() and not out.is_dir():
            raise OutputExistsError(f"{out}: exists and is not a folder")
        if out.is_dir() and any(out.iterdir()) and not args.force:
            if list_checkpoints(out) or (out / "config.yaml").exists():
                raise OutputExistsError(
                    f"{out}: already holds a run; use --resume to continue it or --force to start over"
                )
            raise OutputExistsError(
                f"{out}: run folder exists and is not empty; use --force to train into it, or a new folder"
            )
        cfg = resolve_train_config(args)
    # The source may come from --config: --out must not hold it, nor lie inside it, whatever named it.
    refuse_nested("--out", out, {"data.source": cfg.data.source})
    ddp.barrier()  # every rank has checked the run folder before any rank writes into it
    # Fail now, not after hours of training, when the run folder cannot take a file.
    ensure_writable_dir(out, "run folder")
    set_threads(cfg.train.threads)
    t0 = time.perf_counter()
    data = load_from_config(cfg.data, "train", seed=cfg.train.seed, progress=not args.no_progress)
    report_data(data)
    if len(data.class_names) < 2 and cfg.model.conditional:
        # Conditioning needs two classes; recorded in the config so the checkpoint says what it is.
        print(f"note: only one class ('{data.class_names[0]}'): training an unconditional model")
        cfg.model.conditional = False
    if args.epochs is not None and not args.resume:
        per_step = min(cfg.train.batch_size, len(data)) * max(cfg.train.n_critic, 1)
        cfg.train.steps = max(1, math.ceil(args.epochs * len(data) / per_step))
    if not args.resume and args.force and out.exists() and ddp.is_main():
        for f in list_checkpoints(out):
            f.unlink()
        (out / "metrics.jsonl").unlink(missing_ok=True)
        (out / "best.pt").unlink(missing_ok=True)  # picked by the old run's monitor
    ddp.barrier()
    trainer = Trainer(
        cfg, data, out, device=device, progress=not args.no_progress, monitor=Monitor(cfg, data, out)
    )
    if args.resume:
        trainer.load_state_dict(state)
        print(f"resumed from {state['_path']} at step {trainer.state.step}")
    budget = getattr(args, "budget_minutes", None)
    unlimited = budget is not None and not args.steps and args.epochs is None
    length = f"{budget:g} minutes" if unlimited else f"{cfg.train.steps} steps"
    print(
        f"training preset '{cfg.preset}' for {length} on {device} "
        f"({len(data)} images, {len(data.class_names)} classes, {cfg.data.resolution}px x {cfg.data.channels})"
    )
    if trainer.world > 1:
        print(
            f"data parallel: {trainer.world} processes ({ddp.info().backend}), {trainer.local_batch} images each"
        )
    deadline = None
    if getattr(args, "budget_minutes", None) is not None:
        if not args.budget_minutes > 0:
            raise ConfigError(f"--budget-minutes must be positive, got {args.budget_minutes}")
        if not args.steps and args.epochs is None:
            cfg.train.steps = 10**9  # the time budget alone ends the run
        deadline = 60.0 * args.budget_minutes
    if args.clock == "cpu":
        trainer.train(cfg.train.steps, deadline=deadline, clock=trainer.cpu_clock)
    else:
        trainer.train(cfg.train.steps, deadline=None if deadline is None else time.perf_counter() + deadline)
    digest_dir = os.environ.get("VAEMSGAN_RANK_DIGEST_DIR")
    if digest_dir:  # test hook: each rank writes a hash of its weights, to check that the ranks agree
        mods = {**trainer.nets.modules(), **({"ema": trainer.ema.model} if trainer.ema is not None else {})}
        Path(digest_dir).mkdir(parents=True, exist_ok=True)
        (Path(digest_dir) / f"rank{trainer.rank}.txt").write_text(
            f"{trainer.state.step} {ddp.state_digest(mods)}\n"
        )
    dt = time.perf_counter() - t0
    print(f"done in {dt / 60:.1f} min. samples: {out / 'samples.png'}  checkpoints: {out / 'checkpoints'}")
    return 0


def report_data(data: Any) -> None:
    counts = ", ".join(f"{n}: {c}" for n, c in zip(data.class_names, data.counts()))
    print(f"data: {data.source}: {len(data)} images in {len(data.class_names)} classes ({counts})")
    if data.skipped:
        print(
            f"note: skipped {len(data.skipped)} unreadable or non-image files, e.g. {data.skipped[0][0]}: "
            f"{data.skipped[0][1]} (use `vaemsgan check-data` for the list, --strict to fail instead)"
        )
