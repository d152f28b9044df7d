"""`evaluate`: real vs generated images, end to end: statistics, feature metrics, classifiers, memorisation.

Writes REPORT_DIR/report.html (self-contained) and REPORT_DIR/metrics.json (every number, the options,
and the wall time of each part). Definitions: docs/EVALUATION.md.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vaemsgan.data import ImageSet
from vaemsgan.errors import ConfigError, DataError, OutputExistsError
from vaemsgan.evaluation import core
from vaemsgan.evaluation.classifier import ClassifierConfig
from vaemsgan.evaluation.core import split_generated
from vaemsgan.evaluation.crossval import DEFAULT_RATIOS, CrossvalOptions
from vaemsgan.evaluation.extractors import Extractor, build_extractor
from vaemsgan.evaluation.gain import (
    DEFAULT_GAIN_RATIOS,
    DEFAULT_GAIN_SEEDS,
    DEFAULT_GAIN_TEMPERATURES,
    GainOptions,
)
from vaemsgan.evaluation.inputs import (
    MANIFEST,
    load_generated_dir,
    load_real,
    match_classes,
    note_skipped,
    peek_format,
    read_manifest,
    refuse_same_folder,
    refuse_shared_files,
    rename_to_real,
)
from vaemsgan.utils.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    json_safe,
    prepare_output_dir,
)

PARTS = ("stats", "features", "classifier", "memorisation")

__all__ = [
    "PARTS",
    "EvalOptions",
    "evaluate",
    "evaluate_sets",
    "match_classes",
    "quick_options",
    "split_generated",
]


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
    crossval_experiments: Sequence[str] = ("crossval", "mixed", "sweep")  # crossval.CrossvalOptions
    memorisation_per_class: int | None = None  # nearest-neighbour search on a seeded subset (None: all)
    n_boot: int = 50
    kid_subsets: int = 50
    seed: int = 0
    truncation: float | None = None
    data_dir: str | None = None
    resolution: int | None = None
    channels: int | None = None
    crop: int | None = None  # centre crop of the real images (default: the model's or the manifest's)
    holdout: float = 0.2  # share of each class held out as test when the real source has no test split
    device: str = "cpu"
    force: bool = False
    progress: bool = True
    quick: bool = False
    augmentation_gain: bool = False  # arms of real + synthetic images vs real + classical (gain.py)
    gain_ratios: Sequence[float] = DEFAULT_GAIN_RATIOS
    gain_seeds: int = DEFAULT_GAIN_SEEDS  # classifier seeds of every gain arm (paired)
    gain_temperatures: Sequence[float] = DEFAULT_GAIN_TEMPERATURES  # of the anchored-variations arms
    gain_interpolation: tuple[float, float] | None = None  # the interpolation arm's mixing range, or none
    gain_weak_classes: bool = False  # the arm of prior samples shared out by the class errors
    gain_policy: str = "classical"  # augmentation of the gain baseline and of every synthetic arm
    real_per_class: int | None = None  # seeded subset of the real training images (as `train --per-class`)
    real_seed: int = 0  # the subset's seed: the training run's data.subset_seed, else its train.seed

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
            interpolation=self.gain_interpolation,
            weak_classes=self.gain_weak_classes,
            policy=self.gain_policy,
        )


def quick_options(**overrides: Any) -> EvalOptions:
    """A small budget (the demo's): 2 seeds, shorter classifier training, fewer bootstrap draws, the
    classifier experiments TSTR/TRTS and the 1x augmentation sweep only (no mixed-class experiment), and
    the memorisation search on 300 generated images per class. The feature metrics use every image, so
    their values are those of a full evaluation; the classifier accuracies are 200-step ones (lower)."""
    base = EvalOptions(
        seeds=2,
        classifier=ClassifierConfig(steps=200),
        domain_steps=400,
        n_boot=20,
        kid_subsets=20,
        ratios=(1.0,),
        crossval_experiments=("crossval", "sweep"),
        memorisation_per_class=300,
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


REPORT_FILES = ("report.html", "metrics.json", "augmentation_gain.png")  # all that `evaluate` writes


def clear_earlier_report(out: Path) -> None:
    """`--force`: remove an earlier report (REPORT_FILES), so the folder holds only the new one; refuse (one
    line, nothing touched) when the folder holds anything else (hidden files, such as the temporaries of an
    interrupted atomic write, are left alone)."""
    other = sorted(p for p in out.iterdir() if p.name not in REPORT_FILES and not p.name.startswith("."))
    if other:
        raise OutputExistsError(
            f"{out}: holds {len(other)} item(s) `evaluate` did not write (e.g. {other[0]}): --force replaces only "
            "an earlier report; move them or choose an empty folder"
        )
    for p in out.iterdir():
        if p.is_file() and p.name in REPORT_FILES:
            p.unlink()


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


def evaluate_sets(
    real_train: ImageSet,
    real_test: ImageSet,
    gen: ImageSet,
    opts: EvalOptions,
    *,
    model: Any = None,
    skipped: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """The parts of an evaluation (evaluation/core.py) on image sets that share one class index space.

    Returns (results by part, arrays the report's figures need, seconds per part). `skipped` parts are
    not run (too few images); `model` (a loaded generator) feeds the augmentation-gain arms."""
    log = log or (lambda msg: None)
    parts = [p for p in opts.parts if p not in skipped]
    real = core.RealSide(real_train, real_test, opts.cache_dir, log=log)
    result: dict[str, Any] = {}
    assets: dict[str, Any] = {}
    timings: dict[str, float] = {}

    if "stats" in parts:
        t0 = time.perf_counter()
        log("image statistics (Table 2)")
        result["stats"], assets["stats"] = core.stats_part(real, gen)
        timings["stats"] = time.perf_counter() - t0

    ext: Extractor | None = None
    gen_features: torch.Tensor | None = None
    if "features" in parts or "memorisation" in parts:
        t0 = time.perf_counter()
        if opts.extractor == "domain":
            dcfg = replace(opts.classifier, steps=opts.domain_steps)
            log(f"domain feature extractor ({dcfg.steps} steps, cached)")
            ext = real.domain_extractor(
                dcfg,
                opts.seed,
                progress=lambda s, n: log(f"  domain classifier step {s}/{n}") if s % 100 == 0 else None,
            )
            log(
                f"  extractor {'loaded from cache' if ext.info['cache_hit'] else 'trained'}: {ext.info['cache_file']}"
            )
        else:
            ext = build_extractor(opts.extractor, weights=opts.inception_weights)
        timings["extractor"] = time.perf_counter() - t0

    if "features" in parts:
        assert ext is not None
        t0 = time.perf_counter()
        log("feature metrics (FID, KID, precision/recall, density/coverage; overall and per class)")
        result["features"], feats = core.features_part(
            ext, real, gen, n_boot=opts.n_boot, kid_subsets=opts.kid_subsets, seed=opts.seed
        )
        gen_features = feats["gen"]
        timings["features"] = time.perf_counter() - t0

    if "classifier" in parts:
        t0 = time.perf_counter()
        log(f"classifier cross-validation ({opts.seeds} seeds, {opts.classifier.steps} steps per classifier)")
        cv = CrossvalOptions(
            seeds=opts.seeds,
            classifier=opts.classifier,
            ratios=opts.ratios,
            mixed_class=opts.mixed_class,
            experiments=opts.crossval_experiments,
            cache=True,
            cache_dir=opts.cache_dir,
        )
        result["classifier"] = core.crossval_part(real, gen, cv, opts.seed, log)
        timings["classifier"] = time.perf_counter() - t0

    if opts.augmentation_gain and "augmentation gain" not in skipped:
        t0 = time.perf_counter()
        result["augmentation_gain"] = core.gain_part(
            model,
            real,
            gen,
            opts.gain_options(),
            domain_cfg=replace(opts.classifier, steps=opts.domain_steps),
            seed=opts.seed,
            truncation=opts.truncation,
            log=log,
        )
        for line in result["augmentation_gain"]["verdict_lines"]:
            log(line)
        timings["augmentation_gain"] = time.perf_counter() - t0

    if "memorisation" in parts:
        assert ext is not None
        t0 = time.perf_counter()
        log("memorisation and diversity")
        gen_m, feats_m = gen, gen_features
        if opts.memorisation_per_class is not None:
            sel = core.matched_subset(gen, [opts.memorisation_per_class] * len(real.names), opts.seed)
            gen_m = gen.subset(sel)
            feats_m = None if gen_features is None else gen_features[sel]
        result["memorisation"], assets["memorisation"] = core.memorisation_part(
            ext, real, gen_m, feats_m, opts.seed
        )
        timings["memorisation"] = time.perf_counter() - t0
    if real.hits:
        log(f"real-data values from the cache: {', '.join(sorted(set(real.hits)))}")
    return result, assets, timings


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
    from vaemsgan.evaluation.report import make_figures, render_html
    from vaemsgan.evaluation.report_figures import GAIN_PNG
    from vaemsgan.evaluation.report_verdict import verdict

    opts = (options or EvalOptions()).validate()
    if (generated is None) == (checkpoint is None):
        raise ConfigError("give exactly one of --generated DIR or --checkpoint RUN_DIR")
    if generated is not None:
        refuse_same_folder(real, generated)
    out = Path(out)
    if out.is_dir() and any(out.iterdir()):
        if not opts.force:
            raise OutputExistsError(f"{out}: report folder exists and is not empty; use --force to overwrite")
        clear_earlier_report(out)
    log = _Progress(opts.progress)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    # --- load: formats come from the model, the manifest, the options or the first generated image
    t0 = time.perf_counter()
    model = None
    res, ch, crop = opts.resolution, opts.channels, opts.crop
    if checkpoint is not None:
        from vaemsgan.generation.sampler import load_model

        model = load_model(checkpoint, opts.device)
        res, ch = res or model.cfg.data.resolution, ch or model.cfg.data.channels
        crop = crop or model.cfg.data.crop
    else:
        gpath = Path(generated)  # type: ignore[arg-type]
        if (gpath / MANIFEST).is_file():
            try:
                m = read_manifest(gpath / MANIFEST)
                res, ch = res or m.get("resolution"), ch or m.get("channels")
                crop = crop or (m.get("crop") if isinstance(m.get("crop"), int) else None)
            except (OSError, ValueError):
                pass
        if (res is None or ch is None) and gpath.is_dir():
            peek = peek_format(gpath)
            if peek:
                res, ch = res or peek[0], ch or peek[1]
    res, ch = int(res or 32), int(ch or 1)
    real_train, real_test, test_note = load_real(real, res, ch, opts, crop)
    cropped = f", centre {crop} px crop" if crop else ""
    log(
        f"real: {len(real_train)} training / {len(real_test)} test images ({test_note}), {res}px x {ch}{cropped}"
    )
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
        rename_to_real(gen, real_train.class_names)
        gen_source = str(generated)
    refuse_shared_files(gen, real_train, real_test)
    for what, s in (("real", real_train), ("real test", real_test), ("generated", gen)):
        note_skipped(what, s)
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

    result: dict[str, Any] = {
        "real_source": str(real),
        "generated_source": gen_source,
        "test_images": test_note,
        "resolution": res,
        "channels": ch,
        "crop": crop,
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
    parts_result, assets, part_timings = evaluate_sets(
        real_train, real_test, gen, opts, model=model, skipped=list(skipped_parts), log=log
    )
    result.update(parts_result)
    timings.update(part_timings)
    assets.update({"real": real_train, "gen": gen})

    result["verdict"] = verdict(result)
    t0 = time.perf_counter()
    log("report")
    prepare_output_dir(out, force=True, what="report folder")
    figures = make_figures(result, assets)
    timings["report"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    result["timings_s"] = timings
    result = json_safe(result)
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
