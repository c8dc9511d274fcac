"""The Navier-Stokes space-time residual (train.refine.residual) against exact solutions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from train.refine.residual import navier_stokes_residual, residual_h_minus1_sq, residual_spectrum
from train.refine.time_derivative import fd_differentiation_matrix, time_derivative

TWO_PI = 2 * math.pi


def _xy(n, box=1.0):
    x = torch.arange(n, dtype=torch.float64) * box / n
    return torch.meshgrid(x, x, indexing="ij")


def _taylor_green(n, times, amplitude, nu, k=1, box=1.0):
    """w = a(t) sin(kx x) sin(ky y): u . grad w = 0 (w is a multiple of psi), -Lap w = 2 k^2 w,
    so the forcing that makes it exact is f = (a' + 2 k^2 nu a) sin sin."""
    X, Y = _xy(n, box)
    kk = TWO_PI * k / box
    mode = torch.sin(kk * X) * torch.sin(kk * Y)
    a, a_t = amplitude(times)
    w = a[:, None, None] * mode
    f = (a_t + 2 * kk**2 * nu * a)[:, None, None] * mode
    return w[None], f[None]


def _two_mode_flow(n, times, c1, c2, nu):
    """w = c1(t) sin(2 pi x) + c2(t) cos(4 pi y) on the unit torus, with non-zero advection:
    psi = c1 sin(2 pi x) / (4 pi^2) + c2 cos(4 pi y) / (16 pi^2), u = (psi_y, -psi_x) and
    u . grad w = 3/2 c1 c2 cos(2 pi x) sin(4 pi y) (worked out by hand). Returns w and the forcing
    that makes w an exact solution."""
    X, Y = _xy(n)
    a1, a1_t = c1(times)
    a2, a2_t = c2(times)
    a1, a1_t, a2, a2_t = (v[:, None, None] for v in (a1, a1_t, a2, a2_t))
    s1, s2 = torch.sin(TWO_PI * X), torch.cos(2 * TWO_PI * Y)
    w = a1 * s1 + a2 * s2
    advection = 1.5 * a1 * a2 * torch.cos(TWO_PI * X) * torch.sin(2 * TWO_PI * Y)
    laplacian = -(TWO_PI**2) * a1 * s1 - (2 * TWO_PI) ** 2 * a2 * s2
    f = a1_t * s1 + a2_t * s2 + advection - nu * laplacian
    return w[None], f[None]


def _poly(coeffs):
    p = np.polynomial.Polynomial(coeffs)
    dp = p.deriv()
    return lambda t: (torch.as_tensor(p(t.numpy())), torch.as_tensor(dp(t.numpy())))


@pytest.mark.parametrize("order", [2, 4, 6])
def test_fd_derivative_exact_for_polynomials(order):
    t = torch.linspace(0.0, 2.0, 13, dtype=torch.float64)
    dt = float(t[1] - t[0])
    p = np.polynomial.Polynomial(np.arange(1, order + 2) / 7.0)  # degree == order
    w = torch.as_tensor(p(t.numpy()))[None, :, None, None]
    exact = torch.as_tensor(p.deriv()(t.numpy()))
    err = (time_derivative(w, dt, "fd", order)[0, :, 0, 0] - exact).abs().max()
    assert err < 1e-10 * exact.abs().max()


@pytest.mark.parametrize("order", [2, 4, 6])
def test_fd_derivative_converges_at_its_order(order):
    errs = []
    for n in (17, 33, 65):
        t = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
        w = torch.exp(torch.sin(3 * t))[None, :, None, None]
        exact = 3 * torch.cos(3 * t) * torch.exp(torch.sin(3 * t))
        d = time_derivative(w, float(t[1] - t[0]), "fd", order)[0, :, 0, 0]
        errs.append(float((d - exact).abs().max()))
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert rates[-1] > order - 0.3, (errs, rates)


def test_fd_matrix_rows_annihilate_constants():
    D = fd_differentiation_matrix(9, 6, 0.1)
    assert torch.allclose(D.sum(dim=1), torch.zeros(9, dtype=torch.float64), atol=1e-10)


def test_taylor_green_with_matching_forcing_is_exact():
    n, nu = 32, 1e-3
    times = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    w, f = _taylor_green(n, times, _poly([1.0, -0.7, 0.4, 0.2]), nu, k=2)
    r = navier_stokes_residual(w, float(times[1] - times[0]), nu, forcing=f, fd_order=4)
    assert r.abs().max() < 1e-11 * w.abs().max()


def test_taylor_green_with_drag_is_exact():
    """With the generator's linear drag alpha the matching forcing gains alpha a(t) sin sin."""
    n, nu, drag = 16, 1e-3, 0.1
    times = torch.linspace(0.0, 1.0, 9, dtype=torch.float64)
    w, f = _taylor_green(n, times, _poly([1.0, 0.3, -0.2]), nu, k=1)
    f = f + drag * w
    dt = float(times[1] - times[0])
    r = navier_stokes_residual(w, dt, nu, forcing=f, fd_order=4, drag=drag)
    assert r.abs().max() < 1e-11 * w.abs().max()
    assert navier_stokes_residual(w, dt, nu, forcing=f, fd_order=4).abs().max() > 0.05


def test_decaying_taylor_green_residual_falls_at_fd_order():
    """Unforced decaying mode w = exp(-2 k^2 nu t) sin sin (exact NS solution, f = 0): the only
    error is the time derivative's, O(dt^p)."""
    nu, k, order = 0.05, 1, 4
    rate = 2 * (TWO_PI * k) ** 2 * nu
    amp = lambda t: (torch.exp(-rate * t), -rate * torch.exp(-rate * t))
    norms = []
    for n_t in (11, 21, 41):
        times = torch.linspace(0.0, 1.0, n_t, dtype=torch.float64)
        w, _ = _taylor_green(16, times, amp, nu, k)
        r = navier_stokes_residual(w, float(times[1] - times[0]), nu, fd_order=order)
        norms.append(float(residual_h_minus1_sq(r).max().sqrt()))
    rates = [math.log2(norms[i] / norms[i + 1]) for i in range(2)]
    assert rates[-1] > order - 0.3, (norms, rates)


def test_advecting_manufactured_solution_is_exact():
    n, nu = 32, 1e-3
    times = torch.linspace(0.0, 2.0, 9, dtype=torch.float64)
    w, f = _two_mode_flow(n, times, _poly([1.0, 0.5, -0.25]), _poly([-0.8, 0.3, 0.1]), nu)
    dt = float(times[1] - times[0])
    r = navier_stokes_residual(w, dt, nu, forcing=f, fd_order=4)
    assert r.abs().max() < 1e-11 * f.abs().max()
    # the advection is really exercised: leave it out of the forcing and R is exactly that term
    X, Y = _xy(n)
    a1, a2 = (np.polynomial.Polynomial(c)(times.numpy()) for c in ([1.0, 0.5, -0.25], [-0.8, 0.3, 0.1]))
    advection = 1.5 * torch.as_tensor(a1 * a2)[:, None, None] * torch.cos(TWO_PI * X) * torch.sin(2 * TWO_PI * Y)
    r_missing = navier_stokes_residual(w, dt, nu, forcing=f - advection, fd_order=4)
    assert torch.allclose(r_missing[0], advection, atol=1e-11)
    assert advection.abs().max() > 0.1


def test_spectral_time_derivative_exact_on_periodic_window():
    n, nu, n_t = 16, 1e-2, 16
    period = 2.0
    times = torch.arange(n_t, dtype=torch.float64) * period / n_t
    c1 = lambda t: (1 + 0.5 * torch.cos(TWO_PI * t / period), -0.5 * TWO_PI / period * torch.sin(TWO_PI * t / period))
    c2 = lambda t: (
        0.3 * torch.sin(2 * TWO_PI * t / period),
        0.3 * 2 * TWO_PI / period * torch.cos(2 * TWO_PI * t / period),
    )
    w, f = _two_mode_flow(n, times, c1, c2, nu)
    r = navier_stokes_residual(w, period / n_t, nu, forcing=f, time_method="spectral")
    assert r.abs().max() < 1e-11 * f.abs().max()


def test_float64_on_request():
    times = torch.linspace(0.0, 1.0, 9, dtype=torch.float64)
    w, f = _taylor_green(16, times, _poly([1.0, 0.2]), 1e-3)
    r32 = navier_stokes_residual(w.float(), 0.125, 1e-3, forcing=f.float(), fd_order=4)
    r64 = navier_stokes_residual(w.float(), 0.125, 1e-3, forcing=f.float(), fd_order=4, dtype=torch.float64)
    assert r32.dtype == torch.float32 and r64.dtype == torch.float64
    # computed in double from the float32 input: the same as casting the input first
    r_cast = navier_stokes_residual(w.float().double(), 0.125, 1e-3, forcing=f.float().double(), fd_order=4)
    assert torch.equal(r64, r_cast)
    assert (r32.double() - r64).abs().max() > 0  # float32 arithmetic really was float32


def test_h_minus1_of_single_modes():
    n = 32
    X, Y = _xy(n, box=2.0)
    for kx, ky in [(1, 0), (3, 2), (0, 5)]:
        k2 = (TWO_PI / 2.0) ** 2 * (kx**2 + ky**2)
        u = torch.cos(TWO_PI / 2.0 * (kx * X + ky * Y))[None, None]
        # int_{[0,2)^2} cos^2 = 2, weight (1 + k^2)^-1
        got = residual_h_minus1_sq(u, box=2.0)
        assert torch.allclose(got, torch.tensor([[2.0 / (1 + k2)]], dtype=torch.float64), rtol=1e-12)


def _random_band_limited(n, n_t, seed, k_max=None):
    g = torch.Generator().manual_seed(seed)
    w_hat = torch.randn(1, n_t, n, n // 2 + 1, generator=g, dtype=torch.float64) * (1 + 0j)
    w_hat = w_hat + 1j * torch.randn(w_hat.shape, generator=g, dtype=torch.float64)
    k = torch.fft.fftfreq(n, 1 / n).abs()
    k_max = n // 4 if k_max is None else k_max
    w_hat = w_hat * ((k[:, None] <= k_max) & (k[: n // 2 + 1][None, :] <= k_max))
    return torch.fft.irfft2(w_hat, s=(n, n))


def test_linearisations_agree_at_reference_and_are_affine():
    n, n_t, nu, dt = 16, 8, 1e-2, 0.1
    w_ref = _random_band_limited(n, n_t, 0)
    d = _random_band_limited(n, n_t, 1)
    full = lambda v: residual_spectrum(v, dt, nu, fd_order=4)
    for lin in ("picard", "newton"):
        lin_res = lambda v: residual_spectrum(v, dt, nu, fd_order=4, linearization=lin, reference=w_ref)
        assert torch.allclose(lin_res(w_ref), full(w_ref), atol=1e-10)
        # affine: R(a w1 + (1 - a) w2) = a R(w1) + (1 - a) R(w2)
        a = 0.3
        lhs = lin_res(a * w_ref + (1 - a) * d)
        rhs = a * lin_res(w_ref) + (1 - a) * lin_res(d)
        assert torch.allclose(lhs, rhs, atol=1e-10)
    # Newton: R(w_ref + d) - R_N(w_ref + d) = u(d) . grad d exactly (the quadratic remainder)
    newton = residual_spectrum(w_ref + d, dt, nu, fd_order=4, linearization="newton", reference=w_ref)
    remainder = full(w_ref + d) - newton
    quad = residual_spectrum(d, dt, 0.0, fd_order=4) - residual_spectrum(
        d, dt, 0.0, fd_order=4, linearization="picard", reference=torch.zeros_like(d)
    )
    assert torch.allclose(remainder, quad, atol=1e-10)
    assert quad.abs().max() > 1e-3


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(w=torch.zeros(2, 4, 8)), "shape"),
        (dict(w=torch.zeros(1, 8, 8, 6)), "square"),
        (dict(viscosity=-1.0), "viscosity"),
        (dict(time_method="euler"), "euler"),
        (dict(linearization="full"), "full"),
        (dict(linearization="picard"), "reference"),
        (dict(fd_order=10), "at least 11 snapshots"),
        (dict(dt=0.0), "dt"),
        (dict(drag=-0.1), "drag"),
    ],
)
def test_bad_input_messages(bad, match):
    args = dict(w=torch.zeros(1, 10, 8, 8), dt=0.1, viscosity=1e-3)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        residual_spectrum(**args)


def _generator_trajectory(stepper, dt, h=0.02, n_snap=21, n=32, nu=1e-2):
    """A smooth forced flow from the Navier-Stokes generator's own solver, snapshots every h."""
    from datagen.navier_stokes.solver import NavierStokesSolver

    # O(1) vorticity in the modes |k| <= 3: the flow's time scales stay well above the snapshot
    # spacing, so the order-8 time derivative's error is far below the stepper's
    w0 = _random_band_limited(n, 1, 7, k_max=3)[0, :1]
    w0 = w0 / w0.std()
    solver = NavierStokesSolver(n, nu, forcing={"type": "fno"}, stepper=stepper, dt=dt)
    result = solver.run(w0, [i * h for i in range(n_snap)], t0=0.0)
    w = torch.stack([s for s in result.snapshots], dim=1)  # (1, T, n, n)
    return w, solver


@pytest.mark.parametrize("stepper, order", [("fno", 1), ("rk3cn", 2)])
def test_generator_trajectories_residual_falls_at_stepper_order(stepper, order):
    """The generator's trajectories satisfy the residual's equation up to the stepper's error:
    with the snapshot spacing fixed and the time derivative's error made negligible (order-8 finite
    differences), ||R|| falls like dt^order as the generator's step is halved."""
    from datagen.navier_stokes.spectral import SpectralGrid, fno_forcing

    h, nu = 0.02, 1e-2
    norms = []
    for dt in (h / 4, h / 8, h / 16):
        w, solver = _generator_trajectory(stepper, dt, h=h, nu=nu)
        assert solver.stepper_for(1).order == order
        f = fno_forcing(SpectralGrid(w.shape[-1]))
        r = navier_stokes_residual(w, h, nu, forcing=f, fd_order=8)
        norms.append(float(residual_h_minus1_sq(r).mean().sqrt()))
    scale = float(residual_h_minus1_sq(navier_stokes_residual(w, h, 0.0, fd_order=8)).mean().sqrt())
    rates = [math.log2(norms[i] / norms[i + 1]) for i in range(2)]
    assert all(abs(r - order) < 0.3 for r in rates), (norms, rates)
    assert norms[-1] < 1e-2 * scale  # small against the size of w_t + u.grad w


def test_only_the_advection_product_is_dealiased():
    """band="full" (the paper's residual) equals an independent statement of
    R = w_t + P_{2/3}(u . grad w) - nu Lap w - f on every mode (numpy FFTs, FD time derivative);
    band="dealiased" is that residual restricted to the 2/3 band."""
    n, n_t, nu, dt = 24, 9, 3e-3, 0.05
    w = _random_band_limited(n, n_t, 11, k_max=n // 2 - 1)
    X, Y = _xy(n)
    f = torch.sin(TWO_PI * 9 * X) * 0.3 + torch.cos(TWO_PI * (X + 2 * Y))  # mode 9 > n/3 = 8
    got = residual_spectrum(w, dt, nu, forcing=f, fd_order=4)
    # independent: numpy
    wn = w[0].numpy()
    m = np.fft.fftfreq(n, 1.0 / n)
    mx, my = np.meshgrid(m, m, indexing="ij")
    my = np.where(my == -n // 2, -n // 2, my)
    kx, ky = TWO_PI * mx, TWO_PI * my
    k2 = kx**2 + ky**2
    inv = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
    keep = (np.abs(mx) <= 2 * (n // 2) / 3) & (np.abs(my) <= 2 * (n // 2) / 3)
    D = fd_differentiation_matrix(n_t, 4, dt).numpy()
    wt = np.tensordot(D, wn, axes=([1], [0]))
    out = []
    for i in range(n_t):
        wh = np.fft.fft2(wn[i])
        u = np.fft.ifft2(1j * ky * inv * wh).real
        v = np.fft.ifft2(-1j * kx * inv * wh).real
        wx = np.fft.ifft2(1j * kx * wh).real
        wy = np.fft.ifft2(1j * ky * wh).real
        adv = np.fft.fft2(u * wx + v * wy) * keep
        r = np.fft.fft2(wt[i]) + adv + nu * k2 * wh - np.fft.fft2(f.numpy())
        out.append(r[:, : n // 2 + 1])
    expected = torch.as_tensor(np.stack(out))[None]
    assert torch.allclose(got, expected, atol=1e-9 * float(expected.abs().max()))
    # the forcing's mode 9 lies outside the 2/3 band: only the full residual sees it
    assert got[0, :, 9, 0].abs().max() > 1.0
    limited = residual_spectrum(w, dt, nu, forcing=f, fd_order=4, band="dealiased")
    mask = torch.as_tensor(keep[:, : n // 2 + 1])
    assert torch.equal(limited, got * mask)
    with pytest.raises(ValueError, match="unknown residual band 'half'"):
        residual_spectrum(w, dt, nu, band="half")


def test_h_minus1_alpha_option():
    """(alpha + 4 pi^2 |k|^2)^-1 weight: alpha = 1 is the toolkit's sobolev_norm, any alpha
    matches the single-mode value by hand."""
    from neuralops.losses import sobolev_norm

    n = 16
    X, Y = _xy(n)
    r = _random_band_limited(n, 3, 5, k_max=7)
    ref = sobolev_norm(r, s=-1.0, dim=2, box=1.0, pool=None, reduction="none", squared=True)
    assert torch.allclose(residual_h_minus1_sq(r), ref, rtol=1e-12)
    for alpha in (0.1, 10**-1.5):
        u = torch.cos(TWO_PI * 3 * X)[None, None]
        got = residual_h_minus1_sq(u, alpha=alpha)
        # int cos^2 = 1/2 over the unit torus
        assert torch.allclose(got, torch.tensor([[0.5 / (alpha + TWO_PI**2 * 9)]], dtype=torch.float64))
        mean = torch.ones(1, 1, n, n, dtype=torch.float64)
        assert float(residual_h_minus1_sq(mean, alpha=alpha)) == pytest.approx(1.0 / alpha)
    with pytest.raises(ValueError, match="alpha must be a positive number"):
        residual_h_minus1_sq(r, alpha=0.0)
