"""MgNO, its learned multigrid V-cycle and the boundary-aware (transposed) convolutions it uses."""

import pytest
import torch
import torch.nn.functional as F

from neuralops import models
from neuralops.layers.multigrid import MultigridVCycle, vcycle_level_sizes
from neuralops.layers.padding import PaddedConvTranspose2d, pad2d, padded_conv2d
from neuralops.models.mgno import DARCY_SMOOTHING, FunctionValuedBias, MgNO, MgNOTimeStepper


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def expected_mgno_count(c_in, c_out, channels, layers, smoothing, bias_resolution=1):
    """Closed-form count of the MgNO structure (the accounting stated in the model docstring)."""
    levels = len(smoothing)
    steps = [pre + post for pre, post in smoothing]
    total = 0
    for layer in range(layers):
        cf, cu = (c_in if layer == 0 else channels), channels
        smoother_convs = 2 * sum(steps) - 1  # every step has A and S, except the very first (S only)
        total += smoother_convs * 9 * cu * cf
        total += (levels - 1) * (9 * cu * cu + 9 * cf * cf + 16 * cu * cu)
        total += cf * cu + bias_resolution**2 * cu  # W (1x1, no bias) + function-valued bias
    return total + channels * c_out  # head, no bias


def perturb(model, scale=0.02, seed=0):
    """Nonzero biases and slightly random weights so that symmetry checks are not trivially true."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


# ---------------------------------------------------------------- parameter counts


def test_darcy_configuration_has_the_published_parameter_count():
    model = models.get("mgno")
    assert isinstance(model, MgNO)
    assert model.smoothing == DARCY_SMOOTHING and model.levels == 6 and model.channels == 24
    assert n_params(model) == 572_661
    assert expected_mgno_count(1, 1, 24, 4, DARCY_SMOOTHING) == 572_661


@pytest.mark.parametrize(
    "config",
    [
        dict(in_channels=3, out_channels=2, channels=8, num_layers=2, smoothing=[(2, 1), (1, 1), (3, 0)]),
        dict(in_channels=1, out_channels=1, channels=5, num_layers=3, smoothing=[(1, 0)], bias_resolution=4),
    ],
)
def test_parameter_count_matches_closed_form(config):
    model = models.get("mgno", **config)
    expected = expected_mgno_count(
        config["in_channels"],
        config["out_channels"],
        config["channels"],
        config["num_layers"],
        config["smoothing"],
        config.get("bias_resolution", 1),
    )
    assert n_params(model) == expected


def test_time_stepper_count_and_residual_on_last_frame():
    model = models.get("mgno_ts")
    assert isinstance(model, MgNOTimeStepper)
    assert n_params(model) == 602_604
    assert n_params(model) == expected_mgno_count(10, 1, 24, 4, DARCY_SMOOTHING)
    small = models.get("mgno_ts", time_history=3, fields=2, channels=4, num_layers=1, smoothing=[(1, 0), (1, 0)])
    history = torch.randn(2, 6, 16, 16)
    with torch.no_grad():
        small.core.head.weight.zero_()  # increment 0: the prediction must be exactly the latest frame
    assert torch.equal(small(history), history[:, 4:6])
    with pytest.raises(ValueError, match=r"T_hist \* C"):
        small(torch.randn(2, 5, 16, 16))


# ---------------------------------------------------------------- shapes and resolutions


@pytest.mark.parametrize("mode", ["zeros", "circular", "reflect"])
@pytest.mark.parametrize("size", [(64, 64), (64, 96), (128, 64)])
def test_darcy_model_accepts_resolutions_the_multigrid_allows(mode, size):
    model = models.get("mgno", padding_mode=mode)
    out = model(torch.randn(1, 1, *size))
    assert out.shape == (1, 1, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(47, 50), (211, 211), (33, 17)])
def test_grids_not_divisible_by_two_to_the_levels(size):
    assert vcycle_level_sizes(size, 6)[1] == tuple((n + 1) // 2 for n in size)
    for mode in ("zeros", "circular"):
        out = models.get("mgno", channels=4, num_layers=2, padding_mode=mode)(torch.randn(2, 1, *size))
        assert out.shape == (2, 1, *size) and torch.isfinite(out).all()


def test_reflect_padding_rejects_a_too_coarse_grid():
    model = models.get("mgno", padding_mode="reflect", channels=4, num_layers=1)
    with pytest.raises(ValueError, match=r"reflect padding needs >= 2 points"):
        model(torch.randn(1, 1, 32, 32))  # 6 levels: 32 -> 1 point on the coarsest grid


def test_bad_configuration_is_rejected_with_the_bad_value():
    with pytest.raises(ValueError, match="'periodic'"):
        models.get("mgno", padding_mode="periodic")
    with pytest.raises(ValueError, match="finest level"):
        models.get("mgno", smoothing=[(0, 1), (1, 0)])
    with pytest.raises(ValueError, match="non-negative"):
        models.get("mgno", smoothing=[(1, 0), (-1, 0)])
    with pytest.raises(ValueError, match=r"\(B, 1, X, Y\)"):
        models.get("mgno", channels=4, num_layers=1)(torch.randn(1, 2, 16, 16))


# ---------------------------------------------------------------- symmetry and structure


def test_circular_mgno_commutes_with_rolls_to_round_off():
    torch.manual_seed(0)
    smoothing = [(1, 1), (1, 1), (1, 0), (2, 0)]  # 4 levels: rolls by multiples of 8
    model = perturb(models.get("mgno", channels=6, num_layers=2, smoothing=smoothing, padding_mode="circular")).double()
    x = torch.randn(2, 1, 32, 48, dtype=torch.float64)
    y = model(x)
    for shift in [(8, 0), (0, -16), (24, 40)]:
        y_rolled = model(torch.roll(x, shift, dims=(2, 3)))
        assert torch.allclose(y_rolled, torch.roll(y, shift, dims=(2, 3)), atol=1e-12, rtol=0)
    # the same model with zero padding sees the boundary, so the check above is not vacuous
    zeros = models.get("mgno", channels=6, num_layers=2, smoothing=smoothing, padding_mode="zeros").double()
    zeros.load_state_dict(model.state_dict())
    diff = (zeros(torch.roll(x, (8, 0), dims=(2, 3))) - torch.roll(zeros(x), (8, 0), dims=(2, 3))).abs().max()
    assert diff > 1e-3


def test_time_stepper_commutes_with_rolls():
    model = perturb(
        models.get("mgno_ts", time_history=2, fields=1, channels=4, num_layers=2, smoothing=[(1, 0), (1, 0), (1, 0)])
    ).double()
    x = torch.randn(1, 2, 16, 16, dtype=torch.float64)
    assert torch.allclose(model(torch.roll(x, (4, 12), (2, 3))), torch.roll(model(x), (4, 12), (2, 3)), atol=1e-12)


def test_vcycle_is_linear_in_the_right_hand_side():
    cycle = perturb(MultigridVCycle(2, 3, [(1, 1), (2, 1), (1, 0)], padding_mode="reflect")).double()
    f1, f2 = torch.randn(2, 1, 2, 20, 24, dtype=torch.float64)
    assert torch.allclose(cycle(2.5 * f1 - 0.7 * f2), 2.5 * cycle(f1) - 0.7 * cycle(f2), atol=1e-12)


def test_two_level_vcycle_is_the_documented_sequence_of_operations():
    cycle = MultigridVCycle(2, 3, [(2, 1), (1, 0)], padding_mode="zeros").double()
    f = torch.randn(1, 2, 10, 9, dtype=torch.float64)
    pre0, post0, pre1 = cycle.pre_smoothers[0], cycle.post_smoothers[0], cycle.pre_smoothers[1]
    u0 = pre0[0].S(f)  # u = S f
    u0 = u0 + pre0[1].S(f - pre0[1].A(u0))  # u <- u + S (f - A u)
    f1 = cycle.restrict_f[0](f)  # restrict f, not the residual
    u1 = cycle.restrict_u[0](u0)
    u1 = u1 + pre1[0].S(f1 - pre1[0].A(u1))
    assert f1.shape[-2:] == (5, 5)
    u0 = u0 + cycle.prolong[0](u1, output_size=(10, 9))  # prolongate and add
    u0 = u0 + post0[0].S(f - post0[0].A(u0))  # post-smoothing
    assert torch.allclose(cycle(f), u0, atol=1e-13)


# ---------------------------------------------------------------- boundary-aware building blocks


@pytest.mark.parametrize("kernel_size", [4, 3, 5])  # 4: the padded fast path; 3, 5: the wrap-around fold
def test_circular_transposed_convolution_equals_transposed_convolution_of_the_periodic_extension(kernel_size):
    up = PaddedConvTranspose2d(3, 2, kernel_size, stride=2, padding=1, padding_mode="circular", bias=True)
    up = perturb(up).double()
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    tiled = x.repeat(1, 1, 3, 3)  # the periodic extension over 3 x 3 periods
    full = F.conv_transpose2d(tiled, up.weight, up.bias, stride=2, padding=1)
    reference = full[..., 10:20, 14:28]  # the middle period: fine grid 2*5 x 2*7
    assert torch.allclose(up(x), reference, atol=1e-13)
    # odd fine grids (9 x 13 from 5 x 7) wrap with the odd period: the constant field stays constant
    ones = PaddedConvTranspose2d(1, 1, kernel_size, stride=2, padding=1, padding_mode="circular").double()
    with torch.no_grad():
        ones.weight.fill_(1.0)
    y = ones(torch.ones(1, 1, 5, 7, dtype=torch.float64), output_size=(9, 13))
    assert y.shape[-2:] == (9, 13) and y.sum() == kernel_size**2 * 35


def test_zero_transposed_convolution_matches_torch_and_handles_odd_sizes():
    up = perturb(PaddedConvTranspose2d(2, 2, 4, stride=2, padding=1, padding_mode="zeros")).double()
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64)
    assert torch.allclose(up(x), F.conv_transpose2d(x, up.weight, stride=2, padding=1), atol=1e-14)
    assert torch.allclose(up(x, output_size=(11, 9)), up(x)[..., :11, :9], atol=1e-14)
    with pytest.raises(ValueError, match="not reachable"):
        up(x, output_size=(13, 10))


def test_padding_modes_and_strided_conv_sizes():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(pad2d(x, 1, "circular")[0, 0, 0, 1:5], x[0, 0, 3])
    assert torch.equal(pad2d(x, 1, "reflect")[0, 0, 0, 1:5], x[0, 0, 1])
    assert torch.equal(pad2d(x, 1, "replicate")[0, 0, 0, 1:5], x[0, 0, 0])
    assert pad2d(x, 1, "zeros")[0, 0, 0].abs().sum() == 0
    with pytest.raises(ValueError, match="'mirror'"):
        pad2d(x, 1, "mirror")
    down = padded_conv2d(1, 1, 3, "circular", stride=2)
    assert down(torch.randn(1, 1, 9, 8)).shape[-2:] == (5, 4)


def test_periodic_function_valued_bias_interpolates_its_values():
    bias = FunctionValuedBias(2, resolution=4, padding_mode="circular")
    with torch.no_grad():
        bias.values.copy_(torch.randn(2, 4, 4))
    on_own_grid = bias((4, 4))[0]
    assert torch.allclose(on_own_grid, bias.values, atol=1e-6)  # cell centres coincide
    fine = bias((8, 12))[0]
    assert fine.shape == (2, 8, 12)
    # periodic: the mean of bilinear interpolation over a refined torus grid is the mean of the values
    assert torch.allclose(fine.mean(dim=(1, 2)), bias.values.mean(dim=(1, 2)), atol=1e-6)


# ---------------------------------------------------------------- training


def test_a_few_optimisation_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = models.get("mgno", channels=8, num_layers=2, smoothing=[(1, 0), (1, 0), (2, 0)])
    a = torch.randn(8, 1, 16, 16)
    target = F.avg_pool2d(F.pad(a, (1, 1, 1, 1)), 3, stride=1)  # a local smoothing of the input
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.mse_loss(model(a), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------------------------------------
# mgno_ns: MgNO's Navier-Stokes network (xlliu2017/MgNO models.py MgNO_NS / MgConv), stated
# functionally and independently: circular 3x3 convs, plain ConvTranspose2d(4, 2, 1) prolongation,
# LayerNorm over (C, n, n) after each coarse correction, GELU after every V-cycle, 1x1 head, + input.
# ---------------------------------------------------------------------------------------------
def _circ(x, conv, stride=1, mode="circular"):
    if mode == "zeros":
        return F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=1)
    return F.conv2d(
        F.pad(x, (1, 1, 1, 1), mode="circular"), conv.weight, None if conv.bias is None else conv.bias, stride=stride
    )


def _ref_mgconv(f, vc, smoothing, mode="circular"):
    levels = len(smoothing)
    us, fs = [], []
    u = None
    for level, (_pre, _post) in enumerate(smoothing):
        if level > 0:
            u = _circ(u, vc.restrict_u[level - 1], 2, mode)  # Pi
            f = _circ(f, vc.restrict_f[level - 1], 2, mode)  # R (the right-hand side itself)
        for i, step in enumerate(vc.pre_smoothers[level]):
            if level == 0 and i == 0:
                u = _circ(f, step.S, 1, mode)  # MgIte_init
            else:
                u = u + _circ(f - _circ(u, step.A, 1, mode), step.S, 1, mode)  # MgIte
        us.append(u)
        fs.append(f)
    for j in range(levels - 2, -1, -1):
        rt = F.conv_transpose2d(us[j + 1], vc.prolong[j].weight, stride=2, padding=1)
        if vc.norms is None:  # MgConv_DC: no LayerNorm
            us[j] = us[j] + rt
        else:
            norm = vc.norms[j]
            us[j] = F.layer_norm(us[j] + rt, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    return us[0]


def _ref_mgno_ns(model, x, smoothing):
    u = x
    for vc in model.vcycles:
        u = F.gelu(_ref_mgconv(u, vc, smoothing))
    return F.conv2d(u, model.head.weight) + x


def test_mgno_ns_reference_parameter_count():
    # navier.py: 5 layers x 32 channels, 5 levels, LayerNorms at 64^2, --bias: 2,885,194
    model = models.get("mgno_ns")
    assert n_params(model) == 2_885_194
    assert n_params(models.get("mgno_ns", bias=False)) == 2_883_300
    ln = sum(p.numel() for name, p in model.named_parameters() if ".norms." in name)
    assert ln == 5 * 2 * 32 * (64**2 + 32**2 + 16**2 + 8**2) == 1_740_800


@pytest.mark.parametrize("bias", [True, False])
def test_mgno_ns_equals_the_reference_functional_form(bias):
    torch.manual_seed(0)
    smoothing = [(1, 0), (1, 0), (2, 0)]
    model = models.get("mgno_ns", channels=4, num_layers=2, smoothing=smoothing, resolution=16, bias=bias).double()
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        for name, p in model.named_parameters():
            if ".norms." in name:
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(model(x), _ref_mgno_ns(model, x, smoothing), rtol=1e-12, atol=1e-12)
    # the toolkit's periodic prolongation is a different operator (so the test is sharp)
    wrapped = models.get(
        "mgno_ns",
        channels=4,
        num_layers=2,
        smoothing=smoothing,
        resolution=16,
        bias=bias,
        prolong_padding_mode="circular",
    ).double()
    wrapped.load_state_dict(model.state_dict())
    assert (wrapped(x) - model(x)).abs().max() > 1e-6


def test_mgno_ns_refuses_other_resolutions():
    model = models.get("mgno_ns", channels=4, num_layers=1, smoothing=[(1, 0), (2, 0)], resolution=16)
    with pytest.raises(ValueError, match=r"built for a 16x16 grid .* got \(32, 32\)"):
        model(torch.randn(1, 1, 32, 32))
    assert model(torch.randn(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_darcy_mgno_equals_the_reference_functional_form():
    # MgNO_DC (darcy.py): u <- GELU(MgConv_DC(u) + Conv1x1_with_bias(u)), zero padding, head 1x1
    torch.manual_seed(0)
    smoothing = [(1, 0), (1, 0), (2, 0)]
    model = MgNO(in_channels=1, out_channels=1, channels=4, num_layers=2, smoothing=smoothing).double()
    with torch.no_grad():
        for b in model.biases:
            b.values.normal_()
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    u = x
    for vc, w, b in zip(model.vcycles, model.pointwise, model.biases):
        u = F.gelu(_ref_mgconv(u, vc, smoothing, "zeros") + F.conv2d(u, w.weight, b.values.flatten()))
    torch.testing.assert_close(model(x), F.conv2d(u, model.head.weight), rtol=1e-12, atol=1e-12)
