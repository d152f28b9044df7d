"""Is the training monitor right on a small training set (issue 23, session 15)? For checkpoints of a gain-study
GAN trained on N MSTAR chips per class, three views of the same generated chips (100 per class):
- the run's own monitor space (its classifier, trained on those N chips per class): KID and coverage against its
  real images, as the monitor measured them during training;
- a classifier trained on half of the N chips per class, measured against the other half (images it never saw,
  as it never saw the generated ones);
- the `sar` judge trained on all 2,747 training chips: KID and coverage against the `val/` chips, and the share
  of generated chips it classes as their intended class.
Usage (after `vaemsgan reproduce mstar --parts gain` wrote a run with checkpoints every few hundred steps):
    python scripts/monitor_small_set_check.py RUN/train --steps 600,1200,1800,2400 [--per-class 27]
        [--data ../shared/data/mstar-soc] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from vaemsgan.config import Config
from vaemsgan.evaluation.classifier import classifier_preset, predict
from vaemsgan.evaluation.extractors import domain_extractor
from vaemsgan.evaluation.monitor import Monitor
from vaemsgan.experiments.context import Context
from vaemsgan.experiments.mstar import mstar_options
from vaemsgan.experiments.runner import sample_checkpoint
from vaemsgan.metrics import density_coverage, kid


def halves(labels: torch.Tensor, n_cls: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded half of each class, and the rest."""
    g = torch.Generator().manual_seed(seed)
    fit, ref = [], []
    for c in range(n_cls):
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        fit.append(idx[: len(idx) // 2])
        ref.append(idx[len(idx) // 2 :])
    return torch.cat(fit), torch.cat(ref)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path, help="the run's train/ folder")
    ap.add_argument("--steps", required=True)
    ap.add_argument("--per-class", type=int, default=27)
    ap.add_argument("--data", default="../shared/data/mstar-soc")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)
    steps = [int(s) for s in a.steps.split(",")]
    opts = mstar_options(a.data)
    ctx = Context(opts, print)
    real = ctx.real(None)
    judge = ctx.extractor(real)
    sub = Context(replace(opts, per_class=a.per_class), print).real(None).train
    state = torch.load(
        a.run / "checkpoints" / f"step-{steps[0]:07d}.pt", map_location="cpu", weights_only=True
    )
    cfg = Config.from_dict({k: v for k, v in state["config"].items() if k != "preset"})
    monitor = Monitor(cfg, sub, Path(tempfile.mkdtemp()))
    monitor.setup(print)
    fit, ref = halves(sub.labels, len(sub.class_names), cfg.train.seed + 4242)
    held = domain_extractor(
        sub.images[fit], sub.labels[fit], sub.class_names, classifier_preset("sar"), seed=cfg.train.seed
    )
    held_ref = held(sub.images[ref])
    val = judge(real.test.images)
    rows = []
    for s in steps:
        gen = sample_checkpoint(a.run / "checkpoints" / f"step-{s:07d}.pt", 100)
        row: dict[str, float] = {"step": s}
        for name, ext, reals, size in (
            ("monitor", monitor.extractor, monitor.real_feats, 200),
            ("held_out", held, held_ref, 100),
            ("judge", judge, val, 500),
        ):
            f = ext(gen.images)
            row[f"{name}_kid"] = float(kid(reals, f, subsets=20, subset_size=size, seed=0)[0])
            row[f"{name}_coverage"] = float(density_coverage(reals, f, k=5)[1])
        row["judge_classed_as_intended"] = float(
            (predict(judge.model, gen.images) == gen.labels).double().mean()
        )
        print(row, flush=True)
        rows.append(row)
    if a.out:
        a.out.write_text(json.dumps({"run": str(a.run), "per_class": a.per_class, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
