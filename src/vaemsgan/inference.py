"""Low-level inference on a trained model: load a checkpoint, draw latents, sample a class, encode, decode.

The one place these happen: `generation/` (image folders, variations, curation), `evaluation/` and the
public API (`vaemsgan.api`) build on them. Nothing here writes files.

BatchNorm: the generator is trained on batches that mix posterior and prior latents, so its running
statistics fit neither input alone. `load_model` recomputes them for prior latents (sampling), and
`posterior_decoder` gives a copy calibrated for decoding a set of posterior means (reconstruction,
variations of real images: the means alone or the training mix, whichever reconstructs the images better);
see `models.layers.recalibrate_batchnorm`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vaemsgan.checkpoint import config_of, load_checkpoint, mismatch_reason, resolve_checkpoint
from vaemsgan.config import Config
from vaemsgan.errors import CheckpointError, ConfigError
from vaemsgan.models import Encoder, Generator, build_networks
from vaemsgan.models.layers import inference_batch, prior_batches, recalibrate_batchnorm
from vaemsgan.utils.images import to_float, to_uint8
from vaemsgan.utils.io import file_sha256

# A decoder: (z, labels or None) -> float images in [-1, 1].
Decoder = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass
class LoadedModel:
    """The networks of one checkpoint, in eval mode, with BatchNorm statistics recomputed for the prior."""

    cfg: Config
    generator: Generator  # the EMA generator when the run kept one
    encoder: Encoder | None
    critic: nn.Module
    class_names: list[str]
    checkpoint: Path
    checkpoint_sha256: str
    step: int

    @property
    def conditional(self) -> bool:
        return self.generator.conditional

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def labels(self, cls: int, n: int, device: torch.device | str) -> torch.Tensor | None:
        """n copies of class `cls` as generator labels; None for an unconditional model."""
        return torch.full((n,), cls, dtype=torch.long, device=device) if self.conditional else None


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:1', ... or a torch.device; one-line
    ConfigError for CUDA on a machine without it or a name torch does not know."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name!r}: {exc}") from None


def load_model(path: str | Path, device: str | torch.device = "cpu", prefer_best: bool = True) -> LoadedModel:
    """Load a checkpoint file, or a run folder's best.pt (with `prefer_best`) else its newest checkpoint.

    Checkpoints are read with `torch.load(weights_only=True)`; a missing, corrupt or foreign file is a
    CheckpointError with one line."""
    ckpt = resolve_checkpoint(path, prefer_best=prefer_best)
    state = load_checkpoint(ckpt)
    try:
        cfg = config_of(state)
        nets = build_networks(cfg, len(state["class_names"]))
        for k, m in nets.modules().items():
            m.load_state_dict(state["models"][k])
        if state.get("ema") is not None:
            nets.generator.load_state_dict(state["ema"])
    except CheckpointError as exc:
        raise CheckpointError(f"{ckpt}: {exc}") from exc
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{ckpt}: the weights do not fit the model its config describes ({mismatch_reason(exc)})"
        ) from exc
    nets.to(device)
    for m in nets.modules().values():
        m.eval().requires_grad_(False)
    recalibrate_batchnorm(
        nets.generator,
        prior_batches(
            cfg.model.latent_dim,
            len(state["class_names"]),
            nets.generator.conditional,
            device,
            batch_size=inference_batch(cfg.data.resolution),
        ),
    )
    return LoadedModel(
        cfg,
        nets.generator,
        nets.encoder,
        nets.critic,
        list(state["class_names"]),
        ckpt,
        file_sha256(ckpt),
        int(state["step"]),
    )


def latents(seed: int, cls: int, n: int, dim: int, truncation: float | None) -> torch.Tensor:
    """The n latents of class `cls`: a function of (seed, class, n) alone; truncation resamples |z| > t."""
    g = torch.Generator().manual_seed(seed * 100_003 + cls)
    z = torch.randn(n, dim, generator=g)
    if truncation is not None:
        if truncation <= 0:
            raise ConfigError(f"--truncation must be > 0, got {truncation}")
        for _ in range(100):
            bad = z.abs() > truncation
            if not bad.any():
                break
            z[bad] = torch.randn(int(bad.sum()), generator=g)
        z.clamp_(-truncation, truncation)
    return z


@torch.no_grad()  # not inference_mode: callers of the API may edit the images in place
def decode(
    decoder: Decoder, z: torch.Tensor, labels: torch.Tensor | None, batch_size: int = 256
) -> torch.Tensor:
    """Latents (and labels, or None) -> uint8 images N x C x H x W on the CPU, in batches.

    `decoder` runs on the device of its weights; z and labels may live anywhere. Each latent is mapped on
    its own (eval mode), so the result does not depend on the batch size."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if len(z) == 0:
        raise ConfigError("no latents to decode")
    device = _device_of(decoder)
    outs = []
    for s in range(0, len(z), batch_size):
        y = None if labels is None else labels[s : s + batch_size].to(device)
        outs.append(to_uint8(decoder(z[s : s + batch_size].to(device), y)).cpu())
    return torch.cat(outs)


def _device_of(decoder: Decoder) -> torch.device:
    if isinstance(decoder, nn.Module):
        p = next(decoder.parameters(), None)
        if p is not None:
            return p.device
    return torch.device("cpu")


def sample_class(
    model: LoadedModel,
    cls: int,
    n: int,
    seed: int = 0,
    truncation: float | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """n uint8 images of class index `cls`: the same images `vaemsgan generate --per-class n --seed seed`
    writes for that class."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be an integer of at least 1, got {n!r}")
    z = latents(seed, cls, n, model.cfg.model.latent_dim, truncation)
    return decode(model.generator, z, model.labels(cls, n, "cpu"), batch_size)


def _require_encoder(model: LoadedModel) -> Encoder:
    if model.encoder is None:
        raise CheckpointError(f"{model.checkpoint}: this model has no encoder (preset without the VAE half)")
    return model.encoder


@torch.no_grad()
def encode(
    model: LoadedModel, images: torch.Tensor, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images N x C x H x W -> (mu, logvar) of q(z|x), each N x latent_dim, on the CPU."""
    encoder = _require_encoder(model)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    device = model.device
    mus, logvars = [], []
    for s in range(0, len(images), batch_size):
        mu, logvar = encoder(to_float(images[s : s + batch_size].to(device)))
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
    dim = model.cfg.model.latent_dim
    if not mus:
        return torch.zeros(0, dim), torch.zeros(0, dim)
    return torch.cat(mus), torch.cat(logvars)


# Batches in which `posterior_decoder` averages BatchNorm statistics: fixed, so that the statistics (and
# every decoded image) do not depend on the batch size a caller decodes with.
CALIBRATION_BATCH = 256


@torch.no_grad()
def posterior_decoder(
    model: LoadedModel,
    mu: torch.Tensor,
    labels: torch.Tensor | None,
    images: torch.Tensor | None = None,
) -> Generator:
    """A copy of the generator with BatchNorm statistics for decoding the posterior means `mu` (with their
    labels): the decoder of `reconstruct_images` and of variations of real images (the same statistics for
    the same images, so temperature 0 reproduces a reconstruction).

    Two calibrations fit: the posterior means alone, and the mix the generator was trained on (each batch of
    means plus 1/`loss.recon_fraction` as many prior latents of the same classes, as in a training step).
    Which decodes better depends on how far the posterior lies from the prior (measured on 100 images per
    class: at KL weight 0.01 SSIM 0.33 alone against 0.63 mixed; at 0.1 level after 30 minutes, alone better
    after 10). Given `images` (the uint8 images `mu` encodes) the one that reconstructs them with the lower
    pixel error is kept; without them, the means alone."""
    return _posterior_decoding(model, mu, labels, images)[0]


def _posterior_decoding(
    model: LoadedModel,
    mu: torch.Tensor,
    labels: torch.Tensor | None,
    images: torch.Tensor | None,
    batch_size: int = 256,
) -> tuple[Generator, torch.Tensor | None]:
    """`posterior_decoder`'s decoder and, when `images` are given, its reconstructions of them (decoded to
    choose it, so a caller who wants them does not decode again)."""
    y = labels if model.conditional else None
    b = CALIBRATION_BATCH
    parts = [(mu[s : s + b], None if y is None else y[s : s + b]) for s in range(0, len(mu), b)]
    alone = _calibrated(model, parts)
    if images is None or len(mu) == 0:
        return alone, None
    g = torch.Generator().manual_seed(0)  # fixed prior latents: the same images get the same decoder
    per_mean = 1.0 / model.cfg.loss.recon_fraction
    mixed_parts = []
    for m, my in parts:
        k = max(1, round(len(m) * per_mean))
        z = torch.randn(k, mu.shape[1], generator=g)
        zy = None if my is None else my[torch.randint(0, len(m), (k,), generator=g)]
        mixed_parts.append((torch.cat([m, z]), None if my is None else torch.cat([my, zy])))
    mixed = _calibrated(model, mixed_parts)
    recs = [decode(d, mu, y, batch_size) for d in (alone, mixed)]
    errors = [float(((r.float() - images.float()) ** 2).mean()) for r in recs]
    return (alone, recs[0]) if errors[0] <= errors[1] else (mixed, recs[1])


def _calibrated(model: LoadedModel, parts: list[tuple[torch.Tensor, torch.Tensor | None]]) -> Generator:
    """A copy of the generator with BatchNorm statistics averaged over `parts` of (z, y)."""
    device = model.device
    decoder = copy.deepcopy(model.generator)
    recalibrate_batchnorm(decoder, [(z.to(device), None if zy is None else zy.to(device)) for z, zy in parts])
    return decoder


def reconstruct_images(
    model: LoadedModel, images: torch.Tensor, labels: torch.Tensor | None, batch_size: int = 256
) -> torch.Tensor:
    """Encoder -> decoder (posterior mean) for uint8 images; returns uint8 reconstructions.

    `labels` (class indices) are required by a conditional model and ignored by an unconditional one."""
    if len(images) == 0:
        return images.new_zeros((0, *images.shape[1:]))
    y = labels_for(model, labels, len(images))
    mu, _ = encode(model, images, batch_size)
    _, rec = _posterior_decoding(model, mu, y, images, batch_size)
    assert rec is not None  # images were given
    return rec


def labels_for(model: LoadedModel, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Generator labels for n images: the class indices for a conditional model, None otherwise."""
    if not model.conditional:
        return None
    if labels is None:
        raise ConfigError(
            f"this model is class-conditional: give each image's class ({', '.join(model.class_names)})"
        )
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.shape != (n,):
        raise ConfigError(f"{tuple(labels.shape)} labels for {n} images (need one class index per image)")
    if n and (labels.min() < 0 or labels.max() >= len(model.class_names)):
        raise ConfigError(
            f"class index {int(labels.max() if labels.max() >= len(model.class_names) else labels.min())} "
            f"out of range: the model has {len(model.class_names)} classes"
        )
    return labels
