"""SFNO: parity with an independent statement of torch-cfd's SFNO, parameter count, shapes,
refinement API (latent/head/widen), equivariance, training."""

import math

import pytest
import torch
import torch.nn.functional as F

from neuralops import models
from neuralops.models.sfno import SFNO, resample_time


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def tiny(**kw):
    cfg = dict(modes_x=4, modes_y=4, modes_t=3, width=6, latent_steps=6, out_steps=5, mlp_channels=8)
    cfg.update(kw)
    return SFNO(**cfg)


def test_paper_config_parameter_count():
    # SFNO(12, 12, 5, 20) as torch-cfd's fno/train.py builds it: 9,242,461 (independent count)
    model = models.get("sfno")
    w, modes = 20, 12 * 12 * 5
    spectral = 4 * w * w * modes * 2
    mlp = (w * 4 * w + 4 * w) + (4 * w * w + w)
    lifting = 2 * w + (w * w + w) + spectral + mlp
    hidden = 3 * (spectral + mlp + (w * w + w))
    output = 4 * modes * 2 * 2
    assert lifting + hidden + (w + 1) + output == 9_242_461
    assert n_params(model) == 9_242_461


# ---------------------------------------------------------------------------------------------
# An independent, functional statement of torch-cfd's SFNO (fno/sfno.py + fno/base.py, read
# layer by layer): full rfftn/irfftn with torch's default "backward" norm, corner blocks written
# one by one, weights indexed [ix + 2 iy] (x sign, y sign) as the reference stores them.
# ---------------------------------------------------------------------------------------------
def _ref_spectral(v, weights, modes, out_t, bias=None, delta=1.0, temporal_padding=False):
    mx, my, mt = modes
    t_pad = v.shape[-1] if temporal_padding else 0
    if temporal_padding:
        v = F.pad(v, (t_pad, 0))
    nx, ny, ntp = v.shape[-3:]
    vh = torch.fft.rfftn(v, dim=(-3, -2, -1))
    out = torch.zeros(v.shape[0], weights[0].shape[1], nx, ny, ntp // 2 + 1, dtype=vh.dtype)
    for ix, sx in enumerate([slice(0, mx), slice(-mx, None)]):
        for iy, sy in enumerate([slice(0, my), slice(-my, None)]):
            out[..., sx, sy, :mt] = torch.einsum("bixyt,ioxyt->boxyt", vh[..., sx, sy, :mt], weights[ix + 2 * iy])
            if bias is not None:
                out[..., sx, sy, :mt] += delta * bias[ix + 2 * iy]
    y = torch.fft.irfftn(out, s=(nx, ny, out_t + t_pad), dim=(-3, -2, -1))
    return y[..., -out_t:] if temporal_padding else y


def _ref_weights(layer):
    """Our corner ``c = 2 sx + sy`` -> the reference's list index ``sx + 2 sy`` (complex blocks)."""
    w = torch.view_as_complex(layer.weight.detach())
    ws = [None] * 4
    for sx in (0, 1):
        for sy in (0, 1):
            ws[sx + 2 * sy] = w[2 * sx + sy]
    b = None
    if layer.bias is not None:
        bc = torch.view_as_complex(layer.bias.detach())
        b = [None] * 4
        for sx in (0, 1):
            for sy in (0, 1):
                b[sx + 2 * sy] = bc[2 * sx + sy, 0]  # out_dim 1: one (mx, my, mt) block per corner
    return ws, b


def _conv(v, conv):
    return F.conv3d(v, conv.weight.detach(), conv.bias.detach())


def _ref_sfno(model, x, t_out, width, latent_steps, modes, beta, lift_activation=True):
    bsz, t_in, nx, ny = x.shape
    u = x.permute(0, 2, 3, 1)[:, None]  # (b, 1, x, y, t)
    gx, gy = torch.linspace(0, 1, nx, dtype=x.dtype), torch.linspace(0, 1, ny, dtype=x.dtype)
    gt = torch.linspace(0, 1, 101, dtype=x.dtype)[1 : t_in + 1]
    gx3, gy3, gt3 = torch.meshgrid(gx, gy, gt, indexing="ij")
    pe = [gx3, gy3, gt3]
    for k in range(width - 3):
        basis = torch.sin if k % 2 == 0 else torch.cos
        pe.append((torch.exp(beta * gt) * basis(torch.pi * (k + 1) * gt)).reshape(1, 1, t_in).repeat(nx, ny, 1))
    v = u + torch.stack(pe)[None]
    v = F.group_norm(v, 1, model.lift_norm.weight.detach(), model.lift_norm.bias.detach(), eps=1e-7)
    v = _conv(v, model.lift)
    ws, _ = _ref_weights(model.lift_spectral)
    w = _ref_spectral(v, ws, modes, latent_steps)
    if lift_activation:
        w = _conv(F.gelu(_conv(w, model.lift_mlp.hidden)), model.lift_mlp.out)
        v = F.gelu(v[..., -1:] + w)
    else:
        v = v[..., -1:] + _conv(w, model.lift_mlp)
    for spec, mlp, skip in zip(model.spectral, model.mlp, model.skip):
        ws, _ = _ref_weights(spec)
        x1 = _conv(F.gelu(_conv(_ref_spectral(v, ws, modes, v.shape[-1]), mlp.hidden)), mlp.out)
        v = F.gelu(x1 + _conv(v, skip))
    v = _conv(v, model.reduce)
    v = torch.cat([u[..., -1:], v], dim=-1)  # OutConv: one context frame
    ws, b = _ref_weights(model.output_layer)
    v = _ref_spectral(v, ws, modes, t_out + 1, bias=b, delta=0.1, temporal_padding=True)
    return (u[..., -1:] + v[..., -t_out:]).squeeze(1).permute(0, 3, 1, 2)


@pytest.mark.parametrize("t_in,t_out,lift_activation", [(7, 4, True), (5, 9, True), (6, 3, False)])
def test_forward_equals_the_reference_functional_form(t_in, t_out, lift_activation):
    torch.manual_seed(0)
    width, latent, modes = 6, 5, (3, 2, 2)
    model = SFNO(
        *modes, width, latent_steps=latent, out_steps=t_out, beta=0.02, lift_activation=lift_activation
    ).double()
    with torch.no_grad():  # non-trivial norm, bias and output bias
        for p in (model.lift_norm.weight, model.lift_norm.bias, model.output_layer.bias):
            p.normal_()
        model.output_layer.bias.mul_(1e3)  # the backward-normalised bias is divided by X*Y*N
    x = torch.randn(2, t_in, 12, 10, dtype=torch.float64)
    want = _ref_sfno(model, x, t_out, width, latent, modes, 0.02, lift_activation)
    got = model(x, t_out)
    assert got.shape == want.shape == (2, t_out, 12, 10)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_parity_fails_for_a_changed_architecture():
    # the functional reference is sharp: the forward-normalised variant differs when T_in != L
    torch.manual_seed(0)
    model = SFNO(3, 2, 2, 6, latent_steps=5, out_steps=4, beta=0.02, fft_norm="forward").double()
    x = torch.randn(1, 7, 12, 10, dtype=torch.float64)
    want = _ref_sfno(model, x, 4, 6, 5, (3, 2, 2), 0.02)
    assert (model(x, 4) - want).abs().max() > 1e-6


@pytest.mark.parametrize("t_in,t_out,nx,ny", [(10, 40, 16, 16), (4, 7, 24, 16), (3, 1, 12, 20)])
def test_shapes_any_resolution_and_lengths(t_in, t_out, nx, ny):
    torch.manual_seed(0)
    model = tiny()
    x = torch.randn(2, t_in, nx, ny)
    assert model(x, t_out).shape == (2, t_out, nx, ny)
    assert model(x).shape == (2, 5, nx, ny)  # default out_steps


def test_forward_is_head_of_latent():
    torch.manual_seed(0)
    model = tiny()
    x = torch.randn(2, 6, 16, 16)
    latent = model.latent(x, 9)
    assert latent.shape == (2, 1, 16, 16, 9 + model.latent_steps + 2) == (2, 1, 16, 16, model.latent_length(9))
    torch.testing.assert_close(model.head(latent, x), model(x, 9), rtol=0, atol=0)


def test_widen_output_keeps_the_output():
    torch.manual_seed(0)
    model = tiny().double()
    with torch.no_grad():  # a trained-looking output layer: non-zero weights and bias everywhere
        model.output_layer.weight.normal_()
        model.output_layer.bias.normal_()
    x = torch.randn(2, 6, 32, 32, dtype=torch.float64)
    before = model(x, 8)
    old_w = model.output_layer.weight.detach().clone()
    model.widen_output(10, 9, 7)
    assert model.output_layer.modes == (10, 9, 7)
    after = model(x, 8)
    assert torch.allclose(after, before, rtol=0, atol=1e-12 * float(before.detach().abs().max()))
    # the old weights sit in the low modes: positive block at the start, negative block at the end
    new_w = model.output_layer.weight.detach()
    torch.testing.assert_close(new_w[0, :, :, :4, :4, :3], old_w[0, :, :, :4, :4, :3])
    torch.testing.assert_close(new_w[3, :, :, -4:, -4:, :3], old_w[3, :, :, -4:, -4:, :3])
    assert new_w[0, :, :, 4:].abs().max() == 0
    # the widened layer is trainable and changes the output
    with torch.no_grad():
        model.output_layer.weight[0, 0, 0, 6, 0, 0, 0] = 1.0
    assert (model(x, 8) - before).abs().max() > 1e-3
    with pytest.raises(ValueError, match="must be >="):
        model.widen_output(2, 9, 7)


def test_translation_equivariance_without_spatial_coordinates():
    torch.manual_seed(0)
    model = tiny(spatial_encoding=False).double().eval()
    x = torch.randn(2, 6, 16, 12, dtype=torch.float64)
    shift = (5, -3)
    out = model(x, 7)
    out_shifted = model(torch.roll(x, shift, dims=(-2, -1)), 7)
    torch.testing.assert_close(out_shifted, torch.roll(out, shift, dims=(-2, -1)), rtol=1e-12, atol=1e-12)


def test_spatial_coordinates_break_equivariance():
    # the paper's encoding includes x, y: the model then (knowingly) depends on position
    torch.manual_seed(0)
    model = tiny().double().eval()
    x = torch.randn(1, 6, 16, 16, dtype=torch.float64)
    out = model(x, 4)
    out_shifted = model(torch.roll(x, 5, dims=-2), 4)
    assert (out_shifted - torch.roll(out, 5, dims=-2)).abs().max() > 1e-6


def test_resample_time_is_exact_for_band_limited_signals():
    n_in, n_out = 10, 23
    t_in = torch.arange(n_in, dtype=torch.float64) / n_in
    t_out = torch.arange(n_out, dtype=torch.float64) / n_out
    f = lambda t: 0.3 + torch.cos(2 * math.pi * t) - 0.5 * torch.sin(2 * math.pi * 3 * t)
    torch.testing.assert_close(resample_time(f(t_in), n_out), f(t_out), rtol=0, atol=1e-12)


def test_a_few_adam_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = tiny()
    g = torch.arange(16) * (2 * math.pi / 16)
    phase = torch.rand(4, 5, 1, 1) * 2 * math.pi
    x = torch.sin(g[:, None] + phase) * torch.cos(g[None, :])  # smooth, within the kept modes
    target = 0.5 * x[:, -1:].expand(4, 3, 16, 16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((model(x, 3) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_sliced_mlps_give_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 10, 8, dtype=torch.float64)
    results = []
    # per slab row of the hidden MLP: 2 * 8 * 8 * 6 = 768 values -> 1 piece, 2-row slabs, 1-row slabs
    for chunk in (None, 2 * 768, 1):
        torch.manual_seed(1)
        model = tiny(mlp_chunk_elements=chunk).double()
        out = model(x, 5)
        out.square().sum().backward()
        results.append((out.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    for out, grad in results[1:]:
        torch.testing.assert_close(out, results[0][0], rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(grad, results[0][1], rtol=1e-12, atol=1e-12)


def test_bad_inputs_raise_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match=r"\(B, T_in, X, Y\)"):
        model(torch.randn(2, 16, 16))
    with pytest.raises(ValueError, match="t_out must be >= 1"):
        model(torch.randn(2, 4, 16, 16), 0)
    with pytest.raises(ValueError, match="activation"):
        SFNO(activation="swish")
    with pytest.raises(ValueError, match="modes_t"):
        SFNO(modes_t=0)
    with pytest.raises(ValueError, match="fft_norm"):
        SFNO(fft_norm="ortho")
    with pytest.raises(ValueError, match="max_time_steps"):
        tiny(max_time_steps=4)(torch.randn(1, 6, 8, 8))
