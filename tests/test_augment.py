"""Tests for differentiable augmentation and the ADA controller."""

from __future__ import annotations

import io
import math

import pytest
import torch

from vaemsgan.errors import ConfigError
from vaemsgan.training.augment import (
    POLICIES,
    AdaptiveAugment,
    brightness,
    contrast,
    cutout,
    diff_augment,
    saturation,
    translate,
)

ALL = ",".join(POLICIES)
EVERY_POLICY = [*POLICIES, ALL]


def _images(n: int = 6, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    # Values in [-1, 1] but never exactly 0, so the 0 fill of translation / cutout is countable.
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, size, size, generator=g) * 1.8 - 0.9
    return torch.where(x.abs() < 0.05, torch.full_like(x, 0.5), x)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_empty_policy_is_identity() -> None:
    x = _images()
    assert diff_augment(x, "") is x
    assert diff_augment(x, " , ") is x


@pytest.mark.parametrize("policy", EVERY_POLICY)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 17])
def test_shape_and_dtype_kept(policy: str, channels: int, size: int) -> None:
    for dtype in (torch.float32, torch.float64):
        x = _images(c=channels, size=size).to(dtype)
        y = diff_augment(x, policy, generator=_gen(1))
        assert y.shape == x.shape and y.dtype == dtype


@pytest.mark.parametrize("policy", EVERY_POLICY)
def test_gradient_flows_into_input(policy: str) -> None:
    x = _images().requires_grad_(True)
    diff_augment(x, policy, generator=_gen(2)).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("policy", EVERY_POLICY)
def test_p_zero_is_exact_identity(policy: str) -> None:
    x = _images()
    assert torch.equal(diff_augment(x, policy, p=0.0, generator=_gen(3)), x)


@pytest.mark.parametrize("op", [brightness, saturation, contrast, cutout])
def test_unselected_samples_are_bit_identical(op) -> None:
    x = _images()
    mask = torch.tensor([True, False, True, False, False, True])
    y = op(x, mask, _gen(4))
    assert torch.equal(y[~mask], x[~mask])
    assert not torch.equal(y[mask], x[mask])


def test_p_selects_roughly_that_fraction_of_samples() -> None:
    x = _images(n=400, c=1, size=8)
    y = diff_augment(x, "cutout", p=0.3, generator=_gen(5))
    changed = (y != x).flatten(1).any(1).float().mean().item()
    assert 0.2 < changed < 0.4


@pytest.mark.parametrize("policy", EVERY_POLICY)
def test_deterministic_given_generator(policy: str) -> None:
    x = _images()
    a = diff_augment(x, policy, p=0.7, generator=_gen(6))
    b = diff_augment(x, policy, p=0.7, generator=_gen(6))
    c = diff_augment(x, policy, p=0.7, generator=_gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_translate_moves_content_by_known_shift() -> None:
    x = _images(n=2, c=3, size=8)
    y = translate(x, torch.tensor([2, -1]), torch.tensor([1, 0]))
    # Sample 0: right by 2, down by 1; sample 1: left by 1.
    assert torch.equal(y[0, :, 1:, 2:], x[0, :, :-1, :-2])
    assert (y[0, :, :1, :] == 0).all() and (y[0, :, :, :2] == 0).all()
    assert torch.equal(y[1, :, :, :-1], x[1, :, :, 1:])
    assert (y[1, :, :, -1] == 0).all()
    assert torch.equal(translate(x, torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)), x)


def test_translation_keeps_pixel_values_and_bounds_shift() -> None:
    x = _images(n=32, c=1, size=16)
    y = diff_augment(x, "translation", generator=_gen(8))
    max_shift = 2  # 16 / 8
    for xi, yi in zip(x, y, strict=True):
        kept = yi[yi != 0]
        assert set(kept.tolist()) <= set(xi.flatten().tolist())
        # At most `max_shift` rows and columns lost, so at least this much content survives.
        assert kept.numel() >= (16 - max_shift) ** 2
    # Some sample really moved.
    assert not torch.equal(x, y)


def test_cutout_zeroes_a_square_of_expected_area() -> None:
    for size, side in [(16, 8), (9, 5), (1, 1)]:
        x = _images(n=8, c=3, size=size)
        y = diff_augment(x, "cutout", generator=_gen(9))
        zeros = y == 0
        # Same square in every channel, exactly side * side pixels, and a square's bounding box.
        assert (zeros == zeros[:, :1]).all()
        for z in zeros[:, 0]:
            assert z.sum().item() == side * side
            rows, cols = z.any(1).nonzero(), z.any(0).nonzero()
            assert rows.max() - rows.min() + 1 == side and cols.max() - cols.min() + 1 == side
        assert torch.equal(y[~zeros], x[~zeros])


def test_color_range_and_invariants() -> None:
    x = _images(n=64, c=3)
    everyone = torch.ones(64, dtype=torch.bool)
    b = brightness(x, everyone, _gen(10))
    # Brightness: one offset per sample, |offset| <= 0.5, so [-1, 1] inputs stay within [-1.5, 1.5].
    offset = b - x
    assert torch.allclose(offset, offset[:, :1, :1, :1].expand_as(offset), atol=1e-6)
    assert offset.abs().max() <= 0.5 and b.abs().max() <= 1.5
    # Saturation keeps each pixel's channel mean; contrast keeps each sample's mean.
    s = saturation(x, everyone, _gen(11))
    assert torch.allclose(s.mean(1), x.mean(1), atol=1e-5)
    c = contrast(x, everyone, _gen(12))
    assert torch.allclose(c.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)
    # Not clamped (documented): the full colour policy may leave [-1, 1] but stays finite and bounded.
    y = diff_augment(x, "color", generator=_gen(13))
    assert torch.isfinite(y).all() and y.abs().max() < 10


def test_saturation_is_noop_for_one_channel() -> None:
    x = _images(c=1)
    assert saturation(x, torch.ones(6, dtype=torch.bool), _gen(14)) is x


@pytest.mark.parametrize("policy", ["colour", "color,zoom"])
def test_unknown_policy_raises_config_error(policy: str) -> None:
    bad = policy.split(",")[-1]
    with pytest.raises(ConfigError, match=bad) as err:
        diff_augment(_images(), policy, p=0.0)
    for name in POLICIES:
        assert name in str(err.value)


def test_bad_probability_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        diff_augment(_images(), "color", p=1.5)


def test_ada_positive_scores_raise_p() -> None:
    ada = AdaptiveAugment(target=0.6, interval=4, speed=1000)
    assert ada.p == 0.0 and ada.r_t is None
    history = []
    for _ in range(40):
        history.append(ada.update(torch.ones(10, 1)))
    assert ada.r_t == 1.0
    # 10 images * 4 steps / 1000 = 0.04 per adjustment, applied only every 4th call.
    assert history[2] == 0.0 and math.isclose(history[3], 0.04)
    assert math.isclose(ada.p, 0.4)
    assert all(b >= a for a, b in zip(history, history[1:], strict=False))
    for _ in range(400):
        ada.update(torch.ones(10, 1))
    assert ada.p == 1.0  # clipped


def test_ada_negative_scores_lower_p_to_zero() -> None:
    ada = AdaptiveAugment(target=0.6, interval=2, speed=100, p=0.5)
    for _ in range(20):
        ada.update(-torch.ones(8))
    assert ada.p == 0.0 and ada.r_t == -1.0


def test_ada_state_dict_round_trip_weights_only() -> None:
    ada = AdaptiveAugment(target=0.6, interval=4, speed=1000)
    for _ in range(6):  # 1 adjustment + 2 pending steps
        ada.update(torch.tensor([1.0, -1.0, 2.0, 3.0]))
    buf = io.BytesIO()
    torch.save(ada.state_dict(), buf)
    buf.seek(0)
    fresh = AdaptiveAugment(target=0.6, interval=4, speed=1000)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert fresh.p == ada.p and fresh.r_t == ada.r_t == 0.5
    # Pending accumulation survives: both adjust identically on the next steps.
    for _ in range(2):
        assert ada.update(torch.ones(4)) == fresh.update(torch.ones(4))
    # A never-updated controller round-trips too.
    empty = AdaptiveAugment()
    empty.load_state_dict(AdaptiveAugment().state_dict())
    assert empty.r_t is None and empty.p == 0.0


def test_ada_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError):
        AdaptiveAugment(interval=0)
    with pytest.raises(ConfigError):
        AdaptiveAugment(speed=0)
    with pytest.raises(ConfigError):
        AdaptiveAugment(target=1.0)
