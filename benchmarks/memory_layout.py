"""Memory layout: CPU time of one training step in NCHW (contiguous) vs NHWC (channels-last) layout.

Paired in one process, alternating the two layouts per repeat, so that a change in the machine's load hits
both alike: a GAN training step (critic step + generator/encoder step, lazy R1 included in its share) of
`default`, `dcgan` and `paper` at 32x32 on the embedded Fashion-MNIST subset (batch as in each preset),
and a step of the evaluation classifier (batch 64). CPU time of this process (`time.process_time`), median
over repeats; the ratio NCHW / NHWC > 1 means channels-last is faster.

Usage: python benchmarks/memory_layout.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SCRIPT = "memory_layout.py"
GAN_STEPS = {"default": 8, "dcgan": 8, "paper": 1}  # steps per timed repeat (a paper step takes ~3 s)


def gan_step_timer(preset: str, channels_last: bool, steps: int) -> Any:
    import tempfile

    from vaemsgan.data import load_images
    from vaemsgan.presets import build_config
    from vaemsgan.training.trainer import Trainer

    imgs = load_images("fashion-mnist-mini", resolution=32)
    cfg = build_config(preset, {"train": {"monitor_every": 0, "seed": 0, "channels_last": channels_last}})
    tr = Trainer(cfg, imgs, tempfile.mkdtemp(prefix="vaemsgan-layout-"), progress=False, log=lambda s: None)

    def run() -> float:
        t0 = time.process_time()
        for _ in range(steps):
            x, y = tr.next_batch()
            tr.critic_step(x, y)
            tr.generator_step(x, y)
            tr.state.step += 1  # the lazy R1 step comes every gp_every-th step, as in training
        return (time.process_time() - t0) / steps

    run()  # warm-up
    return run


def classifier_step_timer(channels_last: bool, steps: int = 20) -> Any:
    import torch
    import torch.nn.functional as F

    from vaemsgan.evaluation.classifier import ClassifierConfig, SmallVGG

    torch.manual_seed(0)
    model = SmallVGG(1, 10, 32, ClassifierConfig())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = torch.rand(64, 1, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (64,))

    def run() -> float:
        t0 = time.process_time()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return (time.process_time() - t0) / steps

    run()
    return run


def run(p: dict[str, Any]) -> dict[str, Any]:
    import torch

    repeats = p["repeats"]
    if p["what"] == "classifier":
        timers = {cl: classifier_step_timer(cl) for cl in (False, True)}
    else:
        timers = {cl: gan_step_timer(p["what"], cl, GAN_STEPS[p["what"]]) for cl in (False, True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for cl in (False, True):
            times[cl].append(timers[cl]())
    nchw, nhwc = C.median(times[False]), C.median(times[True])
    return {
        "step": p["what"],
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "nchw_ms": round(1000 * nchw, 1),
        "nhwc_ms": round(1000 * nhwc, 1),
        "ratio": round(nchw / nhwc, 2),
    }


def main(quick: bool = False) -> dict[str, Any]:
    machine = C.machine()
    rows = []
    for what in ("default", "dcgan", "paper", "classifier"):
        repeats = 3 if quick or what == "paper" else 7
        rows.append(C.run_child(SCRIPT, {"what": what, "repeats": repeats}, timeout=1800))
    print("\nCPU time per training step, NCHW vs channels-last (median; ratio > 1: channels-last faster)")
    print(C.table(rows, ["step", "threads", "repeats", "nchw_ms", "nhwc_ms", "ratio"]))
    return {"benchmark": "memory_layout", "machine": machine, "rows": rows}


if __name__ == "__main__":
    if not C.child_main(run):
        print(C.write_result("memory_layout", main(quick="--quick" in sys.argv[1:])))
