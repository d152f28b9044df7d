"""`vaemsgan evaluate` end to end: 10,000 generated 32x32 images (1,000 per class) against Fashion-MNIST.

Two runs per budget (default options, and `--quick`): the first with an empty cache (it trains the domain
extractor and the real-data classifiers and computes the real features and nearest-neighbour reference),
the second with the cache the first one filled (what every later evaluation against the same real data
costs). Each run is its own process; its wall time and the stage times of its metrics.json are reported.

The generated images are a folder given with `--generated DIR` (e.g. what `vaemsgan generate` wrote), or,
by default, stand-ins written into a temporary folder: real training images, mirrored and with noise. The
cost of every part depends on the number and size of the images, not on what they show. Without the full
Fashion-MNIST (`make system-deps`) the embedded mini set is used.

With `--demo RUN` (the run folder `make demo` / `vaemsgan demo` trained), the evaluation the demo suggests is
measured instead: `vaemsgan evaluate --checkpoint RUN --real fashion-mnist-mini` with default options (it
generates the images from the checkpoint), first and cached.

Usage: python benchmarks/evaluate_speed.py [--quick] [--generated DIR] [--demo RUN]
(--quick: the --quick budget only)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SCRIPT = "evaluate_speed.py"
PER_CLASS = 1000
FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
STAGES = ["load", "load_generated", "stats", "extractor", "features", "classifier", "memorisation", "report"]


def real_source() -> str:
    return "fashion-mnist" if FMNIST.is_file() else "fashion-mnist-mini"


def stand_in_images(out: Path, real: str, per_class: int) -> Path:
    """`per_class` images of each class in `vaemsgan generate`'s layout: mirrored, noisy real images."""
    import torch

    from vaemsgan.data import load_images
    from vaemsgan.utils.io import safe_name, save_png

    train = load_images(real, split="train", resolution=32, channels=1)
    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(train.class_names):
        idx = (train.labels == c).nonzero().flatten()
        idx = idx[torch.randint(0, len(idx), (per_class,), generator=g)]
        noise = torch.randint(-20, 21, (per_class, 1, 32, 32), generator=g)
        imgs = (train.images[idx].flip(3).int() + noise).clamp(0, 255).to(torch.uint8)
        for i, im in enumerate(imgs):
            save_png(out / safe_name(name) / f"{i:05d}.png", im[0].numpy(), fsync=False)
    return out


def run(p: dict[str, Any]) -> dict[str, Any]:
    """One `evaluate` in this process; the stage times come from its metrics.json."""
    import torch

    from vaemsgan.evaluation.evaluate import EvalOptions, evaluate, quick_options

    opts = (quick_options if p["quick"] else EvalOptions)(cache_dir=p["cache"], progress=False, force=True)
    t0 = time.perf_counter()
    m = evaluate(
        p["real"], p["out"], generated=p.get("generated"), checkpoint=p.get("checkpoint"), options=opts
    )
    wall = time.perf_counter() - t0
    t = m["timings_s"]
    row: dict[str, Any] = {
        "budget": ("demo, " if p.get("checkpoint") else "") + ("quick" if p["quick"] else "default"),
        "cache": p["run"],
        "images": sum(c["generated"] for c in m["counts"].values()),
        "threads": torch.get_num_threads(),
        "wall_s": round(wall, 1),
    }
    row.update({f"{s}_s": round(t[s], 1) for s in STAGES if s in t})
    row["fid"] = round(m["features"]["overall"]["fid"], 3)
    row["TSTR"] = round(m["classifier"]["table"]["TSTR"]["mean"], 4)
    return row


COLS = ["budget", "cache", "images", "wall_s", *[f"{s}_s" for s in STAGES[2:]], "fid", "TSTR", "peak_rss_mb"]


def main(quick: bool = False, generated: str | None = None, demo: str | None = None) -> dict[str, Any]:
    machine = C.machine()  # load average before the runs
    real = "fashion-mnist-mini" if demo else real_source()
    sys.path.insert(0, C.src_path())
    rows = []
    with tempfile.TemporaryDirectory(prefix="vaemsgan-evalbench-") as tmp:
        images: dict[str, str] = {"checkpoint": demo} if demo else {}
        if not demo:
            images["generated"] = generated or str(stand_in_images(Path(tmp) / "generated", real, PER_CLASS))
        for budget in (True,) if quick else (False, True):
            cache = str(Path(tmp) / f"cache-{budget}")
            for run_name in ("first", "cached"):
                p = {
                    "real": real,
                    **images,
                    "out": str(Path(tmp) / "report"),
                    "cache": cache,
                    "quick": budget,
                    "run": run_name,
                }
                rows.append(C.run_child(SCRIPT, p, timeout=3600))
    print(f"\n`vaemsgan evaluate` end to end against {real} (seconds)")
    print(C.table(rows, COLS))
    source = (
        f"sampled from the demo run {demo}"
        if demo
        else generated or f"stand-ins: {PER_CLASS} mirrored, noisy real training images per class"
    )
    return {
        "benchmark": "evaluate_speed",
        "machine": machine,
        "real": real,
        "generated": source,
        "rows": rows,
    }


if __name__ == "__main__":
    if not C.child_main(run):
        args = sys.argv[1:]
        gen_arg = args[args.index("--generated") + 1] if "--generated" in args else None
        demo_arg = args[args.index("--demo") + 1] if "--demo" in args else None
        name = "evaluate_speed_demo" if demo_arg else "evaluate_speed"
        print(C.write_result(name, main(quick="--quick" in args, generated=gen_arg, demo=demo_arg)))
