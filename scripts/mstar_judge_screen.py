"""One row of the MSTAR judge screen (docs/RESULTS.md, "MSTAR SOC"): train the classifier on all training
chips at 64 px and print its accuracy on val/ as one JSON line (one thread; CPU seconds counted).

    python scripts/mstar_judge_screen.py --crop 64 --steps 1500 --width 16 --pad 6 --seed 0
    python scripts/mstar_judge_screen.py --crop 64 --steps 1500 --width 16 --pad 6 --standardize --seed 0
    python scripts/mstar_judge_screen.py --crop 64 --steps 1500 --width 16 --pad 6 --standardize --gamma 1.5
    python scripts/mstar_judge_screen.py --crop 0 ...            # whole chips resized to 64
    python scripts/mstar_judge_screen.py --context 80 ...        # random 64 crops of the centre 80 of the chip
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vaemsgan.data import load_images  # noqa: E402
from vaemsgan.evaluation.classifier import (  # noqa: E402
    ClassifierConfig,
    _nhwc,
    accuracy,
    new_classifier,
    train_classifier,
)
from vaemsgan.utils.images import to_float  # noqa: E402


def context_crops(images: torch.Tensor, context: int, gen: torch.Generator) -> torch.Tensor:
    """Random 64 x 64 crops inside the centre `context` pixels of 128 px chips."""
    n = len(images)
    lo, span = (images.shape[-1] - context) // 2, context - 64
    oy = lo + torch.randint(0, span + 1, (n,), generator=gen)
    ox = lo + torch.randint(0, span + 1, (n,), generator=gen)
    rows = (oy[:, None] + torch.arange(64))[:, :, None]
    cols = (ox[:, None] + torch.arange(64))[:, None, :]
    return (
        images.permute(0, 2, 3, 1)[torch.arange(n)[:, None, None], rows, cols]
        .permute(0, 3, 1, 2)
        .contiguous()
    )


def train_with_context(train, cfg: ClassifierConfig, context: int, seed: int):
    """train_classifier's loop (AdamW, warm-up + cosine) with context crops instead of padded shifts."""
    model = new_classifier(1, len(train.class_names), 64, cfg, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * cfg.steps))

    def lr_at(s: int) -> float:
        return (
            (s + 1) / warm
            if s < warm
            else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, cfg.steps - warm)))
        )

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    n, bs = len(train), cfg.batch_size
    perm, pos = torch.randperm(n, generator=gen), 0
    model.train()
    for _ in range(cfg.steps):
        if pos + bs > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos : pos + bs]
        pos += bs
        x = to_float(context_crops(train.images[idx], context, gen))
        loss = F.cross_entropy(model(_nhwc(x)), train.labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mstar-soc"))
    p.add_argument(
        "--crop", type=int, default=64, help="centre crop before resizing to 64 (0: the whole chip)"
    )
    p.add_argument(
        "--context", type=int, default=0, help="random 64 crops of the centre N px instead of shifts"
    )
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--convs-per-block", type=int, default=1)
    p.add_argument("--pad", type=int, default=6, help="random shifts of up to N px (zero padding)")
    p.add_argument("--flip", action="store_true")
    p.add_argument("--policy", default="standard", choices=["standard", "classical", "none"])
    p.add_argument("--summary", type=int, default=4, help="spatial summary before the features (1: global)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument(
        "--standardize", action="store_true", help="standardise each chip (zero mean, unit std) first"
    )
    p.add_argument("--gamma", type=float, default=1.0, help="random gamma in [1/G, G] (1: off)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if not (Path(a.data) / "train").is_dir():
        raise SystemExit(f"{a.data}: no MSTAR chips there (train/ and val/ class folders); give --data")
    torch.set_num_threads(1)
    cfg = ClassifierConfig(
        width=a.width, max_width=8 * a.width, depth=a.depth, convs_per_block=a.convs_per_block, steps=a.steps,
        flip=a.flip, crop_pad=a.pad, summary=a.summary, weight_decay=a.weight_decay,
        standardize=a.standardize, gamma=a.gamma,
    )  # fmt: skip
    val = load_images(a.data, split="val", resolution=64, crop=a.crop or None)
    t0 = time.process_time()
    if a.context:
        model = train_with_context(load_images(a.data, split="train", resolution=128), cfg, a.context, a.seed)
    else:
        train = load_images(a.data, split="train", resolution=64, crop=a.crop or None)
        model = train_classifier(train.images, train.labels, 10, cfg, seed=a.seed, augment=a.policy)
    row = {**vars(a), "val_acc": accuracy(model, val.images, val.labels), "cpu_s": time.process_time() - t0}
    print(json.dumps(row))


if __name__ == "__main__":
    main()
