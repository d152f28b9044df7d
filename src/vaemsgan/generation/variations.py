"""Encoder-anchored variations of real images (issue 12): new images near each real training image.

For a real image x with posterior q(z|x) = N(mu, sigma^2), each of its K variations decodes

    z = mu + T * sigma * eps,  eps ~ N(0, I)        (T = temperature: 0 = the mean, 1 = the posterior)

with x's label. With `mix = (lo, hi)` the latent then moves toward another image of the same class:
z <- (1 - a) z + a mu_other, a ~ U[lo, hi], the other image drawn from x's class (x itself when the class
has no other). With `nearest = m` the other image is drawn from x's m nearest neighbours of its class in
the encoder's space (Euclidean distance of the posterior means): an interpolation between neighbours, e.g.
between two views of a vehicle a few degrees of aspect apart, where a random partner may face the other
way. The random draws of image i depend only on (seed, i), so a resumed run writes exactly the
missing files. Decoding uses the BatchNorm calibration `reconstruct` uses for the same images
(`inference.posterior_decoder`): at temperature 0 a variation is the image's reconstruction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaemsgan.data import ImageSet, load_images
from vaemsgan.data.dataset import subset_seed
from vaemsgan.errors import ConfigError, DataError
from vaemsgan.generation.sampler import finish_output, model_header, open_output, write_batch
from vaemsgan.inference import LoadedModel, decode, encode, labels_for, posterior_decoder
from vaemsgan.utils.io import safe_names
from vaemsgan.utils.progress import progress_bar

MAX_TEMPERATURE = 100.0


@dataclass
class VariationLatents:
    """The latents of K variations of N images, and how each was drawn."""

    z: torch.Tensor  # N x K x latent_dim
    mix: torch.Tensor | None  # N x K interpolation weights a (None without mixing)
    partner: torch.Tensor | None  # N x K index of the image mixed in (None without mixing)


def check_options(
    k: int, temperature: float, mix: tuple[float, float] | None, nearest: int | None = None
) -> None:
    """One-line ConfigError for K < 1, a temperature outside [0, 100], a mix range outside 0 <= lo <= hi <= 1
    or a neighbour count below 1 or without a mix range."""
    if nearest is not None and (isinstance(nearest, bool) or not isinstance(nearest, int) or nearest < 1):
        raise ConfigError(f"the number of nearest neighbours to mix with must be at least 1, got {nearest!r}")
    if nearest is not None and mix is None:
        raise ConfigError("--mix-nearest needs --mix LO,HI (it picks whom each image is mixed with)")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"--variations must be an integer of at least 1, got {k!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)) or not (
        0 <= temperature <= MAX_TEMPERATURE
    ):
        raise ConfigError(
            f"--temperature must be a number from 0 (the posterior mean) to {MAX_TEMPERATURE:g}, got {temperature!r}"
        )
    if mix is not None:
        lo, hi = mix
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi <= 1):
            raise ConfigError(f"--mix must be LO,HI with 0 <= LO <= HI <= 1, got {lo:g},{hi:g}")


def parse_mix(text: str | None) -> tuple[float, float] | None:
    """'LO,HI' -> (lo, hi), checked; None or '' -> None (no mixing)."""
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError(
            f"--mix must be LO,HI (two numbers from 0 to 1, e.g. 0.1,0.3), got {text!r}"
        ) from None
    check_options(1, 0.0, (lo, hi))
    return lo, hi


def image_generator(seed: int, index: int) -> torch.Generator:
    """The random stream of image `index`'s variations: a function of (seed, index) alone."""
    return torch.Generator().manual_seed((seed * 1_000_003 + index) % (2**63))


def nearest_neighbours(
    mu: torch.Tensor, classes: torch.Tensor, m: int, chunk: int = 1024
) -> list[torch.Tensor]:
    """For each image, the indices of its `m` nearest other images of its class by the Euclidean distance of
    the posterior means, nearest first (itself when its class has no other image). Distances are computed a
    chunk of rows at a time, so memory stays chunk x class size."""
    out: list[torch.Tensor] = [torch.empty(0, dtype=torch.long)] * len(mu)
    for c in classes.unique():
        members = (classes == c).nonzero().flatten()
        if len(members) == 1:
            out[int(members[0])] = members
            continue
        points = mu[members].double()
        keep = min(m, len(members) - 1)
        for start in range(0, len(members), chunk):
            d = torch.cdist(points[start : start + chunk], points)
            rows = torch.arange(len(d))
            d[rows, rows + start] = float("inf")  # not itself
            order = d.topk(keep, dim=1, largest=False, sorted=True).indices
            for row in range(len(d)):
                out[int(members[start + row])] = members[order[row]]
    return out


def variation_latents(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    classes: torch.Tensor,
    k: int,
    temperature: float = 1.0,
    mix: tuple[float, float] | None = None,
    seed: int = 0,
    nearest: int | None = None,
) -> VariationLatents:
    """K latents per image from q(z|x) (see the module doc); `classes` picks the mixing partners, `nearest`
    restricts them to the nearest neighbours."""
    check_options(k, temperature, mix, nearest)
    n, dim = mu.shape
    sigma = torch.exp(0.5 * logvar)
    z = torch.empty(n, k, dim)
    a_all = torch.empty(n, k) if mix is not None else None
    partners = torch.empty(n, k, dtype=torch.long) if mix is not None else None
    members = (
        {int(c): (classes == c).nonzero().flatten() for c in classes.unique()} if mix is not None else {}
    )
    near = nearest_neighbours(mu, classes, nearest) if mix is not None and nearest is not None else None
    for i in range(n):
        g = image_generator(seed, i)
        eps = torch.randn(k, dim, generator=g)
        zi = mu[i] + temperature * sigma[i] * eps
        if mix is not None:
            assert a_all is not None and partners is not None
            lo, hi = mix
            a = lo + (hi - lo) * torch.rand(k, generator=g)
            if near is not None:
                others = near[i]
            else:  # any other image of the class (as before `nearest` existed: the same draws)
                others = members[int(classes[i])]
                others = others[others != i] if len(others) > 1 else others
            p = others[torch.randint(len(others), (k,), generator=g)]
            zi = (1 - a)[:, None] * zi + a[:, None] * mu[p]
            a_all[i], partners[i] = a, p
        z[i] = zi
    return VariationLatents(z, a_all, partners)


def variations(
    model: LoadedModel,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    k: int,
    temperature: float = 1.0,
    mix: tuple[float, float] | None = None,
    seed: int = 0,
    batch_size: int = 256,
    nearest: int | None = None,
) -> tuple[torch.Tensor, VariationLatents]:
    """K variations of each uint8 image: (uint8 N x K x C x H x W, the latents). `labels` are class indices
    of the model (required by a conditional model; they also pick the mixing partners, among the `nearest`
    nearest neighbours when given)."""
    check_options(k, temperature, mix, nearest)
    n = len(images)
    y = labels_for(model, labels, n)
    classes = (
        torch.zeros(n, dtype=torch.long) if labels is None else torch.as_tensor(labels, dtype=torch.long)
    )
    mu, logvar = encode(model, images, batch_size)
    lat = variation_latents(mu, logvar, classes, k, temperature, mix, seed, nearest)
    decoder = posterior_decoder(model, mu, y, images)
    flat_y = None if y is None else y.repeat_interleave(k)
    out = decode(decoder, lat.z.reshape(n * k, -1), flat_y, batch_size)
    return out.reshape(n, k, *out.shape[1:]), lat


def load_real(
    model: LoadedModel,
    source: str | Path,
    per_class: int | None = None,
    classes: list[str] | None = None,
    data_dir: str | None = None,
    strict: bool = False,
    progress: bool = False,
) -> tuple[ImageSet, dict[str, Any]]:
    """The real images to vary, loaded as `vaemsgan train` loads them (an ImageFolder path, 'fashion-mnist'
    or 'fashion-mnist-mini'; training split) at the model's resolution and channels. A `per_class` subset
    is drawn with the run's subset seed (data.subset_seed, else train.seed), so the run's own --per-class picks
    the images it trained on.
    `classes` defaults to the run's own --classes. Returns the images and the options, for the manifest."""
    cfg = model.cfg
    if classes is None and cfg.data.classes:
        classes = list(cfg.data.classes)
    data = load_images(
        str(source),
        split="train",
        resolution=cfg.data.resolution,
        channels=cfg.data.channels,
        crop=cfg.data.crop,
        per_class=per_class,
        classes=classes,
        seed=subset_seed(cfg.data, cfg.train.seed),
        data_dir=data_dir,
        strict=strict,
        progress=progress,
    )
    options = {
        "per_class": per_class,
        "classes": classes,
        "subset_seed": subset_seed(cfg.data, cfg.train.seed),
    }
    return data, options


def model_labels(model: LoadedModel, data: ImageSet) -> torch.Tensor:
    """The data's labels as class indices of the model (matched by class name)."""
    unknown = [c for c in data.class_names if c not in model.class_names]
    if unknown:
        raise DataError(
            f"{data.source}: class {unknown[0]!r} is not one of the model's ({', '.join(model.class_names)})"
        )
    lookup = torch.tensor([model.class_names.index(c) for c in data.class_names], dtype=torch.long)
    return lookup[data.labels]


@torch.inference_mode()
def variations_folder(
    model: LoadedModel,
    data: ImageSet,
    out: str | Path,
    k: int,
    temperature: float = 1.0,
    mix: tuple[float, float] | None = None,
    seed: int = 0,
    batch_size: int = 256,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
    data_options: dict[str, Any] | None = None,
    nearest: int | None = None,
) -> dict[str, Any]:
    """Write K variations of every image of `data` into out/<class>/<source index>_<variation>.png and
    out/manifest.json (which maps every file to its source image, label, variation, temperature, seed).
    With `mix` and `nearest`, the mixing partners are the `nearest` nearest neighbours (module doc).

    `data_options` (how `data` was loaded: per_class, classes, ...) goes into the manifest, and a resumed
    run must have the same. Resumable and atomic like `generate_folder`."""
    check_options(k, temperature, mix, nearest)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if len(data) == 0:
        raise DataError(f"{data.source}: no images to make variations of")
    out = Path(out)
    labels = model_labels(model, data)
    data_info = {"source": data.source, "images": len(data), **(data_options or {})}
    settings = {
        "checkpoint_sha256": model.checkpoint_sha256,
        "seed": seed,
        "temperature": temperature,
        "mix": list(mix) if mix is not None else None,
        **(
            {"mix_nearest": nearest} if nearest is not None else {}
        ),  # absent: folders written before it resume
        "variations": k,
        "data": data_info,
    }
    open_output(out, settings, force=force, resume=resume)
    y = labels_for(model, labels, len(data))
    mu, logvar = encode(model, data.images, batch_size)
    lat = variation_latents(mu, logvar, labels, k, temperature, mix, seed, nearest)
    decoder = posterior_decoder(model, mu, y, data.images)
    folders = safe_names(model.class_names)
    jobs: list[tuple[int, int]] = [(i, v) for i in range(len(data)) for v in range(k)]
    files: list[dict[str, Any]] = []
    bar = progress_bar(
        total=len(jobs), disable=not progress, unit="img", desc="variations", dynamic_ncols=True
    )
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        idx = torch.tensor([i for i, _ in chunk])
        var = torch.tensor([v for _, v in chunk])
        paths = []
        for i, v in chunk:
            label = int(labels[i])
            name = model.class_names[label]
            rel = f"{folders[name]}/{i:06d}_{v:03d}.png"
            paths.append(out / rel)
            entry: dict[str, Any] = {
                "file": rel,
                "class": name,
                "label": label,
                "source_index": i,
                "source_file": data.files[i] if data.files is not None else None,
                "variation": v,
                "temperature": temperature,
                "seed": seed,
            }
            if lat.mix is not None and lat.partner is not None:
                p = int(lat.partner[i, v])
                entry["mix"] = float(lat.mix[i, v])
                entry["mix_with"] = p
                entry["mix_with_file"] = data.files[p] if data.files is not None else None
            files.append(entry)
        write_batch(paths, lat.z[idx, var], None if y is None else y[idx], decoder, model.device, resume)
        bar.update(len(chunk))
    bar.close()
    wanted = [c for c in model.class_names if c in data.class_names]
    manifest = {
        **model_header(model),
        "kind": "variations",
        "seed": seed,
        "temperature": temperature,
        "mix": list(mix) if mix is not None else None,
        "mix_nearest": nearest,
        "variations": k,
        "data": data_info,
        "classes": wanted,
        "class_folders": {c: folders[c] for c in wanted},
        "files": files,
    }
    return finish_output(out, manifest)
