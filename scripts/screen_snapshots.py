"""A quick screen of generator snapshots on a labelled image folder (issue 25, session 16): per snapshot, 100
generated images per class judged four ways, without training any classifier (the curves' evaluation trains
three TSTR judges per snapshot):
- `intended`: the share the judge (the domain classifier of `--classifier`, trained on all training images and
  cached by the curves) classes as their intended class (real test images: its test accuracy);
- `kid` and `coverage` in the judge's features against 2,000 seeded real test images;
- `repeats`: the twin share (evaluation/memorisation.py: 50 a class, contrast-normalised);
- `near_copy`, `near_copy_plain`: the near-copy share against 5,000 seeded training images, the threshold the 1st
  percentile of 1,000 seeded test images' distances, contrast-normalised and in plain grey levels;
- `p2`, `p4`: the generated images' share of spectral power on the period-2 and period-4 lines over the real
  test images' (scripts/spectral_artifacts.py; 1 = as the real images).
Usage:
    python scripts/screen_snapshots.py SNAPSHOT.pt [SNAPSHOT.pt ...] --data ../shared/data/cifar10 --channels 3
        --classifier cifar [--out FILE.jsonl]
    python scripts/screen_snapshots.py SNAPSHOTS --data ../shared/data/mstar-soc --resolution 64 --crop 64 \
        --classifier sar
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from vaemsgan.cli.main import build_parser
from vaemsgan.cli.reproduce_cmd import options_from_args
from vaemsgan.evaluation.classifier import predict
from vaemsgan.evaluation.core import matched_subset
from vaemsgan.evaluation.memorisation import (
    mean_share,
    near_copy_threshold,
    pixel_nn,
    twin_shares,
    twin_thresholds,
)
from vaemsgan.experiments.context import Context
from vaemsgan.experiments.runner import sample_checkpoint
from vaemsgan.metrics import density_coverage, kid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spectral_artifacts import period_share, power_spectrum  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("snapshots", nargs="+", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--classifier", default="small")
    ap.add_argument("--crop", type=int, help="the runs' centre crop (SAR chips: 64)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)
    # The options `reproduce curves` builds from the same flags: the same judge, from the same cache.
    argv = ["reproduce", "curves", "--data", a.data, "--channels", str(a.channels), "--out", "unused"]
    argv += ["--resolution", str(a.resolution), "--classifier", a.classifier, "--no-progress"]
    argv += ["--crop", str(a.crop)] if a.crop else []
    opts = options_from_args(build_parser().parse_args(argv))
    ctx = Context(opts, print)
    real = ctx.real(None)
    judge = ctx.extractor(real)
    k = len(real.names)
    test = real.test.subset(matched_subset(real.test, [200] * k, 0))
    test_feats = judge(test.images)
    refs = twin_thresholds(test.images, test.labels, k)
    real_spec = power_spectrum(real.test.images)
    real_p = {p: period_share(real_spec, p) for p in (2, 4)}
    g = torch.Generator().manual_seed(0)
    nn_ref = real.train.images[torch.randperm(len(real.train), generator=g)[:5000]]
    nn_test = real.test.images[torch.randperm(len(real.test), generator=g)[:1000]]
    copy_thr = {c: near_copy_threshold(pixel_nn(nn_test, nn_ref, contrast=c)[0]) for c in (True, False)}

    def near_copies(images: torch.Tensor, contrast: bool) -> float:
        return float((pixel_nn(images, nn_ref, contrast=contrast)[0] <= copy_thr[contrast]).double().mean())

    right = predict(judge.model, test.images).eq(test.labels).double().mean()
    rows = [{"images": f"real test ({len(test)})", "intended": float(right)}]
    for snap in a.snapshots:
        gen = sample_checkpoint(snap, 100)
        feats = judge(gen.images)
        spec = power_spectrum(gen.images)
        rows.append(
            {
                "images": str(snap),
                "intended": float(predict(judge.model, gen.images).eq(gen.labels).double().mean()),
                "kid": float(kid(test_feats, feats, subsets=20, subset_size=500, seed=0)[0]),
                "coverage": float(density_coverage(test_feats, feats, k=5)[1]),
                "repeats": mean_share(twin_shares(gen.images, gen.labels, refs)),
                "near_copy": near_copies(gen.images, True),
                "near_copy_plain": near_copies(gen.images, False),
                "p2": period_share(spec, 2) / real_p[2],
                "p4": period_share(spec, 4) / real_p[4],
            }
        )
    for r in rows:
        print(json.dumps(r), flush=True)
    if a.out:
        a.out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
