"""Generator = VAE decoder: ONE up-sampling network maps a latent (and a class) to an image.

It decodes z ~ q(z|x) into reconstructions and maps z_p ~ N(0, I) into new images (the digest's
"decoder = generator"). Transposed convolutions double the size at each level; BatchNorm is
class-conditional when the model is conditional.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vaemsgan.models.layers import BatchNorm2dIgnoringLabel, ConditionalBatchNorm2d, level_widths


def up_conv(c_in: int, c_out: int, kernel: int) -> nn.ConvTranspose2d:
    """A transposed convolution that exactly doubles H and W for any kernel size."""
    padding = (kernel - 1) // 2
    output_padding = 1 if kernel % 2 == 1 else 0
    return nn.ConvTranspose2d(
        c_in, c_out, kernel, stride=2, padding=padding, output_padding=output_padding, bias=False
    )


def resize_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Nearest-neighbour doubling and a 3x3 convolution: every output pixel sees the same number of inputs,
    so no periodic pattern of the stride is built in (Odena et al. 2016, "Deconvolution and checkerboard
    artifacts")."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    )


class Generator(nn.Module):
    def __init__(
        self,
        resolution: int,
        channels: int,
        latent_dim: int,
        num_classes: int,
        width: int,
        kernel: int,
        max_width: int = 512,
        conditional: bool = True,
        upsample: str = "transpose",
    ) -> None:
        """`upsample`: "transpose" (`up_conv`, kernel `kernel`) or "nearest" (`resize_conv`)."""
        super().__init__()
        self.resolution, self.channels, self.latent_dim = resolution, channels, latent_dim
        self.num_classes, self.conditional = num_classes, conditional
        n_up = int(math.log2(resolution)) - 2  # 4x4 -> resolution
        widths = level_widths(width, n_up + 1, max_width)
        self.fc = nn.Linear(latent_dim, widths[0] * 16, bias=False)

        def norm(c: int) -> nn.Module:
            return ConditionalBatchNorm2d(c, num_classes) if conditional else BatchNorm2dIgnoringLabel(c)

        self.norm0 = norm(widths[0])
        if upsample not in ("transpose", "nearest"):
            raise ValueError(f"upsample must be 'transpose' or 'nearest', got {upsample!r}")
        self.ups = nn.ModuleList(
            up_conv(widths[i], widths[i + 1], kernel)
            if upsample == "transpose"
            else resize_conv(widths[i], widths[i + 1])
            for i in range(n_up)
        )
        self.norms = nn.ModuleList(norm(widths[i + 1]) for i in range(n_up))
        self.to_image = nn.Conv2d(widths[-1], channels, 3, padding=1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional and y is None:
            raise ValueError("a conditional generator needs class labels")
        h = self.fc(z).view(z.shape[0], -1, 4, 4)
        h = self.act(self.norm0(h, y))
        for up, norm in zip(self.ups, self.norms):
            h = self.act(norm(up(h), y))
        return torch.tanh(self.to_image(h))
