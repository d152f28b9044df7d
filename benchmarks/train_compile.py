"""Does `torch.compile` speed up training on a CPU? The `scarce` step at 64 px (as it ships: thin widths), eager
against compiled, in one process, one thread, repeats in alternation (fair under load).

Compiled: the generator, the encoder and the critic through `torch.compile` for every forward except the
penalty's (its double backward is not supported by compiled autograd, so the penalty's critic pass stays
eager); parameters are shared, so both trainers run the same algorithm. Reported: the median CPU seconds per
step (`time.process_time`) of each, their ratio, and the wall and CPU seconds of the compiled trainer's first
six steps (compilation; inductor's worker processes are not in this process's CPU time). Usage: python benchmarks/train_compile.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import train_speed  # noqa: E402
from train_speed_hires import VARIANTS  # noqa: E402

SCRIPT = "train_compile.py"


def compiled(tr: Any) -> Any:
    """`tr` with its networks' forwards compiled, the penalty's critic pass left eager."""
    import torch

    critic = torch.compile(tr.nets.critic, dynamic=False)
    tr.nets.generator = torch.compile(tr.nets.generator, dynamic=False)
    if tr.nets.encoder is not None:
        tr.nets.encoder = torch.compile(tr.nets.encoder, dynamic=False)
    eager_scores = tr.critic_scores

    def critic_scores(x: Any, y: Any, features: bool = False, full_precision: bool = False) -> Any:
        if full_precision:  # the penalty's pass (loss.py): double backward needs eager autograd
            return eager_scores(x, y, features, full_precision)
        score, _, feats, logits = critic(x, y if tr.conditional else None, return_features=features)
        return score, feats, logits

    tr.critic_scores = critic_scores
    return tr


def run(p: dict[str, Any]) -> dict[str, Any]:
    import torch

    make = lambda: train_speed.make_trainer("scarce", p["res"], 1, p["batch"], VARIANTS["thin"])  # noqa: E731
    eager, comp = make(), compiled(make())
    t0, w0 = time.process_time(), time.perf_counter()
    for _ in range(6):  # compiles the graphs of both steps (and the critic's frozen-weights variant)
        train_speed.train_step(comp)
    # Inductor compiles in worker processes too: this process's CPU time is not all of it, wall time is.
    compile_cpu_s, compile_wall_s = time.process_time() - t0, time.perf_counter() - w0
    for _ in range(2):
        train_speed.train_step(eager)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(p["repeats"]):
        for name, tr in (("eager", eager), ("compiled", comp)):
            t0 = time.process_time()
            for _ in range(p["steps"]):
                train_speed.train_step(tr)
            times[name].append((time.process_time() - t0) / p["steps"])
    e, c = C.median(times["eager"]), C.median(times["compiled"])
    return {
        "preset": "scarce (thin)",
        "size": f"{p['res']}x{p['res']}x1",
        "batch": p["batch"],
        "threads": torch.get_num_threads(),
        "eager_cpu_s_per_step": round(e, 4),
        "compiled_cpu_s_per_step": round(c, 4),
        "speedup": round(e / c, 3),
        "warmup_cpu_s": round(compile_cpu_s, 1),
        "warmup_wall_s": round(compile_wall_s, 1),
        "steps": p["steps"],
        "repeats": p["repeats"],
    }


COLS = [
    "preset",
    "size",
    "batch",
    "eager_cpu_s_per_step",
    "compiled_cpu_s_per_step",
    "speedup",
    "warmup_wall_s",
]


def main(quick: bool = False) -> dict[str, Any]:
    machine = C.machine()
    steps, repeats = (2, 1) if quick else (16, 9)
    p = {"res": 64, "batch": 32, "threads": 1, "steps": steps, "repeats": repeats}
    rows = [C.run_child(SCRIPT, p, timeout=1800)]
    print("\nTraining with torch.compile (scarce at 64 px, batch 32, one thread, CPU s per step, median)")
    print(C.table(rows, COLS))
    return {"benchmark": "train_compile", "machine": machine, "rows": rows}


if __name__ == "__main__":
    if not C.child_main(run):
        print(C.write_result("train_compile", main(quick="--quick" in sys.argv)))
