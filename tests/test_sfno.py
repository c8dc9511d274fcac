"""SFNO: parameter count, shapes, refinement API (latent/head/widen), equivariance, training."""
import math

import pytest
import torch

from neuralops import models
from neuralops.models.sfno import SFNO, resample_time


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def tiny(**kw):
    cfg = dict(modes_x=4, modes_y=4, modes_t=3, width=6, latent_steps=6, out_steps=5, mlp_channels=8)
    cfg.update(kw)
    return SFNO(**cfg)


def test_paper_config_parameter_count():
    model = models.get("sfno")
    # independent count of the architecture in the docstring
    w, mlp, modes = 20, 128, 12 * 12 * 5
    spectral = 4 * w * w * modes * 2
    lifting = 2 * (w + 3) + (w + 3) * w + w
    hidden = 3 * (spectral + (w * mlp + mlp) + (mlp * w + w) + (w * w + w))
    output = 4 * modes * 2 * 2
    assert spectral + lifting + hidden + (w + 1) + output == 9_245_131
    assert n_params(model) == 9_245_131


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
    assert latent.shape == (2, 1, 16, 16, model.context_frames + 9)
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
    with pytest.raises(ValueError, match="context_frames=2"):
        model(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="t_out must be >= 1"):
        model(torch.randn(2, 4, 16, 16), 0)
    with pytest.raises(ValueError, match="activation"):
        SFNO(activation="swish")
    with pytest.raises(ValueError, match="modes_t"):
        SFNO(modes_t=0)
