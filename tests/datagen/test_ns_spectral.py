"""Spectral operators of the Navier-Stokes generator against exact trigonometric identities."""

import math

import pytest
import torch

from datagen.navier_stokes import spectral as S


def _trig_field(grid, seed=0, modes=4, batch=()):
    """Random trigonometric polynomial with integer wavenumbers |m| <= modes, zero mean."""
    gen = torch.Generator().manual_seed(seed)
    X, Y = grid.coordinates()
    k = 2 * math.pi / grid.box
    w = torch.zeros(batch + (grid.n, grid.n), dtype=grid.dtype)
    for a in range(-modes, modes + 1):
        for b in range(0, modes + 1):
            if a == 0 and b == 0:
                continue
            c, s = torch.randn((2,) + batch + (1, 1), generator=gen, dtype=torch.float64).to(grid.dtype)
            phase = k * (a * X + b * Y)
            w = w + c * torch.cos(phase) + s * torch.sin(phase)
    return w


@pytest.mark.parametrize("box", [1.0, 2 * math.pi])
def test_velocity_is_divergence_free_with_curl_w_and_poisson(box):
    g = S.SpectralGrid(32, box)
    w = _trig_field(g, modes=5)
    vel = S.velocity(w, g)
    u_hat, v_hat = S.to_spectral(vel[0]), S.to_spectral(vel[1])
    div = S.to_physical(1j * g.kx * u_hat + 1j * g.ky * v_hat, g)
    curl = S.to_physical(1j * g.kx * v_hat - 1j * g.ky * u_hat, g)
    psi = S.stream_function(w, g)
    assert div.abs().max() < 1e-12 * w.abs().max()
    assert (curl - w).abs().max() < 1e-12 * w.abs().max()
    assert (-S.laplacian(psi, g) - w).abs().max() < 1e-12 * w.abs().max()
    assert abs(float(psi.mean())) < 1e-15


@pytest.mark.parametrize("box", [1.0, 2 * math.pi])
def test_advection_matches_closed_form(box):
    # w = A sin(k x) + B cos(2k y): u.grad w = 1.5 A B cos(k x) sin(2k y) (worked out by hand)
    g = S.SpectralGrid(32, box)
    X, Y = g.coordinates()
    k = 2 * math.pi / box
    A, B = 1.3, -0.7
    w = A * torch.sin(k * X) + B * torch.cos(2 * k * Y)
    exact = 1.5 * A * B * torch.cos(k * X) * torch.sin(2 * k * Y)
    assert (S.advection(w, g) - exact).abs().max() < 1e-12


def test_advection_equals_product_of_independent_derivatives_inside_the_band():
    # inputs with |m| <= 5: the product has |m| <= 10 <= 2/3 * 16, so the 2/3 rule changes nothing
    g = S.SpectralGrid(32)
    w = _trig_field(g, seed=3, modes=5)
    # independent derivatives: 1-D complex FFTs along each axis (exact for band-limited fields)
    w_hat = S.to_spectral(w)
    psi_hat = w_hat / torch.where(g.k2 > 0, g.k2, torch.ones_like(g.k2)) * (g.k2 > 0)
    ik = 2j * math.pi * torch.fft.fftfreq(32, 1 / 32, dtype=torch.float64)
    dx = lambda a: torch.fft.ifft(torch.fft.fft(a, dim=0) * ik[:, None], dim=0).real
    dy = lambda a: torch.fft.ifft(torch.fft.fft(a, dim=1) * ik[None, :], dim=1).real
    psi = S.to_physical(psi_hat, g)
    expected = dy(psi) * dx(w) - dx(psi) * dy(w)
    assert (S.advection(w, g) - expected).abs().max() < 1e-11 * expected.abs().max()


def test_dealias_mask_is_the_fno_two_thirds_rule():
    g = S.SpectralGrid(64)
    kept = g.dealias
    # |m| <= (2/3) * 32 = 21.33: wavenumbers 0..21 kept, 22.. dropped, on both axes
    assert bool(kept[21, 0]) and not bool(kept[22, 0]) and bool(kept[64 - 21, 0]) and not bool(kept[64 - 22, 0])
    assert bool(kept[0, 21]) and not bool(kept[0, 22])
    assert int(kept.sum()) == (2 * 21 + 1) * 22
    assert float(g.my[0, -1]) == -32.0 and float(g.mx[32, 0]) == -32.0  # FNO Nyquist layout


def test_aliased_modes_are_removed_from_the_nonlinear_term():
    # a product of two high modes aliases into low wavenumbers on the grid; the mask must remove them
    g = S.SpectralGrid(32)
    X, Y = g.coordinates()
    w = torch.sin(2 * math.pi * 14 * X) + torch.cos(2 * math.pi * 13 * Y)
    adv_hat = S.advection_hat(S.to_spectral(w), g)
    assert adv_hat[~g.dealias].abs().max() == 0
    raw = S.advection_hat(S.to_spectral(w), g, dealias=False)
    assert raw.abs().max() > 1.0  # the unmasked product is not zero: the mask is doing the work


def test_taylor_green_mode_has_no_advection():
    g = S.SpectralGrid(32, 2 * math.pi)
    X, Y = g.coordinates()
    w = 2 * torch.sin(X) * torch.sin(Y) + 0.5 * torch.cos(X + Y)  # |k|^2 = 2 on both: w = 2 psi
    assert S.advection(w, g).abs().max() < 1e-13


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_leading_dims_dtype_and_buffers(dtype):
    g = S.SpectralGrid(16, dtype=dtype)
    w = _trig_field(S.SpectralGrid(16), seed=1, modes=3, batch=(2, 3)).to(dtype)
    w_hat = S.to_spectral(w)
    adv = S.advection_hat(w_hat, g)
    assert adv.shape == (2, 3, 16, 9) and adv.dtype == g.complex_dtype
    per = torch.stack([torch.stack([S.advection_hat(w_hat[i, j], g) for j in range(3)]) for i in range(2)])
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    assert (adv - per).abs().max() <= tol * per.abs().max()
    buf = S.AdvectionBuffers(g, (2, 3))
    assert (S.advection_hat(w_hat, g, buf) - adv).abs().max() <= tol * adv.abs().max()
    assert S.velocity(w, g).shape == (2, 3, 2, 16, 16)


def test_energy_enstrophy_parseval_and_spectrum():
    g = S.SpectralGrid(32, 2 * math.pi)
    w = _trig_field(g, seed=2, modes=6)
    w_hat = S.to_spectral(w)
    vel = S.velocity(w, g)
    energy = 0.5 * (vel**2).sum(0).mean()
    assert torch.allclose(S.kinetic_energy(w_hat, g), energy, rtol=1e-12)
    assert torch.allclose(S.enstrophy(w_hat, g), 0.5 * (w**2).mean(), rtol=1e-12)
    assert torch.allclose(S.energy_spectrum(w_hat, g).sum(), energy, rtol=1e-12)  # all modes inside |m| <= 16


def test_forcings():
    g = S.SpectralGrid(16)
    X, Y = g.coordinates()
    f = S.fno_forcing(g)
    assert torch.allclose(f, 0.1 * (torch.sin(2 * math.pi * (X + Y)) + torch.cos(2 * math.pi * (X + Y))))
    assert float(f[0, 0]) == pytest.approx(0.1)
    gb = S.SpectralGrid(32, 2 * math.pi)
    _, Yb = gb.coordinates()
    # Kolmogorov: curl of (sin(4 y), 0) = -d/dy sin(4y) = -4 cos(4 y)
    assert torch.allclose(S.kolmogorov_forcing(gb), -4 * torch.cos(4 * Yb), atol=1e-13)
    Fx = torch.sin(4 * Yb)
    curl = S.to_physical(-1j * gb.ky * S.to_spectral(Fx), gb)
    assert torch.allclose(S.kolmogorov_forcing(gb), curl, atol=1e-12)
    assert S.forcing_field({"type": "none"}, g) is None
    with pytest.raises(ValueError, match="unknown type 'swirl'"):
        S.forcing_field({"type": "swirl"}, g)


def test_physics_from_spec():
    spec = {
        "viscosity": 1e-3,
        "box": 1.0,
        "forcing": {"type": "fno", "amplitude": 0.1, "wavenumber": 1},
        "snapshot_interval": 0.2,
        "drag": 0.0,
    }
    ph = S.physics_from_spec(spec, None)
    assert ph.viscosity == 1e-3 and ph.dt == 0.2 and ph.box == 1.0
    assert torch.allclose(ph.forcing_field(16), S.fno_forcing(S.SpectralGrid(16)))

    class G:
        coords = {"t": [30.2, 30.4, 30.6]}

    ph = S.physics_from_spec({"viscosity": 1e-4, "forcing": {"type": "none"}}, G())
    assert ph.dt == pytest.approx(0.2) and not ph.has_forcing and ph.forcing_field(8) is None


def test_bad_grid_input():
    with pytest.raises(ValueError, match="even integer"):
        S.SpectralGrid(15)
    with pytest.raises(ValueError, match="box length"):
        S.SpectralGrid(16, box=-1.0)
    with pytest.raises(ValueError, match="float32 or torch.float64"):
        S.SpectralGrid(16, dtype=torch.float16)
    with pytest.raises(ValueError, match="trailing shape"):
        S.advection_hat(torch.zeros(4, 16, 16, dtype=torch.complex128), S.SpectralGrid(16))


@pytest.mark.parametrize("chunk", [1, 2, 5, None])
def test_chunked_buffers_match_the_plain_advection(chunk):
    # the buffered path transforms the batch in chunks of samples; every chunk size gives the same term
    g = S.SpectralGrid(16)
    w_hat = S.to_spectral(_trig_field(g, seed=4, modes=7, batch=(5,)))
    ref = S.advection_hat(w_hat, g)
    buf = S.AdvectionBuffers(g, (5,), chunk=chunk)
    got = S.advection_hat(w_hat, g, buf)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < 1e-12 * ref.abs().max()
    if chunk is None:
        assert buf.chunk >= 1  # CPU: cache-sized chunks (all 5 samples at 16^2)


def test_fourier_resample_is_exact_for_band_limited_fields_both_ways():
    from datagen.navier_stokes.resample import fourier_resample

    x = torch.arange(16, dtype=torch.float64) / 16
    X, Y = torch.meshgrid(x, x, indexing="ij")
    w = torch.sin(2 * torch.pi * (3 * X - 2 * Y)) + 0.5 * torch.cos(2 * torch.pi * 5 * Y)
    fine = fourier_resample(w, 40)
    x40 = torch.arange(40, dtype=torch.float64) / 40
    X4, Y4 = torch.meshgrid(x40, x40, indexing="ij")
    exact = torch.sin(2 * torch.pi * (3 * X4 - 2 * Y4)) + 0.5 * torch.cos(2 * torch.pi * 5 * Y4)
    torch.testing.assert_close(fine, exact, rtol=0, atol=1e-12)
    torch.testing.assert_close(fourier_resample(fine, 16), w, rtol=0, atol=1e-12)
