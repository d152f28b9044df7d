"""Multi-scale critic: the image is judged at several resolutions, each by a critic of multi-kernel blocks.

- Scales: full, 1/2, 1/4 ... by 2x2 average pooling (as pix2pixHD); one critic per scale, scores averaged.
  A coarser scale's critic can be narrower (`coarse_width` per scale): it sees less detail, and at full
  width the 1/2-scale critic costs 2/3 of the full-scale one.
- Block: parallel convolution branches with kernel sizes `kernels` (the paper's 3x3/5x5/7x7), a
  normalisation per branch, fused by concatenation + 1x1 convolution (or a sum), plus a 1x1 skip path
  so features are re-used; downsampling by strided branches ("none": all-convolutional) or avg/max pooling.
- Normalisation per branch: BatchNorm (the paper's), layer / instance norm, none, or spectral
  normalisation of every critic weight instead of a normalisation layer (SNGAN).
- Class conditioning by projection (Miyato & Koyama 2018): score += <embed(y), mean_hw phi(x)>, and
  optionally an auxiliary classifier head on the same pooled features (AC-GAN, Odena et al. 2017), which
  teaches the generator its classes in far fewer steps than the projection alone.
The full-resolution critic also returns the output of each block: the feature-wise reconstruction
loss compares real and reconstructed images there.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vaemsgan.models.layers import norm_2d


class CriticOutput(NamedTuple):
    score: torch.Tensor  # mean over scales [N]
    per_scale: list[torch.Tensor]
    features: list[torch.Tensor]  # full-scale block outputs (with return_features)
    class_logits: torch.Tensor | None  # auxiliary classifier, mean over scales [N, classes]


class MultiKernelBlock(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, kernels: list[int], norm: str, pooling: str, fusion: str
    ) -> None:
        super().__init__()
        self.pooling, self.fusion = pooling, fusion
        stride = 2 if pooling == "none" else 1
        # Split the output width across branches (Inception-style) so more kernels do not multiply the cost.
        branch_c = c_out if fusion == "sum" else max(1, c_out // len(kernels))
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(
                    c_in, branch_c, k, stride=stride, padding=k // 2, bias=norm in ("none", "spectral")
                ),
                norm_2d(norm, branch_c),
                nn.LeakyReLU(0.2, inplace=True),
            )
            for k in kernels
        )
        fused_c = branch_c if fusion == "sum" else branch_c * len(kernels)
        self.fuse = nn.Conv2d(fused_c, c_out, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False)

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 2) if self.pooling == "max" else F.avg_pool2d(x, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        h = torch.stack(outs).sum(0) if self.fusion == "sum" else torch.cat(outs, dim=1)
        h = self.fuse(h)
        if self.pooling != "none":
            h = self._down(h)
        # The skip path always averages: it carries the input's coarse content whatever the pooling.
        return h + self.skip(F.avg_pool2d(x, 2))


class ScaleCritic(nn.Module):
    """Critic for one image scale: stem, multi-kernel blocks down to `min_res`, linear + projection head."""

    def __init__(
        self,
        resolution: int,
        full_resolution: int,
        channels: int,
        num_classes: int,
        width: int,
        max_width: int,
        kernels: list[int],
        norm: str,
        pooling: str,
        fusion: str,
        min_res: int,
        conditional: bool,
        class_head: bool = False,
        hires_kernels: list[int] | None = None,
        hires_above: int = 0,
        strided_stem: bool = False,
    ) -> None:
        super().__init__()
        # A strided stem (model.d_strided_stem) replaces the stem and first block above `hires_above`.
        stride = 2 if strided_stem and hires_above and resolution > hires_above else 1
        n_blocks = int(math.log2(resolution // stride // min_res))

        def kernels_at(res_in: int) -> list[int]:  # the thin high-resolution blocks may take fewer branches
            return list(hires_kernels) if hires_kernels and hires_above and res_in > hires_above else kernels

        def w(res: int) -> int:  # same width schedule at every scale: wider where the image is smaller
            return min(width * (full_resolution // res), max_width)

        top = resolution // stride  # the resolution the blocks start at
        self.stem = (
            nn.Conv2d(channels, w(top), 4, stride=2, padding=1)
            if stride == 2
            else nn.Conv2d(channels, w(top), 3, padding=1)
        )
        self.blocks = nn.ModuleList(
            MultiKernelBlock(
                w(top >> i),
                w(top >> (i + 1)),
                kernels_at(top >> i),
                norm,
                pooling,
                fusion,
            )
            for i in range(n_blocks)
        )
        c_final = w(top >> n_blocks)
        self.head = nn.Linear(c_final * min_res * min_res, 1)
        self.embed = nn.Embedding(num_classes, c_final) if conditional else None
        if self.embed is not None:
            # Default N(0, 1) rows would make the projection term ~sqrt(C) times the linear head at
            # initialisation, so the critic would start out judging the class, not the realism.
            nn.init.normal_(self.embed.weight, 0.0, c_final**-0.5)
        self.classify = nn.Linear(c_final, num_classes) if class_head else None

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None, upto: int | None = None
    ) -> tuple[torch.Tensor | None, list[torch.Tensor], torch.Tensor | None]:
        """Score, block outputs and class logits (None without a class head). With `upto`, stop after
        that many blocks and return no score."""
        h = F.leaky_relu(self.stem(x), 0.2)
        feats: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            if upto is not None and i >= upto:
                return None, feats, None
            h = block(h)
            feats.append(h)
        if upto is not None:
            return None, feats, None
        h = F.leaky_relu(h, 0.2)
        score = self.head(h.flatten(1)).squeeze(1)
        pooled = h.mean(dim=(2, 3))
        if self.embed is not None and y is not None:
            score = score + (self.embed(y) * pooled).sum(1)
        return score, feats, (self.classify(pooled) if self.classify is not None else None)


class MultiScaleCritic(nn.Module):
    def __init__(
        self,
        resolution: int,
        channels: int,
        num_classes: int,
        width: int,
        max_width: int,
        kernels: list[int],
        norm: str,
        pooling: str,
        scales: int,
        fusion: str = "concat",
        min_res: int = 4,
        conditional: bool = True,
        class_head: bool = False,
        coarse_width: float = 1.0,
        hires_kernels: list[int] | None = None,
        hires_above: int = 0,
        strided_stem: bool = False,
    ) -> None:
        super().__init__()
        self.resolution, self.scales, self.conditional = resolution, scales, conditional
        self.critics = nn.ModuleList(
            ScaleCritic(
                resolution >> s,
                resolution,
                channels,
                num_classes,
                max(4, round(width * coarse_width**s)),
                max_width,
                kernels,
                norm,
                pooling,
                fusion,
                min_res,
                conditional,
                class_head,
                hires_kernels,
                hires_above,
                strided_stem,
            )
            for s in range(scales)
        )
        if norm == "spectral":  # Miyato et al. 2018: every weight's largest singular value held near 1
            for mod in self.modules():
                if isinstance(mod, (nn.Conv2d, nn.Linear)):
                    nn.utils.parametrizations.spectral_norm(mod)

    @property
    def num_feature_layers(self) -> int:
        return len(self.critics[0].blocks)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, return_features: bool = False
    ) -> CriticOutput:
        """Mean score over scales [N], per-scale scores, full-scale block outputs, class logits."""
        scores: list[torch.Tensor] = []
        features: list[torch.Tensor] = []
        logits: list[torch.Tensor] = []
        for s, critic in enumerate(self.critics):
            if s > 0:
                x = F.avg_pool2d(x, 2)
            score, feats, class_logits = critic(x, y)
            assert score is not None
            scores.append(score)
            if class_logits is not None:
                logits.append(class_logits)
            if s == 0 and return_features:
                features = feats
        mean_logits = torch.stack(logits).mean(0) if logits else None
        return CriticOutput(torch.stack(scores).mean(0), scores, features, mean_logits)

    def features(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Output of block `layer` (negative counts from the last) of the full-scale critic, computing no more."""
        n = self.num_feature_layers
        idx = layer % n
        _, feats, _ = self.critics[0](x, None, upto=idx + 1)
        return feats[idx]
