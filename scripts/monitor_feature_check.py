"""Why the training monitor and the MSTAR curves disagreed (issue 23, session 12), and whether the fix agrees: the
KID of each curve snapshot's samples (50 per class) against the monitor's own fixed training subset, in the
feature space of the monitor's quick classifier (`train.monitor_classifier` = quick, as `Monitor.setup` builds
it), of the monitor with the `sar` judge preset (the fix, session 13) and of the curves' `sar` domain extractor,
and each classifier's accuracy on the test split. Usage (after `vaemsgan reproduce mstar --parts curves --out OUT`):
    python scripts/monitor_feature_check.py RUN [RUN ...] [--out runs/mstar] [--data ../shared/data/mstar-soc]
e.g. `acgan scarce`; writes OUT/monitor-vs-curve.json."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from vaemsgan.evaluation.classifier import accuracy
from vaemsgan.evaluation.monitor import Monitor
from vaemsgan.experiments.context import Context
from vaemsgan.experiments.mstar import mstar_options
from vaemsgan.experiments.runner import sample_checkpoint
from vaemsgan.metrics import density_coverage, kid
from vaemsgan.presets import build_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default="runs/mstar")
    ap.add_argument("--data", default="../shared/data/mstar-soc")
    ap.add_argument("--marks", default="10,30,60,120")
    a = ap.parse_args()
    torch.set_num_threads(1)
    opts = mstar_options(a.data)
    ctx = Context(opts, print)
    real = ctx.real(None)
    test = real.test
    monitors = {}
    for name in ("quick", "sar"):  # train.seed 0, as the curve runs
        cfg = build_config("scarce", {"train.monitor_classifier": name})
        monitors[name] = Monitor(cfg, real.train, tempfile.mkdtemp())
        monitors[name].setup(print)
    mon = monitors["quick"]
    sar = ctx.extractor(real)
    out = {
        "monitor_val_acc": accuracy(mon.extractor.model, test.images, test.labels),
        "sar_monitor_val_acc": accuracy(monitors["sar"].extractor.model, test.images, test.labels),
        "sar_val_acc": accuracy(sar.model, test.images, test.labels),
        "rows": [],
    }
    print(out)
    real_sar = sar(mon.real)
    for run in a.runs:
        for m in (float(x) for x in a.marks.split(",")):
            snap = Path(a.out) / "curves" / "runs" / run / "train" / "snapshots" / f"cpu-{m:g}min.pt"
            gen = sample_checkpoint(snap, mon.per_class)
            km, _ = kid(mon.real_feats, mon.extractor(gen.images), subsets=20, subset_size=500, seed=0)
            fixed = monitors["sar"]
            fixed_feats = fixed.extractor(gen.images)
            kf, _ = kid(fixed.real_feats, fixed_feats, subsets=20, subset_size=500, seed=0)
            _, coverage = density_coverage(fixed.real_feats, fixed_feats, k=5)
            ks, _ = kid(real_sar, sar(gen.images), subsets=20, subset_size=500, seed=0)
            row = {
                "run": run,
                "minutes": m,
                "kid_monitor_features": float(km),
                "kid_sar_monitor_features": float(kf),
                "coverage_sar_monitor_features": float(coverage),
                "kid_sar_features": float(ks),
            }
            print(row, flush=True)
            out["rows"].append(row)
    (Path(a.out) / "monitor-vs-curve.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
