"""`make bench`: every benchmark, tables printed, JSON in benchmarks/results/ (see docs/BENCHMARKS.md).

Benchmarks: train (throughput), generate (throughput), eval (metrics on 10k images), evaluate (`vaemsgan
evaluate` end to end, first and cached run), efficiency (one training step against the matmul peak).

Usage: python benchmarks/run_all.py [--quick] [--src DIR] [--out-dir DIR]
  --src DIR      benchmark the vaemsgan source tree DIR instead (e.g. a `git worktree` of an older commit)
  --out-dir DIR  where the JSON goes (default benchmarks/results)
  --threads N    intra-op threads (default: physical cores; 1 is faster on a machine others load)
  --quick        all sizes for `default`, `paper` at 32x32 only, fewer repeats: ~1/4 of the time
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="32x32 only (a smoke run)")
    ap.add_argument("--src", help="source tree to benchmark (its src/ folder)")
    ap.add_argument("--out-dir", type=Path)
    ap.add_argument("--only", help="comma-separated subset: train,generate,eval,evaluate,efficiency,layout")
    ap.add_argument(
        "--threads", type=int, default=0, help="intra-op threads of every run (default: physical cores)"
    )
    args = ap.parse_args()
    if args.threads:
        os.environ["VAEMSGAN_BENCH_THREADS"] = str(args.threads)
    if args.src:
        os.environ["VAEMSGAN_SRC"] = str(Path(args.src).resolve())
    import _common as C
    import efficiency
    import eval_speed
    import evaluate_speed
    import generate_speed
    import memory_layout
    import train_speed

    benches = {
        "train": train_speed,
        "generate": generate_speed,
        "eval": eval_speed,
        "evaluate": evaluate_speed,
        "efficiency": efficiency,
        "layout": memory_layout,
    }
    chosen = args.only.split(",") if args.only else list(benches)
    t0 = time.perf_counter()
    print(f"machine: {C.machine()}")
    for name in chosen:
        mod = benches[name]
        result = mod.main(quick=args.quick)
        print(C.write_result(result["benchmark"], result, args.out_dir))
    print(f"\nall benchmarks in {(time.perf_counter() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
