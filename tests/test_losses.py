"""Losses against hand-computed values and closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from vaemsgan import losses


def test_gradient_penalty_of_a_linear_critic_is_hand_value() -> None:
    # D(x) = w . x has gradient w everywhere: penalty = (||w|| - 1)^2 exactly.
    w = torch.tensor([3.0, 4.0, 0.0, 0.0]).view(1, 1, 2, 2)  # ||w|| = 5

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(1)

    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    gp = losses.gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2)


def test_gradient_penalty_interpolates_and_differentiates() -> None:
    # D(x) = sum(x^2): grad = 2 x_hat. With alpha given, x_hat is known, so the value is hand-computable.
    real = torch.ones(2, 1, 1, 2)
    fake = torch.zeros(2, 1, 1, 2)
    alpha = torch.tensor([0.5, 1.0]).view(2, 1, 1, 1)
    gp = losses.gradient_penalty(lambda x: x.pow(2).flatten(1).sum(1), real, fake, alpha)
    # x_hat = 0.5 -> grad = (1, 1), norm sqrt2; x_hat = 1 -> grad (2, 2), norm 2 sqrt2
    expected = ((math.sqrt(2) - 1) ** 2 + (2 * math.sqrt(2) - 1) ** 2) / 2
    assert gp.item() == pytest.approx(expected, rel=1e-6)
    # create_graph: the penalty itself is differentiable w.r.t. critic parameters
    p = torch.tensor(2.0, requires_grad=True)
    gp2 = losses.gradient_penalty(lambda x: p * x.flatten(1).sum(1), real, fake)  # grad norm = |p| sqrt2
    gp2.backward()
    assert p.grad.item() == pytest.approx(2 * (2 * math.sqrt(2) - 1) * math.sqrt(2), rel=1e-6)


def test_gradient_penalty_of_a_conditional_multiscale_critic_matches_finite_differences() -> None:
    from vaemsgan.models import build_networks
    from vaemsgan.presets import build_config

    torch.manual_seed(0)
    cfg = build_config("default", {"data": {"resolution": 16}, "model": {"d_width": 4, "scales": 2}})
    critic = build_networks(cfg, 3).critic.double()
    y = torch.tensor([2])
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    x_hat = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat, y)[0].sum(), x_hat)
    d = torch.randn_like(x)
    eps = 1e-6
    fd = (critic(x + eps * d, y)[0] - critic(x - eps * d, y)[0]) / (2 * eps)
    assert (g * d).sum().item() == pytest.approx(fd.item(), rel=1e-5)


def test_kl_matches_closed_form() -> None:
    mu = torch.tensor([[0.5, -1.0]])
    logvar = torch.tensor([[math.log(2.0), 0.0]])
    # KL(N(mu, s^2) || N(0,1)) = 0.5 (mu^2 + s^2 - 1 - ln s^2), averaged over the two dimensions
    hand = 0.5 * ((0.25 + 2 - 1 - math.log(2)) + (1 + 1 - 1 - 0)) / 2
    assert losses.kl_divergence(mu, logvar).item() == pytest.approx(hand, rel=1e-6)
    assert losses.kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_kl_matches_monte_carlo() -> None:
    torch.manual_seed(0)
    mu, logvar = torch.tensor([0.3]), torch.tensor([-0.5])
    s = torch.exp(0.5 * logvar)
    z = mu + s * torch.randn(400_000)
    log_q = -0.5 * ((z - mu) / s) ** 2 - torch.log(s)
    log_p = -0.5 * z**2
    assert losses.kl_divergence(mu, logvar).item() == pytest.approx((log_q - log_p).mean().item(), abs=3e-3)


@pytest.mark.parametrize("kind", ["wgan-gp", "hinge", "ns"])
def test_adversarial_losses_reward_the_right_side(kind: str) -> None:
    good, bad = torch.full((4,), 3.0), torch.full((4,), -3.0)
    assert losses.critic_loss(kind, good, bad) < losses.critic_loss(kind, bad, good)
    assert losses.generator_loss(kind, good) < losses.generator_loss(kind, bad)


def test_adversarial_values() -> None:
    r, f = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    assert losses.critic_loss("wgan-gp", r, f).item() == pytest.approx(-1.0 - 2.0)
    assert losses.critic_loss("hinge", r, f).item() == pytest.approx(0.0 + (1.0 + 0.0) / 2)
    assert losses.critic_loss("ns", torch.zeros(1), torch.zeros(1)).item() == pytest.approx(2 * math.log(2))


def test_reconstruction_losses() -> None:
    a, b = torch.zeros(2, 3), torch.full((2, 3), 2.0)
    assert losses.feature_reconstruction(a, b).item() == 4.0
    assert losses.pixel_reconstruction("l1", a, b).item() == 2.0
    assert losses.pixel_reconstruction("l2", a, b).item() == 4.0


def test_r1_penalty_of_linear_critic() -> None:
    w = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2)
    r1 = losses.r1_penalty(lambda x: (x * w).flatten(1).sum(1), torch.randn(3, 1, 1, 2))
    assert r1.item() == pytest.approx(5.0)
