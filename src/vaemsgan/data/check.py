"""`vaemsgan check-data PATH`: everything that would go wrong loading a folder, in one report.

Each image is opened and fully decoded (as the loader would) to find corrupt and truncated files;
identical files are found by content hash (within a class, across classes: conflicting labels, and
across train/test: a leak). Problems make `ok` false; warnings are worth reading but do not block.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vaemsgan.data.imagefolder import (
    SkipImage,
    check_root,
    find_classes,
    list_class_files,
    open_image,
    split_layout,
)
from vaemsgan.errors import DataError, VaemsganError
from vaemsgan.utils.io import open_regular

GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
IMBALANCE_RATIO = 5.0
ASPECT_WARN = 2.0
MAX_LISTED = 15


@dataclass
class ClassReport:
    """What was found in one class folder."""

    name: str  # "cat", or "train/cat" in a train/test layout
    folder: str
    ok: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)  # groups of identical files in this class
    sizes: Counter[str] = field(default_factory=Counter)  # "WxH" -> images
    modes: Counter[str] = field(default_factory=Counter)  # PIL mode -> images
    formats: Counter[str] = field(default_factory=Counter)


@dataclass
class CheckReport:
    """Per-class counts, problems (errors) and warnings; `format()` renders it as text."""

    path: str
    layout: str = ""
    classes: list[ClassReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cross_duplicates: list[list[str]] = field(default_factory=list)  # identical files in different classes
    notes: list[str] = field(default_factory=list)  # what the options do to the images (e.g. the crop)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total(self) -> int:
        return sum(c.ok for c in self.classes)

    def counts(self) -> dict[str, int]:
        """Usable images per class name."""
        return {c.name: c.ok for c in self.classes}

    def sizes(self) -> Counter[str]:
        return sum((c.sizes for c in self.classes), Counter())

    def modes(self) -> Counter[str]:
        return sum((c.modes for c in self.classes), Counter())

    def format(self) -> str:
        """A readable multi-line report."""
        lines = [f"Data check: {self.path}" + (f" ({self.layout})" if self.layout else "")]
        if self.classes:
            w = max(12, *(len(c.name) for c in self.classes))
            lines.append(f"  {'class':<{w}}  {'images':>7}  {'skipped':>7}  {'dup':>4}  sizes / modes")
            for c in self.classes:
                dup = sum(len(g) - 1 for g in c.duplicates)
                lines.append(
                    f"  {c.name:<{w}}  {c.ok:>7}  {len(c.skipped):>7}  {dup:>4}"
                    f"  {_hist(c.sizes)} / {_hist(c.modes)}"
                )
            lines.append(f"  {'total':<{w}}  {self.total:>7}  {sum(len(c.skipped) for c in self.classes):>7}")
            lines.append(f"  image sizes: {_hist(self.sizes(), 8)}")
            lines.append(f"  image modes: {_hist(self.modes(), 8)}")
        skipped = [s for c in self.classes for s in c.skipped]
        if skipped:
            lines.append(f"Skipped files ({len(skipped)}):")
            lines += [f"  {f}: {r}" for f, r in skipped[:MAX_LISTED]]
            if len(skipped) > MAX_LISTED:
                lines.append(f"  ... and {len(skipped) - MAX_LISTED} more")
        groups = [g for c in self.classes for g in c.duplicates] + self.cross_duplicates
        if groups:
            lines.append(f"Identical files ({len(groups)} groups):")
            lines += [f"  {' = '.join(g)}" for g in groups[:MAX_LISTED]]
            if len(groups) > MAX_LISTED:
                lines.append(f"  ... and {len(groups) - MAX_LISTED} more groups")
        if self.notes:
            lines.append("Notes:")
            lines += [f"  - {n}" for n in self.notes]
        if self.warnings:
            lines.append("Warnings:")
            lines += [f"  - {w}" for w in self.warnings]
        if self.problems:
            lines.append("Problems:")
            lines += [f"  - {p}" for p in self.problems]
        lines.append("Result: OK" if self.ok else f"Result: FAILED ({len(self.problems)} problem(s))")
        return "\n".join(lines)


def _hist(counter: Counter[str], top: int = 3) -> str:
    if not counter:
        return "-"
    items = counter.most_common()
    text = ", ".join(f"{k} ({v})" for k, v in items[:top])
    return text + (f", +{len(items) - top} more" if len(items) > top else "")


def _file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open_regular(path) as f:  # a FIFO or device (swapped in since the scan) is refused, not read
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _check_builtin(report: CheckReport, name: str, resolution: int | None, channels: int | None) -> None:
    from vaemsgan.data.dataset import load_images

    report.layout = "built-in"
    for split in ("train", "test"):
        try:
            s = load_images(name, split=split, resolution=resolution or 32, channels=channels or 1)
        except VaemsganError as exc:
            report.problems.append(str(exc))
            continue
        for cname, n in zip(s.class_names, s.counts(), strict=True):
            report.classes.append(
                ClassReport(
                    f"{split}/{cname}", name, ok=n, sizes=Counter({"28x28": n}), modes=Counter({"L": n})
                )
            )


def check_data(
    path: str,
    *,
    resolution: int | None = None,
    channels: int | None = None,
    batch_size: int | None = None,
    per_class: int | None = None,
    crop: int | None = None,
) -> CheckReport:
    """Check an ImageFolder (or train/test layout) and report counts, problems and warnings; with `crop`,
    what the centre crop keeps of the images."""
    root = Path(path)
    report = CheckReport(str(path))
    if resolution is not None and not (16 <= resolution <= 256 and resolution & (resolution - 1) == 0):
        report.problems.append(
            f"resolution {resolution} is not supported: training needs a power of two from 16 to 256"
        )
    if channels is not None and channels not in (1, 3):
        report.problems.append(f"channels must be 1 or 3, got {channels}")
    if crop is not None and crop < 4:
        report.problems.append(f"crop must be at least 4 pixels, got {crop}")
    from vaemsgan.data.dataset import BUILTIN_SOURCES

    if str(path) in BUILTIN_SOURCES and not root.is_dir():
        _check_builtin(report, str(path), resolution, channels)
        _summarise(
            report,
            {"train": [c for c in report.classes if c.name.startswith("train/")]},
            resolution,
            channels,
            batch_size,
            per_class,
            {},
        )
        _crop_notes(report, crop, resolution)
        return report
    try:
        check_root(root)
        splits = split_layout(root)
    except DataError as exc:
        report.problems.append(str(exc))
        return report
    folders = splits if splits is not None else {"": root}
    report.layout = f"ImageFolder with splits {', '.join(folders)}" if splits else "ImageFolder"

    by_hash: dict[str, list[tuple[str, str, str]]] = defaultdict(list)  # hash -> (split, class, file)
    per_split: dict[str, list[ClassReport]] = {}
    stats: dict[str, int] = Counter()
    for split, folder in folders.items():
        try:
            found = find_classes(folder)
        except DataError as exc:
            report.problems.append(str(exc))
            continue
        per_split[split] = []
        for name, cfolder in found:
            cr = ClassReport(f"{split}/{name}" if split else name, str(cfolder))
            cf = list_class_files(name, cfolder)
            cr.skipped += cf.skipped
            for file in cf.images:
                _check_image(file, cr, split, name, by_hash, stats, resolution)
            if cr.ok == 0:
                what = "no usable images" if cf.images else "no images"
                report.problems.append(f"{cfolder}: class folder '{name}' has {what}")
            report.classes.append(cr)
            per_split[split].append(cr)

    if splits is not None and "train" in per_split:
        train_names = {c.name.split("/", 1)[1] for c in per_split["train"]}
        for split, crs in per_split.items():
            names = {c.name.split("/", 1)[1] for c in crs}
            if split != "train" and names != train_names:
                report.problems.append(
                    f"{folders[split]}: class folders differ from {folders['train']} (missing: "
                    f"{', '.join(sorted(train_names - names)) or '-'}; extra: "
                    f"{', '.join(sorted(names - train_names)) or '-'})"
                )
    _duplicates(report, by_hash)
    train = {"train": per_split.get("train" if splits else "", [])}
    _summarise(report, train, resolution, channels, batch_size, per_class, stats)
    _crop_notes(report, crop, resolution)
    return report


def _check_image(
    file: Path,
    cr: ClassReport,
    split: str,
    name: str,
    by_hash: dict[str, list[tuple[str, str, str]]],
    stats: dict[str, int],
    resolution: int | None,
) -> None:
    try:
        digest = _file_hash(file)
        im, info = open_image(file, draft_size=resolution or 256)
        im.close()
    except OSError as exc:
        cr.skipped.append((str(file), f"cannot read file ({exc.strerror or exc})"))
        return
    except SkipImage as exc:
        cr.skipped.append((str(file), str(exc)))
        return
    cr.ok += 1
    cr.sizes[f"{info.width}x{info.height}"] += 1
    cr.modes[info.mode] += 1
    cr.formats[info.format] += 1
    by_hash[digest].append((split, name, str(file)))
    if split in ("", "train"):
        stats["colour"] += info.mode not in GREY_MODES
        if resolution and min(info.width, info.height) < resolution:
            stats["small"] += 1
        if max(info.width, info.height) > ASPECT_WARN * min(info.width, info.height):
            stats["elongated"] += 1


def _duplicates(report: CheckReport, by_hash: dict[str, list[tuple[str, str, str]]]) -> None:
    by_class = {c.name: c for c in report.classes}
    conflicts = leaks = 0
    for entries in by_hash.values():
        if len(entries) < 2:
            continue
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for split, name, file in entries:
            groups[(split, name)].append(file)
        for (split, name), files in groups.items():
            if len(files) > 1:
                by_class[f"{split}/{name}" if split else name].duplicates.append(files)
        if len(groups) > 1:
            report.cross_duplicates.append([f for _, _, f in entries])
            splits = {s for s, _ in groups}
            names_per_split = defaultdict(set)
            for s, n in groups:
                names_per_split[s].add(n)
            conflicts += any(len(v) > 1 for v in names_per_split.values())
            leaks += len(splits) > 1
    n_dup = sum(len(g) - 1 for c in report.classes for g in c.duplicates)
    if n_dup:
        report.warnings.append(f"{n_dup} duplicate file(s) within classes (identical content)")
    if conflicts:
        # The same image under two labels teaches the model (and any classifier) two answers: not OK.
        report.problems.append(
            f"{conflicts} identical image(s) filed under different classes (conflicting labels; listed above "
            "under 'Identical files'): keep each in one class"
        )
    if leaks:
        report.warnings.append(
            f"{leaks} identical image(s) in more than one split (test images leak into train)"
        )


def _summarise(
    report: CheckReport,
    train: dict[str, list[ClassReport]],
    resolution: int | None,
    channels: int | None,
    batch_size: int | None,
    per_class: int | None,
    stats: dict[str, int],
) -> None:
    crs = train.get("train", [])
    n_skipped = sum(len(c.skipped) for c in report.classes)
    if n_skipped:
        report.warnings.append(f"{n_skipped} file(s) will be skipped (listed above); strict mode would fail")
    if not crs:
        return
    counts = [c.ok for c in crs]
    if len(crs) < 2:
        report.warnings.append(
            f"only one class ('{crs[0].name}'): a class-conditional model needs two or more"
        )
    if min(counts) > 0 and max(counts) / min(counts) > IMBALANCE_RATIO:
        report.warnings.append(
            f"classes are imbalanced: {max(counts)} vs {min(counts)} images (consider --per-class)"
        )
    if per_class is not None:
        for c in crs:
            if 0 < c.ok < per_class:
                report.problems.append(
                    f"{c.folder}: class '{c.name}' has only {c.ok} images, fewer than per_class = {per_class}"
                )
    usable = sum(min(n, per_class) if per_class else n for n in counts)
    if batch_size is not None and 0 < usable < batch_size:
        report.warnings.append(
            f"only {usable} training images, fewer than batch size {batch_size}: every batch repeats images"
        )
    if stats.get("small"):
        report.warnings.append(
            f"{stats['small']} image(s) smaller than {resolution} px on the shorter side will be upscaled"
        )
    if stats.get("elongated"):
        report.warnings.append(
            f"{stats['elongated']} image(s) more than {ASPECT_WARN:g}:1 elongated: "
            "the centre crop drops much of them"
        )
    if channels == 1 and stats.get("colour"):
        report.warnings.append(f"{stats['colour']} colour image(s) will be converted to grey (channels = 1)")
    if channels == 3 and crs and not stats.get("colour") and report.layout != "built-in":
        report.warnings.append("all images are grey: channels = 3 repeats the grey level")


def _crop_notes(report: CheckReport, crop: int | None, resolution: int | None) -> None:
    """What `--crop` keeps of the typical image, and the images it cannot apply to."""
    if crop is None or crop < 4:
        return
    sizes = report.sizes()
    if not sizes:
        return
    typical = sizes.most_common(1)[0][0]
    w, h = (int(v) for v in typical.split("x"))
    side = min(w, h, crop)
    res = f", resized to {resolution}x{resolution}" if resolution else ""
    report.notes.append(
        f"crop {crop}: the centre {side}x{side} source pixels of each image are kept ({side * side / (w * h):.0%} "
        f"of a {typical} image){res}"
    )
    smaller = sum(n for s, n in sizes.items() if min(int(v) for v in s.split("x")) < crop)
    if smaller:
        report.warnings.append(
            f"{smaller} image(s) are smaller than the {crop}-pixel crop on their shorter side: they are used whole"
        )
    if resolution and side < resolution:
        report.warnings.append(
            f"the {side}-pixel crop is upscaled to {resolution} px: no detail is gained (crop at least {resolution})"
        )


def crop_preview(
    path: str, resolution: int, channels: int, crop: int | None, per_class: int = 4
) -> np.ndarray:
    """A grid (H x W [x C] uint8, `make_grid`) with a row per class: its first `per_class` training images,
    each whole beside what `crop` keeps of it, both at `resolution` (what `check-data --preview` writes)."""
    from vaemsgan.data.imagefolder import decode_file, scan
    from vaemsgan.utils.images import make_grid

    folder, class_files = scan(Path(path), "train")
    blank = np.zeros((channels, resolution, resolution), dtype=np.uint8)
    tiles: list[np.ndarray] = []
    for cf in class_files:
        row: list[np.ndarray] = []
        for file in cf.images:
            if len(row) == 2 * per_class:
                break
            try:
                row += [
                    decode_file(file, resolution, channels),
                    decode_file(file, resolution, channels, crop),
                ]
            except SkipImage:
                continue
        tiles += row + [blank] * (2 * per_class - len(row))
    return make_grid(torch.from_numpy(np.stack(tiles)), nrow=2 * per_class)
