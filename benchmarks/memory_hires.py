"""Peak memory at 64, 128 and 256 px (RGB, the 2,000-image fashion-mnist-mini set, batch 2): loading the
data set, and loading it plus 4 training steps of `default` (sample grid and checkpoint included).

Each row is its own process; peak RSS (`ru_maxrss`) after the imports (the baseline: torch and vaemsgan)
and at the end, beside the data set's uint8 size. Usage: python benchmarks/memory_hires.py [--quick]
"""

from __future__ import annotations

import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SCRIPT = "memory_hires.py"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(p: dict[str, Any]) -> dict[str, Any]:
    from vaemsgan.data import load_images
    from vaemsgan.presets import build_config
    from vaemsgan.training.trainer import Trainer

    base = _peak_mb()
    data = load_images("fashion-mnist-mini", resolution=p["res"], channels=3)
    data_mb = data.images.numel() / 2**20
    loaded = _peak_mb()
    row = {
        "size": f"{p['res']}x{p['res']}x3",
        "what": p["what"],
        "data_uint8_mb": round(data_mb, 1),
        "baseline_mb": round(base, 1),
        "load_peak_over_baseline_mb": round(loaded - base, 1),
        "load_ratio_to_data": round((loaded - base) / data_mb, 2),
    }
    if p["what"] == "load + 4 steps":
        overrides = {"data.resolution": p["res"], "data.channels": 3, "train.batch_size": 2, "train.steps": 4}
        cfg = build_config("default", overrides)
        Trainer(
            cfg, data, tempfile.mkdtemp(prefix="vaemsgan-mem-"), progress=False, log=lambda s: None
        ).train(4)
    peak = _peak_mb()
    row["peak_over_baseline_mb"] = round(peak - base, 1)
    row["ratio_to_data"] = round((peak - base) / data_mb, 2)
    return row


COLS = [
    "size",
    "what",
    "data_uint8_mb",
    "baseline_mb",
    "peak_over_baseline_mb",
    "ratio_to_data",
    "peak_rss_mb",
]


def main(quick: bool = False) -> dict[str, Any]:
    machine = C.machine()
    sizes = [64] if quick else [64, 128, 256]
    rows = [
        C.run_child(SCRIPT, {"res": r, "what": w, "threads": 1})
        for r in sizes
        for w in ("load", "load + 4 steps")
    ]
    print("\nPeak memory (fashion-mnist-mini RGB, 2,000 images; batch 2; MB over the import baseline)")
    print(C.table(rows, COLS))
    return {"benchmark": "memory_hires", "machine": machine, "rows": rows}


if __name__ == "__main__":
    if not C.child_main(run):
        print(C.write_result("memory_hires", main(quick="--quick" in sys.argv)))
