"""bf16 autocast: spectral layers keep their FFTs in float32 (no bf16 FFT kernels, too few bits)."""

import torch

from neuralops import models
from neuralops.layers.spectral_conv import SpectralConv


def test_spectral_conv_runs_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    layer = SpectralConv(4, 3, (6, 6), dim=2)
    x = torch.randn(2, 4, 24, 24)
    ref = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
        out_b = layer(x.bfloat16())
    assert out.dtype == torch.float32 and out_b.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    # a bf16 input loses only its own rounding (about 3 significant digits), not the FFT's
    assert (out_b - ref).abs().max() <= 2e-2 * ref.abs().max()


def test_fno_trains_one_step_under_bf16_autocast():
    torch.manual_seed(0)
    net = models.get("fno2d", in_channels=3, out_channels=1, modes=4, width=8)
    x, y = torch.randn(2, 3, 16, 16), torch.randn(2, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ((net(x).float() - y) ** 2).mean()
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_sfno_and_mgno_ns_train_one_step_under_bf16_autocast():
    # SFNO's backward-normalised FFTs and its time resampling run in float32 under autocast
    torch.manual_seed(0)
    cases = [
        (
            models.get("sfno", modes_x=3, modes_y=3, modes_t=2, width=6, latent_steps=4, out_steps=3),
            torch.randn(2, 5, 12, 12),
            lambda m, x: m(x, 3),
        ),
        (
            models.get("mgno_ns", channels=4, num_layers=1, smoothing=[(1, 0), (2, 0)], resolution=16),
            torch.randn(2, 1, 16, 16),
            lambda m, x: m(x),
        ),
    ]
    for net, x, call in cases:
        ref = call(net, x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = call(net, x)
            loss = out.float().square().mean()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
        assert (out.float() - ref).abs().max() <= 5e-2 * ref.abs().max()
