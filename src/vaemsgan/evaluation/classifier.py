"""A small VGG-style classifier for small images: the judge of cross-validation and the `domain` extractor.

Blocks of [conv3x3 - BatchNorm - ReLU] x `convs_per_block`, then 2x2 max pooling; global average pooling;
a linear layer + ReLU gives the penultimate features (`feature_dim`); a linear layer gives the logits.
Trained with AdamW, linear warm-up then cosine decay, a fixed number of steps (a fixed budget, so
classifiers trained on sets of different sizes cost the same and are compared fairly), and standard
augmentation: random crops of the zero-padded image and (optionally) horizontal flips.

Augmentation policies (`train_classifier(augment=...)`), named so that every arm of a comparison uses the
same one: `none`; `standard` (crops + flips, the cross-validation default); `classical` (what a user would
apply anyway: crops + flips, then a small random affine: rotation within +-ROTATE_DEGREES, scale in
SCALE_RANGE, via `affine_grid`/`grid_sample`, seeded).
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vaemsgan.errors import ConfigError
from vaemsgan.evaluation import cache
from vaemsgan.utils.images import to_float


@dataclass
class ClassifierConfig:
    """Architecture and training budget of the classifier (all of it enters the domain-cache key)."""

    width: int = 16  # channels of the first block, doubled per block
    max_width: int = 64
    depth: int = 3  # blocks, each ending in 2x2 max pooling
    convs_per_block: int = 1
    feature_dim: int = 128  # penultimate features (the `domain` extractor's output)
    steps: int = 300
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup: float = 0.05  # share of the steps with a linear learning-rate warm-up
    flip: bool = True  # horizontal flips; turn off for data where left/right matters (digits, text)
    crop_pad: int = 2  # random crops of the image zero-padded by this many pixels (0 = off)
    summary: int = 4  # spatial summary before the features: summary x summary average pooling (1 = global)
    # Standardise each image (zero mean, unit std over its pixels) before the first layer: the judge then
    # ignores a chip's overall brightness and contrast, which shift between SAR acquisitions (MSTAR's 17 vs
    # 15 degree depression angles) and say nothing of the target's class.
    standardize: bool = False
    # Random gamma per training image, u -> u**g on [0, 1] intensities with log g uniform in
    # [-log gamma, log gamma] (1 = off): a nonlinear brightness change that standardising cannot undo. SAR
    # returns change that way between acquisitions; on MSTAR it took the judge from 95% to 99% on val/.
    gamma: float = 1.0

    def validate(self) -> ClassifierConfig:
        for name in ("width", "max_width", "depth", "convs_per_block", "feature_dim", "steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"classifier {name} must be at least 1, got {getattr(self, name)}")
        if self.summary < 1:
            raise ConfigError(f"classifier summary must be at least 1, got {self.summary}")
        if not 1.0 <= self.gamma <= 10.0:
            raise ConfigError(f"classifier gamma must be in [1, 10] (1 = off), got {self.gamma}")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.warmup < 1 or self.crop_pad < 0:
            raise ConfigError(f"classifier lr/weight_decay/warmup/crop_pad out of range: {asdict(self)}")
        return self

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        # Values from before a key existed are left out: cache keys made then stay valid.
        if d["summary"] == 4:
            del d["summary"]
        if not d["standardize"]:
            del d["standardize"]
        if d["gamma"] == 1.0:
            del d["gamma"]
        return d


# Named judges: every accuracy of a study (TRTR, TSTR, TRTS, the gain arms) uses one of these, so a
# comparison names the judge it was made with. `small` is the Fashion-MNIST judge of issues 1-12; `sar` is
# the judge of SAR chips (MSTAR at 64 px, issue 23): four blocks (16-128 channels), random shifts of up to 6
# pixels, no flips (a mirrored chip is another aspect; flips cost 3 points on val/), each chip standardised
# (MSTAR's 15-degree test chips are darker than the 17-degree training chips, 2S1 by 15%: without it the
# judge called a third of the 2S1 test chips something else). docs/RESULTS.md "MSTAR" has the screen.
# `cifar` is the judge of colour photographs (CIFAR-10 at 32 px, issue 25): twice the small one's widths, crops
# of up to 4 pixels and flips (the standard CIFAR augmentation), 3,000 steps: 75.8% on the test set against the
# small one's 55.9% at 300 steps, ~4 CPU-minutes a training (one thread; a second conv per block: 78.0%, 2.3x
# the cost). docs/RESULTS.md "CIFAR-10" has the screen.
CLASSIFIER_PRESETS: dict[str, ClassifierConfig] = {
    "small": ClassifierConfig(),
    "sar": ClassifierConfig(
        width=16, max_width=128, depth=4, steps=1500, flip=False, crop_pad=6, standardize=True, gamma=1.5
    ),
    "cifar": ClassifierConfig(width=32, max_width=128, depth=3, steps=3000, crop_pad=4),
}


def classifier_preset(name: str, **changes: Any) -> ClassifierConfig:
    """A named judge (CLASSIFIER_PRESETS) with `changes` (e.g. steps) applied; ConfigError for an unknown name."""
    if name not in CLASSIFIER_PRESETS:
        raise ConfigError(f"unknown classifier {name!r} (known: {', '.join(CLASSIFIER_PRESETS)})")
    return replace(CLASSIFIER_PRESETS[name], **changes).validate()


class SmallVGG(nn.Module):
    """VGG-style CNN; `features(x)` is the penultimate layer, `forward(x)` the logits."""

    def __init__(self, in_channels: int, num_classes: int, resolution: int, cfg: ClassifierConfig) -> None:
        super().__init__()
        # Stop pooling at 2x2: deeper settings on small images add convolutions, not more pooling.
        layers: list[nn.Module] = []
        c_in, size = in_channels, resolution
        for b in range(cfg.depth):
            c_out = min(cfg.width * 2**b, cfg.max_width)
            for _ in range(cfg.convs_per_block):
                layers += [
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(True),
                ]
                c_in = c_out
            if size >= 4:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        self.body = nn.Sequential(*layers)
        # A 4x4 spatial summary, flattened: on small data sets it learns far faster than global pooling,
        # which throws away where things are (a collar vs a hem). Larger images are pooled down to it.
        # Global pooling (summary 1) is the shift-invariant choice for centred targets that move (SAR chips).
        s = min(cfg.summary, size)
        self.pool = nn.AdaptiveAvgPool2d(s)
        self.penultimate = nn.Sequential(nn.Linear(c_in * s**2, cfg.feature_dim), nn.ReLU(True))
        self.head = nn.Linear(cfg.feature_dim, num_classes)
        self.in_channels, self.num_classes, self.resolution = in_channels, num_classes, resolution
        self.standardize = cfg.standardize

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.standardize:
            x = standardize_images(x)
        return self.penultimate(self.pool(self.body(x)).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def standardize_images(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Each image minus its mean, divided by its standard deviation (over channels and pixels); a flat
    image (std 0) becomes zeros, not NaN. The layout of `x` is kept."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


# Building a network draws its initial weights from torch's global generator: classifiers trained in parallel
# threads (crossval) build theirs one at a time, each under its own seed, leaving the global state as it was.
_INIT_LOCK = threading.Lock()


def new_classifier(
    in_channels: int, num_classes: int, resolution: int, cfg: ClassifierConfig, seed: int
) -> SmallVGG:
    """A SmallVGG initialised from `seed` alone (thread-safe; torch's global generator is left untouched),
    in channels-last layout: oneDNN's CPU convolutions train it ~1.5x faster per step (1 thread, batch 64;
    docs/BENCHMARKS.md), with the same values up to float rounding. Loaded weights keep that layout."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallVGG(in_channels, num_classes, resolution, cfg)
    return model.to(memory_format=torch.channels_last)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """A batch in the channels-last layout of `new_classifier`'s networks."""
    return x.contiguous(memory_format=torch.channels_last)


def augment_batch(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded images (offset 0..2*pad per image) and random horizontal flips."""
    n, c, h, w = x.shape
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        rows = (oy[:, None] + torch.arange(h))[:, :, None]  # n x h x 1
        cols = (ox[:, None] + torch.arange(w))[:, None, :]  # n x 1 x w
        x = xp.permute(0, 2, 3, 1)[torch.arange(n)[:, None, None], rows, cols].permute(0, 3, 1, 2)
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x.contiguous()


def random_gamma(x: torch.Tensor, gamma: float, gen: torch.Generator) -> torch.Tensor:
    """Each image's [0, 1] intensities (x in [-1, 1]) raised to its own power g, log g ~ U[-log gamma,
    log gamma]; 0 and 1 stay where they are."""
    g = torch.exp((torch.rand(len(x), 1, 1, 1, generator=gen) * 2 - 1) * math.log(gamma))
    return ((x + 1) / 2).clamp_min(0) ** g * 2 - 1


AUGMENT_POLICIES = ("none", "standard", "classical")
ROTATE_DEGREES = 5.0  # classical policy: rotation drawn uniformly from [-5, 5] degrees
SCALE_RANGE = (0.9, 1.1)  # classical policy: isotropic scale drawn uniformly from this range


def augment_policy(name: str | bool, cfg: ClassifierConfig) -> dict[str, Any]:
    """The named policy's parameters (for reports): crop padding, flips, rotation and scale ranges."""
    if name is True:
        name = "standard"
    elif name is False:
        name = "none"
    if name not in AUGMENT_POLICIES:
        raise ConfigError(f"augmentation policy {name!r}: choose one of {', '.join(AUGMENT_POLICIES)}")
    on = name != "none"
    classical = name == "classical"
    return {
        "name": name,
        "crop_pad": cfg.crop_pad if on else 0,
        "flip": bool(cfg.flip and on),
        "rotate_degrees": ROTATE_DEGREES if classical else 0.0,
        "scale": list(SCALE_RANGE) if classical else [1.0, 1.0],
        "gamma": cfg.gamma if on else 1.0,
    }


def affine_batch(
    x: torch.Tensor,
    angle_deg: torch.Tensor,
    scale: torch.Tensor,
    shift_px: torch.Tensor | None = None,
    fill: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Rotate each image by angle_deg[i] (counter-clockwise on screen) and scale it by scale[i] about its
    centre, then shift it by shift_px[i] = (dx, dy) pixels (right, down); bilinear, uncovered pixels get
    `fill` (a number or one value per image). Images whose parameters are the identity are returned exactly."""
    n, _, h, w = x.shape
    shift = torch.zeros(n, 2) if shift_px is None else shift_px.to(torch.float32)
    a = -torch.deg2rad(angle_deg.to(torch.float32))  # image rows run downwards
    s = scale.to(torch.float32)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    # theta maps output coordinates (normalised to [-1, 1]) to input ones: the inverse of the wanted map.
    # Aspect-correct rotation: x and y are normalised by w and h.
    tx, ty = -2 * shift[:, 0] / w, -2 * shift[:, 1] / h
    theta = torch.stack(
        [
            torch.stack([cos, sin * h / w, cos * tx + sin * ty * h / w], 1),
            torch.stack([-sin * w / h, cos, -sin * tx * w / h + cos * ty], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    fill_t = torch.as_tensor(fill, dtype=x.dtype).reshape(-1, 1, 1, 1)
    out = F.grid_sample(x - fill_t, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill_t
    ident = (angle_deg == 0) & (scale == 1) & (shift == 0).all(1)
    return torch.where(ident[:, None, None, None], x, out)


def classical_batch(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """The `classical` policy: crops and flips (augment_batch), then a random small rotation and scale;
    uncovered pixels take the mean of the image's border (its background)."""
    x = augment_batch(x, pad, flip, gen)
    n = len(x)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * ROTATE_DEGREES
    lo, hi = SCALE_RANGE
    scale = lo + (hi - lo) * torch.rand(n, generator=gen)
    border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], 2).mean((1, 2))
    return affine_batch(x, angle, scale, fill=border)


def _check_data(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ConfigError(
            f"classifier images must be uint8 N x C x H x W, got {images.dtype} {tuple(images.shape)}"
        )
    if len(images) != len(labels) or len(images) == 0:
        raise ConfigError(f"classifier needs images with one label each, got {len(images)} and {len(labels)}")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ConfigError(f"labels must be in 0..{num_classes - 1}")


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    cfg: ClassifierConfig | None = None,
    *,
    seed: int = 0,
    augment: bool | str = True,
    progress: Callable[[int, int], None] | None = None,
) -> SmallVGG:
    """Train a SmallVGG on uint8 images for `cfg.steps` steps; returns it in eval mode on the CPU.

    Seeded: the initial weights, batch order and augmentation depend on `seed` only (the global torch
    RNG is left untouched). `progress(step, total)` is called every 25 steps. `augment` names the policy
    (AUGMENT_POLICIES; True = 'standard', False = 'none').
    """
    cfg = (cfg or ClassifierConfig()).validate()
    policy = augment_policy(augment, cfg)["name"]
    labels = torch.as_tensor(labels, dtype=torch.long)
    _check_data(images, labels, num_classes)
    n, c, h, _ = images.shape
    model = new_classifier(c, num_classes, h, cfg, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * cfg.steps))

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, cfg.steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    bs = min(cfg.batch_size, n)
    perm, pos = torch.randperm(n, generator=gen), 0
    model.train()
    for step in range(cfg.steps):
        if pos + bs > n:  # a new epoch: a new permutation
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos : pos + bs]
        pos += bs
        x = to_float(images[idx])
        if cfg.gamma != 1.0 and policy != "none":
            x = random_gamma(x, cfg.gamma, gen)
        if cfg.standardize:  # before the shifts, so that their zero padding is each image's mean
            x = standardize_images(x)
        if policy == "standard":
            x = augment_batch(x, cfg.crop_pad, cfg.flip, gen)
        elif policy == "classical":
            x = classical_batch(x, cfg.crop_pad, cfg.flip, gen)
        loss = F.cross_entropy(model(_nhwc(x)), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None and (step + 1) % 25 == 0:
            progress(step + 1, cfg.steps)
    model.eval()
    return model


def cached_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    cfg: ClassifierConfig | None = None,
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[SmallVGG, dict[str, Any]]:
    """`train_classifier` (standard augmentation) on real images, or the same network from the evaluation
    cache (evaluation/cache.py): the key hashes the images, labels, class names, settings and seed, so a
    cached file is exactly what training would give. Returns (model in eval mode, info for the report)."""
    cfg = (cfg or ClassifierConfig()).validate()
    key = cache.data_hash(images, labels, class_names, {"classifier": cfg.to_dict(), "seed": seed})
    path = cache.cache_folder(cache_dir) / f"{key}.pt"
    model: SmallVGG | None = None
    state = cache.load(path)
    if state is not None:
        try:
            model = new_classifier(images.shape[1], len(class_names), images.shape[2], cfg, seed)
            model.load_state_dict(state["state_dict"])
        except Exception:  # noqa: BLE001 - a stale file (other architecture) is retrained
            model = None
    cached = model is not None
    if model is None:
        model = train_classifier(images, labels, len(class_names), cfg, seed=seed, progress=progress)
        cache.save(path, {"state_dict": model.state_dict(), "classifier": cfg.to_dict(), "key": key})
    model.eval().requires_grad_(False)
    info = {
        "cache_file": str(path),
        "cache_hit": cached,
        "classifier": cfg.to_dict(),
        "seed": seed,
        "key": key,
    }
    return model, info


def folded_for_inference(model: SmallVGG) -> SmallVGG:
    """An eval-mode copy of `model` with every BatchNorm folded into the convolution before it: the same
    function up to float rounding (~1e-7 on the logits), ~1.5x faster forward on a CPU (one operator per
    layer instead of two). The model itself is left as it is; a model without BatchNorm (e.g. one folded
    already) is returned as it is, in eval mode, so a caller that predicts batch by batch folds once and
    passes the result."""
    if not any(isinstance(m, nn.BatchNorm2d) for m in model.body):
        return model.eval()
    folded = copy.deepcopy(model).eval()
    layers, out = list(folded.body), []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm2d) and out and isinstance(out[-1], nn.Conv2d):
            out[-1] = fuse_conv_bn_eval(out[-1], layer)
        else:
            out.append(layer)
    folded.body = nn.Sequential(*out)
    return folded.to(memory_format=torch.channels_last).requires_grad_(False)


@torch.inference_mode()
def logits(model: SmallVGG, images: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """Logits of uint8 images (eval mode, BatchNorm folded, batches)."""
    net = folded_for_inference(model)
    outs = [net(_nhwc(to_float(images[s : s + batch_size]))) for s in range(0, len(images), batch_size)]
    return torch.cat(outs) if outs else torch.zeros(0, model.num_classes)


def predict(model: SmallVGG, images: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """Predicted class index of each uint8 image."""
    return logits(model, images, batch_size).argmax(dim=1)


def accuracy(model: SmallVGG, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of correctly classified images (NaN for an empty set)."""
    if len(images) == 0:
        return float("nan")
    return float((predict(model, images) == torch.as_tensor(labels)).double().mean())


@torch.inference_mode()
def features(model: SmallVGG, images: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """Penultimate-layer features (N x feature_dim, float32) of uint8 images (BatchNorm folded)."""
    net = folded_for_inference(model)
    outs = [
        net.features(_nhwc(to_float(images[s : s + batch_size]))) for s in range(0, len(images), batch_size)
    ]
    return torch.cat(outs) if outs else torch.zeros(0, model.penultimate[0].out_features)
