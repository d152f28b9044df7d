"""VAE encoder: image -> mean and log-variance of q(z|x); z by reparameterisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from vaemsgan.models.layers import level_widths


class Encoder(nn.Module):
    def __init__(
        self, resolution: int, channels: int, latent_dim: int, width: int, max_width: int = 512
    ) -> None:
        super().__init__()
        n_down = int(math.log2(resolution)) - 2  # resolution -> 4x4
        widths = list(reversed(level_widths(width, n_down + 1, max_width)))  # finest first
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for i in range(n_down):
            layers += [
                nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(widths[i + 1]),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.body = nn.Sequential(*layers)
        self.to_stats = nn.Linear(widths[-1] * 16, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar) of q(z|x)."""
        mu, logvar = self.to_stats(self.body(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)  # keeps exp(logvar) finite early in training


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, differentiable in mu and logvar."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
