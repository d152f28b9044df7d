"""The subcommands' registry, and the small ones: `check-data`, `presets` and `demo`. Each `add_*` registers
its options; each `cmd_*` runs it (train_cmd, sample_cmd, evaluate_cmd and reproduce_cmd hold the others)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from vaemsgan.cli.evaluate_cmd import add_evaluate
from vaemsgan.cli.options import (
    GEN_PER_CLASS,
    MAX_MINUTES,
    MAX_STEPS,
    RESOLUTIONS,
    Num,
    add_crop_option,
    add_limit_options,
)
from vaemsgan.cli.reproduce_cmd import add_reproduce
from vaemsgan.cli.sample_cmd import add_generate, add_interpolate, add_reconstruct
from vaemsgan.cli.train_cmd import add_train, overrides_from_args, report_data
from vaemsgan.errors import OutputExistsError
from vaemsgan.presets import PRESETS, build_config


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
            **overrides_from_args(args),
        },
    )
    set_threads(cfg.train.threads)
    t0 = time.perf_counter()
    data = load_images("fashion-mnist-mini", resolution=cfg.data.resolution, channels=cfg.data.channels)
    report_data(data)
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


REGISTRY = [
    add_train,
    add_generate,
    add_reconstruct,
    add_interpolate,
    add_check_data,
    add_presets,
    add_demo,
    add_evaluate,
    add_reproduce,
]
