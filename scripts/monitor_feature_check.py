"""Why the training monitor and the MSTAR curves disagree (issue 23, session 12): the KID of each curve snapshot's
samples (50 per class) against the monitor's fixed training subset, in the monitor's feature space
(MONITOR_CLASSIFIER, 150 steps) and in the curves' `sar` domain space, and each classifier's accuracy on val/.
Usage (after `reproduce mstar --parts curves` into /work/runs/mstar):
    python scripts/monitor_feature_check.py RUN [RUN ...]      e.g. acgan scarce
Writes /work/runs/monitor-vs-curve.json."""

import json
import sys
from pathlib import Path

import torch

from vaemsgan.evaluation.classifier import accuracy
from vaemsgan.evaluation.extractors import domain_extractor
from vaemsgan.evaluation.monitor import MONITOR_CLASSIFIER, REAL_SUBSET
from vaemsgan.experiments.mstar import DEFAULTS
from vaemsgan.experiments.runner import Context, ReproduceOptions, sample_checkpoint
from vaemsgan.metrics import kid

torch.set_num_threads(1)
opts = ReproduceOptions(
    data="/work/shared/data/mstar-soc",
    resolution=64,
    crop=64,
    classifier="sar",
    classifier_steps=DEFAULTS["classifier_steps"],
    domain_steps=DEFAULTS["domain_steps"],
)
ctx = Context(opts, print)
real = ctx.real(None)
tr, te = real.train, real.test
g = torch.Generator().manual_seed(0 + 4242)
sub = torch.randperm(len(tr.images), generator=g)[:REAL_SUBSET].sort().values
mon = domain_extractor(tr.images, tr.labels, list(tr.class_names), MONITOR_CLASSIFIER, seed=0)
sar = ctx.extractor(real)
out = {
    "monitor_val_acc": accuracy(mon.model, te.images, te.labels),
    "sar_val_acc": accuracy(sar.model, te.images, te.labels),
    "rows": [],
}
print(out)
rm, rs = mon(tr.images[sub]), sar(tr.images[sub])
for run in sys.argv[1:]:
    for m in (10, 30, 60, 120):
        gen = sample_checkpoint(f"/work/runs/mstar/curves/runs/{run}/train/snapshots/cpu-{m}min.pt", 50)
        km, _ = kid(rm, mon(gen.images), subsets=20, subset_size=500, seed=0)
        ks, _ = kid(rs, sar(gen.images), subsets=20, subset_size=500, seed=0)
        row = {"run": run, "minutes": m, "kid_monitor_features": float(km), "kid_sar_features": float(ks)}
        print(row, flush=True)
        out["rows"].append(row)
Path("/work/runs/monitor-vs-curve.json").write_text(json.dumps(out, indent=1))
