"""Training speed at 64 and 128 px on one thread: images per CPU-second of `scarce` (what a user with a
few hundred SAR chips trains), today's networks against the thin high-resolution widths
(`model.width_resolution`), measured in one run.

Each configuration runs in its own process, one thread: a few warm-up steps, then `repeats` timed stretches
of `steps` generator steps; images per CPU-second = steps * batch * n_critic / process CPU time (the clock of
`--clock cpu` budgets); a repeat is 16 steps, a multiple of every R1 interval (4, 16). Reported: the median over repeats, the ratio to the `before` row of the same size
(the speed-up), the step's FLOPs and its share of this machine's one-thread FP32 matmul peak.
A second table puts the paper's full network (`paper` preset, as shipped) beside `scarce` as shipped at 64 px:
what a CPU-minute buys in steps of each (`--presets` runs that table alone).
Usage: python benchmarks/train_speed_hires.py [--quick] [--presets]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import efficiency  # noqa: E402
import train_speed  # noqa: E402

SCRIPT = "train_speed_hires.py"
# name -> config overrides on top of the preset (each row adds one change to the row above it)
VARIANTS: dict[str, dict[str, Any]] = {
    # what the user trained: widths at full resolution whatever the size, R1 every 4 batches
    "before": {"model": {"width_resolution": 0, "d_strided_stem": False}, "loss": {"gp_every_hires": 0}},
    # full-resolution widths halved per doubling past 32 px, one 3x3 critic branch there (session 9)
    "thin": {"model": {"width_resolution": 32, "d_strided_stem": False}, "loss": {"gp_every_hires": 0}},
    # + the full-scale critic's 4x4 stride-2 stem in place of its stem and 64 px block
    "thin+strided": {
        "model": {"width_resolution": 32, "d_strided_stem": True},
        "loss": {"gp_every_hires": 0},
    },
    # + R1 every 16 critic batches above 32 px instead of 4
    "thin+strided+r1/16": {
        "model": {"width_resolution": 32, "d_strided_stem": True},
        "loss": {"gp_every_hires": 16},
    },
}


def run(p: dict[str, Any]) -> dict[str, Any]:
    import torch

    peak = efficiency.mm_peak(repeats=3)
    variant = VARIANTS.get(p["variant"], {})  # "shipped": the preset as it is
    tr = train_speed.make_trainer(p["preset"], p["res"], 1, p["batch"], {**variant, **p.get("overrides", {})})
    step = lambda: train_speed.train_step(tr)  # noqa: E731
    for _ in range(2):
        step()
    # over one repeat: a single step holds the penalty's double backward or not
    flops_per_step = efficiency.count_flops(lambda: [step() for _ in range(p["steps"])]) / p["steps"]
    times = []
    for _ in range(p["repeats"]):
        t0 = time.process_time()
        for _ in range(p["steps"]):
            step()
        times.append((time.process_time() - t0) / p["steps"])
    per_step = C.median(times)
    imgs = tr.batch_size * max(tr.cfg.train.n_critic, 1)
    return {
        "preset": p["preset"],
        "variant": p["variant"],
        "size": f"{p['res']}x{p['res']}x1",
        "batch": tr.batch_size,
        "threads": torch.get_num_threads(),
        "cpu_s_per_step": round(per_step, 4),
        "images_per_cpu_s": round(imgs / per_step, 1),
        "step_gflop": round(flops_per_step / 1e9, 3),
        "mm_peak_gflops": round(peak / 1e9, 1),
        "ratio_to_peak": round(flops_per_step / per_step / peak, 3),
        "steps": p["steps"],
        "repeats": p["repeats"],
    }


COLS = ["preset", "variant", "size", "batch", "cpu_s_per_step", "images_per_cpu_s", "speedup", "step_gflop",
        "ratio_to_peak", "peak_rss_mb"]  # fmt: skip


def preset_rows(quick: bool) -> list[dict[str, Any]]:
    """The paper's network and `scarce` as shipped at 64 px; steps per CPU-minute beside each."""
    rows = []
    for preset in ("paper", "scarce"):
        steps, repeats = (1, 2) if quick else ((4, 3) if preset == "paper" else (16, 3))
        p = {"preset": preset, "variant": "shipped", "res": 64, "batch": 32, "threads": 1}
        row = C.run_child(SCRIPT, {**p, "steps": steps, "repeats": repeats})
        if row.get("cpu_s_per_step"):
            row["steps_per_cpu_min"] = round(60 / row["cpu_s_per_step"], 1)
        rows.append(row)
    if rows[0].get("cpu_s_per_step") and rows[1].get("cpu_s_per_step"):
        rows[0]["cost_vs_scarce"] = round(rows[0]["cpu_s_per_step"] / rows[1]["cpu_s_per_step"], 1)
    print("\nThe paper's network against scarce at 64 px (as shipped, batch 32, one thread, median)")
    print(C.table(rows, ["preset", "size", "cpu_s_per_step", "steps_per_cpu_min", "images_per_cpu_s",
                         "cost_vs_scarce", "step_gflop", "ratio_to_peak"]))  # fmt: skip
    return rows


def main(quick: bool = False, presets_only: bool = False) -> dict[str, Any]:
    machine = C.machine()
    if presets_only:
        return {
            "benchmark": "train_speed_hires",
            "machine": machine,
            "rows": [],
            "presets": preset_rows(quick),
        }
    rows = []
    sizes = [64] if quick else [64, 128]
    for res in sizes:
        # 16 steps a repeat: a multiple of every penalty interval (4, 16), so each holds its share of R1 steps
        steps, repeats = (2, 2) if quick else ((16, 5) if res == 64 else (16, 3))
        base = None
        for variant in VARIANTS:
            p = {"preset": "scarce", "variant": variant, "res": res, "batch": 32, "threads": 1}
            row = C.run_child(SCRIPT, {**p, "steps": steps, "repeats": repeats})
            if variant == "before":
                base = row.get("images_per_cpu_s")
            if base and row.get("images_per_cpu_s"):
                row["speedup"] = round(row["images_per_cpu_s"] / base, 2)
            rows.append(row)
    print("\nTraining speed at high resolution (scarce, batch 32, one thread, images per CPU-second, median)")
    print(C.table(rows, COLS))
    return {"benchmark": "train_speed_hires", "machine": machine, "rows": rows, "presets": preset_rows(quick)}


if __name__ == "__main__":
    if not C.child_main(run):
        name = "train_speed_hires-presets" if "--presets" in sys.argv else "train_speed_hires"
        print(C.write_result(name, main(quick="--quick" in sys.argv, presets_only="--presets" in sys.argv)))
