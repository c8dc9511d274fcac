"""SineNet and the periodic-aware resampling it uses."""

import math

import pytest
import torch
import torch.nn.functional as F

from neuralops import models
from neuralops.layers.padding import avg_pool2x, upsample
from neuralops.models.sinenet import WAVE_MULTIPLIERS, SineNet, sinenet_channels, sinenet_parameter_count


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def tiny(**kw):
    config = dict(hidden_channels=8, num_waves=2, multiplier=1.5)
    config.update(kw)
    return models.get("sinenet", **config)


# ---------------------------------------------------------------- parameter counts


def test_sinenet8_on_incompressible_navier_stokes_has_the_published_count():
    assert sinenet_channels(64, 1.425) == [64, 91, 129, 185, 263]
    with torch.device("meta"):  # count only: no memory, no forward pass
        model = models.get("sinenet")
    assert isinstance(model, SineNet) and len(model.waves) == 8
    assert n_params(model) == 35_490_219
    assert sinenet_parameter_count(8, 1.425) == 35_490_219


@pytest.mark.parametrize(
    "waves, channels", [(6, [64, 96, 144, 216, 324]), (4, [64, 103, 166, 267, 431]), (2, [64, 115, 209, 377, 683])]
)
def test_fewer_waves_keep_the_budget_with_the_papers_multipliers(waves, channels):
    assert sinenet_channels(64, WAVE_MULTIPLIERS[waves]) == channels
    with torch.device("meta"):
        model = models.get("sinenet", num_waves=waves)
    count = n_params(model)
    assert count == sinenet_parameter_count(waves)
    assert abs(count - 35_490_219) < 0.001 * 35_490_219  # the paper's "~35.5M at every K"


def test_closed_form_count_covers_the_ablations():
    for kw in (dict(disentangle=False), dict(num_levels=3), dict(time_history=2)):
        model = tiny(**kw)
        expected = sinenet_parameter_count(
            2,
            1.5,
            in_channels=model.time_history * 3,
            out_channels=3,
            hidden_channels=8,
            num_levels=model.num_levels,
            disentangle=kw.get("disentangle", True),
        )
        assert n_params(model) == expected


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("size", [(16, 16), (32, 48), (64, 64)])
def test_output_shapes(size):
    model = tiny()
    x = torch.randn(2, 12, *size)
    assert model(x).shape == (2, 3, *size)
    assert model(x.view(2, 4, 3, *size)).shape == (2, 1, 3, *size)
    two_frames = tiny(time_future=2, out_fields=1)
    assert two_frames(x).shape == (2, 2, *size)


def test_bad_input_is_rejected_with_the_bad_value():
    model = tiny()
    with pytest.raises(ValueError, match=r"\(40, 32\) is not divisible by 2\*\*num_levels = 16"):
        model(torch.randn(1, 12, 40, 32))
    with pytest.raises(ValueError, match="T_hist"):
        model(torch.randn(1, 11, 32, 32))
    with pytest.raises(ValueError, match="num_waves=5"):
        models.get("sinenet", num_waves=5)
    with pytest.raises(ValueError, match="'wrap'"):
        tiny(padding_mode="wrap")


# ---------------------------------------------------------------- periodic symmetry


def test_circular_sinenet_commutes_with_rolls_to_round_off():
    torch.manual_seed(0)
    model = tiny().double()
    x = torch.randn(2, 12, 32, 48, dtype=torch.float64)
    y = model(x)
    for shift in [(16, 0), (0, -32), (48, 16)]:
        assert torch.allclose(model(torch.roll(x, shift, (2, 3))), torch.roll(y, shift, (2, 3)), atol=1e-11, rtol=0)
    zeros = tiny(padding_mode="zeros").double()
    zeros.load_state_dict(model.state_dict())
    diff = (zeros(torch.roll(x, (16, 0), (2, 3))) - torch.roll(zeros(x), (16, 0), (2, 3))).abs().max()
    assert diff > 1e-3  # the check is not vacuous: zero padding sees the boundary


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_periodic_upsampling_interpolates_the_periodic_extension(mode):
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    tiled = x.repeat(1, 1, 3, 3)
    reference = F.interpolate(tiled, scale_factor=2, mode=mode, align_corners=False)[..., 12:24, 10:20]
    fine = upsample(x, 2, mode, periodic=True)
    assert torch.allclose(fine, reference, atol=1e-13)
    # rolling the coarse field by one cell rolls the fine field by two
    assert torch.allclose(
        upsample(torch.roll(x, (1, -1), (2, 3)), 2, mode, periodic=True), torch.roll(fine, (2, -2), (2, 3)), atol=1e-13
    )


def test_periodic_bicubic_upsampling_is_accurate_up_to_the_boundary():
    n = 32
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    tf = (torch.arange(2 * n, dtype=torch.float64) + 0.5) / (2 * n)
    field = lambda a, b: torch.sin(2 * math.pi * a)[:, None] * torch.cos(2 * math.pi * b)[None, :]
    exact = field(tf, tf)
    periodic = upsample(field(t, t)[None, None], 2, "bicubic", periodic=True)[0, 0]
    clamped = upsample(field(t, t)[None, None], 2, "bicubic", periodic=False)[0, 0]
    error = (periodic - exact).abs()
    # torch's bicubic kernel (Keys, a = -0.75) reproduces constants only: the error is O(h), ~0.01 at h = 1/32
    assert error.max() < 0.02
    interior = error[8:-8, 8:-8].max()
    assert error[:2].max() <= 1.1 * interior and error[:, -2:].max() <= 1.1 * interior  # no boundary layer
    clamped_error = (clamped - exact).abs()
    assert clamped_error[:2].max() > 2 * clamped_error[8:-8, 8:-8].max()  # edge clamping has one


def test_average_pooling_requires_even_sizes():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(avg_pool2x(x)[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    with pytest.raises(ValueError, match=r"even grid sizes, got \(5, 4\)"):
        avg_pool2x(torch.randn(1, 1, 5, 4))


# ---------------------------------------------------------------- training


def test_a_few_optimisation_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = tiny(in_fields=1, time_history=2)
    frames = torch.randn(4, 2, 16, 16)
    target = torch.roll(frames[:, 1:], 1, dims=3)  # advect the last frame by one cell
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.mse_loss(model(frames), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert losses[-1] < 0.6 * losses[0]


def test_reflect_padding_needs_two_points_on_the_coarsest_level():
    with pytest.raises(ValueError, match="at least 32 per axis"):
        tiny(padding_mode="reflect")(torch.randn(1, 12, 16, 32))
    assert tiny(padding_mode="reflect")(torch.randn(1, 12, 32, 32)).shape == (1, 3, 32, 32)


def test_channel_counts_are_exposed_and_can_be_given_directly():
    model = tiny()
    assert (model.in_channels, model.out_channels, model.frame_layout) == (12, 3, True)
    same = tiny(in_channels=12, out_channels=3)  # what the training code passes alongside the frame layout
    assert same.frame_layout and n_params(same) == n_params(model)


# ---------------------------------------------------------------------------------------------
# Parity with a functional statement of the authors' SineNet (divelab/AIRS OpenPDE/SineNet, its
# Down/Up/ConvBlock modules): conv -> GroupNorm(1) -> GELU twice per block, 1x1 shortcut with bias
# on the block's main input, avg-pooling, the wave input pooled and concatenated after the pooled
# features from level 2 on, circular bicubic upsampling (pad 2, x2, crop 4), skip concatenated
# before the upsampled features, residual around every wave, 3x3 circular lifting/projection.
# ---------------------------------------------------------------------------------------------
def _cconv(x, conv):

    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), conv.weight, conv.bias)


def _ref_block(x, block):

    c1, n1, _, c2, n2, _ = block.layers
    h = F.gelu(F.group_norm(_cconv(x, c1), 1, n1.weight, n1.bias))
    return F.gelu(F.group_norm(_cconv(h, c2), 1, n2.weight, n2.bias))


def _ref_sinenet(model, frames):

    x = _cconv(frames, model.lift)
    for wave in model.waves:
        x0, xs, dx = x, [x], x
        for i, enc in enumerate(wave.encoder):
            dx = F.avg_pool2d(dx, 2)
            h = F.avg_pool2d(xs[-1], 2)
            h0 = h
            if i > 0:
                h = torch.cat([h, dx], dim=1)
            xs.append(_ref_block(h, enc.block) + F.conv2d(h0, enc.shortcut.weight, enc.shortcut.bias))
        g = xs.pop(-1)
        for dec in wave.decoder:
            up = F.interpolate(F.pad(g, (2, 2, 2, 2), mode="circular"), scale_factor=2, mode="bicubic")[..., 4:-4, 4:-4]
            g = _ref_block(torch.cat([xs.pop(-1), up], dim=1), dec.block) + F.conv2d(
                up, dec.shortcut.weight, dec.shortcut.bias
            )
        x = x0 + g
    return _cconv(x, model.project)


def test_sinenet_equals_the_reference_functional_form():
    torch.manual_seed(0)
    model = models.get(
        "sinenet", in_fields=3, time_history=2, hidden_channels=6, num_waves=2, multiplier=1.5, num_levels=3
    ).double()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.GroupNorm):
                mod.weight.normal_()
                mod.bias.normal_()
    x = torch.randn(2, 6, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(model(x), _ref_sinenet(model, x), rtol=1e-11, atol=1e-11)
