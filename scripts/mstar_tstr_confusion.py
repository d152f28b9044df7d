"""Where TSTR loses on MSTAR: the confusion matrix, on the real `val/` chips, of the `sar` judge trained on a
snapshot's generated chips (as the curves' TSTR, one classifier seed), and with --with-real that of the judge
trained on as many real chips per class; with --truncation T the generated chips are those of
`vaemsgan generate --truncation T` (latents resampled where |z| > T). Usage:
    python scripts/mstar_tstr_confusion.py SNAPSHOT.pt [--data ../shared/data/mstar-soc] [--seed 0] [--with-real]
        [--truncation T]
"""

from __future__ import annotations

import argparse
import json

import torch

from vaemsgan.evaluation.classifier import predict, train_classifier
from vaemsgan.experiments.context import Context, judge_config
from vaemsgan.experiments.mstar import mstar_options
from vaemsgan.experiments.runner import sample_checkpoint


def confusion(pred: torch.Tensor, labels: torch.Tensor, n: int) -> list[list[int]]:
    m = torch.zeros(n, n, dtype=torch.long)
    for t, p in zip(labels.tolist(), pred.tolist()):
        m[t, p] += 1
    return m.tolist()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("snapshot")
    ap.add_argument("--data", default="../shared/data/mstar-soc")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-class", type=int, default=232)
    ap.add_argument("--truncation", type=float, default=None, help="sample with this truncation")
    ap.add_argument("--with-real", action="store_true", help="also the judge trained on real chips (TRTR)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    opts = mstar_options(a.data)
    real = Context(opts, print).real(None)
    names, n = real.train.class_names, len(real.train.class_names)
    gen = sample_checkpoint(a.snapshot, a.per_class, truncation=a.truncation)
    out = {"class_names": names, "truncation": a.truncation, "seed": a.seed}
    sides = [("generated", gen)] + ([("real", real.train)] if a.with_real else [])
    for side, s in sides:
        g = torch.Generator().manual_seed(a.seed)
        idx = torch.cat(
            [(s.labels == c).nonzero().flatten()[torch.randperm(int((s.labels == c).sum()), generator=g)][: a.per_class]
             for c in range(n)]
        )  # fmt: skip
        m = train_classifier(s.images[idx], s.labels[idx], n, judge_config(opts), seed=a.seed)
        pred = predict(m, real.test.images)
        out[side] = {
            "accuracy": float((pred == real.test.labels).double().mean()),
            "confusion": confusion(pred, real.test.labels, n),
        }
        print(f"trained on {side} chips: {100 * out[side]['accuracy']:.1f}% on val/; rows = true class:")
        print("        " + " ".join(f"{c[:6]:>6}" for c in names))
        for c, row in zip(names, out[side]["confusion"]):
            print(f"{c[:6]:>6}  " + " ".join(f"{v:6d}" for v in row))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
