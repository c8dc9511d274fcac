"""Gaussian random fields: exact eigenfunction synthesis, covariance spectrum, per-sample seeding."""

import math

import numpy as np
import pytest
import scipy.fft

from datagen.grf import GaussianRandomField, fno_navier_stokes_initial_vorticity
from datagen.seeding import sample_rng


def test_fno_default_sigma_and_navier_stokes_parameters():
    g = fno_navier_stokes_initial_vorticity(64)
    assert g.sigma == pytest.approx(7.0**1.5)
    assert GaussianRandomField((64, 64), alpha=2.5, tau=7.0).sigma == pytest.approx(7.0**1.5)
    # FNO square-root eigenvalue at k = (1, 0): sqrt(2) sigma (4 pi^2 + tau^2)^(-alpha/2)
    expected = math.sqrt(2) * 7**1.5 * (4 * math.pi**2 + 49) ** (-1.25)
    assert g.sqrt_eigenvalues[1, 0] == pytest.approx(expected, rel=1e-14)
    assert g.sqrt_eigenvalues[0, 0] == 0.0


@pytest.mark.parametrize("boundary", ["periodic", "dirichlet", "neumann"])
def test_single_mode_noise_gives_the_scaled_eigenfunction(boundary):
    """A unit coefficient on one mode must synthesise lambda_k phi_k(x) exactly (checks every transform scaling)."""
    n = (12, 9)
    g = GaussianRandomField(n, alpha=2.0, tau=3.0, boundary=boundary)
    x, y = np.meshgrid(*g.coordinates(), indexing="ij")
    noise = np.zeros((1,) + g.coefficient_shape())
    if boundary == "periodic":
        kx, ky = 2, -3
        noise[0, 0, kx % n[0], ky % n[1]] = 1.0  # real part only
        lam = g.sqrt_eigenvalues[kx % n[0], ky % n[1]]
        phi = np.cos(2 * np.pi * (kx * x + ky * y))
    elif boundary == "dirichlet":
        kx, ky = 3, 1  # coefficient index = mode - 1
        noise[0, kx - 1, ky - 1] = 1.0
        lam = g.sqrt_eigenvalues[kx - 1, ky - 1]
        phi = 2.0 * np.sin(np.pi * kx * x) * np.sin(np.pi * ky * y)
    else:
        for kx, ky in [(0, 2), (4, 3), (n[0] - 1, 1), (n[0] - 1, n[1] - 1)]:
            noise[:] = 0.0
            noise[0, kx, ky] = 1.0
            lam = g.sqrt_eigenvalues[kx, ky]
            sx = 1.0 if kx == 0 else math.sqrt(2)
            sy = 1.0 if ky == 0 else math.sqrt(2)
            phi = sx * np.cos(np.pi * kx * x) * sy * np.cos(np.pi * ky * y)
            np.testing.assert_allclose(g.from_noise(noise)[0], lam * phi, atol=1e-14)
        return
    np.testing.assert_allclose(g.from_noise(noise)[0], lam * phi, atol=1e-14)


def test_periodic_power_spectrum_matches_covariance_operator():
    """E|fft(u)_k|^2 / n^4 = 2 sigma^2 (4 pi^2 |k|^2 + tau^2)^(-alpha) for every mode (FNO convention)."""
    n, batch = 24, 600
    g = GaussianRandomField((n, n), alpha=2.5, tau=7.0, boundary="periodic")
    u = g.sample(seed=3, indices=batch)
    power = (np.abs(np.fft.fft2(u)) ** 2).mean(axis=0) / n**4
    expected = g.expected_power()
    mask = expected > 0
    ratio = power[mask] / expected[mask]
    # each mode: mean of `batch` Exp(1) variables -> std 1/sqrt(batch) ~ 0.04; 576 modes -> max < ~5 std
    assert abs(ratio.mean() - 1.0) < 0.01
    assert np.abs(ratio - 1.0).max() < 0.25
    assert power[0, 0] < 1e-20  # zero mean mode
    # the closed form of the operator, independently of the class
    kx = np.fft.fftfreq(n, 1.0 / n)[:, None]
    ky = np.fft.fftfreq(n, 1.0 / n)[None, :]
    closed = 2 * g.sigma**2 * (4 * np.pi**2 * (kx**2 + ky**2) + 49.0) ** (-2.5)
    np.testing.assert_allclose(expected[mask], closed[mask], rtol=1e-13)
    # point variance = sum_k lambda_k^2
    assert u.var(axis=0).mean() == pytest.approx(expected.sum(), rel=0.05)


def test_dirichlet_field_vanishes_on_boundary_and_has_the_operator_spectrum():
    n, batch = 20, 800
    g = GaussianRandomField((n, n), alpha=2.0, tau=3.0, boundary="dirichlet")
    u = g.sample(seed=11, indices=batch)
    for edge in (u[:, 0, :], u[:, -1, :], u[:, :, 0], u[:, :, -1]):
        assert np.all(edge == 0.0)
    # coefficients in the orthonormal sine basis: DST-I is its own inverse up to 2(N+1) per axis
    interior = u[:, 1:-1, 1:-1]
    m = n - 2
    coeff = scipy.fft.dstn(interior, type=1, axes=(1, 2)) * 2.0 ** (2 / 2) / (2 * (m + 1)) ** 2
    ratio = (coeff**2).mean(axis=0) / g.expected_power()
    assert abs(ratio.mean() - 1.0) < 0.01
    assert np.abs(ratio - 1.0).max() < 0.35  # chi^2_1 means: std sqrt(2/800) = 0.05
    # eigenvalues are those of -Lap with Dirichlet conditions: pi^2 (kx^2 + ky^2)
    assert g.laplacian_eigenvalues()[0, 0] == pytest.approx(2 * np.pi**2)


def test_samples_depend_only_on_seed_and_index():
    g = GaussianRandomField((16, 16), alpha=2.5, tau=7.0, boundary="periodic")
    all_ = g.sample(seed=5, indices=range(10))
    one = g.sample(seed=5, indices=[7])
    np.testing.assert_array_equal(all_[7], one[0])
    reordered = g.sample(seed=5, indices=[9, 2])
    np.testing.assert_array_equal(reordered[1], all_[2])
    assert not np.array_equal(g.sample(seed=6, indices=[7])[0], one[0])
    # the noise is exactly the documented generator's draws
    np.testing.assert_array_equal(g.noise(5, [7])[0], sample_rng(5, 7, 0).standard_normal(g.coefficient_shape()))
    # streams are independent draws of the same sample
    assert not np.array_equal(g.sample(seed=5, indices=[7], stream=1)[0], one[0])


def test_three_dimensional_fields():
    for boundary in ("periodic", "dirichlet", "neumann"):
        g = GaussianRandomField((6, 7, 8), alpha=3.0, tau=4.0, boundary=boundary)
        u = g.sample(seed=0, indices=[0, 1])
        assert u.shape == (2, 6, 7, 8) and np.isfinite(u).all()
    assert GaussianRandomField((8, 8, 8), alpha=2.5, tau=7.0).sigma == pytest.approx(7.0**1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(shape=(8, 8), boundary="robin"), "unknown boundary"),
        (dict(shape=(8, -1)), "axis needs"),
        (dict(shape=(2, 8), boundary="dirichlet"), "axis needs"),
        (dict(shape=(8, 8), alpha=-1.0), "alpha"),
        (dict(shape=(8, 8), tau=float("nan")), "tau"),
        (dict(shape=(8, 8), sigma=-2.0), "sigma"),
        (dict(shape=(2, 2, 2, 2)), "1 to 3 axes"),
    ],
)
def test_bad_parameters_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianRandomField(**kwargs)


def test_bad_sample_requests_are_rejected():
    g = GaussianRandomField((8, 8))
    with pytest.raises(ValueError, match="seed"):
        g.sample(seed=-1, indices=[0])
    with pytest.raises(ValueError, match=">= 0"):
        g.sample(seed=0, indices=-3)
    with pytest.raises(ValueError, match="noise must have shape"):
        g.from_noise(np.zeros((1, 8, 8)))
