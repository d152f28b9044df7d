"""Small building blocks shared by the networks."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def norm_2d(kind: str, channels: int) -> nn.Module:
    """Per-branch normalisation of the critic. 'layer' normalises each sample over (C, H, W), so it
    keeps the per-sample gradient penalty valid; 'batch' (the paper's) mixes samples in a batch;
    'spectral' has no normalisation layer: the critic's weights are spectrally normalised instead."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind in ("none", "spectral"):
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


@torch.no_grad()
def recalibrate_batchnorm(
    module: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]]
) -> None:
    """Replace BatchNorm running statistics by exact averages over `batches` of (z, y) inputs.

    The generator is trained on mixed batches (posterior and prior latents), so its running statistics
    fit neither input alone; sampling recomputes them for the inputs it will see ("standing statistics",
    Brock et al. 2019). Deterministic for fixed inputs, and independent of the sampling batch size.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m.momentum, m.training) for m in norms]
    was_training = module.training
    module.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    for z, y in batches:
        module(z, y)
    for m, (momentum, training) in zip(norms, saved):
        m.momentum = momentum
        m.train(training)
    module.train(was_training)


def inference_batch(resolution: int, at_32: int = 256) -> int:
    """Images per no-grad generator call at `resolution`: `at_32` up to 32 px, then a quarter per doubling
    (at least 8), so that the activations of one call stay ~the size they have at 32 px (a batch of 256 at
    256 px held 3 GB; issue 24). Sizes at and below 32 px are unchanged."""
    return min(at_32, max(8, at_32 * 32 * 32 // (resolution * resolution)))


def prior_batches(
    latent_dim: int,
    num_classes: int,
    conditional: bool,
    device: torch.device | str,
    n: int = 1024,
    batch_size: int = 256,
    seed: int = 0,
) -> Iterable[tuple[torch.Tensor, torch.Tensor | None]]:
    """Seeded prior latents with labels cycling over the classes, for `recalibrate_batchnorm`."""
    g = torch.Generator().manual_seed(seed)
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        z = torch.randn(b, latent_dim, generator=g).to(device)
        y = (torch.arange(start, start + b) % num_classes).to(device) if conditional else None
        yield z, y
