"""Small building blocks shared by the networks."""

from __future__ import annotations

import torch
from torch import nn


def norm_2d(kind: str, channels: int) -> nn.Module:
    """Per-branch normalisation of the critic. 'layer' normalises each sample over (C, H, W), so it
    keeps the per-sample gradient penalty valid; 'batch' (the paper's) mixes samples in a batch."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}")


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift come from the class label (an embedding per class)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.bn(x)
        return out * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


class BatchNorm2dIgnoringLabel(nn.BatchNorm2d):
    """Plain BatchNorm with the conditional signature, for unconditional generators."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # noqa: ARG002
        return super().forward(x)


def level_widths(base: int, levels: int, max_width: int) -> list[int]:
    """Channel widths from the coarsest level (index 0) to the finest: base * 2^(levels-1-i), capped."""
    return [min(base * 2 ** (levels - 1 - i), max_width) for i in range(levels)]
