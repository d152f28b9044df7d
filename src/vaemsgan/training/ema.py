"""Exponential moving average of the generator's weights, used for sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float, start: int) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.start = decay, start

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # Before `start` the average only copies: early weights are too poor to average in. After it the
        # decay ramps up ((1+t)/(10+t), t = steps since start), so short runs are not stuck on old weights.
        t = step - self.start
        decay = 0.0 if t < 0 else min(self.decay, (1.0 + t) / (10.0 + t))
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
