"""Why the training monitor and the MSTAR curves disagree (issue 23, session 12): the KID of each curve snapshot's
samples (50 per class) against the monitor's own fixed training subset, in the monitor's feature space (its
MONITOR_CLASSIFIER, as `Monitor.setup` builds it) and in the curves' `sar` domain space, and each classifier's
accuracy on the test split. Usage (after `vaemsgan reproduce mstar --parts curves --out OUT`):
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
from vaemsgan.experiments.mstar import DEFAULTS
from vaemsgan.experiments.runner import Context, ReproduceOptions, sample_checkpoint
from vaemsgan.metrics import kid
from vaemsgan.presets import build_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default="runs/mstar")
    ap.add_argument("--data", default="../shared/data/mstar-soc")
    ap.add_argument("--marks", default="10,30,60,120")
    a = ap.parse_args()
    torch.set_num_threads(1)
    opts = ReproduceOptions(
        data=a.data,
        resolution=DEFAULTS["resolution"],
        crop=DEFAULTS["crop"],
        classifier=DEFAULTS["classifier"],
        classifier_steps=DEFAULTS["classifier_steps"],
        domain_steps=DEFAULTS["domain_steps"],
    )
    ctx = Context(opts, print)
    real = ctx.real(None)
    test = real.test
    mon = Monitor(build_config("scarce"), real.train, tempfile.mkdtemp())  # train.seed 0, as the curve runs
    mon.setup(print)
    sar = ctx.extractor(real)
    out = {
        "monitor_val_acc": accuracy(mon.extractor.model, test.images, test.labels),
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
            ks, _ = kid(real_sar, sar(gen.images), subsets=20, subset_size=500, seed=0)
            row = {"run": run, "minutes": m, "kid_monitor_features": float(km), "kid_sar_features": float(ks)}
            print(row, flush=True)
            out["rows"].append(row)
    (Path(a.out) / "monitor-vs-curve.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
