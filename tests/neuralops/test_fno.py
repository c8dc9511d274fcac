"""SpectralConv against an independent dense computation; FNO-2D/3D counts, shapes, equivariance."""

import itertools
import math
from unittest import mock

import pytest
import torch

from neuralops import models
from neuralops.layers import GridEmbedding, SpectralConv, grid_coordinates, spectral_conv


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------
# SpectralConv
# ------------------------------------------------------------------------------------------------
def dense_reference(layer: SpectralConv, v: torch.Tensor) -> torch.Tensor:
    """The layer's definition evaluated the slow way: full complex FFT, a dense multiplier built
    frequency by frequency from the weights, and the real inverse written out as a sum of modes."""
    d = layer.dim
    n = v.shape[-d:]
    axes = tuple(range(-d, 0))
    v_hat = torch.fft.fftn(v, dim=axes, norm="forward")
    weight = torch.view_as_complex(layer.weight.detach())
    half = n[-1] // 2 + 1
    mult = torch.zeros(layer.in_channels, layer.out_channels, *n[:-1], half, dtype=weight.dtype)
    for idx in itertools.product(*[range(s) for s in n[:-1]], range(half)):
        corner, w_idx, kept = 0, [], True
        for j in range(d - 1):
            f = idx[j] if idx[j] <= (n[j] - 1) // 2 else idx[j] - n[j]  # signed frequency
            m = layer.modes[j]
            if 0 <= f < min(m, (n[j] + 1) // 2):
                w_idx.append(f)
            elif -min(m, n[j] // 2) <= f < 0:
                corner += 2 ** (d - 2 - j)
                w_idx.append(m + f)
            else:
                kept = False
        if not kept or idx[-1] >= layer.modes[-1]:
            continue
        w_idx.append(idx[-1])
        mult[(slice(None), slice(None)) + idx] = weight[(corner, slice(None), slice(None)) + tuple(w_idx)]
    out_hat = torch.einsum("bi...,io...->bo...", v_hat[..., :half], mult)
    g = torch.fft.ifftn(out_hat, dim=axes[:-1], norm="forward") if d > 1 else out_hat
    k = torch.arange(half, dtype=torch.float64)
    t = torch.arange(n[-1], dtype=torch.float64) / n[-1]
    c = torch.full((half,), 2.0, dtype=torch.float64)
    c[0] = 1.0
    if n[-1] % 2 == 0:
        c[-1] = 1.0
    basis = (c[:, None] * torch.exp(2j * math.pi * k[:, None] * t[None, :])).to(g.dtype)
    return torch.einsum("...k,kt->...t", g, basis).real


@pytest.mark.parametrize(
    "modes,grid",
    [
        ((3,), (10,)),
        ((4,), (5,)),  # 1-d; a grid too small for the modes
        ((3, 2), (8, 7)),
        ((3, 4), (5, 6)),  # 2-d; truncation on both axes
        ((2, 3, 2), (6, 5, 6)),
        ((3, 2, 4), (4, 4, 5)),  # 3-d
        ((4,), (11,)),
        ((3, 4), (6, 14)),
        ((2, 2, 3), (4, 5, 13)),  # last axis by matmul (prime factor > 5)
    ],
)
def test_spectral_conv_matches_dense_definition(modes, grid):
    torch.manual_seed(0)
    layer = SpectralConv(2, 3, modes).double()
    v = torch.randn(2, 2, *grid, dtype=torch.float64)
    torch.testing.assert_close(layer(v), dense_reference(layer, v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "modes,grid,out_shape",
    [
        ((3,), (8,), None),
        ((2, 3), (6, 7), None),
        ((2, 2, 2), (5, 4, 6), None),
        ((3, 3), (6, 8), (9, 5)),
        ((2, 2, 3), (4, 5, 6), (6, 5, 9)),  # resampling
        ((2, 3), (5, 7), None),
        ((3, 3), (6, 14), (9, 11)),
        ((3, 3), (6, 11), (6, 8)),  # matmul DFT
    ],
)
def test_spectral_conv_gradients(modes, grid, out_shape):
    # the layer uses a hand-written adjoint for its truncated real FFT: check it numerically
    torch.manual_seed(0)
    channels = 2 if len(modes) < 3 else 1  # keep the numerical Jacobian small in 3-d
    layer = SpectralConv(channels, channels, modes, bias=True).double()
    with torch.no_grad():
        layer.bias.normal_()
    v = torch.randn(1, channels, *grid, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda v, w, b: torch.func.functional_call(layer, {"weight": w, "bias": b}, (v, out_shape)),
        (v, layer.weight, layer.bias),
    )


def test_dft_by_matmul_rule_and_both_paths_agree():
    """The last axis goes through a matmul exactly when its length has a prime factor above 5
    (FNO's Darcy grid 85 + 9 = 94 = 2 x 47), and the two evaluations are the same numbers to
    round-off, in the outputs and in the gradients of the input and the weights."""
    assert [n for n in range(1, 30) if spectral_conv.dft_by_matmul(n)] == [
        7,
        11,
        13,
        14,
        17,
        19,
        21,
        22,
        23,
        26,
        28,
        29,
    ]
    assert spectral_conv.dft_by_matmul(94) and not spectral_conv.dft_by_matmul(150)
    torch.manual_seed(0)
    layer = SpectralConv(3, 2, (6, 7), bias=True).double()
    v = torch.randn(2, 3, 20, 94, dtype=torch.float64)
    results = []
    for by_matmul in (True, False):
        with mock.patch.object(spectral_conv, "dft_by_matmul", lambda n, m=by_matmul: m):
            layer.zero_grad()
            x = v.clone().requires_grad_(True)
            out = layer(x, (20, 47))
            out.square().sum().backward()
            results.append([out, x.grad, layer.weight.grad, layer.bias.grad])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_dft_matrices_cached_in_inference_mode_still_train():
    layer = SpectralConv(1, 1, (3, 3))
    with torch.inference_mode():
        layer(torch.randn(1, 1, 8, 19))
    layer(torch.randn(1, 1, 8, 19)).sum().backward()  # same cached (n, keep, dtype) matrices
    assert layer.weight.grad is not None


def test_spectral_conv_parameter_layout_and_corners():
    assert SpectralConv(20, 20, (8, 8, 8)).weight.shape == (4, 20, 20, 8, 8, 8, 2)
    assert SpectralConv(20, 20, (8, 8)).weight.shape == (2, 20, 20, 8, 8, 2)
    assert SpectralConv(5, 7, (6,)).weight.shape == (1, 5, 7, 6, 2)
    assert SpectralConv(1, 1, (4, 4, 3), bias=True).bias.shape == (4, 1, 4, 4, 3, 2)


def test_spectral_conv_resampling_evaluates_the_same_function():
    # a band-limited input filtered with all-pass weights, evaluated on a finer grid = the input
    # function sampled there
    layer = SpectralConv(1, 1, (4, 4), init_scale=0.0).double()
    with torch.no_grad():
        layer.weight[..., 0] = 1.0
    f = lambda x, y: torch.cos(2 * math.pi * (x + 2 * y)) + 0.5 * torch.sin(2 * math.pi * 3 * x)
    coarse = grid_coordinates((12, 10), dtype=torch.float64)
    fine = grid_coordinates((30, 17), dtype=torch.float64)
    out = layer(f(*coarse)[None, None], out_shape=(30, 17))
    torch.testing.assert_close(out[0, 0], f(*fine), rtol=0, atol=1e-12)


def test_spectral_conv_rejects_bad_arguments():
    with pytest.raises(ValueError, match="modes"):
        SpectralConv(2, 2, (3, 0))
    with pytest.raises(ValueError, match="dim must be 1, 2 or 3"):
        SpectralConv(2, 2, (3, 3, 3, 3))
    with pytest.raises(ValueError, match=r"expected input \(B, 2"):
        SpectralConv(2, 2, (3, 3))(torch.randn(1, 3, 8, 8))


def test_grid_embedding_coordinates():
    e = GridEmbedding(2)(torch.zeros(1, 1, 4, 5))
    assert e.shape == (1, 3, 4, 5)
    torch.testing.assert_close(e[0, 1, :, 0], torch.arange(4) / 4.0)
    torch.testing.assert_close(e[0, 2, 0, :], torch.arange(5) / 5.0)
    e = GridEmbedding(2, endpoint=True)(torch.zeros(1, 1, 4, 5))
    torch.testing.assert_close(e[0, 2, 0, :], torch.linspace(0, 1, 5))


# ------------------------------------------------------------------------------------------------
# FNO
# ------------------------------------------------------------------------------------------------
def fno_count(dim, in_ch, modes, width=20, layers=4, proj=128, out=1):
    spectral = 2 ** (dim - 1) * width * width * modes**dim * 2
    return (
        (in_ch + dim) * width
        + width
        + layers * (spectral + width * width + width + 2 * width)
        + width * proj
        + proj
        + proj * out
        + out
    )


def test_paper_parameter_counts():
    assert fno_count(3, 10, 8) == 6_558_537
    assert fno_count(2, 10, 8) == 414_517
    assert n_params(models.get("fno3d")) == 6_558_537
    assert n_params(models.get("fno2d")) == 414_517
    assert n_params(models.get("fno2d", modes=12)) == fno_count(2, 10, 12) == 926_517


@pytest.mark.parametrize("grid", [(16, 16), (24, 20), (33, 17)])
def test_fno2d_shapes_at_several_resolutions(grid):
    torch.manual_seed(0)
    model = models.get("fno2d", modes=6, width=8)
    assert model(torch.randn(2, 10, *grid)).shape == (2, 1, *grid)
    darcy = models.get(
        "fno2d",
        in_channels=1,
        out_channels=2,
        modes=5,
        width=8,
        padding=9,
        endpoint=True,
        norm="none",
        activation="gelu",
    )
    assert darcy(torch.randn(1, 1, *grid)).shape == (1, 2, *grid)


@pytest.mark.parametrize("t_in,t_out,grid", [(10, 12, (16, 16)), (4, 5, (20, 12)), (10, 1, (12, 12))])
def test_fno3d_shapes_and_call_time_t_out(t_in, t_out, grid):
    torch.manual_seed(0)
    model = models.get("fno3d", in_steps=t_in, out_steps=7, modes=4, width=6)
    x = torch.randn(2, t_in, *grid)
    assert model(x, t_out).shape == (2, t_out, *grid)
    assert model(x).shape == (2, 7, *grid)


@pytest.mark.parametrize("name", ["fno2d", "fno3d"])
def test_roll_equivariance_without_coordinates(name):
    torch.manual_seed(0)
    model = models.get(name, modes=4, width=6, positional_embedding=False).double().eval()
    x = torch.randn(2, 10, 16, 12, dtype=torch.float64)
    shift = (3, -5)
    out = model(x)
    rolled = model(torch.roll(x, shift, dims=(-2, -1)))
    torch.testing.assert_close(rolled, torch.roll(out, shift, dims=(-2, -1)), rtol=1e-12, atol=1e-12)


def test_fno_at_another_resolution_sees_the_same_function():
    # with all-pass spectral weights and band-limited input, the hidden field on a finer grid is
    # the same function sampled finer: resolution invariance of the Fourier layers
    torch.manual_seed(0)
    model = (
        models.get("fno2d", in_channels=1, modes=4, width=4, n_layers=1, norm="none", positional_embedding=False)
        .double()
        .eval()
    )
    f = lambda x, y: torch.sin(2 * math.pi * x) * torch.cos(2 * math.pi * 2 * y)
    coarse = model(f(*grid_coordinates((16, 16), dtype=torch.float64))[None, None])
    fine = model(f(*grid_coordinates((32, 32), dtype=torch.float64))[None, None])
    torch.testing.assert_close(fine[..., ::2, ::2], coarse, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["fno2d", "fno3d"])
def test_a_few_adam_steps_reduce_the_loss(name):
    torch.manual_seed(0)
    model = models.get(name, modes=4, width=8)
    x = torch.randn(4, 10, 16, 16)
    target = (model(x) * 0).detach() + torch.tanh(x[:, -1:])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = ((model(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_sliced_projection_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 10, 12, 8, dtype=torch.float64)
    grads = []
    outs = []
    # one piece; slabs of 3 rows (per row: 2 * 128 * 8 * 6 = 12,288 values); 1 row (the minimum)
    for chunk in (None, 3 * 12_288, 1):
        torch.manual_seed(1)
        model = models.get("fno3d", modes=3, width=5, projection_chunk_elements=chunk).double()
        out = model(x, 6)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    for out, grad in zip(outs[1:], grads[1:]):
        torch.testing.assert_close(out, outs[0], rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(grad, grads[0], rtol=1e-12, atol=1e-12)


def test_fno_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"expected \(B, 10"):
        models.get("fno2d")(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, T_in=10, X, Y\)"):
        models.get("fno3d", modes=2, width=4)(torch.randn(1, 10, 8))
    with pytest.raises(ValueError, match=r"\(B, T_in=10, X, Y\)"):
        models.get("fno3d", modes=2, width=4)(torch.randn(1, 7, 8, 8))
    with pytest.raises(ValueError, match="norm"):
        models.get("fno2d", norm="layer")
    with pytest.raises(ValueError, match="padding"):
        models.get("fno2d", padding=(1, 2, 3))


# ------------------------------------------------------------------------------------------------
# Parity with functional statements of the FNO scripts (one revision per model, see the fno module)
# ------------------------------------------------------------------------------------------------
def _script_spectral(h, layer):
    """The scripts' SpectralConv2d/3d: rfftn, corner blocks weights1..4 = [+x+y], [-x+y], [+x-y],
    [-x-y] (2-d: weights1 = [+x], weights2 = [-x]), irfftn on the same grid."""
    d = layer.dim
    w = torch.view_as_complex(layer.weight.detach())
    m = layer.modes
    hf = torch.fft.rfftn(h, dim=tuple(range(-d, 0)))
    out = torch.zeros(h.shape[0], layer.out_channels, *hf.shape[2:], dtype=hf.dtype)
    sx = [slice(0, m[0]), slice(-m[0], None)]
    if d == 2:
        blocks = [((sx[0], slice(0, m[1])), w[0]), ((sx[1], slice(0, m[1])), w[1])]
        eq = "bixy,ioxy->boxy"
    else:
        sy = [slice(0, m[1]), slice(-m[1], None)]
        st = slice(0, m[2])
        # script order weights1..4: (+,+), (-,+), (+,-), (-,-); our corner index is 2 sx + sy
        blocks = [
            ((sx[0], sy[0], st), w[0]),
            ((sx[1], sy[0], st), w[2]),
            ((sx[0], sy[1], st), w[1]),
            ((sx[1], sy[1], st), w[3]),
        ]
        eq = "bixyz,ioxyz->boxyz"
    for idx, wb in blocks:
        out[(slice(None), slice(None)) + idx] = torch.einsum(eq, hf[(slice(None), slice(None)) + idx], wb)
    return torch.fft.irfftn(out, s=h.shape[-d:], dim=tuple(range(-d, 0)))


def _script_fno(model, inp, d):
    """``inp (B, *grid, C)`` channels last, coordinates first as in the scripts; Linear fc0,
    4 x [K + W (Conv1d), BatchNorm, ReLU except after the last], fc1, ReLU, fc2."""
    c_data = model.in_channels
    lw = model.lift.weight.detach().flatten(1)
    fc0_w = torch.cat([lw[:, c_data:], lw[:, :c_data]], dim=1)  # coordinates first
    h = inp @ fc0_w.T + model.lift.bias.detach()
    h = h.movedim(-1, 1)
    for i, (spec, skip, bn) in enumerate(zip(model.spectral, model.skip, model.norms)):
        x1 = _script_spectral(h, spec)
        x2 = torch.nn.functional.conv1d(h.flatten(2), skip.weight.detach().flatten(2), skip.bias.detach()).view_as(h)
        h = torch.nn.functional.batch_norm(
            x1 + x2, bn.running_mean, bn.running_var, bn.weight.detach(), bn.bias.detach(), training=False, eps=bn.eps
        )
        if i < 3:
            h = torch.relu(h)
    h = h.movedim(1, -1)
    p = model.projection
    h = torch.relu(h @ p.hidden.weight.detach().flatten(1).T + p.hidden.bias.detach())
    return h @ p.out.weight.detach().flatten(1).T + p.out.bias.detach()


def _randomise_batchnorm(model):
    with torch.no_grad():
        for bn in model.norms:
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_()
            bn.bias.normal_()
    return model.eval()


def test_fno3d_equals_fourier_3d_script_2021_01():
    torch.manual_seed(0)
    model = _randomise_batchnorm(
        models.get("fno3d", in_steps=3, out_steps=5, modes=(3, 2, 2), width=6, projection_channels=8).double()
    )
    B, S, T_in, T = 2, 10, 3, 5
    x = torch.randn(B, T_in, S, S, dtype=torch.float64)
    # fourier_3d.py: a repeated over T, grids linspace(0, 1, S) and linspace(0, 1, T + 1)[1:], prefixed
    a = x.permute(0, 2, 3, 1).reshape(B, S, S, 1, T_in).repeat(1, 1, 1, T, 1)
    gx = torch.linspace(0, 1, S, dtype=torch.float64).reshape(1, S, 1, 1, 1).repeat(B, 1, S, T, 1)
    gy = torch.linspace(0, 1, S, dtype=torch.float64).reshape(1, 1, S, 1, 1).repeat(B, S, 1, T, 1)
    gt = torch.linspace(0, 1, T + 1, dtype=torch.float64)[1:].reshape(1, 1, 1, T, 1).repeat(B, S, S, 1, 1)
    want = _script_fno(model, torch.cat([gx, gy, gt, a], dim=-1), 3)[..., 0].permute(0, 3, 1, 2)
    torch.testing.assert_close(model(x, T), want, rtol=1e-10, atol=1e-10)
    # the 2021-08 options (time padding, t = k / (T - 1)) give a different network
    padded = models.get(
        "fno3d",
        in_steps=3,
        out_steps=5,
        modes=(3, 2, 2),
        width=6,
        projection_channels=8,
        time_padding=6,
        time_coordinate="linspace",
    ).double()
    padded.load_state_dict(model.state_dict())
    assert (padded.eval()(x, T) - want).abs().max() > 1e-6


def test_fno2d_equals_fourier_2d_time_script_2021_01():
    torch.manual_seed(0)
    model = _randomise_batchnorm(models.get("fno2d", in_channels=4, modes=3, width=6, projection_channels=8).double())
    B, S = 2, 10
    x = torch.randn(B, 4, S, S, dtype=torch.float64)
    gx = torch.linspace(0, 1, S, dtype=torch.float64).reshape(1, S, 1, 1).repeat(B, 1, S, 1)
    gy = torch.linspace(0, 1, S, dtype=torch.float64).reshape(1, 1, S, 1).repeat(B, S, 1, 1)
    want = _script_fno(model, torch.cat([gx, gy, x.permute(0, 2, 3, 1)], dim=-1), 2).permute(0, 3, 1, 2)
    torch.testing.assert_close(model(x), want, rtol=1e-10, atol=1e-10)


def test_pointwise_mlp_slabs_only_on_the_cpu_bound():
    """The slab bound is the CPU's; off the CPU it is ACCELERATOR_FACTOR times larger (one piece for
    a tensor the CPU would cut into slabs). Counted on the 'meta' device (shapes only, no data)."""
    from neuralops.layers import pointwise

    mlp = pointwise.PointwiseMLP(2, 4, 16, 1, torch.nn.GELU(), chunk_elements=1000)
    calls = []
    mlp.hidden.register_forward_hook(lambda *a: calls.append(1))
    v = torch.randn(2, 4, 16, 16)  # 2 * 16 * 256 = 8,192 hidden values, 512 per grid row
    mlp(v)
    assert len(calls) == 16 and mlp.chunk_limit(v.device) == 1000  # slabs of one row on the CPU
    calls.clear()
    meta = mlp.to("meta")
    out = meta(torch.empty(2, 4, 16, 16, device="meta"))
    assert out.shape == (2, 1, 16, 16) and out.device.type == "meta"
    assert len(calls) == 1 and meta.chunk_limit(out.device) == 1000 * pointwise.ACCELERATOR_FACTOR
