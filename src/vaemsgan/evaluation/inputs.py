"""What `evaluate` reads: the real training and test images (the source's test split, or a seeded held-out share),
a generated ImageFolder with its class names, and the guards that refuse to judge images against themselves."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from vaemsgan.data import BUILTIN_SOURCES, ImageSet, load_images
from vaemsgan.data.check import GREY_MODES
from vaemsgan.data.imagefolder import split_layout
from vaemsgan.errors import ConfigError, DataError
from vaemsgan.generation.sampler import MANIFEST
from vaemsgan.utils.io import open_regular, read_bounded, safe_name

if TYPE_CHECKING:
    from vaemsgan.evaluation.evaluate import EvalOptions


def match_classes(real: Sequence[str], gen: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(shared classes in the real order, classes only in the real set, classes only in the generated set)."""
    common = [c for c in real if c in gen]
    return common, [c for c in real if c not in gen], [c for c in gen if c not in real]


def has_test_split(source: str) -> bool:
    return source in BUILTIN_SOURCES or split_layout(Path(source)) is not None


def load_real(
    source: str, resolution: int, channels: int, opts: EvalOptions, crop: int | None = None
) -> tuple[ImageSet, ImageSet, str]:
    """Real training and test images (centre-cropped to `crop` source pixels as the model's training
    images were), and a note on where the test images come from."""
    kw = {"resolution": resolution, "channels": channels, "data_dir": opts.data_dir, "crop": crop}
    train = load_images(source, split="train", **kw)
    if has_test_split(source):
        test = load_images(source, split="test", **kw)
        if opts.real_per_class is not None:  # the user's scarce set; the test split stays whole
            train = train.per_class_subset(opts.real_per_class, opts.real_seed)
        return train, test, "the source's test split"
    # No test split: hold out a seeded share of each class (never used to train any classifier).
    g = torch.Generator().manual_seed(opts.seed + 99)
    test_idx, train_idx = [], []
    for c in range(len(train.class_names)):
        idx = (train.labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = max(1, int(round(opts.holdout * len(idx)))) if len(idx) > 1 else 0
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    note = f"{opts.holdout:.0%} of each class held out (the source has no test split)"
    train_part = train.subset(torch.cat(train_idx).sort().values)
    if opts.real_per_class is not None:
        train_part = train_part.per_class_subset(opts.real_per_class, opts.real_seed)
    return (
        train_part,
        train.subset(torch.cat(test_idx).sort().values),
        note,
    )


def refuse_same_folder(real: str | Path, generated: str | Path) -> None:
    """ConfigError when the generated folder is the real one, or one holds the other (links resolved): the
    generated images would be judged against themselves, and every verdict would be meaningless."""

    if str(real) in BUILTIN_SOURCES and not Path(real).is_dir():
        return
    r, g = Path(os.path.realpath(real)), Path(os.path.realpath(generated))
    if r == g or r in g.parents or g in r.parents:
        how = "is the same folder as" if r == g else "is inside" if r in g.parents else "contains"
        raise ConfigError(
            f"--generated {generated}: {how} --real {real}: the images would be judged against themselves; "
            "give the real images and the generated ones as two separate folders"
        )


def refuse_shared_files(gen: ImageSet, *real: ImageSet) -> None:
    """ConfigError when a generated image file is also a real one (a symlinked class folder, a hard copy
    under another name is not caught: that is the memorisation part's job)."""

    real_files = {os.path.realpath(f) for s in real for f in (s.files or [])}
    shared = [f for f in (gen.files or []) if os.path.realpath(f) in real_files]
    if shared:
        raise ConfigError(
            f"--generated: {len(shared)} of its files are also real images (e.g. {shared[0]}): the images would "
            "be judged against themselves; give the generated images as a folder of their own"
        )


def note_skipped(what: str, s: ImageSet) -> None:
    """One line for the files a load skipped (unreadable, too large, not images), as `train` says it."""
    if s.skipped:
        f, reason = s.skipped[0]
        print(
            f"note: {what} images: skipped {len(s.skipped)} unreadable or unusable files, e.g. {f}: {reason} "
            "(`vaemsgan check-data` lists them)",
            file=sys.stderr,
        )


def peek_format(folder: Path) -> tuple[int, int] | None:
    """(resolution, channels) of the first image under folder/<class>/, if any."""
    for p in sorted(folder.glob("*/*")):
        try:
            with open_regular(p) as fp, Image.open(fp) as im:  # a FIFO or device here is passed over
                return im.width, 1 if im.mode in GREY_MODES else 3
        except (OSError, ValueError, SyntaxError, EOFError):
            continue
    return None


MAX_MANIFEST_BYTES = 1 << 30  # a manifest of a million images is about 100 MiB


def read_manifest(path: Path) -> dict[str, Any]:
    """A generated folder's manifest.json (regular file, bounded size); ValueError or OSError if unusable."""
    m = json.loads(read_bounded(path, MAX_MANIFEST_BYTES, "manifest"))
    if not isinstance(m, dict):
        raise ValueError(f"{path}: not a JSON object")
    return m


def load_generated_dir(path: str | Path, resolution: int, channels: int) -> ImageSet:
    """A generated ImageFolder; class names come from its manifest.json (name -> folder) when present."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: generated folder does not exist")
    folder_to_name: dict[str, str] = {}
    manifest = path / MANIFEST
    if manifest.is_file():
        try:
            folder_to_name = {v: k for k, v in read_manifest(manifest).get("class_folders", {}).items()}
        except (OSError, ValueError, AttributeError):
            folder_to_name = {}
    gen = load_images(str(path), resolution=resolution, channels=channels)
    gen.class_names = [folder_to_name.get(n, n) for n in gen.class_names]
    return gen


def rename_to_real(gen: ImageSet, real_names: Sequence[str]) -> None:
    """Without a manifest, a generated folder named safe_name(real class) still matches that class."""
    by_safe = {safe_name(n): n for n in real_names}
    gen.class_names = [n if n in real_names else by_safe.get(n, n) for n in gen.class_names]
