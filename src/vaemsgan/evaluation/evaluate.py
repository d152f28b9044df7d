"""`evaluate`: real vs generated images, end to end: statistics, feature metrics, classifiers, memorisation.

Writes REPORT_DIR/report.html (self-contained) and REPORT_DIR/metrics.json (every number, the options,
and the wall time of each part). Definitions: docs/EVALUATION.md.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vaemsgan.data import BUILTIN_SOURCES, ImageSet, load_images
from vaemsgan.data.imagefolder import split_layout
from vaemsgan.errors import ConfigError, DataError, OutputExistsError
from vaemsgan.evaluation.classifier import ClassifierConfig, SmallVGG
from vaemsgan.evaluation.crossval import DEFAULT_RATIOS, CrossvalOptions, LabelledImages, run_crossval
from vaemsgan.evaluation.extractors import Extractor, build_extractor
from vaemsgan.evaluation.gain import (
    DEFAULT_GAIN_RATIOS,
    DEFAULT_GAIN_SEEDS,
    DEFAULT_GAIN_TEMPERATURES,
    GainOptions,
)
from vaemsgan.evaluation.memorisation import (
    closest_pairs,
    mean_pairwise_distance,
    memorisation_summary,
    nearest_neighbours,
    pixel_nn,
)
from vaemsgan.metrics import (
    STATISTICS,
    bootstrap_ci,
    class_table,
    density_coverage,
    fid,
    fid_sample_warning,
    image_statistics,
    kid,
    precision_recall,
)
from vaemsgan.utils.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    open_regular,
    prepare_output_dir,
    read_bounded,
    safe_name,
)

PARTS = ("stats", "features", "classifier", "memorisation")
MANIFEST = "manifest.json"


@dataclass
class EvalOptions:
    """Everything `evaluate` can be told; `quick_options()` is the demo's budget."""

    parts: Sequence[str] = PARTS
    seeds: int = 3
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    domain_steps: int = 600  # the feature classifier trains longer: it is cached and used by every metric
    extractor: str = "domain"
    inception_weights: str | None = None
    cache_dir: str | None = None
    per_class: int | None = None  # images generated per class with a checkpoint (None: what the parts need)
    ratios: Sequence[float] = DEFAULT_RATIOS
    mixed_class: str | None = None
    n_boot: int = 50
    kid_subsets: int = 50
    seed: int = 0
    truncation: float | None = None
    data_dir: str | None = None
    resolution: int | None = None
    channels: int | None = None
    holdout: float = 0.2  # share of each class held out as test when the real source has no test split
    device: str = "cpu"
    force: bool = False
    progress: bool = True
    quick: bool = False
    augmentation_gain: bool = False  # arms of real + synthetic images vs real + classical (gain.py)
    gain_ratios: Sequence[float] = DEFAULT_GAIN_RATIOS
    gain_seeds: int = DEFAULT_GAIN_SEEDS  # classifier seeds of every gain arm (paired)
    gain_temperatures: Sequence[float] = DEFAULT_GAIN_TEMPERATURES  # of the anchored-variations arms
    real_per_class: int | None = None  # seeded subset of the real training images (as `train --per-class`)
    real_seed: int = 0  # the subset's seed: the training run's train.seed

    def validate(self) -> EvalOptions:
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not (self.parts or self.augmentation_gain):
            raise ConfigError(
                f"--parts: unknown part(s) {unknown or '(none)'}; choose from {', '.join(PARTS)}"
            )
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {self.seeds}")
        if any(r <= 0 for r in (*self.ratios, *self.gain_ratios)):
            raise ConfigError(f"--ratios must be positive, got {list(self.ratios)}")
        if self.per_class is not None and self.per_class < 2:
            raise ConfigError(f"--per-class must be at least 2, got {self.per_class}")
        if self.n_boot < 2 or self.kid_subsets < 1 or self.domain_steps < 1:
            raise ConfigError("--bootstrap must be >= 2, KID subsets and domain steps >= 1")
        if not 0 < self.holdout < 1:
            raise ConfigError(f"holdout share must be in (0, 1), got {self.holdout}")
        self.classifier.validate()
        self.gain_options().validate()
        return self

    def gain_options(self) -> GainOptions:
        return GainOptions(
            seeds=self.gain_seeds,
            ratios=self.gain_ratios,
            temperatures=self.gain_temperatures,
            classifier=self.classifier,
        )


def quick_options(**overrides: Any) -> EvalOptions:
    """A small budget (the demo's): 2 seeds, shorter classifier training, fewer bootstrap draws.

    About 2-4 minutes on 2 CPU cores for the 2,000-image mini set and 10 classes.
    """
    base = EvalOptions(
        seeds=2,
        classifier=ClassifierConfig(steps=200),
        domain_steps=400,
        n_boot=20,
        kid_subsets=20,
        ratios=(1.0, 4.0),
        quick=True,
    )
    return replace(base, **overrides)


class _Progress:
    """One line per event with the elapsed time: a progress display that also reads well in a log."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.t0 = enabled, time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"[evaluate {time.perf_counter() - self.t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ data


def match_classes(real: Sequence[str], gen: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(shared classes in the real order, classes only in the real set, classes only in the generated set)."""
    common = [c for c in real if c in gen]
    return common, [c for c in real if c not in gen], [c for c in gen if c not in real]


def _has_test_split(source: str) -> bool:
    return source in BUILTIN_SOURCES or split_layout(Path(source)) is not None


def load_real(
    source: str, resolution: int, channels: int, opts: EvalOptions
) -> tuple[ImageSet, ImageSet, str]:
    """Real training and test images, and a note on where the test images come from."""
    kw = {"resolution": resolution, "channels": channels, "data_dir": opts.data_dir}
    train = load_images(source, split="train", **kw)
    if _has_test_split(source):
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


def _peek_format(folder: Path) -> tuple[int, int] | None:
    """(resolution, channels) of the first image under folder/<class>/, if any."""
    for p in sorted(folder.glob("*/*")):
        try:
            with open_regular(p) as fp, Image.open(fp) as im:  # a FIFO or device here is passed over
                return im.width, 1 if im.mode in ("L", "LA", "1", "I;16", "I", "F") else 3
        except (OSError, ValueError, SyntaxError, EOFError):
            continue
    return None


MAX_MANIFEST_BYTES = 1 << 30  # a manifest of a million images is about 100 MiB


def _read_manifest(path: Path) -> dict[str, Any]:
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
            folder_to_name = {v: k for k, v in _read_manifest(manifest).get("class_folders", {}).items()}
        except (OSError, ValueError, AttributeError):
            folder_to_name = {}
    gen = load_images(str(path), resolution=resolution, channels=channels)
    gen.class_names = [folder_to_name.get(n, n) for n in gen.class_names]
    return gen


def _rename_to_real(gen: ImageSet, real_names: Sequence[str]) -> None:
    """Without a manifest, a generated folder named safe_name(real class) still matches that class."""
    by_safe = {safe_name(n): n for n in real_names}
    gen.class_names = [n if n in real_names else by_safe.get(n, n) for n in gen.class_names]


def generate_in_memory(model: Any, per_class: int, opts: EvalOptions, log: _Progress) -> ImageSet:
    """Sample `per_class` images of each class from a loaded model (the images `vaemsgan generate` writes)."""
    from vaemsgan.generation.sampler import latents
    from vaemsgan.utils.images import to_uint8

    device = next(model.generator.parameters()).device
    imgs, labels = [], []
    with torch.inference_mode():
        for cls in range(len(model.class_names)):
            z_all = latents(opts.seed, cls, per_class, model.cfg.model.latent_dim, opts.truncation)
            for s in range(0, per_class, 256):
                z = z_all[s : s + 256].to(device)
                imgs.append(to_uint8(model.generator(z, model.labels(cls, len(z), device))).cpu())
                labels.append(torch.full((len(z),), cls, dtype=torch.long))
    log(f"generated {per_class} images per class x {len(model.class_names)} classes from {model.checkpoint}")
    return ImageSet(
        torch.cat(imgs), torch.cat(labels), list(model.class_names), f"{model.checkpoint} (generated)"
    )


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


def _matched_subset(gen: ImageSet, counts: list[int], seed: int) -> torch.Tensor:
    """Indices of up to counts[c] generated images of each class (seeded), for equal-size comparisons."""
    g = torch.Generator().manual_seed(seed + 3)
    out = []
    for c, n in enumerate(counts):
        idx = (gen.labels == c).nonzero().flatten()
        out.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    return torch.cat(out).sort().values


# ------------------------------------------------------------------------------------------ parts

# Images each class needs in each set for a part to give numbers rather than NaN: FID, KID, diversity
# and nearest-neighbour ratios need two per set; a classifier needs one to train and one to test on, and
# the generated images are split into a training pool and a test set.
PART_NEEDS: dict[str, dict[str, int]] = {
    "features": {"real test": 2, "generated": 2},
    "memorisation": {"real training": 1, "real test": 2, "generated": 2},
    "classifier": {"real training": 1, "real test": 1, "generated": 2},
    "augmentation gain": {"real training": 1, "real test": 1, "generated": 1},
}


def too_few_images(part: str, names: Sequence[str], counts: dict[str, list[int]]) -> str | None:
    """Why `part` cannot be measured with these per-class counts ({set: [count per class]}), or None."""
    for what, need in PART_NEEDS[part].items():
        short = [(n, c) for n, c in zip(names, counts[what], strict=True) if c < need]
        if short:
            listed = ", ".join(f"'{n}' has {c}" for n, c in short[:3]) + (", ..." if len(short) > 3 else "")
            return f"too few {what} images per class (needs {need}; {listed})"
    return None


def _stats_part(real: ImageSet, gen: ImageSet, names: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    rs, gs = image_statistics(real.images), image_statistics(gen.images)
    by = lambda st, lab: {  # noqa: E731 - a two-line helper
        c: {s: v[lab == c] for s, v in st.items()} for c in range(len(names)) if bool((lab == c).any())
    }
    rows = class_table(by(rs, real.labels), by(gs, gen.labels))
    for r in rows:
        r["class"] = names[int(r["class"])]  # type: ignore[call-overload]
    overall = class_table({0: rs}, {0: gs})
    for r in overall:
        r["class"] = "all"
    arrays = {"real": {s: rs[s].numpy() for s in STATISTICS}, "gen": {s: gs[s].numpy() for s in STATISTICS}}
    return {"table": rows, "overall": overall, "n_real": len(real), "n_gen": len(gen)}, arrays


def _feature_metrics(fr: torch.Tensor, fg: torch.Tensor, opts: EvalOptions, boot: bool) -> dict[str, Any]:
    n = min(len(fr), len(fg))
    out: dict[str, Any] = {"n_real": len(fr), "n_gen": len(fg)}
    if n < 2:
        out["error"] = f"too few images ({len(fr)} real, {len(fg)} generated)"
        return out
    out["fid"] = fid(fr, fg)
    if boot:
        lo, hi = bootstrap_ci(fid, fr, fg, n_boot=opts.n_boot, seed=opts.seed)
        out["fid_ci"] = [lo, hi]
    km, ks = kid(fr, fg, subsets=opts.kid_subsets, subset_size=min(1000, n), seed=opts.seed)
    out["kid_mean"], out["kid_std"] = km, ks
    if n >= 4:
        out["precision"], out["recall"] = precision_recall(fr, fg, k=3)
    if n >= 6:
        out["density"], out["coverage"] = density_coverage(fr, fg, k=5)
    out["warning"] = fid_sample_warning(len(fr), len(fg))
    return out


def _features_part(
    ext: Extractor,
    real_train: ImageSet,
    real_test: ImageSet,
    gen: ImageSet,
    names: list[str],
    opts: EvalOptions,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    # Real test images vs generated ones: neither was seen by the domain extractor in training.
    counts = [int((real_test.labels == c).sum()) for c in range(len(names))]
    sel = _matched_subset(gen, counts, opts.seed)
    fr, fg_all = ext(real_test.images), ext(gen.images)
    fg = fg_all[sel]
    gl = gen.labels[sel]
    overall = _feature_metrics(fr, fg, opts, boot=True)
    # Reference: real training vs real test images at the same per-class sizes: what a generator that
    # reproduces the real distribution exactly would get here (finite-sample floor).
    ref_sel = _matched_subset(real_train, counts, opts.seed)
    ftr_all = ext(real_train.images)
    ref = _feature_metrics(fr, ftr_all[ref_sel], opts, boot=False)
    per_class = {}
    for c, name in enumerate(names):
        a, b = fr[real_test.labels == c], fg[gl == c]
        per_class[name] = _feature_metrics(a, b, opts, boot=True)
        per_class[name]["reference_fid"] = (
            fid(a, ftr_all[ref_sel][real_train.labels[ref_sel] == c]) if len(a) >= 2 else float("nan")
        )
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
            for key, f_, lab in (("real_test", fr, real_test.labels), ("gen", fg_all, gen.labels)):
                pred = ext.model.head(f_).argmax(1)
                result[f"extractor_{key}_accuracy"] = float((pred == lab).double().mean())
    return result, {"real_test": fr, "gen": fg_all, "real_train": ftr_all}


def _memorisation_part(
    real_train: ImageSet,
    real_test: ImageSet,
    gen: ImageSet,
    feats: dict[str, torch.Tensor],
    names: list[str],
    opts: EvalOptions,
) -> tuple[dict[str, Any], dict[str, Any]]:
    g_pix, g_pix_i = pixel_nn(gen.images, real_train.images)
    r_pix, _ = pixel_nn(real_test.images, real_train.images)
    g_feat, g_feat_i = nearest_neighbours(feats["gen"], feats["real_train"])
    r_feat, _ = nearest_neighbours(feats["real_test"], feats["real_train"])
    out: dict[str, Any] = {
        "pixels": memorisation_summary(g_pix, r_pix),
        "features": memorisation_summary(g_feat, r_feat),
        "n_gen": len(gen),
        "n_train": len(real_train),
        "n_reference": len(real_test),
    }
    pairs = closest_pairs(g_pix, g_pix_i, k=12)
    out["closest_pairs"] = [
        {"generated": i, "train": j, "pixel_rms": d, "class": names[int(gen.labels[i])]} for i, j, d in pairs
    ]
    diversity = {}
    counts = [int((real_test.labels == c).sum()) for c in range(len(names))]
    sel = _matched_subset(gen, counts, opts.seed)
    for c, name in enumerate(names):
        fr = feats["real_test"][real_test.labels == c]
        fg = feats["gen"][sel][gen.labels[sel] == c]
        dr, dg = mean_pairwise_distance(fr, seed=opts.seed), mean_pairwise_distance(fg, seed=opts.seed)
        diversity[name] = {
            "real": dr,
            "gen": dg,
            "ratio": dg / dr if dr > 0 else float("nan"),
            "n_gen": len(fg),
        }
    out["diversity"] = diversity
    arrays = {
        "gen_pix": g_pix.numpy(),
        "real_pix": r_pix.numpy(),
        "gen_feat": g_feat.numpy(),
        "real_feat": r_feat.numpy(),
        "pairs": [(gen.images[i], real_train.images[j]) for i, j, _ in pairs],
    }
    return out, arrays


def _gain_part(
    model: Any,
    real_train: ImageSet,
    real_test: ImageSet,
    gen: ImageSet,
    names: list[str],
    opts: EvalOptions,
    log: _Progress,
) -> dict[str, Any]:
    """The augmentation-gain arms (gain.py): pools from `gen` (prior samples) and, with a model, curated
    samples and anchored variations of the real training images."""
    from vaemsgan.evaluation.curate import probability_scorer
    from vaemsgan.evaluation.gain import run_gain_study, synthetic_arms

    gopts = opts.gain_options()
    lab = lambda s: LabelledImages(s.images, s.labels)  # noqa: E731

    def scorer() -> Any:
        # The curation classifier: the domain classifier of the study's own real training images (cached).
        dcfg = replace(opts.classifier, steps=opts.domain_steps)
        ext = build_extractor(
            "domain",
            images=real_train.images,
            labels=real_train.labels,
            class_names=names,
            cfg=dcfg,
            seed=opts.seed,
            cache_dir=opts.cache_dir,
        )
        assert ext.model is not None
        return probability_scorer(ext.model)

    arms = synthetic_arms(
        lab(real_train),
        names,
        lab(gen),
        model,
        gopts,
        seed=opts.seed,
        truncation=opts.truncation,
        scorer=scorer,
        progress=log,
    )
    log(
        f"augmentation gain: {gopts.seeds} seeds, ratios {', '.join(f'{r:g}' for r in gopts.ratios)}, "
        f"{len([a for a in arms if a.pool is not None])} synthetic arms against real + {gopts.policy}"
    )
    return run_gain_study(lab(real_train), lab(real_test), arms, names, gopts, log)


# ------------------------------------------------------------------------------------------ main


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists, numpy/torch scalars -> Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def evaluate(
    real: str,
    out: str | Path,
    *,
    generated: str | Path | None = None,
    checkpoint: str | Path | None = None,
    options: EvalOptions | None = None,
) -> dict[str, Any]:
    """Evaluate generated images (a folder, or sampled from `checkpoint`) against the real source `real`.

    Writes out/report.html and out/metrics.json and returns the metrics dict. `options=quick_options()`
    is the demo's small budget.
    """
    from vaemsgan.evaluation.report import GAIN_PNG, make_figures, render_html, verdict

    opts = (options or EvalOptions()).validate()
    if (generated is None) == (checkpoint is None):
        raise ConfigError("give exactly one of --generated DIR or --checkpoint RUN_DIR")
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not opts.force:
        raise OutputExistsError(f"{out}: report folder exists and is not empty; use --force to overwrite")
    log = _Progress(opts.progress)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    # --- load: formats come from the model, the manifest, the options or the first generated image
    t0 = time.perf_counter()
    model = None
    res, ch = opts.resolution, opts.channels
    if checkpoint is not None:
        from vaemsgan.generation.sampler import load_model

        model = load_model(checkpoint, opts.device)
        res, ch = res or model.cfg.data.resolution, ch or model.cfg.data.channels
    else:
        gpath = Path(generated)  # type: ignore[arg-type]
        if (gpath / MANIFEST).is_file():
            try:
                m = _read_manifest(gpath / MANIFEST)
                res, ch = res or m.get("resolution"), ch or m.get("channels")
            except (OSError, ValueError):
                pass
        if (res is None or ch is None) and gpath.is_dir():
            peek = _peek_format(gpath)
            if peek:
                res, ch = res or peek[0], ch or peek[1]
    res, ch = int(res or 32), int(ch or 1)
    real_train, real_test, test_note = load_real(real, res, ch, opts)
    log(f"real: {len(real_train)} training / {len(real_test)} test images ({test_note}), {res}px x {ch}")
    timings["load"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if checkpoint is not None:
        per_class = opts.per_class
        if per_class is None:
            # Enough for the largest sweep ratio plus a generated test set the size of the real one.
            most_train = max(real_train.counts())
            most_test = max(real_test.counts())
            need_cls = math.ceil(max(opts.ratios, default=1.0) * most_train) + most_test
            per_class = max(100, most_test, need_cls if "classifier" in opts.parts else 0)
            if opts.augmentation_gain:  # the prior-samples arm at the largest gain ratio
                per_class = max(per_class, math.ceil(max(opts.gain_ratios) * most_train))
        from vaemsgan.limits import check_memory

        # The images (and, per image, about 1 KiB of features and scores) are held in memory together.
        n_cls, dim = len(model.class_names), model.cfg.model.latent_dim
        check_memory(
            per_class * (n_cls * (res * res * ch + 1024) + dim * 4),
            f"sampling {per_class} images per class x {n_cls} classes",
            "use a smaller --per-class",
        )
        gen = generate_in_memory(model, per_class, opts, log)
        gen_source = f"{checkpoint} ({per_class} per class, seed {opts.seed}, generated in memory)"
    else:
        gen = load_generated_dir(generated, res, ch)  # type: ignore[arg-type]
        _rename_to_real(gen, real_train.class_names)
        gen_source = str(generated)
    common, only_real, only_gen = match_classes(real_train.class_names, gen.class_names)
    if not common:
        raise DataError(
            f"no class names in common: real has {', '.join(real_train.class_names)}; "
            f"generated has {', '.join(gen.class_names)}"
        )
    if only_real:
        log(f"note: classes without generated images (left out): {', '.join(only_real)}")
    if only_gen:
        log(f"note: generated classes not in the real data (left out): {', '.join(only_gen)}")
    real_train, real_test = real_train.select_classes(common), real_test.select_classes(common)
    gen = gen.select_classes(common)
    names = common
    timings["generate" if checkpoint is not None else "load_generated"] = time.perf_counter() - t0
    log(f"generated: {len(gen)} images in {len(names)} shared classes")
    # Parts that would divide by too few images are skipped with the reason, never reported as NaN.
    counts_by_set = {
        "real training": real_train.counts(),
        "real test": real_test.counts(),
        "generated": gen.counts(),
    }
    skipped_parts: dict[str, str] = {}
    for part in (*opts.parts, *(("augmentation gain",) if opts.augmentation_gain else ())):
        if part in PART_NEEDS and (why := too_few_images(part, names, counts_by_set)):
            skipped_parts[part] = why
            log(f"note: {part} part skipped: {why}")
    parts = tuple(p for p in opts.parts if p not in skipped_parts)

    result: dict[str, Any] = {
        "real_source": str(real),
        "generated_source": gen_source,
        "test_images": test_note,
        "resolution": res,
        "channels": ch,
        "classes": names,
        "classes_only_real": only_real,
        "classes_only_generated": only_gen,
        "counts": {
            n: {"real_train": a, "real_test": b, "generated": g}
            for n, a, b, g in zip(names, real_train.counts(), real_test.counts(), gen.counts())
        },
        "options": {
            **{k: v for k, v in vars(opts).items() if k != "classifier"},
            "classifier": opts.classifier.to_dict(),
        },
        "skipped_parts": skipped_parts,
    }
    assets: dict[str, Any] = {"real": real_train, "gen": gen}

    if "stats" in parts:
        t0 = time.perf_counter()
        log("image statistics (Table 2)")
        result["stats"], assets["stats"] = _stats_part(real_train, gen, names)
        timings["stats"] = time.perf_counter() - t0

    feats: dict[str, torch.Tensor] | None = None
    if "features" in parts or "memorisation" in parts:
        t0 = time.perf_counter()
        if opts.extractor == "domain":
            dcfg = replace(opts.classifier, steps=opts.domain_steps)
            log(f"domain feature extractor ({dcfg.steps} steps, cached)")
            ext = build_extractor(
                "domain",
                images=real_train.images,
                labels=real_train.labels,
                class_names=names,
                cfg=dcfg,
                seed=opts.seed,
                cache_dir=opts.cache_dir,
                progress=lambda s, n: log(f"  domain classifier step {s}/{n}") if s % 100 == 0 else None,
            )
            log(
                f"  extractor {'loaded from cache' if ext.info['cache_hit'] else 'trained'}: {ext.info['cache_file']}"
            )
        else:
            ext = build_extractor(opts.extractor, weights=opts.inception_weights)
        timings["extractor"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        log("feature metrics (FID, KID, precision/recall, density/coverage; overall and per class)")
        feat_result, feats = _features_part(ext, real_train, real_test, gen, names, opts)
        if "features" in parts:
            result["features"] = feat_result
            timings["features"] = time.perf_counter() - t0

    if "classifier" in parts:
        t0 = time.perf_counter()
        test_idx, pool_idx = split_generated(gen, real_test.counts(), opts.seed)
        lab = lambda s: LabelledImages(s.images, s.labels)  # noqa: E731
        cv_opts = CrossvalOptions(
            seeds=opts.seeds, classifier=opts.classifier, ratios=opts.ratios, mixed_class=opts.mixed_class
        )
        log(f"classifier cross-validation ({opts.seeds} seeds, {opts.classifier.steps} steps per classifier)")
        result["classifier"] = run_crossval(
            lab(real_train),
            lab(real_test),
            lab(gen.subset(pool_idx)),
            lab(gen.subset(test_idx)),
            names,
            cv_opts,
            log,
        )
        timings["classifier"] = time.perf_counter() - t0

    if opts.augmentation_gain and "augmentation gain" not in skipped_parts:
        t0 = time.perf_counter()
        result["augmentation_gain"] = _gain_part(model, real_train, real_test, gen, names, opts, log)
        for line in result["augmentation_gain"]["verdict_lines"]:
            log(line)
        timings["augmentation_gain"] = time.perf_counter() - t0

    if "memorisation" in parts:
        assert feats is not None
        t0 = time.perf_counter()
        log("memorisation and diversity")
        result["memorisation"], assets["memorisation"] = _memorisation_part(
            real_train, real_test, gen, feats, names, opts
        )
        timings["memorisation"] = time.perf_counter() - t0

    result["verdict"] = verdict(result)
    t0 = time.perf_counter()
    log("report")
    prepare_output_dir(out, force=True, what="report folder")
    figures = make_figures(result, assets)
    timings["report"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    result["timings_s"] = timings
    result = _clean(result)
    atomic_write_text(out / "report.html", render_html(result, figures))
    atomic_write_json(out / "metrics.json", result)
    written = ["report.html", "metrics.json"]
    if "gain_png" in figures:
        atomic_write_bytes(out / GAIN_PNG, figures["gain_png"])
        written.append(GAIN_PNG)
    for name in written:  # temp files are created 0600; a report is meant to be shared
        os.chmod(out / name, 0o644)
    log(f"wrote {out / 'report.html'} and {out / 'metrics.json'} ({timings['total']:.0f} s in all)")
    return result
