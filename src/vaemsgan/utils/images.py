"""Image tensor conventions: models work in [-1, 1] float, files and statistics in uint8 0-255."""

from __future__ import annotations

import math

import numpy as np
import torch


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded and clamped."""
    return images.detach().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile N x C x H x W uint8 images into one H' x W' x C uint8 array, `nrow` images a row (torchvision's layout)."""
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    n, c, h, w = images.shape
    ncol = max(1, min(nrow, n))
    nrows = max(1, math.ceil(n / ncol))
    grid = np.full((nrows * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.uint8)
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = arr[i]
    return grid
