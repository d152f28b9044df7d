"""Reconstruction quality of a trained model's encoder + generator on real Fashion-MNIST test images.

The measurement `vaemsgan reproduce gain` records for each of its GANs (experiments/gain_study.py,
`reconstruction_part`), for any checkpoint: PER_CLASS real test images per class (seeded, seed 0), encoded to
their posterior means and decoded as `vaemsgan reconstruct` does; pixel MAE / RMSE (0-1 scale), PSNR, SSIM
(metrics/reconstruction.py), and the accuracy of the domain classifier of ALL real training images (600
steps, seed 0: the `evaluate` FID feature network, read from the domain cache when it is there) on the
reconstructions and on the originals. The checkpoint is only read.

    PYTHONPATH=src .venv/bin/python benchmarks/reconstruction_quality.py CHECKPOINT [PER_CLASS] [OUT.json]
"""

from __future__ import annotations

import json
import sys
import time

import torch

from vaemsgan.data import load_images
from vaemsgan.evaluation.classifier import ClassifierConfig
from vaemsgan.evaluation.core import RealSide
from vaemsgan.experiments.gain_study import reconstruction_part
from vaemsgan.inference import load_model


def main(checkpoint: str, per_class: int = 100, out: str | None = None) -> dict:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = load_model(checkpoint, "cpu")
    size, channels = model.cfg.data.resolution, model.cfg.data.channels
    train = load_images("fashion-mnist", split="train", resolution=size, channels=channels)
    test = load_images("fashion-mnist", split="test", resolution=size, channels=channels)
    ext = RealSide(train, test).domain_extractor(ClassifierConfig(steps=600), seed=0)
    res = reconstruction_part(model, test, ext.model, per_class=per_class, seed=0)
    res = {
        "checkpoint": str(model.checkpoint),
        "checkpoint_sha256": model.checkpoint_sha256,
        "step": model.step,
        "preset": model.cfg.preset,
        "judge": {"cache_file": ext.info.get("cache_file"), "cache_hit": ext.info.get("cache_hit")},
        **res,
        "total_seconds": time.perf_counter() - t0,
    }
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    return res


if __name__ == "__main__":
    if not 2 <= len(sys.argv) <= 4:
        sys.exit(__doc__)
    main(
        sys.argv[1],
        int(sys.argv[2]) if len(sys.argv) > 2 else 100,
        sys.argv[3] if len(sys.argv) > 3 else None,
    )
