"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) with an ADA controller (Karras et al. 2020).

The discriminator sees augmented real AND fake images inside the GAN losses; because every op is
differentiable w.r.t. its input, the generator still gets gradients through the augmentation, and
because both sides are augmented alike the generator is not pushed to reproduce the augmentations.
Apply it only inside the losses, never to images that are sampled or saved.

Conventions, for images in [-1, 1] (N x C x H x W, C = 1 or 3):

* Fill value is 0 (mid-grey) for both `translation` and `cutout`, as in DiffAugment. A border fill
  would be content-dependent and -1 would add hard black edges that D could key on; 0 is the mean of
  the range and is what the reference implementation trains with.
* `color` does not clamp: brightness shifts by at most +-0.5, saturation and contrast scale the
  distance from a mean, so outputs may leave [-1, 1] (by at most 0.5 for brightness alone). Clamping
  would zero the gradients of saturated pixels, and D sees reals and fakes with the same statistics.
* Each op is applied to each sample independently with probability `p` (ADA-style); a sample that is
  not selected comes back bit-identical. All randomness comes from `generator` when it is given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from vaemsgan.errors import ConfigError

__all__ = [
    "POLICIES",
    "AdaptiveAugment",
    "AugmentOp",
    "brightness",
    "contrast",
    "cutout",
    "diff_augment",
    "saturation",
    "translate",
    "translation",
]

# An op takes the batch, a bool mask (N,) of the samples to augment, and the generator.
AugmentOp = Callable[[Tensor, Tensor, torch.Generator | None], Tensor]

TRANSLATION_RATIO = 1 / 8  # max shift, as a fraction of the image side
CUTOUT_RATIO = 1 / 2  # side of the cut-out square, as a fraction of the image side


def _draw_device(x: Tensor, generator: torch.Generator | None) -> torch.device:
    # A generator only draws on its own device; drawing there and moving keeps a CPU generator usable
    # for CUDA batches (and the stream identical whatever device x is on).
    return generator.device if generator is not None else x.device


def _rand(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """One U[0, 1) number per sample, shaped (N, 1, 1, 1), in x's dtype and device."""
    r = torch.rand(x.shape[0], generator=generator, device=_draw_device(x, generator))
    return r.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _randint(x: Tensor, low: int, high: int, generator: torch.Generator | None) -> Tensor:
    """One integer in [low, high) per sample, shaped (N,), on x's device."""
    r = torch.randint(low, high, (x.shape[0],), generator=generator, device=_draw_device(x, generator))
    return r.to(x.device)


def _select(mask: Tensor, augmented: Tensor, x: Tensor) -> Tensor:
    # torch.where (not a blend) so unselected samples are exact copies, and grads route per sample.
    return torch.where(mask.view(-1, 1, 1, 1), augmented, x)


def brightness(x: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Add a per-sample offset in [-0.5, 0.5)."""
    return _select(mask, x + (_rand(x, generator) - 0.5), x)


def saturation(x: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Scale each pixel's distance from its channel mean by a factor in [0, 2); no-op for 1 channel."""
    if x.shape[1] == 1:
        return x  # grey images have no saturation; drawing nothing keeps the op free
    mean = x.mean(dim=1, keepdim=True)
    return _select(mask, (x - mean) * (_rand(x, generator) * 2) + mean, x)


def contrast(x: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Scale each sample's distance from its mean (over C, H, W) by a factor in [0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return _select(mask, (x - mean) * (_rand(x, generator) + 0.5) + mean, x)


def translate(x: Tensor, shift_x: Tensor, shift_y: Tensor) -> Tensor:
    """Shift each sample by integer (shift_x, shift_y) pixels (positive = right / down), filling with 0.

    `out[n, :, h, w] = x[n, :, h - shift_y[n], w - shift_x[n]]` where that source is inside the image.
    Gathers with clamped indices and masks afterwards, so there is no padding and no host sync.
    """
    n, c, h, w = x.shape
    src_y = torch.arange(h, device=x.device).view(1, h) - shift_y.view(n, 1)  # (N, H)
    src_x = torch.arange(w, device=x.device).view(1, w) - shift_x.view(n, 1)  # (N, W)
    valid = ((src_y >= 0) & (src_y < h)).view(n, 1, h, 1) & ((src_x >= 0) & (src_x < w)).view(n, 1, 1, w)
    out = x.gather(2, src_y.clamp(0, h - 1).view(n, 1, h, 1).expand(n, c, h, w))
    out = out.gather(3, src_x.clamp(0, w - 1).view(n, 1, 1, w).expand(n, c, h, w))
    return torch.where(valid, out, torch.zeros((), dtype=x.dtype, device=x.device))


def translation(x: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Random integer shift of up to round(side / 8) pixels on each axis, zero-filled."""
    _, _, h, w = x.shape
    max_y, max_x = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    shift_x = _randint(x, -max_x, max_x + 1, generator)
    shift_y = _randint(x, -max_y, max_y + 1, generator)
    # A zero shift is an exact copy, so masking the shifts is enough (and cheaper than a second where).
    mask = mask.to(shift_x.dtype)
    return translate(x, shift_x * mask, shift_y * mask)


def cutout(x: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Set one random square of side round(side / 2), lying wholly inside the image, to 0.

    Unlike DiffAugment the square never hangs over the border, so the cut area is always exactly
    `size_h * size_w` pixels per channel (simpler to reason about and to test).
    """
    n, _, h, w = x.shape
    size_h, size_w = max(1, int(h * CUTOUT_RATIO + 0.5)), max(1, int(w * CUTOUT_RATIO + 0.5))
    top = _randint(x, 0, h - size_h + 1, generator).view(n, 1)
    left = _randint(x, 0, w - size_w + 1, generator).view(n, 1)
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)
    in_rows = ((rows >= top) & (rows < top + size_h)).view(n, 1, h, 1)
    in_cols = ((cols >= left) & (cols < left + size_w)).view(n, 1, 1, w)
    cut = in_rows & in_cols & mask.view(n, 1, 1, 1)
    return torch.where(cut, torch.zeros((), dtype=x.dtype, device=x.device), x)


POLICIES: dict[str, list[AugmentOp]] = {
    "color": [brightness, saturation, contrast],
    "translation": [translation],
    "cutout": [cutout],
}


def _parse_policy(policy: str) -> list[str]:
    names = [name.strip() for name in policy.split(",") if name.strip()]
    for name in names:
        if name not in POLICIES:
            raise ConfigError(
                f"unknown augmentation policy {name!r}; valid names: {', '.join(sorted(POLICIES))}"
            )
    return names


def diff_augment(x: Tensor, policy: str, p: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Augment a batch N x C x H x W with the comma-separated `policy` ('' = identity).

    Each op hits each sample independently with probability `p`. Returns `x` itself when there is
    nothing to do (empty policy or p == 0; then no random numbers are drawn).
    """
    names = _parse_policy(policy)  # validate first, so a typo fails even while ADA holds p at 0
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"augmentation probability must be in [0, 1], got {p}")
    if x.dim() != 4:
        raise ValueError(f"diff_augment expects N x C x H x W, got shape {tuple(x.shape)}")
    if not names or p == 0.0:
        return x
    for name in names:
        for op in POLICIES[name]:
            # One Bernoulli(p) draw per sample per op, as ADA does per transform.
            mask = torch.rand(x.shape[0], generator=generator, device=_draw_device(x, generator)) < p
            x = op(x, mask.to(x.device), generator)
    return x


class AdaptiveAugment:
    """ADA controller: tunes the augmentation probability `p` so that r_t = E[sign(D(real))] ~ target.

    Overfitting D grows confident on reals (r_t -> 1), so p goes up when r_t > target and down
    otherwise, by `images * interval / speed` per adjustment: `speed` is the number of real images
    over which p can travel from 0 to 1. Karras et al. use 500k images for long runs; the default
    20k suits the small data sets and short runs this project targets (a few thousand steps).
    """

    def __init__(self, target: float = 0.6, interval: int = 4, speed: float = 20_000, p: float = 0.0) -> None:
        if not -1.0 < target < 1.0:
            raise ConfigError(f"ADA target must be in (-1, 1), got {target}")
        if interval < 1:
            raise ConfigError(f"ADA interval must be >= 1, got {interval}")
        if speed <= 0:
            raise ConfigError(f"ADA speed must be > 0, got {speed}")
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"ADA probability must be in [0, 1], got {p}")
        self.target = float(target)
        self.interval = int(interval)
        self.speed = float(speed)
        self.p = float(p)
        self._r_t: float | None = None
        self._reset()

    def _reset(self) -> None:
        self._sign_sum: Tensor | None = None  # stays on D's device: no host sync between adjustments
        self._elements = 0  # score entries summed (several per image for a patch D)
        self._images = 0
        self._steps = 0

    @property
    def r_t(self) -> float | None:
        """The last measured E[sign(D(real))], or None before the first adjustment."""
        return self._r_t

    @torch.no_grad()
    def update(self, real_scores: Tensor) -> float:
        """Record D's logits on one batch of reals; adjust `p` every `interval` calls. Returns `p`."""
        batch_sum = torch.sign(real_scores.detach()).sum(dtype=torch.float32)
        if self._sign_sum is None:
            self._sign_sum = batch_sum
        else:
            self._sign_sum = self._sign_sum.to(batch_sum.device) + batch_sum
        # Shapes are known on the host, so counting needs no sync.
        self._elements += real_scores.numel()
        self._images += real_scores.shape[0] if real_scores.dim() > 0 else 1
        self._steps += 1
        if self._steps >= self.interval:
            if self._elements > 0:
                r_t = float(self._sign_sum.item()) / self._elements  # the one sync per interval
                self._r_t = r_t
                step = self._images / self.speed
                direction = (r_t > self.target) - (r_t < self.target)  # sign(r_t - target)
                self.p = min(max(self.p + direction * step, 0.0), 1.0)
            self._reset()
        return self.p

    def state_dict(self) -> dict[str, float | int | Tensor]:
        """Running state only (hyper-parameters come from the config); safe for weights_only loading."""
        return {
            "p": self.p,
            "r_t": float("nan") if self._r_t is None else self._r_t,
            "sign_sum": (
                torch.zeros((), dtype=torch.float32)
                if self._sign_sum is None
                else self._sign_sum.detach().to("cpu")
            ),
            "elements": self._elements,
            "images": self._images,
            "steps": self._steps,
        }

    def load_state_dict(self, state: dict[str, float | int | Tensor]) -> None:
        """Restore what `state_dict` saved; the pending sum moves to D's device on the next update."""
        self.p = min(max(float(state["p"]), 0.0), 1.0)
        r_t = float(state["r_t"])
        self._r_t = None if r_t != r_t else r_t  # NaN encodes "not measured yet"
        self._steps = int(state["steps"])
        self._elements = int(state["elements"])
        self._images = int(state["images"])
        sign_sum = state["sign_sum"]
        self._sign_sum = torch.as_tensor(sign_sum, dtype=torch.float32).clone() if self._steps else None
