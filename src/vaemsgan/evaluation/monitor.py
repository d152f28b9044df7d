"""Training monitor: every `train.monitor_every` steps, judge the EMA generator on a fixed subset.

On fixed real images and fixed latents (so values are comparable across steps) it measures, in the
`domain` feature space (a classifier trained once on the training images, cached on disk: a quick one, or the
judge preset `train.monitor_classifier` names):
- `monitor/kid`: KID between generated and real features (lower is better);
- `monitor/coverage`: share of real images with a generated one in their k-NN ball (Naeem et al.);
- `monitor/diversity`: per class, mean pairwise feature distance of generated / of real images,
  averaged over classes (1 = as varied as the data; a collapsing class falls toward 0);
- `monitor/near_copy`: share of generated images closer in pixels (contrast-normalised, memorisation.py) to a
  training image than 99% of the training images are to their nearest *other* training image (leave-one-out:
  there is no test set here). Runs logged before session 17 measured it in plain grey levels;
- `monitor/repeats`: share of generated images with a twin in their class (evaluation/memorisation.py: a
  nearest other sample closer than 0.4 of the real images' median nearest-other distance, contrast-normalised;
  real images: 0).
Values go to metrics.jsonl (through the trainer) and RUN/monitor.png; when `train.best_metric` improves on a
run that has reached quality (below) the trainer keeps RUN/best.pt, and collapse or memorisation is reported in
words.

A collapse verdict (on which the trainer rolls back, stops or warns: `train.collapse_action`) is a fall from a
good state: KID above 3x its best so far (a warm-up check is never the best) at two checks in a row, with the
coverage or the diversity fallen to `COLLAPSE_FALL` (0.8) of the best check's beside it or the KID above
`COLLAPSE_KID_JUMP` (10) x its best, once the run has reached quality, i.e. some earlier check from the
`QUALITY_WARMUP_CHECKS`-th (3rd) on had a KID at most `QUALITY_KID_FRACTION` (1/4) of the run's first check's
with a coverage of at least `QUALITY_KID_COVERAGE` (0.25), or a coverage of at least `QUALITY_COVERAGE` (0.5).
Before that the generator is still noise or blobs, whose KID swings by 10x and more from check to check (4.7e3,
4.0e4, 7.7e4 on 64 px SAR chips): no verdict, nothing to roll back to, and no best.pt (until a run reaches
quality, generate and evaluate take its newest checkpoint).

The Trainer does not import this module: a higher layer (the CLI, the experiments) builds a `Monitor` and
hands it to the Trainer, which calls it as a `training.outputs.TrainingMonitor`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vaemsgan.config import Config, TrainConfig
from vaemsgan.data import ImageSet
from vaemsgan.evaluation.classifier import ClassifierConfig, classifier_preset
from vaemsgan.evaluation.extractors import Extractor, domain_extractor
from vaemsgan.evaluation.memorisation import (
    TWIN_WARN_SHARE,
    leave_one_out_nn,
    mean_pairwise_distance,
    mean_share,
    near_copy_threshold,
    pixel_nn,
    pixel_rows,
    twin_shares,
    twin_thresholds,
)
from vaemsgan.evaluation.monitor_plot import plot_monitor
from vaemsgan.metrics import density_coverage, kid
from vaemsgan.models import is_conditional
from vaemsgan.training.outputs import MonitorCheck, SampleFn
from vaemsgan.training.steplog import monitor_records

# `train.monitor_classifier` = "quick": small on purpose, ~10 s of classifier training. Enough where classes
# differ at a glance (Fashion-MNIST), not on SAR chips: 72% right on MSTAR's val/ (the `sar` judge: 98.7%), and
# its features ranked an AC-GAN that collapsed within classes best at its collapse (docs/RESULTS.md, "MSTAR").
MONITOR_CLASSIFIER = ClassifierConfig(steps=150, batch_size=64)


def monitor_classifier(cfg: Config) -> ClassifierConfig:
    """The classifier the monitor measures in (`train.monitor_classifier`): the quick one or a judge preset."""
    name = cfg.train.monitor_classifier
    return MONITOR_CLASSIFIER if name == "quick" else classifier_preset(name)


# Each check logs its feature space as a number (`monitor/space`, metrics.jsonl holds numbers): values measured
# in two spaces differ by 10x and more, so a run resumed in another space (a run trained before
# `train.monitor_classifier` existed, continued with a judge's) judges and picks best.pt from its new checks
# only. Checks logged without it were measured in the quick space. The code is the index among the option's
# choices (config.py: append only, the codes are on disk).
MONITOR_SPACES: tuple[str, ...] = tuple(
    TrainConfig.__dataclass_fields__["monitor_classifier"].metadata["choices"]
)


def monitor_space(cfg: Config) -> float:
    return float(MONITOR_SPACES.index(cfg.train.monitor_classifier))


REAL_SUBSET = 1000  # fixed real images compared against (at most)
NN_REFERENCE = 5000  # training images a near-copy is searched among (at most)
# Direction of each criterion: +1 = higher is better.
MONITOR_KEYS = (
    "kid",
    "coverage",
    "diversity",
    "diversity_min",
    "near_copy",
    "repeats",
)  # what `measure` returns
# Keys added later: a run logged before them is read back with nan there (its checks still count on resume).
LATER_MONITOR_KEYS = ("repeats",)
# The near-copy share's pixel distance, logged with every check (`monitor/pixels`): checks logged without it
# measured in plain grey levels (before session 17), whose shares are not comparable; they are read back as nan.
PIXEL_DISTANCE_CODE = 1.0
BETTER = {"kid": -1, "coverage": +1, "diversity": +1}
# A run has reached quality (so that a KID rise can be a collapse) once a check had a KID at most this share of
# the first check's (the first checks of healthy Fashion-MNIST runs fall 300 -> 50 within a few hundred steps)
# or at least this coverage (scale-free: half the real images have a generated neighbour; noise has ~none).
QUALITY_KID_FRACTION = 0.25
QUALITY_COVERAGE = 0.5
# ... but a KID fall counts only with this coverage beside it: on a small training set the monitor's classifier
# (trained on those few images) ranks blobs above vehicles. A 27-chips-per-class MSTAR run fell from 2.3e5 to
# 4.8e4 (step 600, coverage 0.19) and then rose 3x while, judged by the classifier trained on all 2,747 chips,
# it improved (its chips classed as intended 45% -> 80%, coverage 0.20 -> 0.35 by step 2,400): the old rule rolled
# it back to step 600 (docs/RESULTS.md, "The monitor on 27 chips per class"). Noise covers 0-0.08.
QUALITY_KID_COVERAGE = 0.25
# ... and not before this many checks: the first checks are the warm-up, whose KID swings by 10x and more
# (15,466 -> 1,092 -> 2,939 in the first 300 steps of the 64 px SAR run), so one lucky early check is no quality,
# and no best state either (best.pt, the reference of a collapse verdict): a 64 px SAR run's step-200 KID of 875
# was its best for 1,100 steps, and its ordinary rise to 2,947 by step 1,300 was judged a collapse from it.
QUALITY_WARMUP_CHECKS = 3
# A KID rise is a collapse only with a loss the other measures see, or a jump of an order of magnitude: near
# its floor the KID triples without any. The CIFAR-10 `default` run (session 19, `cifar` judge's features) went
# from its best 0.52 (step 10,000) to 1.3-2.0 within 5,000 steps, coverage 0.82-0.85 and diversity 0.86-0.87
# all along, and its domain FID and TSTR held or improved (30 -> 60 CPU-minutes): the 3x rule alone rolled it
# back. Collapses seen before lost coverage (Fashion-MNIST, 100 per class: KID 2.6 -> 41.6, coverage 0.76 ->
# 0.44, diversity 0.56) or jumped 10x and more.
COLLAPSE_FALL = 0.8
COLLAPSE_KID_JUMP = 10.0


class Monitor:
    """Measures a training run's generator on a fixed subset; see the module docstring.

    Cheap to build: the subset, the reference distances and the domain classifier are prepared at the
    first check (a run shorter than `train.monitor_every` never pays for them).
    """

    warmup_checks: int = QUALITY_WARMUP_CHECKS  # checks before quality can be judged (module docstring)

    def __init__(self, cfg: Config, data: ImageSet, run_dir: str | Path, per_class: int = 50) -> None:
        self.cfg, self.data, self.run_dir, self.per_class = cfg, data, Path(run_dir), per_class
        self.space = monitor_space(cfg)  # the feature space's code, logged with every check
        self.history: list[dict[str, float]] = []
        self.judge_from = 0  # collapse is judged on history[judge_from:] (reset after a rollback)
        self.noted_early_rise = False  # "KID rose, but the run has not reached quality yet" is said once
        self.best: float | None = None
        self.ready = False

    def setup(self, log: Callable[[str], None]) -> None:
        t0 = time.perf_counter()
        seed = self.cfg.train.seed
        images, labels = self.data.images.cpu(), self.data.labels.cpu()
        g = torch.Generator().manual_seed(seed + 4242)
        self.num_classes = len(self.data.class_names)
        self.class_names = list(self.data.class_names)
        sub = torch.randperm(len(images), generator=g)[:REAL_SUBSET].sort().values
        self.real, self.real_labels = images[sub], labels[sub]
        ref = torch.randperm(len(images), generator=g)[:NN_REFERENCE].sort().values
        self.nn_ref = images[ref]
        self.nn_rows = pixel_rows(self.nn_ref, contrast=True)  # standardised once, searched at every check
        self.threshold = near_copy_threshold(leave_one_out_nn(self.nn_ref, contrast=True, rows=self.nn_rows))
        self.extractor: Extractor = domain_extractor(
            images, labels, self.class_names, monitor_classifier(self.cfg), seed=seed
        )
        self.real_feats = self.extractor(self.real)
        self.real_div = [
            mean_pairwise_distance(self.real_feats[self.real_labels == c]) for c in range(self.num_classes)
        ]
        conditional = is_conditional(self.cfg, self.num_classes)
        self.twin_refs = self._twin_refs(images, labels if conditional else torch.zeros_like(labels), seed)
        n = self.per_class * (self.num_classes if conditional else 1)
        self.z = torch.randn(n, self.cfg.model.latent_dim, generator=g)
        self.y = torch.arange(self.num_classes).repeat_interleave(self.per_class) if conditional else None
        self.best = self._previous_best()
        self.ready = True
        self.setup_s = time.perf_counter() - t0
        hit = "loaded from cache" if self.extractor.info["cache_hit"] else "trained"
        log(f"monitor: domain classifier {hit}; ready in {self.setup_s:.1f} s")

    def _twin_refs(self, images: torch.Tensor, labels: torch.Tensor, seed: int) -> list[tuple[float, int]]:
        """The repeats' per-class thresholds from `per_class` seeded real images of each class (a generator
        of its own: the fixed latents stay those of runs monitored before this measure existed)."""
        g = torch.Generator().manual_seed(seed + 4343)
        classes = int(labels.max()) + 1 if len(labels) else 0
        pick = [(labels == c).nonzero().flatten() for c in range(classes)]
        idx = torch.cat([i[torch.randperm(len(i), generator=g)[: self.per_class]] for i in pick])
        return twin_thresholds(images[idx], labels[idx], classes, self.per_class)

    def _previous_best(self) -> float | None:
        """A resumed run keeps improving on the best.pt it already has."""
        found = self._stored_best()
        return found[0] if found is not None else None

    def _stored_best(self) -> tuple[float, int] | None:
        """(value, step) of RUN/best.pt when it was measured in this feature space, else None."""
        path = self.run_dir / "best.pt"
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            best = state.get("monitor", {})
            if float(best.get("space", 0.0)) != self.space:
                return None  # measured in another feature space: not comparable
            value = best.get(self.cfg.train.best_metric)
            step = best.get("step", state.get("step"))
            return (float(value), int(step)) if value is not None and step is not None else None
        except Exception:  # noqa: BLE001 - an unreadable best.pt is replaced by the next best
            return None

    def _drop_best_before_quality(self, log: Callable[[str], None]) -> None:
        """A resumed run's best.pt kept (by the rule before session 15) before the run reached quality is no best
        state: it is moved aside (RUN/best-before-quality.pt, kept), so that generate, evaluate and a rollback do
        not take it, and the next check since quality is the best."""
        found = self._stored_best()
        if found is None:
            return
        reached = self.quality_check()
        if reached is not None and found[1] >= reached["step"]:
            return
        (self.run_dir / "best.pt").replace(self.run_dir / "best-before-quality.pt")
        self.best = None
        log(
            f"monitor: best.pt (step {found[1]}) was kept before the run reached quality; moved to "
            "best-before-quality.pt (generate and evaluate take the newest checkpoint until a best state exists)"
        )

    def _logged_history(self, before: int) -> list[dict[str, float]]:
        """The checks a resumed run already logged (metrics.jsonl, trimmed to its checkpoint on resume),
        so that monitor.png and the collapse verdict span the whole run, not only this process's part."""
        by_step: dict[int, dict[str, float]] = {}
        for rec in monitor_records(self.run_dir / "metrics.jsonl", up_to_step=before - 1):
            needed = (k for k in MONITOR_KEYS if k not in LATER_MONITOR_KEYS)
            if all(key in rec.values for key in needed) and rec.values.get("space", 0.0) == self.space:
                values = {k: rec.values.get(k, float("nan")) for k in MONITOR_KEYS}
                if rec.values.get("pixels") != PIXEL_DISTANCE_CODE:
                    values["near_copy"] = float("nan")
                by_step[rec.step] = {"step": rec.step, **values}
        return [by_step[s] for s in sorted(by_step)]

    def samples(self, sample: SampleFn) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images of the fixed latents from the trainer's sampling (EMA) generator."""
        labels = self.y if self.y is not None else torch.zeros(len(self.z), dtype=torch.long)
        return sample(self.z, self.y), labels

    def measure(self, sample: SampleFn) -> dict[str, float]:
        """The monitor values (MONITOR_KEYS) for the generator as it is now."""
        imgs, labels = self.samples(sample)
        feats = self.extractor(imgs)
        kid_mean, _ = kid(self.real_feats, feats, subsets=20, subset_size=min(500, len(feats)), seed=0)
        _, coverage = density_coverage(self.real_feats, feats, k=5)
        ratios = []
        for c in range(self.num_classes if self.y is not None else 1):
            mine = feats[labels == c] if self.y is not None else feats
            real_div = self.real_div[c] if self.y is not None else mean_pairwise_distance(self.real_feats)
            if len(mine) > 1 and real_div > 0:
                ratios.append(mean_pairwise_distance(mine) / real_div)
        gen_nn, _ = pixel_nn(imgs, self.nn_ref, contrast=True, ref_rows=self.nn_rows)
        repeats = mean_share(twin_shares(imgs, labels, self.twin_refs))
        return {
            "kid": float(kid_mean),
            "coverage": float(coverage),
            "diversity": float(sum(ratios) / len(ratios)) if ratios else float("nan"),
            "diversity_min": float(min(ratios)) if ratios else float("nan"),
            "near_copy": float((gen_nn <= self.threshold).double().mean()),
            "repeats": repeats,
        }

    def __call__(self, sample: SampleFn, step: int, log: Callable[[str], None]) -> MonitorCheck:
        """Measure, warn, plot; the check says what to log, whether this is the best state, and any collapse."""
        if not self.ready:
            self.setup(log)
            self.history = self._logged_history(before=step)
            self._drop_best_before_quality(log)
        t0 = time.perf_counter()
        values = self.measure(sample)
        metric = self.cfg.train.best_metric
        value = values[metric]
        # A warm-up check is never the best state: a lucky early KID would make best.pt, and the reference of
        # every later collapse verdict, a generator that was still noise. Nor is any check before the run has
        # reached quality (this one counts): until then the monitor's values rank noise and blobs.
        warmed_up = len(self.history) >= self.warmup_checks - 1
        self.history.append({"step": step, **values})
        improved = (
            warmed_up
            and not math.isnan(value)
            and (self.best is None or (value - self.best) * BETTER[metric] > 0)
            and self._quality_index() is not None
        )
        if improved:
            self.best = value
        record: dict[str, Any] = {"step": step, **{f"monitor/{k}": v for k, v in values.items()}}
        record["monitor/best"] = float(improved)
        record["monitor/space"] = self.space
        record["monitor/pixels"] = PIXEL_DISTANCE_CODE
        record["monitor/seconds"] = time.perf_counter() - t0
        for line in self.warnings():
            log(f"warning: {line}")
        verdict, early = self.judge()
        if early is not None and not self.noted_early_rise:
            self.noted_early_rise = True
            log(f"monitor: {early}")
        self.plot(self.run_dir / "monitor.png")
        best = {**values, "step": step, "space": self.space} if improved else None
        return MonitorCheck(record, best, verdict)

    def rolled_back(self) -> None:
        """The trainer went back to best.pt: judge the continued run afresh (the rise is measured from the best
        check since then). Whether the run has reached quality stays judged on the whole history: the state
        rolled back to had reached it (there is no verdict, so no rollback, before), and the reference stays
        the run's real first check, history[0] (also after a resume: the logged checks are read back)."""
        self.judge_from = len(self.history)

    def _reference_start(self, reached: int | None) -> int:
        """Index of the first check that may be the best (the reference of a verdict or a warning): never a
        warm-up check, nor one before the last rollback, nor one before history[reached], the check that showed
        quality (as for best.pt, a rollback's target)."""
        return max(self.judge_from, self.warmup_checks - 1, reached or 0)

    def _quality_index(self, upto: int | None = None) -> int | None:
        """Index of the first of `history[:upto]`, from the QUALITY_WARMUP_CHECKS-th on, that shows the run has
        reached quality, or None: a KID at most QUALITY_KID_FRACTION x the first check's with a coverage of at
        least QUALITY_KID_COVERAGE, or a coverage of at least QUALITY_COVERAGE (module docstring)."""
        kids = [r["kid"] for r in self.history if not math.isnan(r["kid"])]
        first = kids[0] if kids else math.nan
        checks = self.history[:upto]
        for i in range(self.warmup_checks - 1, len(checks)):
            kid_, cov = checks[i]["kid"], checks[i].get("coverage", math.nan)
            kid_fell = not math.isnan(kid_) and kid_ <= QUALITY_KID_FRACTION * first
            if (kid_fell and cov >= QUALITY_KID_COVERAGE) or cov >= QUALITY_COVERAGE:
                return i
        return None

    def quality_check(self, upto: int | None = None) -> dict[str, float] | None:
        """The check of `_quality_index` (the first of `history[:upto]` that shows quality), or None."""
        i = self._quality_index(upto)
        return self.history[i] if i is not None else None

    def judge(self, factor: float = 3.0, patience: int = 2) -> tuple[str | None, str | None]:
        """(collapse verdict, note): a verdict when, at the last `patience` checks, the KID is above `factor` x
        the best KID since the last rollback (and the warm-up, and the check that showed quality) with a loss
        beside it (`fell_from`), from a run that had reached quality before those checks (`quality_check`). A
        collapsed generator's KID jumps by an order of magnitude within a few hundred steps, or rises as its
        coverage or diversity falls; ordinary noise between checks of a trained generator stays well under 2x,
        and near the KID's floor a 3x drift with nothing else moving is no collapse (COLLAPSE_FALL). The same
        rise before quality is the noise of the first minutes: no verdict, only a note in words."""
        reached = self._quality_index(upto=len(self.history) - patience)
        judged = [r for r in self.history[self._reference_start(reached) :] if not math.isnan(r["kid"])]
        if len(judged) <= patience:
            return None, None
        ref = min(judged[:-patience], key=lambda r: r["kid"])
        recent = judged[-patience:]
        if not (ref["kid"] > 0 and all(fell_from(r, ref, factor) for r in recent)):
            return None, None
        kids = ", ".join(f"{r['kid']:.3g}" for r in recent)
        rise = (
            f"the monitor's KID rose from its best {ref['kid']:.3g} (step {int(ref['step'])}) to "
            f"{kids} at the last {patience} checks (coverage "
            f"{ref.get('coverage', math.nan):.2f} -> {recent[-1].get('coverage', math.nan):.2f}, diversity "
            f"{ref.get('diversity', math.nan):.2f} -> {recent[-1].get('diversity', math.nan):.2f})"
        )
        if reached is None:
            first = next((r for r in self.history if not math.isnan(r["kid"])), judged[0])
            return None, (
                f"{rise}, but the run has not reached quality yet (no check with a KID at most "
                f"{QUALITY_KID_FRACTION:g}x the first check's {first['kid']:.3g} (step {first['step']}) with a "
                f"coverage of {QUALITY_KID_COVERAGE:g}, or a coverage of {QUALITY_COVERAGE:g}): the ups and downs "
                "of a generator still making noise or blobs, "
                "not a collapse (said once; a collapse is judged once the run has reached quality)"
            )
        return f"{rise}: the generator collapsed", None

    def collapsed(self, factor: float = 3.0, patience: int = 2) -> str | None:
        """The collapse verdict of `judge`, or None."""
        return self.judge(factor, patience)[0]

    def warnings(self) -> list[str]:
        """Collapse (diversity falling well below that of the best state so far) and memorisation (copies
        rising). The reference is the check with the lowest KID, not the most diverse one: the first
        samples are noise, more varied than any data (1.1x the data's at 100 images per class), and a
        healthy run's diversity falls from there as the images become garments."""
        h = self.history
        if len(h) < 2:
            return []
        now, prev = h[-1], h[-2]
        out = []
        reached = self._quality_index(upto=len(h) - 1)
        earlier = [
            r
            for r in h[self._reference_start(reached) : -1]
            if not (math.isnan(r["kid"]) or math.isnan(r["diversity"]))
        ]
        ref = min(earlier, key=lambda r: r["kid"]) if earlier else None
        # Before the run has reached quality, diversity falling from the noise's (1.4x the data's on SAR chips)
        # toward the data's is learning, not a collapse; so is a fall from above the data's own diversity at any
        # time (the reference counts as at most 1, the data's: 1.40 -> 0.92 at steps 200-500 on SAR chips).
        if (
            ref is not None
            and reached is not None
            and now["diversity"] < 0.7 * min(ref["diversity"], 1.0)
            and now["diversity"] < prev["diversity"]
        ):
            out.append(
                f"step {now['step']}: sample diversity fell to {now['diversity']:.2f} of the data's "
                f"({ref['diversity']:.2f} at step {ref['step']}, the best KID so far): the generator may be "
                "collapsing; best.pt keeps an earlier state"
            )
        elif now["diversity_min"] < 0.3:
            out.append(
                f"step {now['step']}: one class's samples are far less varied than its real images "
                f"({now['diversity_min']:.2f} of the data's diversity): partial mode collapse"
            )
        # Shares logged in another pixel distance (nan) are not compared: a lower one counts as 0 and the first
        # check is the first comparable one.
        copies = [r for r in h if not math.isnan(r["near_copy"])]
        prev_copy = 0.0 if math.isnan(prev["near_copy"]) else prev["near_copy"]
        if (
            not math.isnan(now["near_copy"])
            and now["near_copy"] > max(0.05, 2 * prev_copy)
            and now["near_copy"] > copies[0]["near_copy"]
        ):
            out.append(
                f"step {now['step']}: {now['near_copy']:.0%} of the samples are near-copies of training images "
                f"(expected about 1% for new images; {prev_copy:.0%} at step {prev['step']}): the "
                "generator is memorising; consider stronger augmentation or stopping at best.pt"
            )
        # Said at a new high only (not at every check of a long run), and not in the warm-up; highs of the
        # warm-up's blobs or of a stretch a rollback abandoned do not silence a later one.
        repeats = now.get("repeats", math.nan)
        since = h[self._reference_start(None) : -1]
        earlier_repeats = [v for r in since if not math.isnan(v := r.get("repeats", math.nan))]
        if (
            len(h) >= self.warmup_checks
            and repeats > TWIN_WARN_SHARE
            and repeats > max(earlier_repeats, default=0.0)
        ):
            out.append(
                f"step {now['step']}: {repeats:.0%} of the samples have a near-twin in their class (real images: "
                "none at that distance): the generator repeats itself within classes, a partial mode collapse"
            )
        return out

    def plot(self, path: Path) -> None:
        """RUN/monitor.png (monitor_plot.py)."""
        plot_monitor(self.history, path)


def fell_from(check: dict[str, float], ref: dict[str, float], factor: float = 3.0) -> bool:
    """Whether `check` fell from `ref` as a collapse does: its KID above `factor` x the reference's, with its
    coverage or its diversity at most COLLAPSE_FALL of the reference's (the diversity's counted as at most 1,
    the data's; see `warnings`) or its KID above COLLAPSE_KID_JUMP x. A value not measured (nan) shows no fall."""
    kid_, best = check["kid"], ref["kid"]
    if not kid_ > factor * best:
        return False
    if kid_ > COLLAPSE_KID_JUMP * best:
        return True
    cov, ref_cov = check.get("coverage", math.nan), ref.get("coverage", math.nan)
    div, ref_div = check.get("diversity", math.nan), ref.get("diversity", math.nan)
    return cov <= COLLAPSE_FALL * ref_cov or div <= COLLAPSE_FALL * min(ref_div, 1.0)
