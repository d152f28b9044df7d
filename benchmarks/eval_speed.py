"""Evaluation time for 10k images: image statistics + feature extraction + FID/KID on the features.

Features come from the evaluation classifier (`vaemsgan.evaluation.classifier.SmallVGG`, untrained: the
cost does not depend on the weights); FID and KID from `vaemsgan.metrics` against 10k reference
features. One process per size.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SCRIPT = "eval_speed.py"
N = 10_000


def run(p: dict[str, Any]) -> dict[str, Any]:
    import torch

    from vaemsgan import metrics
    from vaemsgan.evaluation.classifier import ClassifierConfig, SmallVGG, features

    res, ch = p["res"], p["ch"]
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (N, ch, res, res), dtype=torch.uint8, generator=g)
    model = SmallVGG(ch, 10, res, ClassifierConfig()).eval()
    ref = torch.randn(N, ClassifierConfig().feature_dim, generator=g)
    features(model, images[:500])  # warm-up
    out: dict[str, Any] = {"size": f"{res}x{res}x{ch}", "images": N, "threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    metrics.image_statistics(images)
    t1 = time.perf_counter()
    feats = features(model, images)
    t2 = time.perf_counter()
    metrics.fid(ref, feats)
    t3 = time.perf_counter()
    metrics.kid(ref, feats)
    t4 = time.perf_counter()
    out.update(
        stats_s=round(t1 - t0, 2),
        features_s=round(t2 - t1, 2),
        fid_s=round(t3 - t2, 2),
        kid_s=round(t4 - t3, 2),
        total_s=round(t4 - t0, 2),
    )
    return out


COLS = ["size", "images", "stats_s", "features_s", "fid_s", "kid_s", "total_s", "peak_rss_mb"]


def main(quick: bool = False) -> dict[str, Any]:
    machine = C.machine()  # load average before the runs
    sizes = C.SIZES[:2] if quick else C.SIZES
    rows = [C.run_child(SCRIPT, {"res": r, "ch": c}) for r, c in sizes]
    print("\nEvaluation time for 10k images (seconds)")
    print(C.table(rows, COLS))
    return {"benchmark": "eval_speed", "machine": machine, "rows": rows}


if __name__ == "__main__":
    if not C.child_main(run):
        print(C.write_result("eval_speed", main(quick="--quick" in sys.argv)))
