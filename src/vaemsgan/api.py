"""The Python API: `vaemsgan.load(path)` gives a `Model` to sample, reconstruct and vary images with.

    import vaemsgan
    model = vaemsgan.load("runs/demo/run")          # a run folder (best.pt first) or a checkpoint file
    print(model.checkpoint, model.class_names)
    x = model.sample("sneaker", 16, seed=0)          # uint8 tensor 16 x C x H x W
    ds = model.dataset(per_class=500, seed=0)        # a torch Dataset of (float image, label)

Conventions (stable):

* Images are uint8 tensors N x C x H x W (0-255), at the model's `resolution` and `channels`. Methods
  taking images also accept float tensors in [0, 1] and lists of PIL images (resized and centre-cropped
  as training data is). `as_pil=True` returns a list of PIL images instead.
* A label is a class name or its index in `model.class_names` (the order of the training data: sorted
  folder names for an ImageFolder, the Fashion-MNIST order for the built-in sets).
* The same seed gives the same images: `sample(c, n, seed=s)` returns exactly the images
  `vaemsgan generate --per-class n --seed s` writes for class c, and `SyntheticDataset` item j of class
  c is the file c/<j>.png of that folder.

The CLI's `generate` and `reconstruct` run through this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch
from PIL import Image

from vaemsgan.config import Config
from vaemsgan.data import ImageSet
from vaemsgan.errors import ConfigError, DataError
from vaemsgan.generation.datasets import GeneratedImageFolder, SyntheticDataset, Transform
from vaemsgan.generation.sampler import generate_folder
from vaemsgan.generation.variations import load_real, variations, variations_folder
from vaemsgan.inference import (
    LoadedModel,
    load_model,
    reconstruct_images,
    resolve_device,
    sample_class,
)
from vaemsgan.metrics.reconstruction import Classifier, ReconstructionQuality, reconstruction_quality

__all__ = ["GeneratedImageFolder", "Model", "ReconstructionQuality", "SyntheticDataset", "load"]

ImagesLike = torch.Tensor | Sequence[Image.Image]
LabelsLike = torch.Tensor | Sequence[int] | Sequence[str]


def load(path: str | Path, *, device: str | torch.device = "cpu", prefer_best: bool = True) -> Model:
    """Load a trained model for inference.

    `path`: a run folder (its best.pt when the training monitor picked one and `prefer_best`, else the
    newest checkpoint, as `vaemsgan generate` does) or a checkpoint file. `device`: 'cpu' (default),
    'cuda', 'cuda:1', 'auto'. The returned model's `checkpoint` says which file was loaded.
    """
    return Model(load_model(path, resolve_device(device), prefer_best=prefer_best))


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """uint8 N x C x H x W -> N PIL images (mode L for 1 channel, RGB for 3)."""
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a) for a in arr]


class Model:
    """A trained VAE-MSGAN model (generator, encoder, critic) in eval mode. Create with `vaemsgan.load`."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded  # the low-level handle (vaemsgan.inference), for the generation functions

    # ------------------------------------------------------------------ what it is
    @property
    def checkpoint(self) -> Path:
        """The checkpoint file that was loaded."""
        return self.loaded.checkpoint

    @property
    def checkpoint_sha256(self) -> str:
        return self.loaded.checkpoint_sha256

    @property
    def step(self) -> int:
        """The training step of the checkpoint."""
        return self.loaded.step

    @property
    def config(self) -> Config:
        return self.loaded.cfg

    @property
    def class_names(self) -> list[str]:
        """Class names; a label is an index into this list."""
        return list(self.loaded.class_names)

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.loaded.class_names)}

    @property
    def conditional(self) -> bool:
        """False for an unconditional model (one class, or trained with --unconditional)."""
        return self.loaded.conditional

    @property
    def has_encoder(self) -> bool:
        """False for a model without the VAE half (dcgan-like presets): no reconstruct / variations."""
        return self.loaded.encoder is not None

    @property
    def resolution(self) -> int:
        return self.loaded.cfg.data.resolution

    @property
    def crop(self) -> int | None:
        """The centre crop (source pixels) the training images had before resizing; real images given to
        the model are cropped the same way."""
        return self.loaded.cfg.data.crop

    @property
    def channels(self) -> int:
        return self.loaded.cfg.data.channels

    @property
    def latent_dim(self) -> int:
        return self.loaded.cfg.model.latent_dim

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    def __repr__(self) -> str:
        return (
            f"Model({self.checkpoint}, step {self.step}, {len(self.class_names)} classes, "
            f"{self.resolution}px x {self.channels}, {'conditional' if self.conditional else 'unconditional'})"
        )

    def class_index(self, label: str | int) -> int:
        """The index of a class given by name or index; one-line ConfigError if the model lacks it."""
        names = self.loaded.class_names
        if isinstance(label, str):
            if label not in names:
                raise ConfigError(f"unknown class {label!r} (the model knows: {', '.join(names)})")
            return names.index(label)
        idx = int(label)
        if not 0 <= idx < len(names):
            raise ConfigError(f"class index {idx} out of range: the model has {len(names)} classes")
        return idx

    # ------------------------------------------------------------------ sampling
    @overload
    def sample(
        self,
        class_name: str | int,
        n: int,
        *,
        seed: int = 0,
        truncation: float | None = None,
        as_pil: Literal[False] = False,
    ) -> torch.Tensor: ...

    @overload
    def sample(
        self,
        class_name: str | int,
        n: int,
        *,
        seed: int = 0,
        truncation: float | None = None,
        as_pil: Literal[True],
    ) -> list[Image.Image]: ...

    def sample(
        self,
        class_name: str | int,
        n: int,
        *,
        seed: int = 0,
        truncation: float | None = None,
        as_pil: bool = False,
    ) -> torch.Tensor | list[Image.Image]:
        """n new images of a class: uint8 n x C x H x W (CPU), or PIL images with `as_pil`.

        Latents depend only on (seed, class, n): the same call gives the same images, equal to those
        `vaemsgan generate --per-class n --seed seed` writes. `truncation` resamples latent values beyond
        +-t (fewer, more typical images), as `generate --truncation`."""
        out = sample_class(self.loaded, self.class_index(class_name), n, seed, truncation)
        return to_pil(out) if as_pil else out

    def dataset(
        self,
        per_class: int,
        *,
        seed: int = 0,
        truncation: float | None = None,
        classes: Sequence[str] | None = None,
        transform: Transform | None = None,
        target_map: Mapping[str, int] | None = None,
    ) -> SyntheticDataset:
        """A Dataset of `per_class` synthetic images per class, generated on the fly (see SyntheticDataset)."""
        return SyntheticDataset(
            self,
            per_class,
            seed=seed,
            truncation=truncation,
            classes=classes,
            transform=transform,
            target_map=target_map,
        )

    def write_imagefolder(
        self,
        out: str | Path,
        per_class: int,
        *,
        seed: int = 0,
        truncation: float | None = None,
        classes: Sequence[str] | None = None,
        batch_size: int = 256,
        force: bool = False,
        resume: bool = False,
        progress: bool = False,
        compile: bool = False,
    ) -> dict[str, Any]:
        """Write out/<class>/<index>.png and out/manifest.json, exactly as `vaemsgan generate`; returns
        the manifest. Atomic files; an existing non-empty folder needs `force` (or `resume` to finish an
        interrupted run with the same settings)."""
        return generate_folder(
            self.loaded,
            out,
            per_class,
            seed=seed,
            truncation=truncation,
            batch_size=batch_size,
            classes=list(classes) if classes is not None else None,
            force=force,
            resume=resume,
            progress=progress,
            compile=compile,
        )

    # ------------------------------------------------------------------ the encoder
    def images(self, images: ImagesLike) -> torch.Tensor:
        """Any accepted image input -> uint8 N x C x H x W at the model's resolution and channels."""
        res, ch = self.resolution, self.channels
        if isinstance(images, torch.Tensor):
            x = images[None] if images.dim() == 3 else images
            if x.dim() != 4:
                raise DataError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
            if tuple(x.shape[1:]) != (ch, res, res):
                raise DataError(
                    f"images are {tuple(x.shape[1:])} (C x H x W); the model works on {(ch, res, res)}: "
                    "resize them first, or pass PIL images (resized and cropped as training data is)"
                )
            if x.dtype == torch.uint8:
                return x.cpu()
            if not x.is_floating_point():
                raise DataError(f"images must be uint8 (0-255) or float (0-1), got {x.dtype}")
            if len(x) and (x.min() < 0 or x.max() > 1):
                raise DataError("float images must lie in [0, 1] (uint8 images in 0-255)")
            return x.detach().mul(255).round().to(torch.uint8).cpu()
        from vaemsgan.data.imagefolder import convert_image

        arrays = []
        for im in images:
            if not isinstance(im, Image.Image):
                raise DataError(f"images must be a tensor or a list of PIL images, got {type(im).__name__}")
            arrays.append(torch.from_numpy(np.array(convert_image(im, res, ch, self.crop), copy=True)))
        if not arrays:
            return torch.zeros(0, ch, res, res, dtype=torch.uint8)
        return torch.stack(arrays)

    def labels(self, labels: LabelsLike | str | None, n: int) -> torch.Tensor | None:
        """Class names or indices -> an int64 tensor of n indices (None stays None)."""
        if labels is None:
            return None
        if isinstance(labels, torch.Tensor):
            items: list[Any] = labels.flatten().tolist()
        elif isinstance(labels, str):
            items = [labels] * n  # one class for all
        else:
            items = list(labels)
        if len(items) != n:
            raise ConfigError(f"{len(items)} labels for {n} images")
        return torch.tensor([self.class_index(v) for v in items], dtype=torch.long)

    @overload
    def reconstruct(
        self, images: ImagesLike, labels: LabelsLike | str | None = None, *, as_pil: Literal[False] = False
    ) -> torch.Tensor: ...

    @overload
    def reconstruct(
        self, images: ImagesLike, labels: LabelsLike | str | None = None, *, as_pil: Literal[True]
    ) -> list[Image.Image]: ...

    def reconstruct(
        self, images: ImagesLike, labels: LabelsLike | str | None = None, *, as_pil: bool = False
    ) -> torch.Tensor | list[Image.Image]:
        """Encode and decode (posterior mean): uint8 N x C x H x W, as `vaemsgan reconstruct` writes.

        `labels` (names or indices, one per image, or one name for all) are required by a conditional
        model. BatchNorm statistics are those of these images' codes, so the result for one image
        depends on the others passed with it (as with `vaemsgan reconstruct` on a folder)."""
        x = self.images(images)
        out = reconstruct_images(self.loaded, x, self.labels(labels, len(x)))
        return to_pil(out) if as_pil else out

    def variations(
        self,
        images: ImagesLike,
        labels: LabelsLike | str | None = None,
        k: int = 4,
        *,
        temperature: float = 1.0,
        mix: tuple[float, float] | None = None,
        seed: int = 0,
        nearest: int | None = None,
    ) -> torch.Tensor:
        """K new images near each given image: uint8 N x K x C x H x W.

        Each variation decodes z = mu + temperature * sigma * eps from the encoder's q(z|x) with the
        image's label (temperature 0: the reconstruction; 1: the posterior; more: wider). `mix=(lo, hi)`
        moves each latent toward another image of the same class among those given (weight ~ U[lo, hi]),
        with `nearest=m` one of its m nearest in the encoder's space (an interpolation between neighbours).
        The same seed gives the same variations; as `vaemsgan generate --from-real`."""
        x = self.images(images)
        out, _ = variations(
            self.loaded,
            x,
            self.labels(labels, len(x)),
            k,
            temperature,
            mix,
            seed,
            nearest=nearest,
        )
        return out

    def write_variations(
        self,
        data: str | Path | ImageSet,
        out: str | Path,
        k: int,
        *,
        temperature: float = 1.0,
        mix: tuple[float, float] | None = None,
        seed: int = 0,
        per_class: int | None = None,
        classes: Sequence[str] | None = None,
        data_dir: str | None = None,
        batch_size: int = 256,
        force: bool = False,
        resume: bool = False,
        progress: bool = False,
        nearest: int | None = None,
    ) -> dict[str, Any]:
        """K variations of every real image of `data` into out/<class>/<source>_<k>.png + manifest.json
        (file -> class, label, source image index and file, variation, temperature, seed); returns the
        manifest. `data`: an ImageFolder path, 'fashion-mnist', 'fashion-mnist-mini' (loaded as
        `vaemsgan train` loads it, with `per_class` / `classes`) or an ImageSet. As
        `vaemsgan generate --from-real DATA --variations K`."""
        if isinstance(data, ImageSet):
            if per_class is not None or classes is not None:
                raise ConfigError("per_class / classes select images of a source; an ImageSet is used whole")
            images, options = data, {}
        else:
            images, options = load_real(
                self.loaded,
                data,
                per_class,
                list(classes) if classes is not None else None,
                data_dir,
                progress=progress,
            )
        return variations_folder(
            self.loaded,
            images,
            out,
            k,
            temperature,
            mix,
            seed,
            batch_size=batch_size,
            force=force,
            resume=resume,
            progress=progress,
            data_options=options,
            nearest=nearest,
        )

    def reconstruction_quality(
        self,
        images: ImagesLike,
        labels: LabelsLike | str | None = None,
        *,
        classifier: Classifier | None = None,
    ) -> ReconstructionQuality:
        """How well the encoder-decoder keeps these images: mean absolute and RMS pixel error (0-1
        scale), PSNR, SSIM (mean and worst), and with `classifier` (called on uint8 batches, returning
        logits or class indices) its accuracy on the reconstructions and on the originals."""
        x = self.images(images)
        y = self.labels(labels, len(x))
        if classifier is not None and y is None:
            raise ConfigError("a classifier's accuracy needs the images' labels")
        rec = reconstruct_images(self.loaded, x, y)
        return reconstruction_quality(x, rec, y, classifier)
