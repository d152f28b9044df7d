"""`vaemsgan evaluate`: real vs generated images -> REPORT_DIR/report.html and REPORT_DIR/metrics.json."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from vaemsgan.cli.options import (
    MAX_GENERATED_PER_CLASS,
    MAX_SEED,
    MAX_STEPS,
    RATIOS,
    Num,
    add_classifier_option,
    add_crop_option,
    add_gain_arm_options,
    add_gain_policy_option,
    add_limit_options,
    default_gain_policy,
)

SEED = Num(int, 0, MAX_SEED)
STEPS = Num(int, 1, MAX_STEPS)


def add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure generated images against real ones and write an HTML report",
        description="Image statistics (the paper's Table 2), FID/KID/precision-recall/density-coverage, "
        "classifier cross-validation (TRTR/TRTS/TSTR/TSTS, mixed set, augmentation sweep), memorisation and "
        "diversity. Writes REPORT_DIR/report.html (self-contained) and REPORT_DIR/metrics.json. "
        "Definitions: docs/EVALUATION.md.",
    )
    p.add_argument(
        "--real",
        required=True,
        metavar="SOURCE",
        help="ImageFolder or 'fashion-mnist' / 'fashion-mnist-mini'",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--generated", metavar="DIR", help="what `vaemsgan generate` wrote (or any ImageFolder)")
    src.add_argument("--checkpoint", metavar="RUN_DIR", help="a run (or checkpoint file): images are sampled")
    p.add_argument("--out", required=True, metavar="REPORT_DIR")
    p.add_argument(
        "--parts",
        help="comma-separated parts to run (default: all four; with --augmentation-gain: none of them)",
    )
    p.add_argument(
        "--augmentation-gain",
        action="store_true",
        help="does adding synthetic images help a classifier beyond classical augmentation? Arms: real only "
        "(no augmentation; reference), real + classical augmentation (the baseline), real + prior samples, "
        "real + curated prior samples, real + anchored variations of the real training images (the last two "
        "need --checkpoint); each arm's accuracy difference to the baseline, paired over --gain-seeds, with "
        "95%% intervals, overall and per class, a plot and a verdict (docs/EVALUATION.md)",
    )
    add_gain_arm_options(p, "none", "no")
    add_gain_policy_option(
        p,
        "gain: augmentation of the baseline and of every synthetic arm: classical = crops, flips, small "
        "rotations and scales; standard = crops + flips; none (default classical; --classifier cifar: standard)",
    )
    p.add_argument(
        "--gain-seeds",
        type=Num(int, 1, 1000),
        metavar="N",
        help="classifier seeds per gain arm and ratio, paired across arms (default 5)",
    )
    p.add_argument(
        "--real-per-class",
        type=Num(int, 1, 10**9),
        metavar="N",
        help="use a seeded subset of N real training images per class (the set the GAN was trained on)",
    )
    p.add_argument(
        "--real-seed",
        type=SEED,
        default=0,
        help="seed of that subset: the run's data.subset_seed, else its train.seed (default 0)",
    )
    p.add_argument(
        "--seeds", type=Num(int, 1, 1000), help="classifier seeds per experiment (default 3; quick: 2)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small budget (the demo's): 2 classifier seeds of 200 steps, TSTR/TRTS and the 1x sweep "
        "(no mixed-class experiment unless --mixed-class), memorisation on 300 images per class",
    )
    add_classifier_option(
        p,
        "a named classifier for every accuracy and the domain features, trained for its own steps: small "
        "(default), sar (SAR chips) or cifar (colour photographs, 75.8%% on CIFAR-10's test images); the "
        "flags below change it",
    )
    p.add_argument(
        "--classifier-steps",
        type=STEPS,
        metavar="N",
        help="training steps per classifier (default 300, or the --classifier's; quick: at most 200)",
    )
    p.add_argument(
        "--classifier-width",
        type=Num(int, 1, 1024),
        metavar="C",
        help="channels of the first block (default 16)",
    )
    p.add_argument(
        "--classifier-depth", type=Num(int, 1, 8), metavar="B", help="number of conv blocks (default 3)"
    )
    p.add_argument(
        "--convs-per-block", type=Num(int, 1, 8), metavar="K", help="conv layers per block (default 1)"
    )
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips in classifier training")
    p.add_argument(
        "--domain-steps",
        type=STEPS,
        metavar="N",
        help="training steps of the domain extractor (default 600, or the --classifier's; quick: at most 400)",
    )
    p.add_argument("--ratios", type=RATIOS, help="augmentation sweep ratios generated/real, e.g. 0.5,1,2,4")
    p.add_argument("--mixed-class", metavar="NAME", help="class of the mixed experiment (default: the first)")
    p.add_argument("--extractor", choices=("domain", "inception"), default="domain")
    p.add_argument("--inception-weights", metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth")
    p.add_argument(
        "--cache-dir", metavar="DIR", help="domain extractor cache (default ~/.cache/vaemsgan/domain)"
    )
    p.add_argument(
        "--per-class",
        type=Num(int, 2, MAX_GENERATED_PER_CLASS),
        metavar="N",
        help="with --checkpoint: images sampled per class",
    )
    p.add_argument(
        "--truncation", type=Num(float, 0, 100, lo_open=True), help="with --checkpoint: latent truncation"
    )
    p.add_argument("--seed", type=SEED, default=0, help="seed of sampling, splits and classifiers (0)")
    p.add_argument(
        "--bootstrap",
        type=Num(int, 2, 100_000),
        metavar="N",
        help="bootstrap draws for FID intervals (default 50)",
    )
    p.add_argument("--data-dir", help="folder holding the Fashion-MNIST idx .gz files")
    p.add_argument(
        "--resolution",
        type=Num(int, 8, 512),
        help="image size (default: the model's, the manifest's or the images')",
    )
    p.add_argument("--channels", type=Num(int, 1, 3, values=(1, 3)), help="1 = grey, 3 = RGB")
    add_crop_option(
        p, "centre crop of the real images before resizing (default: the model's or the manifest's)"
    )
    p.add_argument(
        "--threads", type=Num.key("train.threads"), default=0, help="CPU threads (0 = physical cores)"
    )
    p.add_argument("--device", default="cpu", help="device for sampling with --checkpoint")
    p.add_argument("--force", action="store_true", help="write into a non-empty REPORT_DIR")
    p.add_argument("--no-progress", action="store_true")
    add_limit_options(p)
    p.set_defaults(func=cmd_evaluate)


def options_from_args(args: argparse.Namespace) -> Any:
    from vaemsgan.evaluation.classifier import classifier_preset
    from vaemsgan.evaluation.evaluate import EvalOptions, quick_options

    opts = quick_options() if args.quick else EvalOptions()
    clf = opts.classifier
    if args.classifier and args.classifier != "small":  # small: the defaults above
        # A named judge is trained as its preset says, as feature network too; --quick caps the steps.
        clf = classifier_preset(args.classifier)
        steps = clf.steps
        if args.quick:
            clf = replace(clf, steps=min(steps, opts.classifier.steps))
        opts = replace(opts, domain_steps=min(steps, opts.domain_steps) if args.quick else steps)
    for flag, key in (
        ("classifier_steps", "steps"),
        ("classifier_width", "width"),
        ("classifier_depth", "depth"),
        ("convs_per_block", "convs_per_block"),
    ):
        if getattr(args, flag) is not None:
            clf = replace(clf, **{key: getattr(args, flag)})
    if args.no_flip:
        clf = replace(clf, flip=False)
    parts = args.parts
    if parts is None:
        parts = "" if args.augmentation_gain else "stats,features,classifier,memorisation"
    changes: dict[str, Any] = {
        "classifier": clf,
        "parts": tuple(p.strip() for p in parts.split(",") if p.strip()),
        "augmentation_gain": args.augmentation_gain,
        "real_per_class": args.real_per_class,
        "real_seed": args.real_seed,
        "extractor": args.extractor,
        "inception_weights": args.inception_weights,
        "cache_dir": args.cache_dir,
        "per_class": args.per_class,
        "truncation": args.truncation,
        "seed": args.seed,
        "data_dir": args.data_dir,
        "resolution": args.resolution,
        "channels": args.channels,
        "crop": args.crop,
        "device": args.device,
        "force": args.force,
        "progress": not args.no_progress,
        "mixed_class": args.mixed_class,
        "gain_policy": args.gain_policy or default_gain_policy(args.classifier),
    }
    for flag, key in (("seeds", "seeds"), ("domain_steps", "domain_steps"), ("bootstrap", "n_boot")):
        if getattr(args, flag) is not None:
            changes[key] = getattr(args, flag)
    if args.ratios:
        changes["ratios"] = tuple(args.ratios)
    if args.quick and args.mixed_class:  # asked for by name: the quick budget runs it too
        changes["crossval_experiments"] = ("crossval", "mixed", "sweep")
    for flag in ("gain_ratios", "gain_temperatures"):
        if getattr(args, flag) is not None:
            changes[flag] = tuple(getattr(args, flag))
    if args.gain_seeds is not None:
        changes["gain_seeds"] = args.gain_seeds
    if args.gain_interpolation is not None:
        changes["gain_interpolation"] = tuple(args.gain_interpolation) or None
    if args.gain_weak_classes is not None:
        changes["gain_weak_classes"] = args.gain_weak_classes == "yes"
    return replace(opts, **changes)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vaemsgan.evaluation.evaluate import evaluate
    from vaemsgan.training.trainer import set_threads

    set_threads(args.threads)
    result = evaluate(
        args.real,
        args.out,
        generated=args.generated,
        checkpoint=args.checkpoint,
        options=options_from_args(args),
    )
    print(f"report: {args.out}/report.html   numbers: {args.out}/metrics.json")
    for line in result["verdict"]["overall"]:
        print(f"  - {line}")
    tm = result["timings_s"]
    print("  wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in tm.items() if v is not None))
    return 0
