"""The subcommands. Each `add_*` registers its options; each `cmd_*` runs it."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaemsgan.cli.options import (
    CLASSES,
    MAX_GENERATED_PER_CLASS,
    MAX_MINUTES,
    MAX_SEED,
    MAX_STEPS,
    Num,
    NumList,
    add_crop_option,
    add_limit_options,
)
from vaemsgan.cli.paths import refuse_nested
from vaemsgan.config import D_KERNELS, Config, apply_overrides, validate
from vaemsgan.errors import ConfigError, DataError, OutputExistsError, VaemsganError
from vaemsgan.presets import PRESETS, build_config


# ---------------------------------------------------------------- shared option groups
def _device(name: str) -> torch.device:
    from vaemsgan.inference import resolve_device

    return resolve_device(name)


RESOLUTIONS = (16, 32, 64, 128, 256)
SEED = Num(int, 0, MAX_SEED)
GEN_PER_CLASS = Num(int, 1, MAX_GENERATED_PER_CLASS)
TRUNCATION = Num(float, 0, 100, lo_open=True)
GEN_BATCH = Num(int, 1, 65536)
KERNEL_LIST = NumList(Num(int, 1, 9, values=D_KERNELS), max_items=len(D_KERNELS))


def _add_data_options(p: argparse.ArgumentParser, required: bool = True) -> None:
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


def _overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
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


# ---------------------------------------------------------------- train
def add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on an image folder or a built-in set",
        description="Train VAE-MSGAN. Outputs in RUN_DIR: config.yaml, checkpoints/, samples.png, "
        "samples/, metrics.jsonl, tensorboard/.",
    )
    _add_data_options(p, required=False)
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
    return validate(apply_overrides(cfg, _overrides_from_args(args)))


def cmd_train(args: argparse.Namespace) -> int:
    """Train; under torchrun every process runs this, rank 0 alone prints and writes (see distributed.py)."""
    import contextlib
    import os

    from vaemsgan.training import distributed as ddp

    device = ddp.local_device(_device(args.device))
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
        extra = _overrides_from_args(args)
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
    _report_data(data)
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


def _report_data(data: Any) -> None:
    counts = ", ".join(f"{n}: {c}" for n, c in zip(data.class_names, data.counts()))
    print(f"data: {data.source}: {len(data)} images in {len(data.class_names)} classes ({counts})")
    if data.skipped:
        print(
            f"note: skipped {len(data.skipped)} unreadable or non-image files, e.g. {data.skipped[0][0]}: "
            f"{data.skipped[0][1]} (use `vaemsgan check-data` for the list, --strict to fail instead)"
        )


# ---------------------------------------------------------------- generate
def add_generate(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="write N images per class into an ImageFolder",
        description="Writes OUT/<class>/<index>.png and OUT/manifest.json. With --from-real DATA "
        "--variations K: K variations of every real image of DATA, drawn from the encoder's posterior.",
    )
    p.add_argument("--checkpoint", required=True, metavar="RUN_DIR|FILE")
    p.add_argument(
        "--per-class",
        type=GEN_PER_CLASS,
        metavar="N",
        help="images per class (required); with --from-real: a seeded subset of N real images per class",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--seed", type=SEED, default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--truncation",
        type=TRUNCATION,
        help="resample latent values beyond +-T (e.g. 1.5): fewer, more typical images",
    )
    p.add_argument("--batch-size", type=GEN_BATCH, default=256, help="images per forward pass (default 256)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the generator (faster for many images; ~30 s to start)",
    )
    p.add_argument("--classes", type=CLASSES, help="comma-separated class names (default: all)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty DIR")
    p.add_argument("--resume", action="store_true", help="finish an interrupted generation into DIR")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--filter",
        metavar="classifier|critic|dedupe",
        help="curation, comma-separated: over-generate and drop images the domain classifier assigns to the "
        "wrong class or with low confidence, the critic's least realistic, near-duplicates",
    )
    p.add_argument(
        "--keep-fraction",
        type=Num(float, 0, 1, lo_open=True),
        default=0.5,
        metavar="F",
        help="with --filter: generate ceil(N / F) per class and keep the best N (default 0.5)",
    )
    real = p.add_argument_group("variations of real images (encoder-anchored)")
    real.add_argument(
        "--from-real",
        metavar="DATA",
        help="vary the real training images of DATA: an ImageFolder path, 'fashion-mnist' or "
        "'fashion-mnist-mini' (with --per-class / --classes as in train); writes "
        "OUT/<class>/<source>_<k>.png and a manifest naming each file's source image",
    )
    real.add_argument(
        "--variations", type=Num(int, 1, 10_000), metavar="K", help="with --from-real: variations per image"
    )
    real.add_argument(
        "--temperature",
        type=Num(float, 0, 100),
        metavar="T",
        help="with --from-real: z = mu + T * sigma * eps (0 = the posterior mean, i.e. the reconstruction; "
        "1 = the posterior, default; >1 wider)",
    )
    real.add_argument(
        "--mix",
        metavar="LO,HI",
        help="with --from-real: move each latent toward another image of the same class, "
        "z = (1-a) z + a z_other with a ~ U[LO,HI] (default off)",
    )
    real.add_argument(
        "--mix-nearest",
        type=Num(int, 1, 10**6),
        metavar="M",
        help="with --mix: the other image is one of the M nearest of the class in the encoder's space (an "
        "interpolation between neighbours, the gain study's interpolation arm: --temperature 0 --mix 0.25,0.75 "
        "--mix-nearest 3; default: any image of the class)",
    )
    real.add_argument("--data-dir", help="with --from-real fashion-mnist: folder of its idx .gz files")
    p.set_defaults(func=cmd_generate)


# Bytes one manifest entry ({"file", "class", "label", "index"}) takes in memory, with its list slot.
MANIFEST_ENTRY_BYTES = 700


def generation_memory(model: Any, per_class: int, n_classes: int, filters: list[str], keep: float) -> int:
    """Peak bytes `generate` needs: one class's latents (and, curated, its candidates and their distances)
    plus the manifest of every image."""
    dim = model.cfg.model.latent_dim
    pixels = model.cfg.data.channels * model.cfg.data.resolution**2
    need = per_class * n_classes * MANIFEST_ENTRY_BYTES
    if not filters:
        return need + per_class * dim * 4
    n = math.ceil(per_class / keep)
    need += n * (dim * 4 + pixels + 64)
    if "dedupe" in filters:
        need += 8 * n * n + 8 * n * pixels  # pairwise distances of the candidates, in float64
    return need


def _checkpoint_note(path: Path) -> str:
    """Why this checkpoint: best.pt is the training monitor's pick (say its step and value)."""
    if Path(path).name != "best.pt":
        return ": the run's newest checkpoint"
    from vaemsgan.checkpoint import load_checkpoint

    mon = load_checkpoint(path).get("monitor", {})
    kid = mon.get("kid")
    what = f", KID {kid:.3g}" if isinstance(kid, (int, float)) else ""
    return f": best.pt, the training monitor's best state{what} (give a checkpoint file to use another)"


def cmd_generate(args: argparse.Namespace) -> int:
    from vaemsgan.api import load
    from vaemsgan.limits import check_memory

    if args.from_real:
        return _generate_variations(args)
    for flag in ("variations", "temperature", "mix", "mix_nearest", "data_dir"):
        if getattr(args, flag) is not None:
            raise ConfigError(
                f"--{flag.replace('_', '-')} needs --from-real DATA (variations of real images)"
            )
    if args.per_class is None:
        raise ConfigError("--per-class N is required (or --from-real DATA --variations K)")
    model = load(args.checkpoint, device=_device(args.device))
    print(f"checkpoint: {model.checkpoint} (step {model.step}){_checkpoint_note(model.checkpoint)}")
    classes = args.classes
    filters: list[str] = []
    if args.filter:
        from vaemsgan.evaluation.curate import parse_filters

        filters = list(parse_filters(args.filter))
    # Refused before the output folder exists, so that nothing blocks the next (smaller) run.
    n_classes = len(classes) if classes else len(model.class_names)
    check_memory(
        generation_memory(model.loaded, args.per_class, n_classes, filters, args.keep_fraction),
        f"--per-class {args.per_class}" + (f" with --filter {args.filter}" if filters else ""),
        "use a smaller --per-class" + (" or a larger --keep-fraction" if filters else ""),
    )
    t0 = time.perf_counter()
    if args.filter and args.resume:
        raise ConfigError("--resume is not supported with --filter (curation scores the whole class)")
    try:
        if args.filter:
            from vaemsgan.evaluation.curate import generate_curated

            manifest = generate_curated(
                model.loaded,
                args.out,
                args.per_class,
                filters,
                args.keep_fraction,
                seed=args.seed,
                truncation=args.truncation,
                batch_size=args.batch_size,
                classes=classes,
                force=args.force,
                log=(lambda s: None) if args.no_progress else print,
            )
        else:
            manifest = model.write_imagefolder(
                args.out,
                args.per_class,
                seed=args.seed,
                truncation=args.truncation,
                batch_size=args.batch_size,
                classes=classes,
                force=args.force,
                resume=args.resume,
                progress=not args.no_progress,
                compile=args.compile,
            )
    except KeyboardInterrupt:
        # Each image is written whole (atomically): what is on disk is kept and a rerun finishes it.
        how = (
            "curation ranks whole classes: rerun the same command with --force"
            if args.filter
            else "the images written so far are complete; continue with the same command and --resume"
        )
        print(f"vaemsgan: generation interrupted: {how}", file=sys.stderr)
        return 130
    dt = time.perf_counter() - t0
    n = len(manifest["files"])
    print(
        f"wrote {n} images ({args.per_class} per class x {len(manifest['classes'])} classes) to {args.out} "
        f"in {dt:.1f} s; manifest: {Path(args.out) / 'manifest.json'}"
    )
    return 0


def _generate_variations(args: argparse.Namespace) -> int:
    """generate --from-real DATA --variations K: encoder-anchored variations of every real image."""
    from vaemsgan.api import load
    from vaemsgan.generation.variations import check_options, parse_mix

    if args.variations is None:
        raise ConfigError("--from-real needs --variations K (how many variations of each real image)")
    for flag in ("filter", "truncation", "compile"):
        if getattr(args, flag) is not None and getattr(args, flag) is not False:
            raise ConfigError(
                f"--{flag} does not apply to --from-real (variations are drawn from the encoder)"
            )
    temperature = 1.0 if args.temperature is None else args.temperature
    mix = parse_mix(args.mix)
    check_options(args.variations, temperature, mix, args.mix_nearest)  # before loading anything
    model = load(args.checkpoint, device=_device(args.device))
    if not model.has_encoder:
        raise ConfigError(f"{model.checkpoint}: this model has no encoder, so no variations of real images")
    t0 = time.perf_counter()
    manifest = model.write_variations(
        args.from_real,
        args.out,
        args.variations,
        temperature=temperature,
        mix=mix,
        nearest=args.mix_nearest,
        seed=args.seed,
        per_class=args.per_class,
        classes=args.classes,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        force=args.force,
        resume=args.resume,
        progress=not args.no_progress,
    )
    print(
        f"wrote {len(manifest['files'])} images ({args.variations} variations of {manifest['data']['images']} "
        f"real images, temperature {temperature:g}) to {args.out} in {time.perf_counter() - t0:.1f} s; "
        f"manifest: {Path(args.out) / 'manifest.json'}"
    )
    return 0


# ---------------------------------------------------------------- reconstruct / interpolate
def add_reconstruct(sub: Any) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="encode and decode images (the VAE half)",
        description="Encoder -> decoder for every image of an ImageFolder (class folders) or a "
        "flat folder; writes OUT with the same relative names as PNG.",
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, metavar="DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--class", dest="class_name", help="class of a flat folder's images (conditional models)")
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="auto")
    add_limit_options(p)
    p.set_defaults(func=cmd_reconstruct)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from vaemsgan.api import load
    from vaemsgan.data.imagefolder import IMAGE_EXTENSIONS, SkipImage, decode_file
    from vaemsgan.utils.io import atomic_write_json, prepare_output_dir, save_png

    model = load(args.checkpoint, device=_device(args.device))
    src = Path(args.input)
    if not src.is_dir():
        raise DataError(f"{src}: input folder does not exist or is not a folder")
    files = sorted(
        p
        for p in src.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(src).parts)
    )
    if not files:
        raise DataError(f"{src}: no images found")
    labels: list[int] = []
    arrays = []
    res, ch = model.resolution, model.channels
    for f in files:
        rel = f.relative_to(src)
        name = rel.parts[0] if len(rel.parts) > 1 else args.class_name
        if model.conditional:
            if name is None:
                raise DataError(
                    f"{f}: flat folder: give --class NAME (model classes: {', '.join(model.class_names)})"
                )
            if name not in model.class_names:
                raise DataError(
                    f"{f}: class {name!r} is not one of the model's ({', '.join(model.class_names)})"
                )
        labels.append(model.class_names.index(name) if model.conditional else 0)
        try:
            arrays.append(torch.from_numpy(np.ascontiguousarray(decode_file(f, res, ch, model.crop)).copy()))
        except SkipImage as exc:
            raise DataError(f"{f}: {exc}") from None
    out = prepare_output_dir(args.out, args.force)
    if args.force:
        _clear_earlier_reconstruction(out)
    recs = model.reconstruct(torch.stack(arrays), torch.tensor(labels) if model.conditional else None)
    written = []
    for f, r in zip(files, recs):
        rel = f.relative_to(src).with_suffix(".png")
        save_png(out / rel, r.permute(1, 2, 0).numpy(), fsync=False)
        written.append(rel.as_posix())
    atomic_write_json(out / RECONSTRUCT_MANIFEST, {"checkpoint": str(model.checkpoint), "files": written})
    print(f"reconstructed {len(files)} images into {out}")
    return 0


RECONSTRUCT_MANIFEST = "reconstruct.json"  # the files `reconstruct` wrote: what a later --force may replace


def _clear_earlier_reconstruction(out: Path) -> None:
    """`--force`: remove what an earlier `reconstruct` wrote (its manifest's files), so the folder holds exactly
    the new run's; refuse (one line, nothing touched) when the folder holds files it did not write."""
    import json

    manifest = out / RECONSTRUCT_MANIFEST
    ours: set[Path] = set()
    if manifest.is_file():
        try:
            ours = {out / f for f in json.loads(manifest.read_text()).get("files", [])} | {manifest}
        except (OSError, ValueError, AttributeError, TypeError):
            ours = set()
    files = [p for p in sorted(out.rglob("*")) if p.is_file() or p.is_symlink()]
    other = [p for p in files if p not in ours]
    if other:
        raise OutputExistsError(
            f"{out}: holds {len(other)} file(s) an earlier `vaemsgan reconstruct` did not write (e.g. {other[0]}): "
            "--force replaces only an earlier reconstruction; move them or choose an empty folder"
        )
    for p in files:
        p.unlink()


def add_interpolate(sub: Any) -> None:
    p = sub.add_parser("interpolate", help="grid of images between two latents, one row per class")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--steps", type=Num(int, 2, 1000), default=10, help="images per row (default 10)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the two end latents (default 0)")
    p.add_argument("--classes", type=CLASSES, help="comma-separated class names (default: all)")
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_interpolate)


def cmd_interpolate(args: argparse.Namespace) -> int:
    from vaemsgan.generation import interpolation_grid, load_model
    from vaemsgan.utils.images import make_grid
    from vaemsgan.utils.io import save_png

    out = Path(args.out)
    if out.exists() and not args.force:
        raise OutputExistsError(f"{out}: exists; use --force to overwrite")
    model = load_model(args.checkpoint, _device(args.device))
    names = args.classes or model.class_names
    for n in names:
        if n not in model.class_names:
            raise ConfigError(
                f"--classes: unknown class {n!r} (the model knows: {', '.join(model.class_names)})"
            )
    g = torch.Generator().manual_seed(args.seed)
    z = torch.randn(2, model.cfg.model.latent_dim, generator=g)
    grid = interpolation_grid(model, z[0], z[1], args.steps, [model.class_names.index(n) for n in names])
    save_png(out, make_grid(grid, nrow=args.steps))
    print(f"wrote {out}: {len(names)} rows x {args.steps} steps")
    return 0


# ---------------------------------------------------------------- check-data / presets
def add_check_data(sub: Any) -> None:
    p = sub.add_parser("check-data", help="scan an image folder and report problems before training")
    p.add_argument("path", metavar="PATH")
    p.add_argument(
        "--resolution",
        type=Num.key("data.resolution", values=RESOLUTIONS),
        help="training resolution: warns about images smaller than it",
    )
    p.add_argument("--channels", type=Num.key("data.channels"), help="1 = grey, 3 = RGB")
    p.add_argument("--batch-size", type=Num.key("train.batch_size"), help="warns when there are fewer images")
    p.add_argument(
        "--per-class", type=Num.key("data.per_class"), help="a problem when a class has fewer images"
    )
    add_crop_option(p, "say what a centre crop of N source pixels keeps")
    p.add_argument(
        "--preview",
        metavar="PNG",
        help="write a grid: per class, training images whole beside their --crop, at --resolution",
    )
    add_limit_options(p)
    p.set_defaults(func=cmd_check_data)


def cmd_check_data(args: argparse.Namespace) -> int:
    from vaemsgan.data import check_data
    from vaemsgan.utils.io import save_png

    report = check_data(
        args.path,
        resolution=args.resolution,
        channels=args.channels,
        batch_size=args.batch_size,
        per_class=args.per_class,
        crop=args.crop,
    )
    print(report.format())
    if args.preview and report.ok:
        from vaemsgan.data.check import crop_preview

        res = args.resolution or 64
        grid = crop_preview(args.path, res, args.channels or 1, args.crop)
        preview = Path(args.preview)
        if preview.exists():
            raise OutputExistsError(f"{preview}: exists; choose another --preview file")
        save_png(preview, grid)
        print(
            f"preview: {args.preview} (per class: each image whole, then its crop {args.crop}, at {res} px)"
        )
    return 0 if report.ok else 1


def add_presets(sub: Any) -> None:
    p = sub.add_parser("presets", help="list the named presets, or print one as YAML")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_presets)


def cmd_presets(args: argparse.Namespace) -> int:
    if args.name:
        print(build_config(args.name).to_yaml(), end="")
        return 0
    for name, ov in PRESETS.items():
        summary = "; ".join(
            f"{s}: " + ", ".join(f"{k}={v}" for k, v in vals.items()) for s, vals in ov.items()
        )
        print(f"{name:18s} {summary or '(the config defaults)'}")
    return 0


# ---------------------------------------------------------------- demo
DEMO_STEPS = 3000
DEMO_MINUTES = 6.0


def _command_name() -> str:
    """How to call this vaemsgan from the current folder: `vaemsgan` when that is the one on PATH, else the
    script beside this Python (`.venv/bin/vaemsgan` after `make demo`, whose venv is not activated)."""
    import os
    import shutil

    script = Path(sys.executable).parent / "vaemsgan"
    on_path = shutil.which("vaemsgan")
    if not script.is_file() or (on_path and Path(on_path).resolve() == script.resolve()):
        return "vaemsgan"
    try:
        rel = os.path.relpath(script, Path.cwd())
    except ValueError:  # another drive (Windows)
        return str(script)
    return rel if rel.startswith("..") or os.sep in rel else f".{os.sep}{rel}"


def add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="train on the embedded Fashion-MNIST subset and generate a folder",
        description="Trains the default preset on fashion-mnist-mini (2,000 images, 32x32) for --steps or "
        "--minutes, whichever ends first, then writes 100 images per class.",
    )
    p.add_argument("--out", default="runs/demo", metavar="DIR")
    p.add_argument(
        "--steps",
        type=Num(int, 1, MAX_STEPS),
        default=DEMO_STEPS,
        help=f"at most this many steps ({DEMO_STEPS})",
    )
    p.add_argument(
        "--minutes",
        type=Num(float, 0, MAX_MINUTES, lo_open=True),
        default=DEMO_MINUTES,
        help=f"training time budget ({DEMO_MINUTES:g} min)",
    )
    p.add_argument("--per-class", type=GEN_PER_CLASS, default=100, help="generated images per class (100)")
    p.add_argument("--force", action="store_true", help="replace an earlier demo in DIR")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="any config key, e.g. train.monitor_every=250"
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    import shutil

    from vaemsgan.data import load_images
    from vaemsgan.evaluation.monitor import Monitor
    from vaemsgan.generation import generate_folder, load_model
    from vaemsgan.training.steplog import median_images_per_s
    from vaemsgan.training.trainer import Trainer, set_threads
    from vaemsgan.utils.io import prepare_output_dir

    out = prepare_output_dir(args.out, args.force, "demo folder")
    run = out / "run"
    cfg = build_config(
        "default",
        {
            "data.source": "fashion-mnist-mini",
            "train.steps": args.steps,
            "train.sample_every": 250,
            "train.checkpoint_every": 500,
            **_overrides_from_args(args),
        },
    )
    set_threads(cfg.train.threads)
    t0 = time.perf_counter()
    data = load_images("fashion-mnist-mini", resolution=cfg.data.resolution, channels=cfg.data.channels)
    _report_data(data)
    if run.exists():
        # --force replaces an earlier demo's run, never a folder of the user's that happens to be there.
        if not (run / "config.yaml").is_file() and not (run / "checkpoints").is_dir():
            raise OutputExistsError(
                f"{run}: is not a vaemsgan run (no config.yaml, no checkpoints/): the demo replaces only its own "
                "earlier run; move it or choose another --out"
            )
        shutil.rmtree(run)
    trainer = Trainer(cfg, data, run, progress=not args.no_progress, monitor=Monitor(cfg, data, run))
    print(f"training preset 'default' for up to {cfg.train.steps} steps or {args.minutes:g} minutes")
    trainer.train(cfg.train.steps, deadline=time.perf_counter() + 60.0 * args.minutes)
    t_train = time.perf_counter() - t0
    rate = median_images_per_s(trainer.state.history)
    model = load_model(run)
    gen_dir = out / "generated"
    generate_folder(model, gen_dir, args.per_class, force=True, progress=not args.no_progress)
    dt = time.perf_counter() - t0
    print()
    print(
        f"demo finished in {dt / 60:.1f} min: {trainer.state.step} steps in {t_train / 60:.1f} min, "
        f"median {rate if rate is not None else float('nan'):.0f} training images/s"
    )
    print(f"  sample grid (one row per class): {run / 'samples.png'}")
    print(f"  generated ImageFolder ({args.per_class} per class): {gen_dir}")
    print(f"  checkpoints: {run / 'checkpoints'}   training log: {run / 'metrics.jsonl'}")
    print(
        f"  next: measure them with  {_command_name()} evaluate --quick --checkpoint "
        f"{run} --real fashion-mnist-mini --out {out / 'report'}"
        "   (without --quick: every sweep ratio and the mixed-class experiment, ~1.5 min)"
    )
    return 0


REGISTRY = [add_train, add_generate, add_reconstruct, add_interpolate, add_check_data, add_presets, add_demo]

from vaemsgan.cli.evaluate_cmd import add_evaluate  # noqa: E402

REGISTRY.append(add_evaluate)

from vaemsgan.cli.reproduce_cmd import add_reproduce  # noqa: E402

REGISTRY.append(add_reproduce)
