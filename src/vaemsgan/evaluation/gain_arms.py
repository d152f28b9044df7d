"""The gain study's synthetic arms (evaluation/gain.py runs the study): the pools of generated images each arm
adds to the real training images, and the per-class errors the weak-classes arm shares its images out by.

- `prior`: r x samples of the model's prior per class (the images `vaemsgan generate` writes);
- `curated`: the best `keep_fraction` of the prior samples by the classifier filter (generation/curate.py);
- `variations T=t`: encoder-anchored variations of the real training images at temperature t;
- `interpolations`: decodes of latent interpolations toward nearest same-class neighbours;
- `weak classes`: prior samples shared out by the baseline's cross-validated error per class.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from vaemsgan.errors import ConfigError
from vaemsgan.evaluation.classifier import ClassifierConfig, predict, train_classifier
from vaemsgan.evaluation.crossval import LabelledImages
from vaemsgan.evaluation.gain import WEAKNESS_FLOOR, WEAKNESS_FOLDS, Arm, GainOptions, class_counts
from vaemsgan.limits import check_memory

if TYPE_CHECKING:
    from vaemsgan.evaluation.curate import Scorer
    from vaemsgan.inference import LoadedModel


def weakness_weights(errors: Sequence[float], floor: float = WEAKNESS_FLOOR) -> list[float]:
    """Per-class shares proportional to the errors, each error counted as at least `floor` x their mean (so no
    class gets nothing); equal shares when no class has an error. A NaN error (a class without images) is 0."""
    errors = [0.0 if math.isnan(e) else e for e in errors]
    mean = sum(errors) / len(errors) if errors else 0.0
    if mean <= 0:
        return [1 / len(errors)] * len(errors)
    raised = [max(e, floor * mean) for e in errors]
    return [e / sum(raised) for e in raised]


def class_errors(
    real_train: LabelledImages,
    n_cls: int,
    cfg: ClassifierConfig,
    policy: str,
    folds: int = WEAKNESS_FOLDS,
    seed: int = 0,
) -> list[float]:
    """Each class's error rate of the baseline classifier (`cfg`, `policy`) in a `folds`-fold cross-validation
    on the real training images (each class split in seeded folds); NaN for a class with no image."""
    g = torch.Generator().manual_seed(seed)
    fold_of = torch.empty(len(real_train), dtype=torch.long)
    for c in range(n_cls):
        idx = real_train.of_class(c)
        fold_of[idx[torch.randperm(len(idx), generator=g)]] = torch.arange(len(idx)) % folds
    wrong, seen = torch.zeros(n_cls, dtype=torch.long), torch.zeros(n_cls, dtype=torch.long)
    for f in range(folds):
        held = fold_of == f
        train, test = real_train.take((~held).nonzero().flatten()), real_train.take(held.nonzero().flatten())
        if len(test) == 0 or len(train) == 0:
            continue
        model = train_classifier(train.images, train.labels, n_cls, cfg, seed=seed + f, augment=policy)
        pred = predict(model, test.images)
        wrong += torch.bincount(test.labels[pred != test.labels], minlength=n_cls)
        seen += torch.bincount(test.labels, minlength=n_cls)
    return [int(w) / int(n) if n > 0 else float("nan") for w, n in zip(wrong, seen)]


def _weak_classes_arm(
    real_train: LabelledImages,
    names: Sequence[str],
    prior: LabelledImages,
    model: LoadedModel | None,
    options: GainOptions,
    seed: int,
    truncation: float | None,
    errors: Callable[[], list[float]] | None,
    log: Callable[[str], None],
) -> Arm:
    """The weak-classes arm: prior samples shared out by the baseline's cross-validated class errors; its pool
    is sampled from the model (the prior pool holds too few of a weak class), or is the prior pool itself.
    Its key names the folds and a digest of the weights: journalled results are of these shares only."""
    label = "real + prior samples, most for the weakest classes"
    if errors is None:
        return Arm("weak-classes", label, skipped="no cross-validated class errors to share out by")
    err = errors()
    weights = weakness_weights(err)
    info = {
        "class_errors": dict(zip(names, err)),
        "weights": dict(zip(names, weights)),
        "folds": WEAKNESS_FOLDS,
    }
    digest = zlib.crc32(",".join(f"{w:.6f}" for w in weights).encode())
    key = f"weak-classes-f{WEAKNESS_FOLDS}-{digest:08x}"
    real_counts = [len(real_train.of_class(c)) for c in range(len(names))]
    # The largest count of each class over the ratios (rounding can give a smaller ratio one image more).
    by_ratio = [class_counts(r, real_counts, weights) for r in options.ratios]
    need = [max(counts[c] for counts in by_ratio) for c in range(len(names))]
    pool = prior if model is None else prior_pool(model, names, need, seed, truncation)
    return Arm(key, label, pool, info=info, weights=weights)


def _class_samples(model: LoadedModel, cm: int, n: int, seed: int, truncation: float | None) -> torch.Tensor:
    """n prior samples (uint8) of the model's class cm: the images `generate --seed seed` writes."""
    from vaemsgan.inference import sample_class

    if n == 0:  # a class the weak-classes arm gives no image at any ratio
        res = model.cfg.data.resolution
        return torch.zeros(0, model.cfg.data.channels, res, res, dtype=torch.uint8)
    return sample_class(model, cm, n, seed, truncation)


@torch.inference_mode()
def prior_pool(
    model: LoadedModel,
    names: Sequence[str],
    per_class: Sequence[int],
    seed: int,
    truncation: float | None = None,
) -> LabelledImages:
    """per_class[c] prior samples of each class c (the study's class order)."""
    imgs = [
        _class_samples(model, cm, per_class[c], seed, truncation)
        for c, cm in enumerate(_model_classes(model, names))
    ]
    labels = [torch.full((len(x),), c, dtype=torch.long) for c, x in enumerate(imgs)]
    return LabelledImages(torch.cat(imgs), torch.cat(labels))


def _model_classes(model: LoadedModel, names: Sequence[str]) -> list[int]:
    missing = [n for n in names if n not in model.class_names]
    if missing:
        raise ConfigError(f"class {missing[0]!r} is not one of the model's ({', '.join(model.class_names)})")
    return [model.class_names.index(n) for n in names]


@torch.inference_mode()
def curated_pool(
    model: LoadedModel,
    names: Sequence[str],
    per_class: Sequence[int],
    scorer: Scorer,
    keep_fraction: float,
    seed: int,
    truncation: float | None = None,
) -> LabelledImages:
    """per_class[c] images of each class c: the best of ceil(n / keep_fraction) prior samples by the
    classifier filter (the first n candidates are the uncurated samples of the same seed)."""
    from vaemsgan.evaluation.curate import curate_class

    imgs, labels = [], []
    for c, cm in enumerate(_model_classes(model, names)):
        n = per_class[c]
        x = _class_samples(model, cm, math.ceil(n / keep_fraction - 1e-9), seed, truncation)
        kept, _, _ = curate_class(x, c, n, ["classifier"], {"classifier": scorer})
        imgs.append(x[kept])
        labels.append(torch.full((len(kept),), c, dtype=torch.long))
    return LabelledImages(torch.cat(imgs), torch.cat(labels))


def variations_pool(
    model: LoadedModel,
    real_train: LabelledImages,
    names: Sequence[str],
    k: int,
    temperature: float,
    seed: int,
    mix: tuple[float, float] | None = None,
    nearest: int | None = None,
) -> LabelledImages:
    """k anchored variations of every real training image (labels in the study's class order), mixed with
    same-class partners (the `nearest` nearest ones when given) when `mix` is given."""
    from vaemsgan.generation.variations import variations

    lookup = torch.tensor(_model_classes(model, names), dtype=torch.long)
    out, _ = variations(
        model, real_train.images, lookup[real_train.labels], k, temperature, mix, seed=seed, nearest=nearest
    )
    return LabelledImages(out.reshape(-1, *out.shape[2:]), real_train.labels.repeat_interleave(k))


def synthetic_arms(
    real_train: LabelledImages,
    names: list[str],
    prior: LabelledImages,
    model: LoadedModel | None,
    options: GainOptions,
    *,
    seed: int = 0,
    truncation: float | None = None,
    scorer: Callable[[], Scorer] | None = None,
    progress: Callable[[str], None] | None = None,
    errors: Callable[[], list[float]] | None = None,
) -> list[Arm]:
    """The synthetic arms: prior samples (`prior`), curated samples, variations at each temperature and,
    with `options.interpolation`, interpolations between nearest neighbours (all but the first need `model`;
    the last two need its encoder) and, with `options.weak_classes`, prior samples shared out by the classes'
    errors (`errors()`: the baseline's cross-validated error per class, `class_errors`). `scorer()` builds the
    curation classifier."""
    log = progress or (lambda _m: None)
    arms = [Arm("prior", "real + prior samples", prior)]

    def weak_classes() -> list[Arm]:
        if not options.weak_classes:
            return []
        return [_weak_classes_arm(real_train, names, prior, model, options, seed, truncation, errors, log)]

    max_r = max(options.ratios)
    need = [math.ceil(max_r * len(real_train.of_class(c))) for c in range(len(names))]
    temps = sorted(set(float(t) for t in options.temperatures))
    var_keys = [(f"variations-T{t:g}", f"real + anchored variations (T={t:g})", t) for t in temps]
    interp = options.interpolation
    interp_info: dict[str, Any] = (
        {} if interp is None else {"mix": [float(v) for v in interp], "neighbours": options.neighbours}
    )
    interp_label = f"real + interpolations of {options.neighbours} nearest neighbours"
    # The key names the arm's parameters (as variations-T<t> does): journalled results stay its own.
    interp_key = "" if interp is None else f"interpolations-n{options.neighbours}-{interp[0]:g}-{interp[1]:g}"
    if model is None:
        why = "needs a model (evaluate --checkpoint RUN), not a folder of images"
        arms.append(Arm("curated", "real + curated prior samples", skipped=why))
        arms += [Arm(k, lab, skipped=why, info={"temperature": t}) for k, lab, t in var_keys]
        if interp is not None:
            arms.append(Arm(interp_key, interp_label, skipped=why, info=interp_info))
        return arms + weak_classes()
    k = max(1, math.ceil(max_r))
    # Both pools are held in memory (uint8) next to the prior pool and the real images.
    pixels = int(real_train.images[0].numel()) if len(real_train) else 0
    n_var = len(real_train) * k * ((len(temps) + (interp is not None)) if model.encoder is not None else 0)
    n_weak = math.ceil(max_r * len(real_train)) + len(names) if options.weak_classes else 0
    check_memory(
        pixels * (n_var + n_weak + sum(math.ceil(n / options.keep_fraction) for n in need)),
        f"the gain's synthetic pools ({n_var} variations, {sum(need)} curated images, {n_weak} for weak classes)",
        "use smaller --gain-ratios or fewer --gain-temperatures",
    )
    if scorer is None:
        arms.append(Arm("curated", "real + curated prior samples", skipped="no classifier to curate with"))
    else:
        log(f"curated pool: best {options.keep_fraction:g} of the prior samples by the classifier filter")
        pool = curated_pool(model, names, need, scorer(), options.keep_fraction, seed, truncation)
        arms.append(
            Arm(
                "curated", "real + curated prior samples", pool, info={"keep_fraction": options.keep_fraction}
            )
        )
    for key, label, t in var_keys:
        if model.encoder is None:
            why = "the model has no encoder (trained without the VAE half): no anchored variations"
            arms.append(Arm(key, label, skipped=why, info={"temperature": t}))
            continue
        log(f"variations pool: {k} per real training image at temperature {t:g}")
        pool = variations_pool(model, real_train, names, k, t, seed)
        arms.append(Arm(key, label, pool, info={"temperature": t, "variations_per_image": k}))
    if interp is not None:
        if model.encoder is None:
            why = "the model has no encoder (trained without the VAE half): no latent interpolations"
            arms.append(Arm(interp_key, interp_label, skipped=why, info=interp_info))
        else:
            log(
                f"interpolation pool: {k} per real training image, toward one of its {options.neighbours} "
                f"nearest neighbours by {interp[0]:g}-{interp[1]:g}"
            )
            pool = variations_pool(
                model,
                real_train,
                names,
                k,
                0.0,
                seed,
                (float(interp[0]), float(interp[1])),
                options.neighbours,
            )
            arms.append(Arm(interp_key, interp_label, pool, info={**interp_info, "variations_per_image": k}))
    return arms + weak_classes()


__all__ = [
    "class_errors",
    "curated_pool",
    "prior_pool",
    "synthetic_arms",
    "variations_pool",
    "weakness_weights",
]
