"""Training throughput: real images consumed per second, presets x sizes, batch 64, one process each.

images/s = steps * batch * n_critic / time (the trainer's own definition). Median over repeats of a few
steps after warm-up; synthetic uint8 data of 10 classes (the data pipeline is the trainer's).
Usage: python benchmarks/train_speed.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SCRIPT = "train_speed.py"


def make_trainer(preset: str, res: int, ch: int, batch: int, overrides: dict[str, Any] | None = None) -> Any:
    """A Trainer on random uint8 data (10 classes, 8 batches per epoch) for `preset` at res x res x ch."""
    import tempfile

    import torch

    from vaemsgan.data import ImageSet
    from vaemsgan.presets import build_config
    from vaemsgan.training.trainer import Trainer

    over: dict[str, Any] = {
        "data": {"resolution": res, "channels": ch},
        "train": {"batch_size": batch, "log_every": 10**6, "ema_start": 0},
    }
    for section, values in (overrides or {}).items():
        over.setdefault(section, {}).update(values)
    cfg = build_config(preset, over)
    g = torch.Generator().manual_seed(0)
    n = batch * 8
    data = ImageSet(
        torch.randint(0, 256, (n, ch, res, res), dtype=torch.uint8, generator=g),
        torch.arange(n) % 10,
        [f"c{i}" for i in range(10)],
        "synthetic",
    )
    return Trainer(cfg, data, tempfile.mkdtemp(prefix="vaemsgan-bench-"), progress=False, log=lambda s: None)


def train_step(tr: Any) -> None:
    """One generator step with its critic steps and EMA, as Trainer.train runs it (no logging or I/O)."""
    if hasattr(tr, "train_step"):
        tr.train_step()
        return
    if tr.cfg.loss.adversarial != "none":
        for _ in range(tr.cfg.train.n_critic):
            x, y = tr.next_batch()
            tr.critic_step(x, y)
    else:
        x, y = tr.next_batch()
    tr.generator_step(x, y)
    tr.state.step += 1
    if tr.ema is not None:
        tr.ema.update(tr.nets.generator, tr.state.step)


def steps_for(res: int) -> tuple[int, int]:
    """(steps per repeat, repeats): fewer at large sizes to keep `make bench` within its time budget."""
    return {32: (2, 3), 64: (1, 3), 128: (1, 3)}.get(res, (1, 3))


def run(p: dict[str, Any]) -> dict[str, Any]:
    tr = make_trainer(p["preset"], p["res"], p["ch"], p["batch"], p.get("overrides"))
    k, reps = p.get("steps") or steps_for(p["res"])[0], p.get("repeats") or steps_for(p["res"])[1]
    times = C.timed(lambda: [train_step(tr) for _ in range(k)], reps, warmup=1)
    per_step = C.median(times) / k
    imgs = tr.batch_size * max(tr.cfg.train.n_critic, 1)
    return {
        "preset": p["preset"],
        "size": f"{p['res']}x{p['res']}x{p['ch']}",
        "batch": tr.batch_size,
        "n_critic": tr.cfg.train.n_critic,
        "step_s": round(per_step, 4),
        "images_per_s": round(imgs / per_step, 1),
        "repeats": reps,
        "steps_per_repeat": k,
        "threads": __import__("torch").get_num_threads(),
    }


COLS = ["preset", "size", "n_critic", "step_s", "images_per_s", "peak_rss_mb"]


def main(quick: bool = False) -> dict[str, Any]:
    machine = C.machine()  # load average before the runs
    rows = []
    for pr, r, c in C.configs(quick):
        p = {"preset": pr, "res": r, "ch": c, "batch": C.BATCH}
        rows.append(C.run_child(SCRIPT, {**p, **({"steps": 1, "repeats": 2} if quick and r > 32 else {})}))
    # Opt-in lazy regularisation (penalty every 4th critic step): 4 steps per repeat, so each repeat
    # holds exactly one penalised step.
    for pr in C.PRESETS[:1] if quick else C.PRESETS:
        p = {"preset": pr, "res": 32, "ch": 1, "batch": C.BATCH, "steps": 4, "repeats": 2 if quick else 3}
        row = C.run_child(SCRIPT, {**p, "overrides": {"loss": {"gp_every": 4}}})
        row["preset"] = f"{pr} gp_every=4"
        rows.append(row)
    print("\nTraining throughput (real images/s, batch 64, median)")
    print(C.table(rows, COLS))
    return {"benchmark": "train_speed", "machine": machine, "rows": rows}


if __name__ == "__main__":
    if not C.child_main(run):
        res = main(quick="--quick" in sys.argv)
        print(C.write_result("train_speed", res))
