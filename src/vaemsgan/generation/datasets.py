"""Torch Datasets of synthetic images: `SyntheticDataset` generates them on the fly from a model,
`GeneratedImageFolder` reads a folder `vaemsgan generate` wrote (through its manifest). Both give (image,
target) items that a real dataset's can be concatenated with (`target_map`). The Python API (`vaemsgan.api`)
hands them out; they need only the loaded networks (`inference.LoadedModel`), which an `api.Model` wraps."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vaemsgan.errors import ConfigError, DataError
from vaemsgan.generation.sampler import MANIFEST
from vaemsgan.inference import LoadedModel, decode, latents

__all__ = ["GeneratedImageFolder", "SyntheticDataset", "Transform"]

Transform = Callable[[torch.Tensor], Any]


class WrapsLoadedModel(Protocol):
    """What a Dataset needs of the API's `Model` (a higher layer, not imported here): the networks it wraps."""

    loaded: LoadedModel


class SyntheticDataset(Dataset):
    """`per_class` synthetic images of each class, generated on the fly; item i = (image, target).

    Order: class by class (the model's class order, or `classes`), `per_class` images each: item
    `c_pos * per_class + j` is image j of the c_pos-th class, the same image `vaemsgan generate
    --per-class per_class --seed seed` writes as <class>/<j>.png (latents depend on (seed, class) only).

    image: float32 C x H x W in [0, 1] (like torchvision's ToTensor), or `transform(uint8 C x H x W)`.
    target: the class's index in `model.class_names` (see `class_to_idx`), or `target_map[class name]`
    to match another dataset's indices, e.g. `target_map=real_folder.class_to_idx` for a torchvision
    ImageFolder, so that `ConcatDataset([real, synthetic])` agrees on labels.

    A DataLoader batch is generated in one forward pass (`__getitems__`). Decoding runs where the model
    lives: with a CUDA model keep `num_workers=0`.
    """

    def __init__(
        self,
        model: WrapsLoadedModel | LoadedModel,
        per_class: int,
        *,
        seed: int = 0,
        truncation: float | None = None,
        classes: Sequence[str] | None = None,
        transform: Transform | None = None,
        target_map: Mapping[str, int] | None = None,
    ) -> None:
        self.model: LoadedModel = model if isinstance(model, LoadedModel) else model.loaded
        if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
            raise ConfigError(f"per_class must be an integer of at least 1, got {per_class!r}")
        names = self.model.class_names
        self.classes = list(classes) if classes is not None else list(names)
        for c in self.classes:
            if c not in names:
                raise ConfigError(f"unknown class {c!r} (the model knows: {', '.join(names)})")
        if target_map is not None:
            missing = [c for c in self.classes if c not in target_map]
            if missing:
                raise ConfigError(f"target_map has no index for class {missing[0]!r}")
        self.per_class = per_class
        self.seed = seed
        self.truncation = truncation
        self.transform = transform
        self.target_map = dict(target_map) if target_map is not None else None
        dim = self.model.cfg.model.latent_dim
        # per_class x latent_dim per class: small, and what makes item i independent of any other.
        self._z = [latents(seed, names.index(c), per_class, dim, truncation) for c in self.classes]

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name -> the target this dataset returns for it."""
        if self.target_map is not None:
            return {c: self.target_map[c] for c in self.classes}
        return {c: self.model.class_names.index(c) for c in self.classes}

    @property
    def targets(self) -> list[int]:
        """The target of every item, in order (without generating any image)."""
        t = self.class_to_idx
        return [t[c] for c in self.classes for _ in range(self.per_class)]

    def __len__(self) -> int:
        return self.per_class * len(self.classes)

    def _locate(self, index: int) -> tuple[int, int]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        return divmod(index, self.per_class)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, int]]:
        where = [self._locate(int(i)) for i in indices]
        z = torch.stack([self._z[c][j] for c, j in where]) if where else torch.zeros(0, 1)
        cls = torch.tensor(
            [self.model.class_names.index(self.classes[c]) for c, _ in where], dtype=torch.long
        )
        images = decode(self.model.generator, z, cls if self.model.conditional else None) if where else []
        t = self.class_to_idx
        return [(self._output(im), t[self.classes[c]]) for im, (c, _) in zip(images, where)]

    def _output(self, image: torch.Tensor) -> Any:
        return self.transform(image) if self.transform is not None else image.float().div_(255.0)


class GeneratedImageFolder(Dataset):
    """A folder written by `vaemsgan generate` (or `--from-real` / `write_variations`), read through its
    manifest.json: item i = (image, target) for the manifest's i-th file.

    image: float32 C x H x W in [0, 1], or `transform(uint8 C x H x W)`. target: the file's label (its
    index in the generating model's class_names, `classes` in the manifest order) or
    `target_map[class name]`."""

    def __init__(
        self,
        root: str | Path,
        *,
        transform: Transform | None = None,
        target_map: Mapping[str, int] | None = None,
    ) -> None:
        self.root = Path(root)
        path = self.root / MANIFEST
        try:
            manifest = json.loads(path.read_text())
            self.files: list[dict[str, Any]] = list(manifest["files"])
            self.channels = int(manifest["channels"])
        except FileNotFoundError:
            raise DataError(
                f"{path}: no manifest (is this a folder written by `vaemsgan generate`?)"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a readable generation manifest ({exc})") from None
        self.classes = sorted({f["class"] for f in self.files}, key=lambda c: self._label_of(c))
        if target_map is not None:
            missing = [c for c in self.classes if c not in target_map]
            if missing:
                raise ConfigError(f"target_map has no index for class {missing[0]!r}")
        self.transform = transform
        self.target_map = dict(target_map) if target_map is not None else None

    def _label_of(self, cls: str) -> int:
        return next(int(f["label"]) for f in self.files if f["class"] == cls)

    @property
    def class_to_idx(self) -> dict[str, int]:
        if self.target_map is not None:
            return {c: self.target_map[c] for c in self.classes}
        return {c: self._label_of(c) for c in self.classes}

    @property
    def targets(self) -> list[int]:
        t = self.class_to_idx
        return [t[f["class"]] for f in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        entry = self.files[index]
        path = self.root / entry["file"]
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L" if self.channels == 1 else "RGB"), dtype=np.uint8)
        image = torch.from_numpy(arr[None].copy() if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
        target = self.target_map[entry["class"]] if self.target_map is not None else int(entry["label"])
        return (self.transform(image) if self.transform is not None else image.float().div_(255.0)), target
