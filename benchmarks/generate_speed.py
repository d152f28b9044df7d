"""Generation throughput: images/s of the generator (latents -> uint8 images on the host), per size.

The model path of `vaemsgan generate` without PNG encoding (which is I/O, not the model): eval mode,
`torch.inference_mode`, batches of 256. Median over repeats after warm-up; one process per configuration.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SCRIPT = "generate_speed.py"


def run(p: dict[str, Any]) -> dict[str, Any]:
    import torch

    from vaemsgan.models import build_networks
    from vaemsgan.presets import build_config
    from vaemsgan.utils.images import to_uint8

    cfg = build_config(p["preset"], {"data": {"resolution": p["res"], "channels": p["ch"]}})
    gen = build_networks(cfg, 10).generator.eval().requires_grad_(False)
    if p.get("compile"):
        gen = torch.compile(gen, dynamic=False)
    b = p.get("batch", 256)
    n = {32: 2048, 64: 1024, 128: 512}.get(p["res"], 512)
    z = torch.randn(n, cfg.model.latent_dim)
    y = torch.arange(n) % 10

    def once() -> None:
        with torch.inference_mode():
            for s in range(0, n, b):
                to_uint8(gen(z[s : s + b], y[s : s + b])).cpu()

    times = C.timed(once, repeats=p.get("repeats", 3), warmup=1)
    return {
        "preset": p["preset"],
        "size": f"{p['res']}x{p['res']}x{p['ch']}",
        "batch": b,
        "compile": bool(p.get("compile")),
        "images_per_s": round(n / C.median(times), 1),
        "images": n,
        "threads": torch.get_num_threads(),
    }


COLS = ["preset", "size", "batch", "compile", "images_per_s", "peak_rss_mb"]


def main(quick: bool = False) -> dict[str, Any]:
    machine = C.machine()  # load average before the runs
    rows = [C.run_child(SCRIPT, {"preset": pr, "res": r, "ch": c}) for pr, r, c in C.configs(quick)]
    # torch.compile (inductor, C++ codegen on CPU): measured at 32x32 only, compiling costs ~30 s a shape.
    rows += [C.run_child(SCRIPT, {"preset": pr, "res": 32, "ch": 1, "compile": True}) for pr in C.PRESETS]
    print("\nGeneration throughput (images/s, batch 256, median)")
    print(C.table(rows, COLS))
    return {"benchmark": "generate_speed", "machine": machine, "rows": rows}


if __name__ == "__main__":
    if not C.child_main(run):
        print(C.write_result("generate_speed", main(quick="--quick" in sys.argv)))
