"""`ImageSet`: a labelled image set held in memory as uint8, and `load_images`, the one entry point."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from vaemsgan.data import fashion_mnist as fm
from vaemsgan.data.imagefolder import crop_box, load_imagefolder
from vaemsgan.errors import ConfigError, DataError
from vaemsgan.limits import check_memory

if TYPE_CHECKING:
    from vaemsgan.config import DataConfig

BUILTIN_SOURCES = ("fashion-mnist", "fashion-mnist-mini")


@dataclass
class ImageSet:
    """N images (uint8, N x C x H x W, contiguous) with labels indexing `class_names`."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    source: str
    files: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Programming errors, not user errors: the loaders always build consistent sets.
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be uint8 N x C x H x W, got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dim() != 1 or len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.labels)} labels for {len(self.images)} images")
        if self.files is not None and len(self.files) != len(self.images):
            raise ValueError(f"{len(self.files)} files for {len(self.images)} images")
        self.labels = self.labels.to(torch.int64)
        self.images = self.images.contiguous()

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        return f"ImageSet({self.source}: {len(self)} images {c}x{h}x{w}, {len(self.class_names)} classes)"

    def counts(self) -> list[int]:
        """Images per class, index = class."""
        return torch.bincount(self.labels, minlength=len(self.class_names)).tolist()

    def subset(self, indices: torch.Tensor) -> ImageSet:
        """The images at `indices` (int64 indices or a boolean mask), in that order."""
        indices = torch.as_tensor(indices)
        if indices.dtype == torch.bool:
            indices = indices.nonzero().flatten()
        indices = indices.to(torch.int64)
        files = None if self.files is None else [self.files[i] for i in indices.tolist()]
        return ImageSet(
            self.images[indices].contiguous(),
            self.labels[indices].clone(),
            list(self.class_names),
            self.source,
            files,
            list(self.skipped),
        )

    def select_classes(self, names: list[str]) -> ImageSet:
        """Keep the classes `names`, relabelled 0..k-1 in the given order."""
        unknown = [n for n in names if n not in self.class_names]
        if unknown:
            raise DataError(
                f"{self.source}: unknown class name(s) {', '.join(map(repr, unknown))} "
                f"(available: {', '.join(self.class_names)})"
            )
        if len(set(names)) != len(names) or not names:
            raise DataError(f"{self.source}: class names must be distinct and not empty, got {names}")
        old = torch.tensor([self.class_names.index(n) for n in names], dtype=torch.int64)
        lookup = torch.full((len(self.class_names),), -1, dtype=torch.int64)
        lookup[old] = torch.arange(len(names))
        keep = (lookup[self.labels] >= 0).nonzero().flatten()
        out = self.subset(keep)
        out.labels = lookup[out.labels]
        out.class_names = list(names)
        return out

    def per_class_subset(self, n: int, seed: int) -> ImageSet:
        """`n` images of each class, chosen with `seed`; the original order is kept.

        Each class draws from its own generator seeded by (seed, class name), so a class's subset
        does not change when other classes are added or removed.
        """
        if n < 1:
            raise ConfigError(f"per_class must be at least 1, got {n}")
        chosen = []
        for c, name in enumerate(self.class_names):
            idx = (self.labels == c).nonzero().flatten()
            if len(idx) < n:
                raise DataError(
                    f"{self.source}: class '{name}' has only {len(idx)} images, fewer than per_class = {n}"
                )
            g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
            chosen.append(idx[torch.randperm(len(idx), generator=g)[:n]])
        keep = torch.cat(chosen).sort().values if chosen else torch.empty(0, dtype=torch.int64)
        return self.subset(keep)


def _check_options(resolution: int, channels: int) -> None:
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if not isinstance(resolution, int) or resolution < 4:
        raise ConfigError(f"resolution must be an integer of at least 4, got {resolution!r}")


def load_images(
    source: str,
    *,
    split: str = "train",
    resolution: int = 32,
    channels: int = 1,
    per_class: int | None = None,
    classes: list[str] | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    strict: bool = False,
    progress: bool = False,
    crop: int | None = None,
) -> ImageSet:
    """Load a built-in set ('fashion-mnist', 'fashion-mnist-mini') or an ImageFolder path.

    Order of operations: load `split`, keep `classes` (relabelled in that order), draw `per_class`
    images per class with `seed`. Built-in names win over a folder of the same name (use './name').
    `crop`: keep the centre `crop` x `crop` source pixels of each image before resizing (`crop_box`).
    """
    _check_options(resolution, channels)
    source = os.fspath(source)
    if source in BUILTIN_SOURCES:
        if source == "fashion-mnist":
            x, y = fm.load_fashion_mnist(split, data_dir)
        else:
            x, y = fm.load_mini(split)
        s = ImageSet(x[:, None], y, list(fm.FASHION_MNIST_CLASSES), f"{source} ({split})")
        if classes is not None:
            s = s.select_classes(list(classes))
        if per_class is not None:
            s = s.per_class_subset(per_class, seed)
        # Pad / resize after subsetting: only the kept images are converted.
        check_memory(
            len(s) * resolution * resolution * (channels + 1),
            f"{source}: {len(s)} images at {resolution} px x {channels} channel(s)",
            "lower --resolution or take a subset (--per-class, --classes)",
        )
        if crop is not None and crop < s.images.shape[-1]:
            x0, y0, x1, y1 = (int(v) for v in crop_box(s.images.shape[-1], s.images.shape[-2], crop))
            s.images = s.images[..., y0:y1, x0:x1].contiguous()
        s.images = fm.to_resolution(s.images, resolution, channels)
        return s

    loaded = load_imagefolder(
        source,
        split=split,
        resolution=resolution,
        channels=channels,
        classes=list(classes) if classes is not None else None,
        strict=strict,
        progress=progress,
        crop=crop,
    )
    s = ImageSet(
        loaded.images, loaded.labels, loaded.class_names, str(loaded.folder), loaded.files, loaded.skipped
    )
    if per_class is not None:
        s = s.per_class_subset(per_class, seed)
    return s


def subset_seed(cfg: DataConfig, train_seed: int) -> int:
    """The seed of the `per_class` training subset: `cfg.subset_seed`, else the run's train.seed."""
    return cfg.subset_seed if cfg.subset_seed is not None else train_seed


def load_from_config(
    cfg: DataConfig, split: str = "train", seed: int = 0, *, progress: bool = False
) -> ImageSet:
    """`load_images` with the fields of a `DataConfig`.

    `per_class` limits the training set only: the test split is always loaded whole, so that
    evaluations of models trained on different subsets are comparable. The subset is drawn with
    `cfg.subset_seed`, or with `seed` (the caller's train.seed) where the config leaves it unset.
    """
    return load_images(
        cfg.source,
        split=split,
        resolution=cfg.resolution,
        channels=cfg.channels,
        per_class=cfg.per_class if split == "train" else None,
        classes=cfg.classes,
        seed=subset_seed(cfg, seed),
        data_dir=cfg.data_dir,
        strict=cfg.strict,
        progress=progress,
        crop=cfg.crop,
    )
