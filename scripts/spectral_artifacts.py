"""Checkerboard artifacts, measured (issue 25, session 15): the share of an image set's spectral power (grey
levels, each image's mean removed, power spectrum averaged over the images and normalised to sum 1) on the
lines of period 2 pixels (the Nyquist row and column: a 2x2 checkerboard puts all its power there) and of
period 4 (frequencies +-size/4), for generated images of each snapshot against the real test images; a ratio well above 1 is a
pattern the real images do not have, the mark transposed convolutions leave. Usage:
    python scripts/spectral_artifacts.py SNAPSHOT.pt [SNAPSHOT.pt ...] --data ../shared/data/cifar10
        [--per-class 200] [--out FILE.json]
The real images are loaded as the first snapshot's run saw its data (size, channels, crop).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vaemsgan.data import load_images
from vaemsgan.experiments.runner import sample_checkpoint
from vaemsgan.inference import load_model


def power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Mean power spectrum (H x W) of uint8 images N x C x H x W in grey, each image's mean removed, sum 1."""
    x = images.float().mean(1)
    x = x - x.mean(dim=(1, 2), keepdim=True)
    p = torch.fft.fft2(x).abs().pow(2).mean(0)
    return p / p.sum().clamp_min(1e-12)


def period_share(spectrum: torch.Tensor, period: int) -> float:
    """The share of the power on the rows and columns of frequency +-size/period (each line counted once)."""
    h, w = spectrum.shape
    rows = sorted({h // period, (h - h // period) % h})
    cols = sorted({w // period, (w - w // period) % w})
    on = torch.zeros_like(spectrum, dtype=torch.bool)
    on[rows, :] = True
    on[:, cols] = True
    return float(spectrum[on].sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("snapshots", nargs="+", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    real = None
    for snap in a.snapshots:
        gen = sample_checkpoint(snap, a.per_class)
        if real is None:  # the real test images as the run saw its data (size, channels, crop)
            d = load_model(snap, "cpu", prefer_best=False).cfg.data
            real = load_images(
                a.data, split="test", resolution=d.resolution, channels=d.channels, crop=d.crop
            )
            pr = power_spectrum(real.images)
        pg = power_spectrum(gen.images)
        row = {"snapshot": str(snap)}
        for period in (2, 4):
            r, g = period_share(pr, period), period_share(pg, period)
            row.update({f"real_p{period}": r, f"generated_p{period}": g, f"ratio_p{period}": g / r})
        print(json.dumps(row), flush=True)
        rows.append(row)
    if a.out:
        a.out.write_text(json.dumps({"data": a.data, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
