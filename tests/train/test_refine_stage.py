"""The refinement stage (train.refine.refine) on a real (small) SFNO."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from neuralops.models import get
from train.refine.refine import (
    Physics,
    RefineConfig,
    SpectralRefiner,
    check_sfno,
    output_time_frequencies,
    widen_for_refinement,
)

N, T_IN, T_OUT, DT, NU = 16, 8, 10, 0.05, 1e-2


def _sfno(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    model = get(
        "sfno",
        modes_x=3,
        modes_y=3,
        modes_t=3,
        width=6,
        latent_steps=5,
        out_steps=T_OUT,
        n_hidden_layers=1,
        mlp_channels=8,
    )
    return model.to(dtype)


def _forcing(n):
    x = torch.arange(n, dtype=torch.float64) / n
    X, Y = torch.meshgrid(x, x, indexing="ij")
    return 0.1 * (torch.sin(2 * math.pi * (X + Y)) + torch.cos(2 * math.pi * (X + Y)))


def _inputs(batch=2, seed=1, dtype=torch.float64):
    """A smooth random band-limited vorticity trajectory (only the model's input matters here)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(N, dtype=torch.float64) / N
    X, Y = torch.meshgrid(x, x, indexing="ij")
    t = torch.arange(T_IN, dtype=torch.float64)[:, None, None] * DT
    out = []
    for _ in range(batch):
        a = torch.randn(4, generator=g, dtype=torch.float64)
        w = (
            a[0] * torch.sin(2 * math.pi * X + t)
            + a[1] * torch.cos(2 * math.pi * (X + 2 * Y))
            + a[2] * torch.sin(4 * math.pi * Y - 0.5 * t)
            + 0.2 * a[3]
        )
        out.append(w)
    return torch.stack(out).to(dtype)


def _refiner(model, **cfg):
    config = RefineConfig(**{"steps": 6, "relinearize_every": 3, "fd_order": 4, **cfg})
    refiner = SpectralRefiner(model, Physics(NU, DT, 1.0, _forcing), config)
    refiner.prepare(N, T_OUT)
    return refiner


def test_widened_layer_reproduces_trained_output():
    model = _sfno()
    x = _inputs()
    with torch.no_grad():
        before = model(x, T_OUT)
        modes = widen_for_refinement(model, N, T_OUT)
        after = model(x, T_OUT)
    # the paper's widening: every mode of the grid (n/2 per sign) and every temporal mode
    assert modes == (N // 2, N // 2, output_time_frequencies(model, T_OUT))
    assert model.output_layer.modes == modes
    assert (after - before).abs().max() <= 1e-13 * before.abs().max()


def test_band_limited_widening_keeps_the_earlier_limit():
    model = _sfno()
    assert widen_for_refinement(model, N, T_OUT, band="dealiased")[:2] == (N // 3, N // 3)


def _high_band_energy(field):
    """Energy of the modes with max(|m_x|, |m_y|) > n/3 (outside the 2/3 square band)."""
    n = field.shape[-1]
    m = torch.fft.fftfreq(n, 1.0 / n).abs()
    outside = (m[:, None] > n / 3) | (m[None, :] > n / 3)
    return float((torch.fft.fft2(field).abs() ** 2 * outside).sum())


@pytest.mark.parametrize("band", ["full", "dealiased"])
def test_full_band_refinement_acts_on_the_high_modes(band):
    """The paper's refinement changes the prediction above n/3; the band-limited one cannot. The
    inputs carry a mode above n/3 (m_x = 7 on 16^2), so the residual has a high band to act on."""
    model = _sfno()
    refiner = _refiner(model, band=band, steps=4, relinearize_every=4)
    grid_x = torch.arange(N, dtype=torch.float64) / N
    x = _inputs(batch=1) + 0.3 * torch.sin(2 * math.pi * 7 * grid_x)[:, None]
    result = refiner.refine(x, x, T_OUT)
    change = result["prediction"] - result["prediction_before"]
    high = _high_band_energy(change)
    total = float((torch.fft.fft2(change).abs() ** 2).sum())
    assert total > 0
    if band == "full":
        assert high > 1e-6 * total
    else:
        assert high <= 1e-20 * total


@pytest.mark.parametrize("optimizer, linearization", [("cg", "newton"), ("adam", "none")])
def test_frozen_parameters_bit_identical(optimizer, linearization):
    model = _sfno()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("output_layer.")}
    refiner = _refiner(model, optimizer=optimizer, linearization=linearization, lr=1e-3)
    trained_out = {k: v.clone() for k, v in model.output_layer.state_dict().items()}
    x = _inputs()
    result = refiner.refine(x, x, T_OUT)
    after = model.state_dict()
    for k, v in frozen.items():
        assert torch.equal(after[k], v), k
    # ... and the refined layer did move
    assert any(not torch.equal(model.output_layer.state_dict()[k], v) for k, v in trained_out.items())
    assert all(not p.requires_grad for name, p in model.named_parameters() if not name.startswith("output_layer."))
    assert result["prediction"].shape == (2, T_OUT, N, N)


def _line_objective(refiner, x, theta_a, theta_b, s_values, linearization, reference):
    layer = refiner.model.output_layer
    with torch.no_grad():
        latent = refiner.model.latent(x, T_OUT)
    values = []
    for s in s_values:
        with torch.no_grad():
            for p, a, b in zip(layer.parameters(), theta_a, theta_b):
                p.copy_(a + s * (b - a))
            values.append(float(refiner.objective(latent, x, x, None, linearization, reference)))
    return np.array(values)


def test_linearised_objective_is_convex_quadratic_along_a_line():
    """The Newton/Picard subproblem objective is a convex quadratic in the output layer's
    parameters: along any line it is a degree-2 polynomial with a non-negative leading coefficient
    (so it lies below every chord). The full objective is a quartic along the same line (advection
    makes R quadratic in w): that is why the refiner linearises."""
    model = _sfno()
    refiner = _refiner(model)
    x = _inputs()
    layer = model.output_layer
    g = torch.Generator().manual_seed(3)
    theta_a = [p.detach().clone() for p in layer.parameters()]
    theta_b = [p.detach() + 5.0 * torch.randn(p.shape, generator=g, dtype=p.dtype) for p in layer.parameters()]
    with torch.no_grad():
        reference = refiner.trajectory(x, model(x, T_OUT))
    s = np.linspace(-1.0, 2.0, 13)
    for linearization in ("newton", "picard"):
        f = _line_objective(refiner, x, theta_a, theta_b, s, linearization, reference)
        c = np.polynomial.polynomial.polyfit(s, f, 4)
        assert abs(c[3]) + abs(c[4]) < 1e-9 * abs(c[2]), (linearization, c)
        assert c[2] > 0
        # below the chord between any two sampled points
        for i in range(len(s)):
            for j in range(i + 2, len(s)):
                lam = (s[i + 1 : j] - s[i]) / (s[j] - s[i])
                chord = (1 - lam) * f[i] + lam * f[j]
                assert np.all(f[i + 1 : j] <= chord * (1 + 1e-12)), (linearization, i, j)
    full = _line_objective(refiner, x, theta_a, theta_b, s, "none", None)
    c_full = np.polynomial.polynomial.polyfit(s, full, 4)
    assert abs(c_full[4]) > 1e-6 * abs(c_full[2])  # genuinely quartic


def _hessian_norm(refiner, loss_fn, iterations=30):
    """Largest Hessian eigenvalue of the quadratic ``loss_fn`` by power iteration, with
    ``H v = grad(theta + v) - grad(theta)`` (exact for a quadratic)."""
    params = refiner.trainable
    g0 = torch.autograd.grad(loss_fn(), params)
    v = [torch.randn_like(p) for p in params]
    lam = 0.0
    for _ in range(iterations):
        norm = math.sqrt(sum(float((vi**2).sum()) for vi in v))
        v = [vi / norm for vi in v]
        with torch.no_grad():
            for p, vi in zip(params, v):
                p.add_(vi)
        g1 = torch.autograd.grad(loss_fn(), params)
        with torch.no_grad():
            for p, vi in zip(params, v):
                p.sub_(vi)
        hv = [a - b for a, b in zip(g1, g0)]
        lam = sum(float((a * b).sum()) for a, b in zip(hv, v))
        v = hv
    return lam


def test_small_steps_decrease_the_convex_subproblem_monotonically():
    """Gradient descent with step 1/L (L = largest Hessian eigenvalue of the convex subproblem)
    decreases it at every step; so does any smaller step."""
    model = _sfno()
    refiner = _refiner(model)
    x = _inputs()
    with torch.no_grad():
        latent = model.latent(x, T_OUT)
        reference = refiner.trajectory(x, model(x, T_OUT))
    loss_fn = lambda: refiner.objective(latent, x, x, None, "newton", reference)
    lipschitz = _hessian_norm(refiner, loss_fn)
    assert lipschitz > 0
    opt = torch.optim.SGD(refiner.trainable, lr=1.0 / lipschitz)
    values = []
    for _ in range(15):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        values.append(float(loss.detach()))
        opt.step()
    assert all(b < a for a, b in zip(values, values[1:])), values
    assert values[-1] < values[0]


def test_cg_decreases_each_subproblem_and_the_residual():
    model = _sfno()
    refiner = _refiner(model, steps=12, relinearize_every=12)
    x = _inputs(batch=1)
    result = refiner.refine(x, x, T_OUT)
    history = result["history"][0]
    assert all(b <= a * (1 + 1e-10) for a, b in zip(history, history[1:])), history
    assert float(result["residual_after"]) < 0.5 * float(result["residual_before"])


def test_per_trajectory_equals_batch_of_one():
    """Each trajectory is refined from the widened trained layer, whatever was refined before."""
    model = _sfno()
    x = _inputs(batch=2)
    with torch.no_grad():
        trained = model(x, T_OUT)
    refiner = _refiner(model, per="trajectory")
    both = refiner.refine(x, x, T_OUT)
    single = refiner.refine(x[1:], x[1:], T_OUT)
    assert torch.allclose(both["prediction"][1:], single["prediction"], rtol=1e-9, atol=1e-12)
    for result, rows in ((both, slice(0, 2)), (single, slice(1, 2))):
        assert torch.allclose(result["prediction_before"], trained[rows], rtol=1e-12, atol=1e-13)


def test_not_an_sfno_is_refused():
    with pytest.raises(TypeError, match="not an SFNO"):
        check_sfno(nn.Conv2d(1, 1, 3))
    with pytest.raises(TypeError, match="Sequential, not an SFNO"):
        SpectralRefiner(nn.Sequential(), Physics(NU, DT), RefineConfig())


def test_grid_too_coarse_for_requested_modes():
    model = _sfno()
    with pytest.raises(ValueError, match=r"modes_x=9 is too many for a 16x16 grid.*at most 8 \(= 16//2\)"):
        widen_for_refinement(model, N, T_OUT, (9, None, None))
    with pytest.raises(ValueError, match=r"modes_x=8 is too many for a 16x16 grid.*at most 5"):
        widen_for_refinement(model, N, T_OUT, (8, None, None), band="dealiased")
    with pytest.raises(ValueError, match="modes_t=40"):
        widen_for_refinement(model, N, T_OUT, (None, None, 40))


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(optimizer="lbfgs"), "lbfgs"),
        (dict(optimizer="cg", linearization="none"), "convex"),
        (dict(per="sample"), "sample"),
        (dict(linearization="gauss"), "gauss"),
        (dict(band="half"), "unknown band 'half'"),
        (dict(h_minus1_alpha=0.0), "h_minus1_alpha must be a positive number"),
    ],
)
def test_bad_config_messages(bad, match):
    with pytest.raises(ValueError, match=match):
        RefineConfig(**bad).validate()


def test_preconditioner_mode_layout_matches_the_layer():
    """output_mode_indices names the Fourier mode each bias entry writes: switch on one entry at a
    time and find it in the layer's output spectrum."""
    from neuralops.layers.spectral_conv import SpectralConv
    from train.refine.preconditioner import output_mode_indices

    layer = SpectralConv(1, 1, (3, 2, 3), dim=3, bias=True).double()
    mx, my, mt = output_mode_indices(layer)
    shape = (8, 8, 10)
    with torch.no_grad():
        layer.weight.zero_()
        for idx in [(0, 1, 1, 2), (1, 0, 1, 1), (2, 2, 0, 0), (3, 1, 0, 2)]:
            layer.bias.zero_()
            layer.bias[(idx[0], 0) + idx[1:] + (0,)] = 1.0
            out_hat = torch.fft.rfftn(
                layer(torch.zeros(1, 1, *shape, dtype=torch.float64)), dim=(-3, -2, -1), norm="forward"
            )[0, 0]
            # (a k_t = 0 mode shares its amplitude with its mirror (-k_x, -k_y, 0): real output)
            peaks = {tuple(int(v) for v in p) for p in torch.nonzero(out_hat.abs() > 0.25)}
            expected = (int(mx[idx]) % 8, int(my[idx]) % 8, int(mt[idx]))
            assert expected in peaks and len(peaks) <= 2, (idx, peaks, expected)


def test_preconditioned_cg_beats_plain_cg():
    """Same number of CG iterations on the same convex subproblem: the Jacobi-preconditioned run
    ends lower (the diagonal spans decades, train.refine.preconditioner)."""
    finals = {}
    for pre in ("jacobi", "none"):
        model = _sfno()
        refiner = _refiner(model, steps=10, relinearize_every=10, preconditioner=pre)
        x = _inputs(batch=1)
        finals[pre] = refiner.refine(x, x, T_OUT)["history"][0][-1]
    assert finals["jacobi"] < finals["none"], finals
