"""`vaemsgan reproduce EXPERIMENT`: the paper's experiments and the baselines, one command each."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from vaemsgan.cli.options import (
    MAX_GENERATED_PER_CLASS,
    MAX_MINUTES,
    MAX_STEPS,
    Num,
    NumList,
    add_classifier_option,
    add_crop_option,
    add_gain_arm_options,
    add_gain_policy_option,
    add_limit_options,
    default_gain_policy,
)
from vaemsgan.errors import ConfigError
from vaemsgan.evaluation.classifier import CLASSIFIER_PRESETS

STEPS = Num(int, 1, MAX_STEPS)


def add_reproduce(sub: Any) -> None:
    from vaemsgan.experiments.registry import experiment_names

    names = experiment_names()
    p = sub.add_parser(
        "reproduce",
        help="run one of the paper's experiments or the baselines (resumable)",
        description="Train every run of EXPERIMENT under a time budget, sample, evaluate (image statistics, "
        "domain FID, classifier cross-validation) and write OUT/<experiment>.md/.json/.png and OUT/runs/. "
        "Rerunning the same command continues where it stopped; finished runs are not redone. "
        "`gain` trains the `scarce` preset per --gain-per-class size and seed and measures real + synthetic "
        "images against real + classical augmentation (OUT/gain.md). "
        f"Experiments: {', '.join(names)}.",
    )
    p.add_argument("experiment", metavar="EXPERIMENT", help=f"one of: {', '.join(names)}")
    p.add_argument(
        "--data", default="fashion-mnist", help="'fashion-mnist' (default), 'fashion-mnist-mini' or a folder"
    )
    p.add_argument("--data-dir", help="folder holding the Fashion-MNIST idx .gz files")
    p.add_argument(
        "--per-class",
        type=Num(int, 2, 10**9),
        metavar="N",
        help="seeded subset of N training images per class (gain: --gain-per-class)",
    )
    p.add_argument(
        "--resolution",
        type=Num.key("data.resolution", values=(16, 32, 64, 128, 256)),
        help="image size (32; mstar: 64)",
    )
    p.add_argument(
        "--channels",
        type=Num.key("data.channels"),
        default=1,
        help="1 = grey (default), 3 = RGB (colour folders)",
    )
    add_crop_option(
        p, "centre crop of N x N source pixels of every image before resizing (SAR chips: 64-88; mstar: 64)"
    )
    p.add_argument(
        "--parts",
        metavar="P1,P2",
        help="mstar: which parts to run, of judge,curves,gain (all; each resumes on its own)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="results folder (also where a rerun resumes)")
    p.add_argument(
        "--budget",
        "--budget-minutes",
        dest="budget",
        type=Num(float, 0, MAX_MINUTES, lo_open=True),
        metavar="MINUTES",
        help="training time per run (3; gain: 30 CPU-minutes, continued across reruns)",
    )
    p.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="what the budget counts: process CPU time (default; fair on a shared machine) or wall time "
        "(curves, screen and gain always count the run's own training CPU time, across resumes)",
    )
    p.add_argument("--steps", type=STEPS, help="also stop a run at this many generator steps")
    p.add_argument(
        "--marks",
        default=None,
        metavar="M1,M2,...",
        help="curves: training CPU-minutes at which each run is snapshotted and evaluated (2,5,15,30,60; "
        "mstar: 10,30,60,120); "
        "--budget is not used there",
    )
    p.add_argument(
        "--runs",
        help="comma-separated run names: only these runs, all their seeds, or one seed's folder with -seed<S> "
        "(e.g. scarce-seed0; one per parallel worker; a final call without --runs then writes the whole table "
        "from the finished runs)",
    )
    p.add_argument("--seeds", type=Num(int, 1, 100), help="training seeds per run (1; gain: 3)")
    p.add_argument(
        "--eval-seeds", type=Num(int, 1, 1000), default=3, help="classifier seeds per accuracy (3)"
    )
    p.add_argument(
        "--per-class-generated",
        type=Num(int, 4, MAX_GENERATED_PER_CLASS),
        default=1000,
        metavar="N",
        help="images per class (1000)",
    )
    p.add_argument(
        "--classifier-steps",
        type=STEPS,
        help="training steps per classifier (300; with --classifier sar|cifar, and for mstar: the judge's)",
    )
    add_classifier_option(
        p,
        "the judge of every accuracy and of the domain features: small (default), sar (SAR chips; mstar's "
        "default) or cifar (colour photographs)",
    )
    p.add_argument(
        "--domain-steps",
        type=STEPS,
        help="training steps of the FID feature network (600; mstar: the judge's)",
    )
    p.add_argument(
        "--bootstrap", type=Num(int, 2, 100_000), default=50, help="bootstrap draws for the FID interval"
    )
    p.add_argument(
        "--threads", type=Num.key("train.threads"), default=0, help="torch threads (0 = physical cores)"
    )
    p.add_argument(
        "--gain-per-class",
        type=NumList(Num(int, 2, 10**9), max_items=8),
        metavar="N,..",
        help="gain: real training images per class, one GAN per size and seed (100,1000)",
    )
    add_gain_arm_options(p, "mstar: 0.25,0.75; others: none", "mstar: yes; others: no")
    add_gain_policy_option(
        p,
        "gain: augmentation of the baseline and of every synthetic arm (classical; mstar: standard = shifts; "
        "--classifier cifar: standard = crops + flips); another policy or "
        "--classifier-steps writes beside the default study, e.g. gain-none.md, gain-none-1500steps.md",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config key for every run")
    p.add_argument("--cache-dir", help="domain extractor cache (default ~/.cache/vaemsgan/domain)")
    p.add_argument("--force", action="store_true", help="redo runs and evaluations that are already done")
    p.add_argument(
        "--quick", action="store_true", help="smoke test: tiny networks, 3 steps, minimal evaluation"
    )
    p.add_argument(
        "--no-train",
        action="store_true",
        help="curves: evaluate the snapshots already there and train nothing (a second worker beside the one "
        "training: snapshots not yet written are left for a later call)",
    )
    p.add_argument("--no-progress", action="store_true")
    add_limit_options(p)
    p.set_defaults(func=cmd_reproduce)


def options_from_args(args: argparse.Namespace) -> Any:
    from vaemsgan.experiments.context import ReproduceOptions, quick

    overrides: dict[str, Any] = {}
    for item in args.set or []:
        k, sep, v = item.partition("=")
        if not sep or "." not in k:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. --set model.g_width=16")
        overrides[k.strip()] = v.strip()
    gain = args.experiment == "gain"
    # `mstar` has its own defaults (experiments/mstar.py: 64 px chips, the centre crop, the SAR judge).
    d: dict[str, Any] = {
        "resolution": 32,
        "crop": None,
        "classifier": "small",
        "classifier_steps": 300,
        "domain_steps": 600,
        "marks": [2.0, 5.0, 15.0, 30.0, 60.0],
        "gain_per_class": None,
        "budget_minutes": 30.0 if gain else 3.0,
        "seeds": 3 if gain else 1,
    }
    if args.experiment == "mstar":
        from vaemsgan.experiments.mstar import DEFAULTS

        d.update(DEFAULTS)
        if args.quick:  # the smoke test: 10 chips per class for the curves, one small gain study of 1 GAN
            d.update(gain_per_class=[6], seeds=1)
            args.per_class = args.per_class or 10
    if args.classifier and args.classifier != "small":
        # A named judge is trained as its preset says (the steps are part of what made it credible).
        steps = CLASSIFIER_PRESETS[args.classifier].steps
        d.update(classifier_steps=steps, domain_steps=steps)
    extra: dict[str, Any] = {}
    if args.gain_ratios:
        extra["gain_ratios"] = [float(r) for r in args.gain_ratios]
    if args.gain_temperatures:
        extra["gain_temperatures"] = [float(t) for t in args.gain_temperatures]
    elif "gain_temperatures" in d:
        extra["gain_temperatures"] = list(d["gain_temperatures"])
    extra["gain_policy"] = args.gain_policy or d.get("gain_policy") or default_gain_policy(args.classifier)
    if args.gain_interpolation is not None:
        extra["gain_interpolation"] = list(args.gain_interpolation) or None
    elif d.get("gain_interpolation") is not None:
        extra["gain_interpolation"] = list(d["gain_interpolation"])
    if args.gain_weak_classes is not None:
        extra["gain_weak_classes"] = args.gain_weak_classes == "yes"
    elif "gain_weak_classes" in d:
        extra["gain_weak_classes"] = bool(d["gain_weak_classes"])

    def given(name: str, value: Any) -> Any:
        return d[name] if value is None else value

    opts = ReproduceOptions(
        data=args.data,
        data_dir=args.data_dir,
        per_class=args.per_class,
        resolution=given("resolution", args.resolution),
        channels=args.channels,
        crop=given("crop", args.crop),
        budget_minutes=given("budget_minutes", args.budget),
        clock=args.clock,
        steps=args.steps,
        seeds=given("seeds", args.seeds),
        eval_seeds=args.eval_seeds,
        per_class_generated=args.per_class_generated,
        classifier=given("classifier", args.classifier),
        classifier_steps=given("classifier_steps", args.classifier_steps),
        domain_steps=given("domain_steps", args.domain_steps),
        n_boot=args.bootstrap,
        threads=args.threads,
        overrides=overrides,
        runs=[r.strip() for r in args.runs.split(",") if r.strip()] if args.runs else None,
        parts=[p.strip() for p in args.parts.split(",") if p.strip()] if args.parts else None,
        cache_dir=args.cache_dir,
        force=args.force,
        progress=not args.no_progress,
        train=not args.no_train,
        marks=_marks(args.marks) if args.marks else list(d["marks"]),
        gain_per_class=sorted(set(args.gain_per_class)) if args.gain_per_class else d["gain_per_class"],
        **extra,
    )
    return quick(opts) if args.quick else opts


def _marks(text: str) -> list[float]:
    try:
        return sorted({float(m) for m in text.split(",") if m.strip()})
    except ValueError:
        raise ConfigError(f"--marks {text!r}: expected comma-separated minutes, e.g. 2,5,15") from None


def cmd_reproduce(args: argparse.Namespace) -> int:
    from vaemsgan.experiments.reproduce import reproduce
    from vaemsgan.experiments.runner import result_stem

    opts = options_from_args(args)
    t0 = time.perf_counter()
    tables = reproduce(args.experiment, args.out, opts)
    out = Path(args.out)
    for name, table in tables.items():
        stem = result_stem(name, table)
        print(f"{name}: {out / (stem + '.md')}  ({out / (stem + '.json')}, {out / (stem + '.png')})")
    print(f"done in {(time.perf_counter() - t0) / 60:.1f} min")
    return 0
