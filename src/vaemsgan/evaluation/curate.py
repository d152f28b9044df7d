"""Curation of generated images: over-generate, score, keep the best N per class.

`vaemsgan generate --filter classifier,critic,dedupe --keep-fraction F` draws ceil(N / F) latents per
class (the first N are those an uncurated run uses), and each filter in turn keeps a share of them so that
exactly N remain:
- `classifier`: the domain classifier (trained on the run's own training images, cached) scores each image
  by its probability for the intended class; images it assigns to another class rank below all others;
- `critic`: the run's critic score D(x, y) (higher = judged more real);
- `dedupe`: the pixel RMS distance (0-255) to the nearest other kept candidate of the class or training
  image; the image of the closest pair is dropped repeatedly, so near-duplicates and near-copies go first.
With k filters, filter i keeps ceil(M * F^(i/k)) and the last keeps N. The manifest records every kept
file's scores and, per class, how many each filter dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from vaemsgan.errors import ConfigError, OutputExistsError
from vaemsgan.evaluation.classifier import SmallVGG, folded_for_inference, logits
from vaemsgan.generation.sampler import MANIFEST, LoadedModel, latents, manifest_header, wanted_classes
from vaemsgan.utils.images import to_float, to_uint8
from vaemsgan.utils.io import atomic_write_json, prepare_output_dir, safe_names, save_png

FILTERS = ("classifier", "critic", "dedupe")
# scorer(images uint8 N x C x H x W, class index) -> N scores, higher = keep.
Scorer = Callable[[torch.Tensor, int], torch.Tensor]


def parse_filters(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in FILTERS]
    if bad or not names:
        raise ConfigError(f"--filter {text!r}: choose one or more of {', '.join(FILTERS)} (comma-separated)")
    if len(set(names)) != len(names):
        raise ConfigError(f"--filter {text!r}: a filter is named twice")
    return names


def stage_counts(total: int, keep: int, n_filters: int) -> list[int]:
    """How many candidates remain after each filter: geometric from `total` down to exactly `keep`."""
    frac = keep / total
    out = [max(keep, math.ceil(total * frac ** ((i + 1) / n_filters) - 1e-9)) for i in range(n_filters)]
    out[-1] = keep
    return out


def dedupe_order(
    images: torch.Tensor, n_drop: int, reference: torch.Tensor | None = None
) -> tuple[list[int], torch.Tensor]:
    """The `n_drop` images to drop as near-duplicates: repeatedly the one closest to another kept image
    (or to a `reference` training image). Of a closest pair the later latent goes, the earlier stays.

    Returns (dropped indices in drop order, each image's initial nearest-neighbour distance, pixel RMS 0-255).
    """
    x = images.reshape(len(images), -1).double()
    scale = math.sqrt(x.shape[1]) if x.shape[1] else 1.0
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    inf = torch.full((len(x),), float("inf"), dtype=torch.float64)
    to_ref = inf
    if reference is not None and len(reference):
        to_ref = torch.cdist(x, reference.reshape(len(reference), -1).double()).min(1).values
    start = torch.minimum(d.min(1).values, to_ref) / scale
    alive = torch.ones(len(x), dtype=torch.bool)
    order: list[int] = []
    for _ in range(n_drop):
        nn = torch.where(alive, torch.minimum(d.min(1).values, to_ref), inf)
        idx = alive.nonzero().flatten()
        vals = nn[idx]
        i = int(idx[len(vals) - 1 - int(torch.argmin(vals.flip(0)))])  # the last of equal minima
        order.append(i)
        alive[i] = False
        d[:, i] = float("inf")  # a dropped image no longer makes others duplicates
    return order, start


def classifier_scorer(model: LoadedModel, cache_dir: str | None = None) -> tuple[Scorer, dict[str, Any]]:
    """Score = p(intended class); an image argmax-assigned elsewhere gets p - 1 (ranks below all others)."""
    from vaemsgan.data import load_from_config
    from vaemsgan.evaluation.extractors import domain_extractor
    from vaemsgan.evaluation.monitor import monitor_classifier

    cfg = model.cfg
    data = load_from_config(cfg.data, "train", seed=cfg.train.seed)
    # The monitor's classifier: trained once per training set and shared through the cache.
    ext = domain_extractor(
        data.images,
        data.labels,
        list(data.class_names),
        monitor_classifier(cfg),
        seed=cfg.train.seed,
        cache_dir=cache_dir,
    )
    clf = ext.model
    assert clf is not None
    info = {"classifier_cache": ext.info["cache_file"], "training_images": len(data)}
    return probability_scorer(clf), info


def probability_scorer(clf: SmallVGG) -> Scorer:
    """The `classifier` filter's score with a given classifier: p(intended class), minus 1 where the argmax
    is another class. The classifier's BatchNorm is folded once here, not at every batch scored."""
    net = folded_for_inference(clf)

    @torch.inference_mode()
    def score(images: torch.Tensor, cls: int) -> torch.Tensor:
        p = torch.softmax(logits(net, images), dim=1)
        right = p.argmax(1) == cls
        return torch.where(right, p[:, cls], p[:, cls] - 1.0)

    return score


def critic_scorer(model: LoadedModel) -> Scorer:
    @torch.inference_mode()
    def score(images: torch.Tensor, cls: int) -> torch.Tensor:
        device = next(model.critic.parameters()).device
        x = to_float(images.to(device))
        score = model.critic(x, model.labels(cls, len(x), device)).score
        return score.float().cpu()

    return score


def training_images_of(model: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    from vaemsgan.data import load_from_config

    data = load_from_config(model.cfg.data, "train", seed=model.cfg.train.seed)
    return data.images, data.labels


@torch.inference_mode()
def curate_class(
    images: torch.Tensor,
    cls: int,
    keep: int,
    filters: Sequence[str],
    scorers: dict[str, Scorer],
    reference: torch.Tensor | None = None,
) -> tuple[list[int], dict[str, torch.Tensor], dict[str, int]]:
    """Apply `filters` in order to one class's candidates; returns (kept indices in latent order,
    scores of every candidate per filter (NaN where not scored), how many each filter dropped)."""
    n = len(images)
    if keep > n:
        raise ConfigError(f"cannot keep {keep} of {n} candidates")
    counts = stage_counts(n, keep, len(filters))
    alive = torch.arange(n)
    scores: dict[str, torch.Tensor] = {}
    dropped: dict[str, int] = {}
    for name, target in zip(filters, counts):
        sc = torch.full((n,), float("nan"), dtype=torch.float64)
        if name == "dedupe":
            order, dist = dedupe_order(images[alive], len(alive) - target, reference)
            sc[alive] = dist
            mask = torch.ones(len(alive), dtype=torch.bool)
            mask[order] = False
            survivors = alive[mask]
        else:
            s = scorers[name](images[alive], cls).double()
            sc[alive] = s
            # Stable: among equal scores the earlier latent stays, so results are reproducible.
            best = torch.argsort(-s, stable=True)[:target]
            survivors = alive[best.sort().values]
        dropped[name] = len(alive) - len(survivors)
        scores[name] = sc
        alive = survivors
    return alive.tolist(), scores, dropped


def generate_curated(
    model: LoadedModel,
    out: str | Path,
    per_class: int,
    filters: Sequence[str],
    keep_fraction: float,
    *,
    seed: int = 0,
    truncation: float | None = None,
    batch_size: int = 256,
    classes: list[str] | None = None,
    force: bool = False,
    scorers: dict[str, Scorer] | None = None,
    cache_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write `per_class` curated images per class to out/<class>/NNNNNN.png and out/manifest.json."""
    if per_class < 1:
        raise ConfigError(f"--per-class must be at least 1, got {per_class}")
    if not 0 < keep_fraction <= 1:
        raise ConfigError(f"--keep-fraction must be in (0, 1], got {keep_fraction}")
    filters = list(filters)
    names = model.class_names
    wanted = wanted_classes(model, classes)
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out}: output folder exists and is not empty; use --force to overwrite")
    scorers = dict(scorers or {})
    info: dict[str, Any] = {}
    if "classifier" in filters and "classifier" not in scorers:
        scorers["classifier"], info = classifier_scorer(model, cache_dir)
    if "critic" in filters and "critic" not in scorers:
        scorers["critic"] = critic_scorer(model)
    train_imgs = train_labels = None
    if "dedupe" in filters:
        try:
            train_imgs, train_labels = training_images_of(model)
        except Exception as exc:  # noqa: BLE001 - without the training set, dedupe within the samples only
            log(f"note: dedupe without the training images ({exc})")
    candidates = math.ceil(per_class / keep_fraction - 1e-9)
    prepare_output_dir(out, force=True)
    device = next(model.generator.parameters()).device
    dim = model.cfg.model.latent_dim
    folders = safe_names(names)
    files: list[dict[str, Any]] = []
    per_class_info: dict[str, Any] = {}
    for name in wanted:
        cls = names.index(name)
        z_all = latents(seed, cls, candidates, dim, truncation)
        with torch.inference_mode():
            imgs = torch.cat(
                [
                    to_uint8(model.generator(z.to(device), model.labels(cls, len(z), device))).cpu()
                    for z in z_all.split(batch_size)
                ]
            )
        ref = train_imgs[train_labels == cls] if train_imgs is not None else None
        kept, scores, dropped = curate_class(imgs, cls, per_class, filters, scorers, ref)
        folder = folders[name]
        for k, i in enumerate(kept):
            path = out / folder / f"{k:06d}.png"
            save_png(path, imgs[i].permute(1, 2, 0).numpy(), fsync=False)
            files.append(
                {
                    "file": f"{folder}/{path.name}",
                    "class": name,
                    "label": cls,
                    "index": k,
                    "latent_index": i,
                    "scores": {f: float(scores[f][i]) for f in filters},
                }
            )
        per_class_info[name] = {"candidates": candidates, "dropped": dropped}
        log(
            f"  {name}: kept {len(kept)} of {candidates} ({', '.join(f'{f} -{d}' for f, d in dropped.items())})"
        )
    manifest = {
        **manifest_header(model, seed, truncation, per_class, wanted, folders),
        "curation": {
            "filters": filters,
            "keep_fraction": keep_fraction,
            "candidates_per_class": candidates,
            "stage_counts": stage_counts(candidates, per_class, len(filters)),
            "per_class": per_class_info,
            **info,
        },
        "files": files,
    }
    atomic_write_json(out / MANIFEST, manifest)
    return manifest
