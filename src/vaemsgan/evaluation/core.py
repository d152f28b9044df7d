"""The evaluation core: one function per part, shared by `vaemsgan evaluate`, `vaemsgan reproduce` and the
learning curves, so that every entry point computes the same numbers the same way.

    stats_part          the image statistics (Table 2) of real training vs generated images, per class
    features_part       feature_metrics overall and per class, the real-vs-real reference, the extractor's
                        accuracy
    crossval_part       classifier cross-validation (crossval.py) with the generated images split into a
                        training pool and a test set
    memorisation_part   near-copies (pixels and features) and diversity (memorisation.py)
    gain_arms, gain_part  the augmentation gain's synthetic arms and study (gain_arms.py, gain.py)

Each takes image sets (and an extractor or options) and returns its JSON-ready results; the parts whose
report section draws figures also return the arrays the figures need. `RealSide` (real_side.py) holds the real
images and everything computed from them alone, cached on disk; `feature_metrics` is in
vaemsgan.metrics.feature_metrics.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import torch

from vaemsgan.data import ImageSet
from vaemsgan.evaluation.classifier import ClassifierConfig, SmallVGG
from vaemsgan.evaluation.crossval import CrossvalOptions, LabelledImages, run_crossval
from vaemsgan.evaluation.extractors import Extractor
from vaemsgan.evaluation.memorisation import (
    TWIN_FRACTION,
    TWIN_PER_CLASS,
    closest_pairs,
    mean_pairwise_distance,
    mean_share,
    memorisation_summary,
    nearest_neighbours,
    pixel_nn,
    twin_shares,
    twin_thresholds,
)
from vaemsgan.evaluation.real_side import Log, RealSide, matched_subset, quiet
from vaemsgan.metrics import STATISTICS, class_table, image_statistics
from vaemsgan.metrics.feature_metrics import DEFAULT_KID_SUBSETS, feature_metrics
from vaemsgan.utils.threads import map_side_by_side

__all__ = [  # RealSide, matched_subset and feature_metrics were defined here before; imported from here still
    "DEFAULT_KID_SUBSETS",
    "RealSide",
    "crossval_part",
    "feature_metrics",
    "features_part",
    "gain_arms",
    "gain_part",
    "labelled",
    "matched_subset",
    "memorisation_part",
    "repeats_part",
    "split_generated",
    "stats_part",
]

CLOSEST_PAIRS = 12


def labelled(s: ImageSet) -> LabelledImages:
    return LabelledImages(s.images, s.labels)


# ---------------------------------------------------------------------------------------------- subsets
def split_generated(
    gen: ImageSet, real_test_counts: list[int], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class: min(real test count, half the generated images) as a generated test set, the rest a pool."""
    g = torch.Generator().manual_seed(seed + 7)
    test, pool = [], []
    for c, n_test_real in enumerate(real_test_counts):
        idx = (gen.labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n = min(n_test_real, len(idx) // 2)
        test.append(idx[:n])
        pool.append(idx[n:])
    return torch.cat(test).sort().values, torch.cat(pool).sort().values


# ---------------------------------------------------------------------------------------------- parts
def stats_part(real: RealSide, gen: ImageSet) -> tuple[dict[str, Any], dict[str, Any]]:
    """Table 2: class_table rows of the real training vs the generated images, per class and overall.

    Returns (results, arrays of every statistic for the report's histograms)."""
    names = real.names
    rs, gs = real.statistics(), image_statistics(gen.images)

    def by(st: dict[str, torch.Tensor], lab: torch.Tensor) -> dict[int, dict[str, torch.Tensor]]:
        return {
            c: {k: v[lab == c] for k, v in st.items()} for c in range(len(names)) if bool((lab == c).any())
        }

    rows = class_table(by(rs, real.train.labels), by(gs, gen.labels))
    for r in rows:
        r["class"] = names[int(r["class"])]  # type: ignore[call-overload]
    overall = class_table({0: rs}, {0: gs})
    for r in overall:
        r["class"] = "all"
    arrays = {"real": {s: rs[s].numpy() for s in STATISTICS}, "gen": {s: gs[s].numpy() for s in STATISTICS}}
    return {"per_class": rows, "overall": overall, "n_real": len(real.train), "n_gen": len(gen)}, arrays


def features_part(
    ext: Extractor,
    real: RealSide,
    gen: ImageSet,
    *,
    n_boot: int,
    kid_subsets: int = DEFAULT_KID_SUBSETS,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Feature metrics of the real test images vs the generated ones (matched to the same number per class,
    seeded; neither set was seen by the domain extractor in training), overall and per class, next to the
    real-vs-real reference. Returns (results, {"real_test", "gen", "real_train"} features)."""
    names = real.names
    counts = real.test.counts()
    sel = matched_subset(gen, counts, seed)
    fr, fg_all = real.features(ext, "test"), ext(gen.images)
    fg, gl = fg_all[sel], gen.labels[sel]
    ref = real.reference_metrics(ext, seed, kid_subsets)
    ref_fid = ref.pop("per_class_fid")
    radii = real.test_radii(ext)

    def metrics(a: torch.Tensor, b: torch.Tensor, r: Any) -> dict[str, Any]:
        return feature_metrics(a, b, n_boot=n_boot, kid_subsets=kid_subsets, seed=seed, real_radii=r)

    # The whole set on the caller's threads (large products), then the classes side by side on
    # single-thread workers: a 1,000-row covariance or a 128 x 128 eigen-decomposition gains nothing from
    # more threads, while one such job per core keeps every core busy.
    overall = metrics(fr, fg, radii["overall"])
    by_class = map_side_by_side(
        metrics,
        [(fr[real.test.labels == c], fg[gl == c], radii["per_class"][c]) for c in range(len(names))],
    )
    per_class = {}
    for c, name in enumerate(names):
        per_class[name] = by_class[c]
        per_class[name]["reference_fid"] = ref_fid[c]
    result = {
        "extractor": ext.name,
        "extractor_info": ext.info,
        "overall": overall,
        "reference_real_vs_real": ref,
        "per_class": per_class,
    }
    if isinstance(ext.model, SmallVGG):
        # The classifier's head on the features already computed: no second pass over the images.
        with torch.inference_mode():
            for key, f_, lab in (("real_test", fr, real.test.labels), ("gen", fg_all, gen.labels)):
                pred = ext.model.head(f_).argmax(1)
                result[f"extractor_{key}_accuracy"] = float((pred == lab).double().mean())
    return result, {"real_test": fr, "gen": fg_all}


def crossval_part(
    real: RealSide,
    gen: ImageSet,
    options: CrossvalOptions,
    seed: int = 0,
    log: Log | None = None,
) -> dict[str, Any]:
    """Classifier cross-validation: the generated images split per class into a test set (as large as the
    real one, at most half) and a training pool; real-data classifiers come from the cache when
    `options.cache` is set."""
    test_idx, pool_idx = split_generated(gen, real.test.counts(), seed)
    return run_crossval(
        labelled(real.train),
        labelled(real.test),
        labelled(gen.subset(pool_idx)),
        labelled(gen.subset(test_idx)),
        real.names,
        options,
        log,
    )


def repeats_part(real: RealSide, gen: ImageSet, seed: int = 0) -> dict[str, Any]:
    """The share of generated images with a same-class twin (memorisation.twin_shares), per class and in all,
    judged against TWIN_PER_CLASS seeded real test images of each class; the real training images, judged
    the same way, show what an unrepeating set gives (about 0)."""
    names, k = real.names, len(real.names)

    def pick(s: ImageSet, counts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = matched_subset(s, counts, seed)
        return s.images[idx], s.labels[idx]

    refs = twin_thresholds(*pick(real.test, [TWIN_PER_CLASS] * k), k, TWIN_PER_CLASS)
    shares = twin_shares(*pick(gen, [TWIN_PER_CLASS] * k), refs)
    # The check on real training images, at n = the fewer of the two real sides per class (a small training
    # subset has fewer than 50 a class), with thresholds at that n.
    n_check = [min(TWIN_PER_CLASS, c) for c in real.train.counts()]
    check_refs = twin_thresholds(*pick(real.test, n_check), k, TWIN_PER_CLASS)
    return {
        "share": mean_share(shares),
        "per_class": dict(zip(names, shares)),
        "real_training_share": mean_share(twin_shares(*pick(real.train, n_check), check_refs)),
        "fraction": TWIN_FRACTION,
        "images_per_class": [n for _, n in refs],
    }


def memorisation_part(
    ext: Extractor,
    real: RealSide,
    gen: ImageSet,
    gen_features: torch.Tensor | None = None,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Nearest-neighbour distances of the generated images to the real training images (pixels and
    features) against the real test images' (the reference), the closest pairs, and per-class diversity.
    Returns (results, arrays for the report's histograms and pair grid)."""
    names = real.names
    fg = ext(gen.images) if gen_features is None else gen_features
    ref = real.nn_reference(ext)
    g_pix, g_pix_i = pixel_nn(
        gen.images, real.train.images, real.training_pixel_index(len(gen)), contrast=True
    )
    g_feat, _ = nearest_neighbours(fg, real.features(ext, "train"))
    # Distance 0 is the same picture up to brightness and contrast (or two flat images): an exact copy is one
    # equal to its nearest training image pixel for pixel.
    zero = (g_pix == 0).nonzero().flatten().tolist()
    exact = sum(bool(gen.images[i].equal(real.train.images[g_pix_i[i]])) for i in zero)
    out: dict[str, Any] = {
        "pixels": {
            **memorisation_summary(g_pix, ref["pixel"], exact_copies=exact),
            "at_distance_zero": len(zero),
        },
        "features": memorisation_summary(g_feat, ref["feature"]),
        "n_gen": len(gen),
        "n_train": len(real.train),
        "n_reference": len(real.test),
    }
    pairs = closest_pairs(g_pix, g_pix_i, k=CLOSEST_PAIRS)
    out["closest_pairs"] = [
        {"generated": i, "train": j, "pixel_distance": d, "class": names[int(gen.labels[i])]}
        for i, j, d in pairs
    ]
    diversity = {}
    sel = matched_subset(gen, real.test.counts(), seed)
    fr = real.features(ext, "test")
    for c, name in enumerate(names):
        a, b = fr[real.test.labels == c], fg[sel][gen.labels[sel] == c]
        dr, dg = mean_pairwise_distance(a, seed=seed), mean_pairwise_distance(b, seed=seed)
        diversity[name] = {
            "real": dr,
            "gen": dg,
            "ratio": dg / dr if dr > 0 else float("nan"),
            "n_gen": len(b),
        }
    out["diversity"] = diversity
    out["repeats"] = repeats_part(real, gen, seed)
    arrays = {
        "gen_pix": g_pix.numpy(),
        "real_pix": ref["pixel"].numpy(),
        "gen_feat": g_feat.numpy(),
        "real_feat": ref["feature"].numpy(),
        "pairs": [(gen.images[i], real.train.images[j]) for i, j, _ in pairs],
    }
    return out, arrays


def gain_arms(
    model: Any,
    real: RealSide,
    gen: ImageSet,
    options: Any,
    *,
    domain_cfg: ClassifierConfig,
    seed: int = 0,
    truncation: float | None = None,
    log: Log | None = None,
    real_memo: MutableMapping[str, Any] | None = None,
) -> list[Any]:
    """The synthetic arms of the augmentation gain (gain_arms.synthetic_arms, `options` a GainOptions): prior
    samples from `gen` and, with a model, curated samples (curated by the domain classifier of the real
    training images) and anchored variations of the real training images; the options' optional arms. The
    weak-classes arm's cross-validated class errors are read from and written to `real_memo` (see gain_part)."""
    from vaemsgan.evaluation.curate import probability_scorer
    from vaemsgan.evaluation.gain import WEAKNESS_FOLDS
    from vaemsgan.evaluation.gain_arms import class_errors, synthetic_arms

    def errors() -> list[float]:
        name = f"class-errors#{WEAKNESS_FOLDS}folds"
        if real_memo is not None and name in real_memo:
            return [float(e) for e in real_memo[name]]
        (log or quiet)(
            f"weak classes: {WEAKNESS_FOLDS}-fold cross-validation of the baseline on the real images"
        )
        err = class_errors(labelled(real.train), len(real.names), options.classifier, options.policy)
        if real_memo is not None:
            real_memo[name] = err
        return err

    def scorer() -> Any:
        # The curation classifier: the domain classifier of the study's own real training images (cached).
        ext = real.domain_extractor(domain_cfg, seed)
        assert ext.model is not None
        return probability_scorer(ext.model)

    return synthetic_arms(
        labelled(real.train),
        real.names,
        labelled(gen),
        model,
        options,
        seed=seed,
        truncation=truncation,
        scorer=scorer,
        progress=log or quiet,
        errors=errors,
    )


def gain_part(
    model: Any,
    real: RealSide,
    gen: ImageSet,
    options: Any,
    *,
    domain_cfg: ClassifierConfig,
    seed: int = 0,
    truncation: float | None = None,
    log: Log | None = None,
    arms: list[Any] | None = None,
    real_memo: MutableMapping[str, Any] | None = None,
    journal: MutableMapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The augmentation-gain study (gain.run_gain_study) of the arms of `gain_arms` (or `arms` made by it
    earlier); `real_memo` and `journal` as in run_gain_study."""
    from vaemsgan.evaluation.gain import run_gain_study

    log = log or quiet
    if arms is None:
        arms = gain_arms(
            model,
            real,
            gen,
            options,
            domain_cfg=domain_cfg,
            seed=seed,
            truncation=truncation,
            log=log,
            real_memo=real_memo,
        )
    log(
        f"augmentation gain: {options.seeds} seeds, ratios {', '.join(f'{r:g}' for r in options.ratios)}, "
        f"{len([a for a in arms if a.pool is not None])} synthetic arms against real + {options.policy}"
    )
    return run_gain_study(
        labelled(real.train),
        labelled(real.test),
        arms,
        real.names,
        options,
        log,
        real_memo=real_memo,
        journal=journal,
    )
