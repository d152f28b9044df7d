"""What a training run shows and keeps beside its checkpoints: the sample grid, the snapshots at training
CPU-minutes (the learning curves' inputs), and the checks of the training monitor, whose protocol is here
(evaluation/monitor.py has the real one; training never imports evaluation). `OutputsMixin` is a part of
`Trainer` (training/trainer.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from vaemsgan.checkpoint import save_best, save_state, snapshot_path
from vaemsgan.models.layers import inference_batch, prior_batches, recalibrate_batchnorm
from vaemsgan.utils.images import make_grid, to_uint8
from vaemsgan.utils.io import save_png

# (latents [N, latent_dim], labels [N] or None) -> uint8 images [N, C, H, W] on the CPU, from the sampling
# (EMA) generator as the sample grid draws them.
SampleFn = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass
class MonitorCheck:
    """What one monitor check tells the trainer."""

    record: dict[str, Any]  # logged to metrics.jsonl (with "step")
    best: dict[str, Any] | None  # when this is the best state so far: stored in RUN/best.pt as "monitor"
    collapse: str | None = None  # a collapse verdict in words; the trainer acts on train.collapse_action


class TrainingMonitor(Protocol):
    """A callback the Trainer is given (evaluation/monitor.py has the real one): called every
    `train.monitor_every` steps, and at the end of a run that long, on rank 0."""

    def __call__(self, sample: SampleFn, step: int, log: Callable[[str], None]) -> MonitorCheck: ...

    def rolled_back(self) -> None:
        """The trainer rolled back to best.pt after a collapse."""


class OutputsMixin:
    """The Trainer's sample grids, snapshots and monitor checks. It reads the Trainer's config, networks, EMA,
    state, grid latents and run folder, and its checkpointing (`state_dict`: training/checkpointing.py)."""

    monitor: TrainingMonitor | None
    is_main: bool
    run_dir: Path
    log: Callable[[str], None]

    def run_monitor(self) -> MonitorCheck:
        """One check of the monitor: log its record, keep RUN/best.pt when it is the best state so far."""
        assert self.monitor is not None
        check = self.monitor(self.sample_images, self.state.step, self.log)
        if check.best is not None:
            state = self.state_dict()
            state["monitor"] = check.best
            save_best(self.run_dir, state)
        self._log_record(check.record)
        return check

    def sampling_generator(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.nets.generator

    @torch.no_grad()
    def sample_images(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """uint8 CPU images of latents `z` (labels `y`), drawn from a copy of the sampling generator whose
        BatchNorm statistics are recomputed for prior latents (see recalibrate_batchnorm: the training
        statistics mix posterior and prior inputs), `inference_batch` images per call: the sample grid's
        and the monitor's `SampleFn`."""
        gen = copy.deepcopy(self.sampling_generator())
        b = inference_batch(self.cfg.data.resolution)
        recalibrate_batchnorm(
            gen,
            prior_batches(
                self.cfg.model.latent_dim, self.num_classes, self.conditional, self.device, batch_size=b
            ),
        )
        gen.eval()
        outs = []
        for s in range(0, len(z), b):
            ys = y[s : s + b].to(self.device) if y is not None else None
            outs.append(to_uint8(gen(z[s : s + b].to(self.device), ys)).cpu())
        return torch.cat(outs)

    def save_snapshot(self, minutes: float) -> Path:
        """RUN/snapshots/cpu-<M>min.pt (+ .png grid): the run as it was after M training CPU-minutes."""
        path = snapshot_path(self.run_dir, minutes)
        if self.is_main:
            state = self.state_dict()
            state["snapshot"] = {
                "minutes": minutes,
                "cpu_seconds": self.state.cpu_seconds,
                "step": self.state.step,
            }
            save_state(path, state)
            self.save_samples(path.with_suffix(".png"))
            self.log(f"snapshot at {minutes:g} CPU-minutes (step {self.state.step}): {path}")
        return path

    @torch.no_grad()
    def save_samples(self, path: Path | None = None) -> Path:
        """The sample grid: RUN/samples.png and RUN/samples/step-N.png, or only `path` when given."""
        if not self.is_main:
            return self.run_dir / "samples.png"
        imgs = self.sample_images(self.grid_z, self.grid_y if self.conditional else None)
        grid = make_grid(imgs, nrow=8)
        if path is not None:
            return save_png(path, grid)
        path = self.run_dir / "samples" / f"step-{self.state.step:07d}.png"
        save_png(path, grid)
        save_png(self.run_dir / "samples.png", grid)
        return path
