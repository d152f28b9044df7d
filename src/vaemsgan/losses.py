"""Losses of VAE-MSGAN: adversarial terms, gradient penalties, KL, reconstruction.

Update rules (the digest, after Larsen et al. 2016):
- critic:    adversarial(real, fake) + penalty, where fakes are reconstructions x~ and prior samples x_p;
- encoder:   kl_weight * KL(q(z|x) || N(0, I)) + feature reconstruction;
- generator: gamma * feature reconstruction + adversarial on x~ and x_p.
The feature-wise reconstruction error is the squared distance between the critic's layer-l features of
x and x~: a Gaussian log-likelihood in feature space instead of pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

CriticFn = Callable[[torch.Tensor], torch.Tensor]  # images -> scores [N]


def critic_loss(kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Critic's adversarial loss (lower is better for the critic)."""
    if kind == "wgan-gp":
        return fake_scores.mean() - real_scores.mean()
    if kind == "hinge":
        return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()
    if kind == "ns":
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
    raise ValueError(f"unknown adversarial loss {kind!r}")


def generator_loss(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator's adversarial loss: make the critic score fakes as real."""
    if kind in ("wgan-gp", "hinge"):
        return -fake_scores.mean()
    if kind == "ns":
        return F.softplus(-fake_scores).mean()
    raise ValueError(f"unknown adversarial loss {kind!r}")


def gradient_penalty(
    critic: CriticFn, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor | None = None
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - 1)^2] on x_hat between real and fake.

    `critic` closes over the labels, so a conditional critic is differentiated at fixed class; a
    multi-scale critic is one function of the full-resolution image (its downsampling is inside), so the
    penalty covers every scale at once.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1.0 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def r1_penalty(critic: CriticFn, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E[||grad_x D(x)||^2] on real images; multiply by gamma/2 outside."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form, averaged over batch and latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()


def feature_reconstruction(feat_rec: torch.Tensor, feat_real: torch.Tensor) -> torch.Tensor:
    """Mean squared error between critic features of reconstructions and of the real images."""
    return (feat_rec - feat_real.detach()).pow(2).mean()


def pixel_reconstruction(kind: str, rec: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return (rec - real).abs().mean() if kind == "l1" else (rec - real).pow(2).mean()
