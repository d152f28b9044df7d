"""The commands that draw from a trained checkpoint: `generate`, `reconstruct` and `interpolate`."""

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
    GEN_PER_CLASS,
    SEED,
    Num,
    add_limit_options,
    device_of,
)
from vaemsgan.errors import ConfigError, DataError, OutputExistsError

TRUNCATION = Num(float, 0, 100, lo_open=True)
GEN_BATCH = Num(int, 1, 65536)


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
    model = load(args.checkpoint, device=device_of(args.device))
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
    model = load(args.checkpoint, device=device_of(args.device))
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

    model = load(args.checkpoint, device=device_of(args.device))
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
    model = load_model(args.checkpoint, device_of(args.device))
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
