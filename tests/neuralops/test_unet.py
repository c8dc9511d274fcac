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


# ---------------------------------------------------------------------------------------------
# unet_mod: PDEArena's Unetmod-64 (pdearena/modules/twod_unet.py Unet, hidden 64, norm=True)
# ---------------------------------------------------------------------------------------------
def pdearena_unet_count(c_in, c_out, hidden, mults, n_blocks):
    """Independent count following PDEArena's constructor loop (compounding multipliers, the up
    path's last block of a level reducing to ``c // mult``, final GroupNorm(8))."""
    conv = lambda i, o, k: k * k * i * o + o

    def res(i, o):
        return 2 * i + conv(i, o, 3) + 2 * o + conv(o, o, 3) + (conv(i, o, 1) if i != o else 0)

    total = conv(c_in, hidden, 3)
    c = hidden
    for level, m in enumerate(mults):
        out = c * m
        for _ in range(n_blocks):
            total += res(c, out)
            c = out
        if level < len(mults) - 1:
            total += conv(c, c, 3)
    total += 2 * res(c, c)
    for level in reversed(range(len(mults))):
        for _ in range(n_blocks):
            total += res(2 * c, c)
        out = c // mults[level]
        total += res(c + out, out)
        c = out
        if level > 0:
            total += conv(c, c, 4)
    return total + 2 * c + conv(c, c_out, 3)


def test_unetmod64_count_is_pdearenas():
    # incompressible NS in PDEArena: smoke + (vx, vy), 4 frames in, 1 out: "144.3M"
    model = models.get("unet_mod")
    assert pdearena_unet_count(12, 3, 64, (1, 2, 2, 4), 2) == 144_263_683
    assert n_params(model) == 144_263_683
    widths = [
        m.shortcut.out_channels
        for m in model.down
        if hasattr(m, "shortcut") and isinstance(m.shortcut, torch.nn.Conv2d)
    ]
    assert widths == [128, 256, 1024]  # compounding: 64 -> 64 -> 128 -> 256 -> 1024
    assert model.head_norm.num_groups == 8


def _res(x, block):
    gn1, conv1, gn2, conv2 = block.residual[0], block.residual[2], block.residual[3], block.residual[5]
    h = F.conv2d(F.gelu(F.group_norm(x, 1, gn1.weight, gn1.bias)), conv1.weight, conv1.bias, padding=1)
    h = F.conv2d(F.gelu(F.group_norm(h, 1, gn2.weight, gn2.bias)), conv2.weight, conv2.bias, padding=1)
    sc = x if isinstance(block.shortcut, torch.nn.Identity) else F.conv2d(x, block.shortcut.weight, block.shortcut.bias)
    return h + sc


def _ref_unetmod(model, x, mults, n_blocks):
    """PDEArena's forward written out: zero padding, skips pushed after every down module,
    popped before every up residual block, Downsample 3x3/2, Upsample ConvTranspose 4/2/1."""
    h = F.conv2d(x, model.lift.weight, model.lift.bias, padding=1)
    skips, k = [h], 0
    for level in range(len(mults)):
        for _ in range(n_blocks):
            h = _res(h, model.down[k])
            k += 1
            skips.append(h)
        if level < len(mults) - 1:
            h = F.conv2d(h, model.down[k].weight, model.down[k].bias, stride=2, padding=1)
            k += 1
            skips.append(h)
    h = _res(_res(h, model.middle[0]), model.middle[1])
    k = 0
    for level in reversed(range(len(mults))):
        for _ in range(n_blocks + 1):
            h = _res(torch.cat([h, skips.pop()], dim=1), model.up[k])
            k += 1
        if level > 0:
            up = model.up[k]
            k += 1
            h = F.conv_transpose2d(h, up.weight, up.bias, stride=2, padding=1)
    h = F.gelu(F.group_norm(h, 8, model.head_norm.weight, model.head_norm.bias))
    return F.conv2d(h, model.head.weight, model.head.bias, padding=1)


def test_unet_mod_equals_the_reference_functional_form():
    torch.manual_seed(0)
    mults = (1, 2, 2)
    model = models.get("unet_mod", time_history=2, in_fields=3, hidden_channels=8, channel_multipliers=mults).double()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.GroupNorm):
                mod.weight.normal_()
                mod.bias.normal_()
    x = torch.randn(2, 6, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(model(x), _ref_unetmod(model, x, mults, 2), rtol=1e-12, atol=1e-12)
    # the toolkit's own unet is a different network
    assert n_params(
        models.get("unet", time_history=2, in_fields=3, hidden_channels=8, channel_multipliers=mults)
    ) != n_params(model)
