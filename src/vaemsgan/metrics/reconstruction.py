"""How close reconstructions are to their originals: per-pixel error, PSNR, SSIM, classifier accuracy.

SSIM follows Wang, Bovik, Sheikh & Simoncelli (2004): an 11 x 11 Gaussian window (sigma 1.5), constants
C1 = (0.01 L)^2 and C2 = (0.03 L)^2 for data range L, statistics over the window positions that fit
inside the image ("valid"), averaged over positions and channels: one value per image, 1 for identical
images. The window shrinks (to the largest odd size that fits) for images smaller than 11 pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """size x size Gaussian weights summing to 1 (float64)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    return g[:, None] * g[None, :]


def ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """SSIM of each pair of images (N x C x H x W, or C x H x W) -> a tensor of N values (float64)."""
    if x.shape != y.shape:
        raise ValueError(f"ssim: images differ in shape, {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() == 3:
        x, y = x[None], y[None]
    if x.dim() != 4:
        raise ValueError(f"ssim: expected N x C x H x W images, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    size = min(window, h, w)
    size -= 1 - size % 2  # odd
    kernel = gaussian_window(size, sigma)[None, None].expand(c, 1, size, size)
    x, y = x.double(), y.double()

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=c)

    mx, my = mean(x), mean(y)
    vx, vy, cxy = mean(x * x) - mx * mx, mean(y * y) - my * my, mean(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


@dataclass
class ReconstructionQuality:
    """Averages over the images; pixel values on a 0-1 scale."""

    images: int
    mae: float  # mean |x - x'| per pixel
    rmse: float  # root of the mean squared error per pixel
    psnr: float  # 10 log10(1 / MSE), over the whole set (dB); inf for identical sets
    ssim: float  # mean SSIM per image
    ssim_min: float  # the worst image's SSIM
    classifier_accuracy: float | None = None  # classifier on the reconstructions (labels = truth)
    classifier_accuracy_real: float | None = None  # the same classifier on the originals, for reference

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


Classifier = Callable[[torch.Tensor], torch.Tensor]


def _predict(classifier: Classifier, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    outs = []
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            o = torch.as_tensor(classifier(images[s : s + batch_size])).cpu()
            outs.append(o.argmax(1) if o.dim() == 2 else o.long())
    return torch.cat(outs)


def reconstruction_quality(
    real: torch.Tensor,
    reconstructed: torch.Tensor,
    labels: torch.Tensor | None = None,
    classifier: Classifier | None = None,
) -> ReconstructionQuality:
    """Compare uint8 originals with their uint8 reconstructions (N x C x H x W each).

    `classifier`, if given with `labels`, is called on uint8 image batches and returns logits / scores
    (N x classes, argmax taken) or class indices (N); its accuracy on the reconstructions (and, for
    reference, on the originals) is reported: a reconstruction that keeps its class keeps what matters."""
    if real.shape != reconstructed.shape:
        raise ValueError(f"{tuple(real.shape)} originals but {tuple(reconstructed.shape)} reconstructions")
    if len(real) == 0:
        raise ValueError("no images to compare")
    a, b = real.double() / 255.0, reconstructed.double() / 255.0
    diff = a - b
    mse = float((diff**2).mean())
    s = ssim(a, b, data_range=1.0)
    q = ReconstructionQuality(
        images=len(real),
        mae=float(diff.abs().mean()),
        rmse=mse**0.5,
        psnr=float("inf") if mse == 0 else float(10 * torch.log10(torch.tensor(1.0 / mse))),
        ssim=float(s.mean()),
        ssim_min=float(s.min()),
    )
    if classifier is not None:
        if labels is None:
            raise ValueError("a classifier needs the images' labels")
        truth = torch.as_tensor(labels, dtype=torch.long).cpu()
        q.classifier_accuracy = float((_predict(classifier, reconstructed) == truth).double().mean())
        q.classifier_accuracy_real = float((_predict(classifier, real) == truth).double().mean())
    return q
