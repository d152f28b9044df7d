"""What a `vaemsgan reproduce` invocation is told (`ReproduceOptions`, the judge it names, `--quick`) and the real
data its runs share (`Context`: loaded once per class set, with the domain extractor and the real-data
classifiers cached under --cache-dir). The layer below runner.py and every experiment driver."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vaemsgan.data import ImageSet, load_images
from vaemsgan.errors import ConfigError
from vaemsgan.evaluation.classifier import ClassifierConfig
from vaemsgan.evaluation.core import RealSide
from vaemsgan.evaluation.extractors import Extractor
from vaemsgan.evaluation.gain import GainOptions

# Shared by every run of `--quick` (the test suite's smoke runs): narrow networks, a few steps.
QUICK_OVERRIDES: dict[str, Any] = {
    "model.latent_dim": 16,
    "model.g_width": 8,
    "model.e_width": 8,
    "model.d_width": 8,
    "train.batch_size": 8,
    "train.log_every": 2,
    "train.sample_every": 1000,
    "train.checkpoint_every": 1000,
    "train.ema_start": 1,
}

# `reproduce gain` (experiments/gain_study.py): real images per class of the study, and under `--quick`.
DEFAULT_GAIN_PER_CLASS = (100, 1000)
QUICK_GAIN_PER_CLASS = (6, 10)


QUICK_TEST_PER_CLASS = 10  # test images per class under --quick
DEFAULT_CLASSIFIER_STEPS = 300  # per cross-validation classifier (docs/BENCHMARKS.md: accuracy vs steps)
QUICK_CLASSIFIER_STEPS = 10  # at most, with --quick


@dataclass
class ReproduceOptions:
    """Everything `vaemsgan reproduce` can be told (see cli/reproduce_cmd.py for the meaning of each)."""

    data: str = "fashion-mnist"
    data_dir: str | None = None
    per_class: int | None = None
    resolution: int = 32
    channels: int = 1
    crop: int | None = None  # centre crop (source pixels) of every image before resizing, real and training
    budget_minutes: float = 3.0
    clock: str = "cpu"  # cpu: process CPU time (fair on a shared machine); wall: time.perf_counter
    steps: int | None = None  # optional cap on generator steps (the budget usually ends a run first)
    seeds: int = 1  # training seeds per run
    eval_seeds: int = 3  # classifier seeds per TSTR / cross-validation number
    per_class_generated: int = 1000
    classifier_steps: int = DEFAULT_CLASSIFIER_STEPS
    domain_steps: int = 600
    n_boot: int = 50
    threads: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)  # --set, applied to every run
    runs: list[str] | None = None  # --runs: only these runs of the experiment (parallel workers, reruns)
    cache_dir: str | None = None
    force: bool = False
    quick: bool = False
    progress: bool = True
    train: bool = True  # False: `curves` evaluates the snapshots already there, training nothing (--no-train)
    marks: list[float] = field(default_factory=lambda: [2.0, 5.0, 15.0, 30.0, 60.0])  # `curves` snapshots
    gain_per_class: list[int] | None = None  # `gain`: real images per class (None: DEFAULT_GAIN_PER_CLASS)
    gain_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])  # `gain`: synthetic / real
    gain_temperatures: list[float] = field(default_factory=lambda: [0.5, 1.0])  # `gain`: of the variations
    gain_policy: str = "classical"  # `gain`: augmentation of the baseline and of every synthetic arm
    gain_interpolation: list[float] | None = None  # `gain`: the interpolation arm's mixing range, or none
    gain_weak_classes: bool = False  # `gain`: the arm of prior samples shared out by the class errors
    parts: list[str] | None = None  # `mstar`: which of its parts to run (None: all)
    classifier: str = "small"  # the judge of every accuracy (evaluation.classifier.CLASSIFIER_PRESETS)

    def validate(self) -> ReproduceOptions:
        if not self.budget_minutes > 0:
            raise ConfigError(f"--budget must be a positive number of minutes, got {self.budget_minutes}")
        if self.clock not in ("cpu", "wall"):
            raise ConfigError(f"--clock must be cpu or wall, got {self.clock!r}")
        for name in ("seeds", "eval_seeds", "classifier_steps", "domain_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.per_class_generated < 4:
            raise ConfigError(f"--per-class-generated must be at least 4, got {self.per_class_generated}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")
        if self.per_class is not None and self.per_class < 2:
            raise ConfigError(f"--per-class must be at least 2, got {self.per_class}")
        if not self.marks or not all(0 < m <= 1e6 for m in self.marks):
            raise ConfigError(f"--marks must be positive CPU-minutes, got {self.marks}")
        if self.n_boot < 2:
            raise ConfigError(f"--bootstrap must be at least 2, got {self.n_boot}")
        if self.gain_per_class is not None and (
            not self.gain_per_class or any(n < 2 for n in self.gain_per_class)
        ):
            raise ConfigError(f"--gain-per-class must be numbers of at least 2, got {self.gain_per_class}")
        self.gain_options()
        return self

    def gain_options(self) -> GainOptions:
        """The gain study's options (`gain`, `mstar`): the judge, its policy and the arms; checked."""
        return GainOptions(
            seeds=self.eval_seeds,
            ratios=tuple(self.gain_ratios),
            temperatures=tuple(self.gain_temperatures),
            classifier=judge_config(self),
            policy=self.gain_policy,
            interpolation=None if self.gain_interpolation is None else tuple(self.gain_interpolation),
            weak_classes=self.gain_weak_classes,
        ).validate()


def judge_config(opts: ReproduceOptions, steps: int | None = None) -> ClassifierConfig:
    """The classifier of every accuracy and of the domain features: the `--classifier` preset trained for
    `steps` (default `--classifier-steps`)."""
    from vaemsgan.evaluation.classifier import classifier_preset

    cfg = classifier_preset(opts.classifier, steps=steps or opts.classifier_steps)
    if opts.quick:  # the smoke test: the judge's shape at its narrowest (numbers mean nothing)
        cfg = replace(cfg, width=min(cfg.width, 8), max_width=min(cfg.max_width, 16), convs_per_block=1)
    return cfg


def judge_key(opts: ReproduceOptions) -> dict[str, Any]:
    """The judge's part of an evaluation key: empty for the default `small` judge, so that results computed
    before `--classifier` existed stay valid."""
    return {} if opts.classifier == "small" else {"classifier": judge_config(opts).to_dict()}


def quick(opts: ReproduceOptions) -> ReproduceOptions:
    """The smoke-test budget: tiny networks, 3 steps, minimal evaluation (numbers mean nothing)."""
    opts.quick = True
    opts.overrides = {**QUICK_OVERRIDES, **opts.overrides}
    opts.steps = opts.steps or 3
    opts.eval_seeds = 1
    opts.per_class_generated = min(opts.per_class_generated, 8)
    opts.classifier_steps = min(opts.classifier_steps, QUICK_CLASSIFIER_STEPS)
    opts.domain_steps = min(opts.domain_steps, 10)
    opts.n_boot = min(opts.n_boot, 4)
    opts.marks = [0.002, 0.004]  # `curves`: two snapshots a fraction of a second of training apart
    opts.gain_per_class = opts.gain_per_class or list(QUICK_GAIN_PER_CLASS)  # `gain`: tiny real sets
    return opts


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


# ---------------------------------------------------------------------------------------------- data
SUBSET_SEED = 0  # the seed of the `--per-class` subset of every run (recorded as data.subset_seed)


class Context:
    """Loads real data once per class set for all runs of an invocation (evaluation.core.RealSide: the
    domain extractor, real features and real-data classifiers are cached under --cache-dir)."""

    def __init__(self, opts: ReproduceOptions, log: Callable[[str], None]) -> None:
        self.opts, self.log = opts, log
        self._real: dict[tuple[str, ...] | None, RealSide] = {}
        self._logged: set[int] = set()
        self._all: Context | None = None

    def real(self, classes: list[str] | None) -> RealSide:
        key = tuple(classes) if classes else None
        if key not in self._real:
            o = self.opts
            kw = {
                "resolution": o.resolution,
                "channels": o.channels,
                "data_dir": o.data_dir,
                "classes": classes,
                "crop": o.crop,
            }
            # One subset whatever the training seed: every model sees the same images.
            train = load_images(o.data, split="train", per_class=o.per_class, seed=SUBSET_SEED, **kw)
            test = _test_split(o.data, train, kw)
            if o.quick:  # the smoke test: a few test images per class are enough to run every path
                test = test.per_class_subset(min(QUICK_TEST_PER_CLASS, min(test.counts())), 0)
            self.log(
                f"real data: {len(train)} training / {len(test)} test images, {len(train.class_names)} classes"
            )
            self._real[key] = RealSide(train, test, o.cache_dir, log=self.log)
        return self._real[key]

    def all_images(self, classes: list[str] | None) -> RealSide:
        """The real side with every training image, also when the runs train on a subset (`--per-class`): the
        feature space that measures a subset's generators is trained on everything the data has (as the gain
        study's judge), so that it is as credible as the full-data one and the same for every subset size."""
        if self.opts.per_class is None:
            return self.real(classes)
        if self._all is None:
            self._all = Context(replace(self.opts, per_class=None), self.log)
        return self._all.real(classes)

    def extractor(self, real: RealSide) -> Extractor:
        """The domain extractor of `real` (seed 0, --domain-steps), trained once and cached."""
        t0 = time.perf_counter()
        ext = real.domain_extractor(judge_config(self.opts, self.opts.domain_steps), seed=0)
        if id(real) not in self._logged:
            self._logged.add(id(real))
            self.log(
                f"domain extractor {'from cache' if ext.info['cache_hit'] else 'trained'} "
                f"in {time.perf_counter() - t0:.0f} s"
            )
        return ext


def _test_split(source: str, train: ImageSet, kw: dict[str, Any]) -> ImageSet:
    """The source's test split; a plain folder without one gets a test set of the training images (noted)."""
    from vaemsgan.data.imagefolder import split_layout

    if source in ("fashion-mnist", "fashion-mnist-mini") or split_layout(Path(source)) is not None:
        return load_images(source, split="test", **kw)
    return train
