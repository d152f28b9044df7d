"""Shapes and parameter counts of every network variant the presets and options produce."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vaemsgan.config import apply_overrides
from vaemsgan.models import build_networks, count_parameters
from vaemsgan.models.generator import resize_conv, up_conv
from vaemsgan.presets import PRESETS, build_config


def _check(cfg, num_classes: int = 3, batch: int = 2) -> dict[str, int]:
    nets = build_networks(cfg, num_classes)
    if cfg.model.d_norm == "spectral":  # a training forward runs a power iteration: the weights move a bit
        nets.critic.eval()
    res, ch = cfg.data.resolution, cfg.data.channels
    z = torch.randn(batch, cfg.model.latent_dim)
    y = torch.randint(0, num_classes, (batch,))
    x = nets.generator(z, y)
    assert x.shape == (batch, ch, res, res)
    assert x.abs().max() <= 1.0  # tanh output
    score, per_scale, feats, _ = nets.critic(x, y, return_features=True)
    assert score.shape == (batch,)
    assert len(per_scale) == cfg.model.scales
    # one block per halving down to 4x4 at full scale, channels doubling (capped)
    assert [f.shape[-1] for f in feats] == [res >> (i + 1) for i in range(len(feats))]
    assert feats[-1].shape[-1] == cfg.model.d_min_resolution
    layer = nets.critic.features(x, cfg.model.feature_layer)
    assert torch.equal(layer, feats[cfg.model.feature_layer])
    if nets.encoder is not None:
        mu, logvar = nets.encoder(x)
        assert mu.shape == logvar.shape == (batch, cfg.model.latent_dim)
    return {k: count_parameters(m) for k, m in nets.modules().items()}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_builds_and_runs(preset: str) -> None:
    counts = _check(build_config(preset, {"data": {"resolution": 32}}))
    assert counts["generator"] > 0 and counts["critic"] > 0
    assert ("encoder" in counts) == build_config(preset).model.use_encoder


@pytest.mark.parametrize("res", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_resolutions_and_channels(res: int, channels: int) -> None:
    cfg = build_config(
        "default",
        {
            "data": {"resolution": res, "channels": channels},
            "model": {"g_width": 8, "d_width": 8, "e_width": 8},
        },
    )
    _check(cfg)


@pytest.mark.parametrize("norm", ["batch", "layer", "instance", "none", "spectral"])
@pytest.mark.parametrize("pooling", ["none", "avg", "max"])
def test_norms_and_pooling(norm: str, pooling: str) -> None:
    _check(build_config("default", {"model": {"d_norm": norm, "pooling": pooling}}))


def test_parameter_counts_follow_the_kernel_sizes() -> None:
    """Table 1 modes: a 5x5 critic has 25/9 the branch weights of a 3x3 one; the generator likewise."""
    p = {m: _check(build_config(f"paper-mode-{m}")) for m in (1, 2, 3)}
    assert p[2]["generator"] > p[1]["generator"] and p[2]["critic"] == p[1]["critic"]
    assert p[3]["critic"] > p[1]["critic"] and p[3]["generator"] == p[1]["generator"]
    # exact count of one transposed convolution
    assert count_parameters(up_conv(4, 2, 5)) == 4 * 2 * 25


@pytest.mark.parametrize("kernel", [3, 4, 5, 7])
def test_up_conv_doubles_size_for_every_kernel(kernel: int) -> None:
    assert up_conv(3, 2, kernel)(torch.zeros(1, 3, 5, 5)).shape == (1, 2, 10, 10)


def test_resize_conv_generator_doubles_size_without_a_period_of_its_own() -> None:
    """model.g_upsample=nearest: nearest doubling + 3x3 convolution. With its weights all ones, a constant
    input gives a constant interior (a stride-2 transposed convolution of even kernel does too; an odd one
    does not: the pattern of the stride that resize-convolutions cannot make), and the generator keeps its shapes."""
    rc = resize_conv(2, 3)
    assert rc(torch.zeros(1, 2, 5, 5)).shape == (1, 3, 10, 10)
    assert count_parameters(rc) == 2 * 3 * 9
    with torch.no_grad():
        for conv in (rc[1], up5 := up_conv(2, 3, 5)):
            conv.weight.fill_(1.0)
        flat = rc(torch.ones(1, 2, 6, 6))[..., 1:-1, 1:-1]
        assert torch.equal(flat, torch.full_like(flat, 18.0))  # 2 channels x 9 taps
        odd = up5(torch.ones(1, 2, 6, 6))[..., 2:-2, 2:-2]
        assert odd.unique().numel() > 1  # 5x5 at stride 2: 9 or 6 or 4 taps by position
    cfg = build_config("default", {"model": {"g_upsample": "nearest"}})
    assert isinstance(build_networks(cfg, 3).generator.ups[0], nn.Sequential)
    _check(cfg)


def test_unconditional_and_single_class() -> None:
    cfg = build_config("default")
    apply_overrides(cfg, {"model": {"conditional": False}})
    nets = build_networks(cfg, 3)
    assert not nets.generator.conditional and nets.critic.critics[0].embed is None
    nets1 = build_networks(build_config("default"), 1)  # one class: nothing to condition on
    assert not nets1.generator.conditional
    x = nets1.generator(torch.randn(2, 128))
    assert x.shape == (2, 1, 32, 32)


def test_conditional_generator_uses_label() -> None:
    torch.manual_seed(0)
    nets = build_networks(build_config("default"), 4)
    with torch.no_grad():
        for p in nets.generator.modules():
            if hasattr(p, "gain"):
                torch.nn.init.normal_(p.gain.weight, 1.0, 0.5)
        nets.generator.eval()
        z = torch.randn(1, 128).repeat(2, 1)
        x = nets.generator(z, torch.tensor([0, 3]))
    assert not torch.allclose(x[0], x[1])


def test_critic_scales_see_downsampled_images() -> None:
    nets = build_networks(build_config("default", {"model": {"scales": 3}}), 2)
    sizes = []
    hooks = [
        c.stem.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[-1]))
        for c in nets.critic.critics
    ]
    nets.critic(torch.zeros(1, 1, 32, 32), torch.tensor([0]))
    for h in hooks:
        h.remove()
    assert sizes == [32, 16, 8]


def test_recalibrate_batchnorm_sets_exact_average_statistics() -> None:
    from vaemsgan.models.layers import recalibrate_batchnorm

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = torch.nn.BatchNorm1d(2)

        def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
            return self.bn(z)

    net = Net().eval()
    batches = [(torch.tensor([[0.0, 1.0], [2.0, 3.0]]), None), (torch.tensor([[4.0, 5.0], [6.0, 7.0]]), None)]
    recalibrate_batchnorm(net, batches)
    # batch means (1, 2) and (5, 6) -> 3, 4; unbiased batch variances 2 and 2 -> 2
    assert torch.allclose(net.bn.running_mean, torch.tensor([3.0, 4.0]))
    assert torch.allclose(net.bn.running_var, torch.tensor([2.0, 2.0]))
    assert not net.training and net.bn.momentum == 0.1


def test_spectral_norm_holds_every_critic_weight_near_unit_norm() -> None:
    """d_norm=spectral: no normalisation layers, and after some power iterations the largest singular value of
    every convolution / linear weight (reshaped to out x rest, as SNGAN does) is 1."""
    cfg = build_config("default", {"model.d_norm": "spectral"})
    critic = build_networks(cfg, 3).critic.train()
    assert not any(isinstance(m, nn.BatchNorm2d | nn.GroupNorm) for m in critic.modules())
    x, y = torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 0])
    for _ in range(30):  # each training forward is one power iteration
        critic(x, y)
    layers = [m for m in critic.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert layers
    for m in layers:
        w = m.weight.detach()
        sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)
        assert abs(float(sigma) - 1.0) < 0.05, (m, float(sigma))


def test_thin_high_resolution_layers_and_the_strided_stem() -> None:
    """Above `width_resolution` (32 for scarce) the full-resolution widths halve and the critic blocks there
    take `d_hires_kernels`; `d_strided_stem` replaces the full-scale critic's stem and first block by one
    4x4 stride-2 convolution that still sees every pixel; at 32 px neither changes anything."""
    thin = build_config("scarce", {"data": {"resolution": 64}})
    strided = build_config("scarce", {"data": {"resolution": 64}, "model": {"d_strided_stem": True}})
    a, b = build_networks(thin, 3).critic, build_networks(strided, 3).critic
    a0, b0 = a.critics[0], b.critics[0]
    assert a0.stem.out_channels == 8 and a0.stem.stride == (1, 1)  # d_width 16 halved at 64 px
    assert [len(blk.branches) for blk in a0.blocks] == [1, 2, 2, 2]  # hires kernels [3] above 32 px
    assert b0.stem.kernel_size == (4, 4) and b0.stem.stride == (2, 2) and b0.stem.out_channels == 16
    assert len(b0.blocks) == len(a0.blocks) - 1
    for blk_a, blk_b in zip(a0.blocks[1:], b0.blocks):  # the levels from 32 px down are the same
        assert count_parameters(blk_a) == count_parameters(blk_b)
    assert count_parameters(a.critics[1]) == count_parameters(b.critics[1])  # coarser scales keep their stems
    x = torch.randn(2, 1, 64, 64, requires_grad=True)
    y = torch.tensor([0, 2])
    score, _, feats, _ = b(x, y, return_features=True)
    assert score.shape == (2,) and [f.shape[-1] for f in feats] == [16, 8, 4]
    assert torch.equal(b.features(x, strided.model.feature_layer), feats[strided.model.feature_layer])
    (g,) = torch.autograd.grad(b0(x, y)[0].sum(), x)
    assert bool((g != 0).all())  # every pixel reaches the full-scale score
    at32 = [build_config("scarce", {"model": {"d_strided_stem": s}}) for s in (False, True)]
    assert len({count_parameters(build_networks(c, 3).critic) for c in at32}) == 1
