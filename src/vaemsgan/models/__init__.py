"""The networks: encoder, generator (= decoder) and multi-scale critic, built from one config."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vaemsgan.config import Config, validate
from vaemsgan.models.discriminator import MultiScaleCritic
from vaemsgan.models.encoder import Encoder, reparameterize
from vaemsgan.models.generator import Generator

__all__ = [
    "Encoder",
    "Generator",
    "MultiScaleCritic",
    "Networks",
    "build_networks",
    "is_conditional",
    "reparameterize",
]


@dataclass
class Networks:
    generator: Generator
    critic: MultiScaleCritic
    encoder: Encoder | None

    def modules(self) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {"generator": self.generator, "critic": self.critic}
        if self.encoder is not None:
            out["encoder"] = self.encoder
        return out

    def to(self, device: torch.device | str) -> Networks:
        for m in self.modules().values():
            m.to(device)
        return self


def is_conditional(cfg: Config, num_classes: int) -> bool:
    """Is the model of `cfg` class-conditional on data with `num_classes` classes (it needs two)?"""
    return cfg.model.conditional and num_classes > 1


MIN_FULL_WIDTH = 4  # the thinnest full-resolution layer `width_resolution` makes


def full_resolution_width(width: int, resolution: int, width_resolution: int) -> int:
    """Channels at full resolution: `width`, halved per doubling of `resolution` past `width_resolution`
    (0: `width` at any size), at least MIN_FULL_WIDTH. The coarser levels, which double from there, then
    have the widths a `width_resolution` model has at the same image size."""
    if width_resolution <= 0 or resolution <= width_resolution:
        return width
    return max(MIN_FULL_WIDTH, min(width, width * width_resolution // resolution))


def build_networks(cfg: Config, num_classes: int) -> Networks:
    # A config finished with `apply_overrides` (which checks single keys only) is checked as a whole here.
    validate(cfg)
    m, d = cfg.model, cfg.data
    conditional = is_conditional(cfg, num_classes)
    g_width, d_width, e_width = (
        full_resolution_width(w, d.resolution, m.width_resolution) for w in (m.g_width, m.d_width, m.e_width)
    )
    gen = Generator(
        d.resolution,
        d.channels,
        m.latent_dim,
        max(num_classes, 1),
        g_width,
        m.g_kernel,
        m.g_max_width,
        conditional,
        m.g_upsample,
    )
    critic = MultiScaleCritic(
        d.resolution,
        d.channels,
        max(num_classes, 1),
        d_width,
        m.d_max_width,
        list(m.d_kernels),
        m.d_norm,
        m.pooling,
        m.scales,
        m.fusion,
        m.d_min_resolution,
        conditional,
        class_head=conditional and cfg.loss.class_weight > 0,
        coarse_width=m.d_coarse_width,
        hires_kernels=list(m.d_hires_kernels),
        hires_above=m.width_resolution,
        strided_stem=m.d_strided_stem,
    )
    enc = Encoder(d.resolution, d.channels, m.latent_dim, e_width, m.g_max_width) if m.use_encoder else None
    return Networks(gen, critic, enc)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
