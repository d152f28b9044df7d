"""Efficiency of one training step: FLOPs (FlopCounterMode), achieved FLOP/s, this machine's FP32 matmul
peak (a large torch.mm, same process), and a plain-PyTorch DCGAN step of the same resolution, batch and
widths as a reference. Step time per real image relative to DCGAN's is `vs_dcgan` (1 = as fast).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import train_speed  # noqa: E402

SCRIPT = "efficiency.py"


def mm_peak(n: int = 2048, repeats: int = 5) -> float:
    """FP32 matrix-multiply FLOP/s of this machine at the current thread count (median)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    t = C.median(C.timed(lambda: torch.mm(a, b), repeats, warmup=2))
    return 2 * n**3 / t


def dcgan(res: int, ch: int, g_width: int, d_width: int, latent: int) -> tuple[Any, Any]:
    """Plain DCGAN (Radford et al.): transposed convs 4/2/1 + BN + ReLU; strided convs + LeakyReLU."""
    from torch import nn

    from vaemsgan.models.layers import level_widths

    n = (res // 4).bit_length() - 1
    gw = level_widths(g_width, n + 1, 512)
    g: list[nn.Module] = [nn.Unflatten(1, (latent, 1, 1)), nn.ConvTranspose2d(latent, gw[0], 4, bias=False)]
    g += [nn.BatchNorm2d(gw[0]), nn.ReLU(True)]
    for i in range(n):
        g += [
            nn.ConvTranspose2d(gw[i], gw[i + 1], 4, 2, 1, bias=False),
            nn.BatchNorm2d(gw[i + 1]),
            nn.ReLU(True),
        ]
    g += [nn.Conv2d(gw[-1], ch, 3, padding=1), nn.Tanh()]
    dw = list(reversed(level_widths(d_width, n + 1, 512)))
    d: list[nn.Module] = [nn.Conv2d(ch, dw[0], 3, padding=1), nn.LeakyReLU(0.2, True)]
    for i in range(n):
        d += [
            nn.Conv2d(dw[i], dw[i + 1], 4, 2, 1, bias=False),
            nn.BatchNorm2d(dw[i + 1]),
            nn.LeakyReLU(0.2, True),
        ]
    d += [nn.Flatten(), nn.Linear(dw[-1] * 16, 1)]
    return nn.Sequential(*g), nn.Sequential(*d)


def dcgan_step_fn(res: int, ch: int, batch: int, g_width: int, d_width: int, latent: int) -> Any:
    import torch
    import torch.nn.functional as F

    G, D = dcgan(res, ch, g_width, d_width, latent)
    og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, ch, res, res) * 2 - 1

    def step() -> None:
        fake = G(torch.randn(batch, latent))
        ld = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        od.zero_grad(set_to_none=True)
        ld.backward()
        od.step()
        lg = F.softplus(-D(fake)).mean()
        og.zero_grad(set_to_none=True)
        lg.backward()
        og.step()

    return step


class _NoModuleTracker:
    """Stands in for FlopCounterMode's per-module tracker, whose backward hooks break
    `autograd.grad` (the gradient penalty); totals are all we need."""

    parents = {"Global"}
    is_bw = False

    def __enter__(self) -> _NoModuleTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def count_flops(fn: Any) -> int:
    """FLOPs of fn() (matmuls and convolutions, forward and backward, double backward included)."""
    from torch.utils.flop_counter import FlopCounterMode

    fc = FlopCounterMode(display=False)
    fc.mod_tracker = _NoModuleTracker()
    with fc:
        fn()
    return int(fc.get_total_flops())


def run(p: dict[str, Any]) -> dict[str, Any]:
    import torch

    res, ch, batch = p["res"], p["ch"], p["batch"]
    peak = mm_peak()
    tr = train_speed.make_trainer(p["preset"], res, ch, batch)
    imgs = tr.batch_size * max(tr.cfg.train.n_critic, 1)
    step = lambda: train_speed.train_step(tr)  # noqa: E731
    step()
    flops = count_flops(step)
    t_ours = C.median(C.timed(step, p.get("repeats", 5), warmup=1))
    m = tr.cfg.model
    ref = dcgan_step_fn(res, ch, batch, m.g_width, m.d_width, m.latent_dim)
    ref()
    ref_flops = count_flops(ref)
    t_ref = C.median(C.timed(ref, p.get("repeats", 5), warmup=1))
    return {
        "preset": p["preset"],
        "size": f"{res}x{res}x{ch}",
        "threads": torch.get_num_threads(),
        "mm_peak_gflops": round(peak / 1e9, 1),
        "step_gflop": round(flops / 1e9, 2),
        "step_s": round(t_ours, 4),
        "achieved_gflops": round(flops / t_ours / 1e9, 1),
        "ratio_to_peak": round(flops / t_ours / peak, 3),
        "dcgan_step_gflop": round(ref_flops / 1e9, 2),
        "dcgan_step_s": round(t_ref, 4),
        "dcgan_ratio_to_peak": round(ref_flops / t_ref / peak, 3),
        "vs_dcgan_time_per_image": round((t_ours / imgs) / (t_ref / batch), 2),
        "bound_images_per_s": round(peak / (flops / imgs), 1),  # at 100% of the matmul peak
    }


COLS = [
    "preset", "size", "mm_peak_gflops", "step_gflop", "step_s", "achieved_gflops", "ratio_to_peak",
    "dcgan_step_s", "dcgan_ratio_to_peak", "vs_dcgan_time_per_image", "bound_images_per_s", "peak_rss_mb",
]  # fmt: skip


def main(quick: bool = False) -> dict[str, Any]:
    machine = C.machine()  # load average before the runs
    sizes = [(32, 1)] if quick else [(32, 1), (64, 3)]
    rows = [
        C.run_child(SCRIPT, {"preset": pr, "res": r, "ch": c, "batch": C.BATCH})
        for pr in C.PRESETS
        for r, c in sizes
    ]
    print("\nEfficiency of one training step (FlopCounterMode) vs FP32 torch.mm peak, and a plain DCGAN step")
    print(C.table(rows, COLS))
    return {"benchmark": "efficiency", "machine": machine, "rows": rows}


if __name__ == "__main__":
    if not C.child_main(run):
        print(C.write_result("efficiency", main(quick="--quick" in sys.argv)))
