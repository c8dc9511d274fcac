"""The modern (PDEArena-style) U-Net baseline."""
import pytest
import torch
import torch.nn.functional as F

from neuralops import models
from neuralops.models.unet import UNet


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def expected_unet_count(c_in, c_out, hidden, mults, n_blocks):
    """Independent closed form of the documented structure (GroupNorm affine: 2 per channel)."""
    conv = lambda i, o, k: k * k * i * o + o

    def block(i, o):
        return 2 * i + conv(i, o, 3) + 2 * o + conv(o, o, 3) + (conv(i, o, 1) if i != o else 0)

    total = conv(c_in, hidden, 3)
    skips, ch = [hidden], hidden
    for level, m in enumerate(mults):
        for _ in range(n_blocks):
            total += block(ch, hidden * m)
            ch = hidden * m
            skips.append(ch)
        if level < len(mults) - 1:
            total += conv(ch, ch, 3)
            skips.append(ch)
    total += 2 * block(ch, ch)
    for level in reversed(range(len(mults))):
        for _ in range(n_blocks + 1):
            total += block(ch + skips.pop(), hidden * mults[level])
            ch = hidden * mults[level]
        if level > 0:
            total += conv(ch, ch, 4)
    assert not skips
    return total + 2 * ch + conv(ch, c_out, 3)


def tiny(**kw):
    config = dict(hidden_channels=8, channel_multipliers=(1, 2, 2), blocks_per_level=1)
    config.update(kw)
    return models.get("unet", **config)


def test_default_configuration_count():
    with torch.device("meta"):
        model = models.get("unet")
    assert isinstance(model, UNet)
    assert n_params(model) == 16_361_859
    assert expected_unet_count(12, 3, 64, (1, 2, 2, 4), 2) == 16_361_859


def test_count_of_a_small_configuration_matches_the_closed_form():
    model = tiny(in_fields=2, out_fields=1, time_history=3)
    assert n_params(model) == expected_unet_count(6, 1, 8, (1, 2, 2), 1)


@pytest.mark.parametrize("size", [(16, 16), (32, 48), (64, 64)])
def test_output_shapes(size):
    model = tiny()
    x = torch.randn(2, 12, *size)
    assert model(x).shape == (2, 3, *size)
    assert model(x.view(2, 4, 3, *size)).shape == (2, 1, 3, *size)
    assert tiny(padding_mode="zeros", time_future=2)(x).shape == (2, 6, *size)


def test_bad_input_is_rejected_with_the_bad_value():
    with pytest.raises(ValueError, match=r"\(18, 16\) is not divisible by 2\*\*\(levels - 1\) = 4"):
        tiny()(torch.randn(1, 12, 18, 16))
    with pytest.raises(ValueError, match="norm_groups=3"):
        tiny(norm_groups=3)
    with pytest.raises(ValueError, match="'periodic'"):
        tiny(padding_mode="periodic")


def test_circular_unet_commutes_with_rolls_to_round_off():
    torch.manual_seed(0)
    model = tiny().double()
    x = torch.randn(2, 12, 16, 24, dtype=torch.float64)
    y = model(x)
    for shift in [(4, 0), (0, -8), (12, 20)]:
        assert torch.allclose(model(torch.roll(x, shift, (2, 3))), torch.roll(y, shift, (2, 3)), atol=1e-12, rtol=0)
    zeros = tiny(padding_mode="zeros").double()
    zeros.load_state_dict(model.state_dict())
    diff = (zeros(torch.roll(x, (4, 0), (2, 3))) - torch.roll(zeros(x), (4, 0), (2, 3))).abs().max()
    assert diff > 1e-3


def test_a_few_optimisation_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = tiny(in_fields=1, time_history=2)
    frames = torch.randn(4, 2, 16, 16)
    target = torch.roll(frames[:, 1:], 1, dims=3)
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


def test_plain_field_to_field_map_for_steady_problems():
    model = tiny(in_channels=1, out_channels=1, padding_mode="zeros")
    assert not model.frame_layout
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match=r"4-d input \(B, 1, X, Y\)"):
        model(torch.randn(2, 4, 3, 32, 32))
