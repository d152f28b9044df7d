"""Do generated samples repeat within a class (issue 25, session 15)? For N images per class, each image's pixel
RMS distance (0-255) to its nearest *other* image of the same class: the median per class and overall, and the
share of images with a near-twin (distance under --twin), for snapshots' generated images and for the real test
images (read as the first snapshot's run saw its data); and `repeats`, the library's twin share
(evaluation/memorisation.py: 50 images a class, closer than 0.4 of the real test images' median). Usage:
    python scripts/within_class_spread.py SNAPSHOT.pt [SNAPSHOT.pt ...] --data ../shared/data/cifar10
        [--per-class 100] [--twin 10] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vaemsgan.data import load_images
from vaemsgan.evaluation.core import matched_subset
from vaemsgan.evaluation.memorisation import (
    TWIN_PER_CLASS,
    leave_one_out_nn,
    mean_share,
    twin_shares,
    twin_thresholds,
)
from vaemsgan.experiments.runner import sample_checkpoint
from vaemsgan.inference import load_model


def nearest_other(images: torch.Tensor, labels: torch.Tensor, per_class: int) -> list[torch.Tensor]:
    """Per class: each of its first `per_class` images' RMS distance to the nearest other one of them."""
    return [
        leave_one_out_nn(images[labels == c][:per_class], contrast=False)
        for c in labels.unique(sorted=True).tolist()
    ]


def summary(dists: list[torch.Tensor], twin: float) -> dict[str, object]:
    every = torch.cat(dists)
    return {
        "median": float(every.median()),
        "median_per_class": [float(d.median()) for d in dists],
        "twin_share": float((every < twin).double().mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("snapshots", nargs="+", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--twin", type=float, default=10.0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)
    d = load_model(a.snapshots[0], "cpu", prefer_best=False).cfg.data
    real = load_images(a.data, split="test", resolution=d.resolution, channels=d.channels, crop=d.crop)
    k = len(real.class_names)
    pick = matched_subset(real, [TWIN_PER_CLASS] * k, 0)
    refs = twin_thresholds(real.images[pick], real.labels[pick], k)
    rows = [{"images": "real test", **summary(nearest_other(real.images, real.labels, a.per_class), a.twin)}]
    for snap in a.snapshots:
        gen = sample_checkpoint(snap, max(a.per_class, TWIN_PER_CLASS))
        repeats = mean_share(twin_shares(gen.images, gen.labels, refs))
        spread = summary(nearest_other(gen.images, gen.labels, a.per_class), a.twin)
        rows.append({"images": str(snap), **spread, "repeats": repeats})
    for r in rows:
        print(json.dumps(r), flush=True)
    if a.out:
        a.out.write_text(json.dumps({"data": a.data, "per_class": a.per_class, "twin": a.twin, "rows": rows}))


if __name__ == "__main__":
    main()
