"""Named Navier-Stokes recipes reproduce the data they are named after (issue: recipes' data).

Each recipe's first stored frames, written by the real generator on a small grid, are compared with
an independent NumPy re-statement of the named source's scheme (the FNO data generator of Li et al.
2021 for `fno`; torch-cfd's generators for Spectral-Refiner, Cao et al. 2025): its time step, its
initial-field law and its resampling (point subsampling for `fno`; for the others
``F.interpolate(mode="bilinear", align_corners=False)`` from 4n to n = the mean of the fine points
4i+1, 4i+2 on each axis). Unknown recipe keys are refused with a suggestion.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest

from datagen.dataset import open_dataset
from datagen.navier_stokes.cli import add_arguments, spec_from_args
from datagen.navier_stokes.generator import generate
from datagen.navier_stokes.initial import fno_grf
from datagen.navier_stokes.recipes import recipe
from datagen.seeding import sample_rng

N_FINE, N_STORE = 32, 8


def _symbols(n, box):
    """Half-spectrum (rfft2) wavenumbers, as the FNO generator and torch-cfd lay them out
    (x: 0..n/2-1, -n/2..-1; y: 0..n/2); the layout matters for the x-Nyquist row's odd derivatives."""
    mx = np.fft.fftfreq(n, 1.0 / n)[:, None]
    my = np.arange(n // 2 + 1, dtype=float)[None, :]
    kx, ky = 2 * math.pi * mx / box, 2 * math.pi * my / box
    k2 = kx**2 + ky**2
    inv = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
    cut = (2.0 / 3.0) * (n // 2)
    keep = (np.abs(mx) <= cut) & (np.abs(my) <= cut)
    return kx, ky, k2, inv, keep


def _explicit(w_hat, f_hat, kx, ky, inv, keep):
    """-P_{2/3}(u . grad w) + f with u = psi_y, v = -psi_x, psi = w / |k|^2 (FFT products)."""
    n = w_hat.shape[-2]
    psi = w_hat * inv
    u = np.fft.irfft2(1j * ky * psi, s=(n, n))
    v = np.fft.irfft2(-1j * kx * psi, s=(n, n))
    wx = np.fft.irfft2(1j * kx * w_hat, s=(n, n))
    wy = np.fft.irfft2(1j * ky * w_hat, s=(n, n))
    return -np.fft.rfft2(u * wx + v * wy) * keep + f_hat


def _bilinear_by_4(w):
    """torch-cfd's F.interpolate(size=n/4, mode="bilinear") for a factor 4: mean of 4i+1, 4i+2."""
    return 0.25 * (w[..., 1::4, 1::4] + w[..., 2::4, 1::4] + w[..., 1::4, 2::4] + w[..., 2::4, 2::4])


def _frames(path):
    with open_dataset(path) as ds:
        return ds.read("vorticity", slice(0, 2)), np.asarray(ds.grid.coords["x"])


def test_spectral_refiner_recipe_is_torch_cfds_fno_scheme_with_bilinear_resampling(tmp_path):
    """FNO explicit/Crank-Nicolson step at dt = 1e-3 (torch-cfd's imex_crank_nicolson_step):
    w^{n+1} = [(1 - dt nu |k|^2 / 2) w^n + dt (-P(u.grad w) + f)] / (1 + dt nu |k|^2 / 2)."""
    spec = recipe(
        "spectral-refiner",
        {
            "resolution": N_FINE,
            "store_resolution": N_STORE,
            "t_start": 0.003,
            "snapshot_interval": 0.002,
            "n_snapshots": 2,
            "store_dtype": "float64",
        },
    )
    assert (spec["stepper"], spec["dt"], spec["resample"]) == ("fno", 1e-3, "bilinear")
    path = str(tmp_path / "sr.h5")
    generate(spec, path, 2, seed=3, batch_size=2, progress=False, log=None)
    stored, x = _frames(path)

    nu, dt, n = spec["viscosity"], spec["dt"], N_FINE
    kx, ky, k2, inv, keep = _symbols(n, 1.0)
    xs = np.arange(n) / n
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    f_hat = np.fft.rfft2(0.1 * (np.sin(2 * math.pi * (X + Y)) + np.cos(2 * math.pi * (X + Y))))
    expected = []
    for w0 in fno_grf(n, 3, [0, 1]):
        w_hat = np.fft.rfft2(w0)
        frames = []
        for step in range(1, 8):
            w_hat = ((1 - 0.5 * dt * nu * k2) * w_hat + dt * _explicit(w_hat, f_hat, kx, ky, inv, keep)) / (
                1 + 0.5 * dt * nu * k2
            )
            if step in (5, 7):  # t = 0.005, 0.007
                frames.append(_bilinear_by_4(np.fft.irfft2(w_hat, s=(n, n))))
        expected.append(frames)
    expected = np.asarray(expected)
    assert stored.shape == expected.shape == (2, 2, N_STORE, N_STORE)
    assert np.abs(stored - expected).max() <= 1e-12 * np.abs(expected).max()
    # the stored grid says where bilinear sampling put the points: x_i = (4i + 1.5) / 32
    assert np.allclose(x, (4 * np.arange(N_STORE) + 1.5) / N_FINE, atol=1e-15)


def test_fno_recipe_is_the_fno_scripts_scheme_with_point_subsampling(tmp_path):
    """The `fno` recipe (Li et al. 2021, the FNO data generator): the same explicit-advection /
    Crank-Nicolson step (its dt reduced here to keep the test short), the GRF initial field on the
    solver grid, and the stored grid by taking every (n_fine / n_store)-th point, x_i = i / n."""
    spec = recipe(
        "fno",
        {
            "viscosity": 1e-3,
            "resolution": N_FINE,
            "store_resolution": N_STORE,
            "dt": 1e-3,
            "snapshot_interval": 0.003,
            "t_end": 0.006,
            "store_dtype": "float64",
        },
    )
    assert (spec["stepper"], spec["resample"]) == ("fno", "subsample")
    path = str(tmp_path / "fno.h5")
    generate(spec, path, 2, seed=5, batch_size=2, progress=False, log=None)
    stored, x = _frames(path)

    nu, dt, n = spec["viscosity"], spec["dt"], N_FINE
    kx, ky, k2, inv, keep = _symbols(n, 1.0)
    xs = np.arange(n) / n
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    f_hat = np.fft.rfft2(0.1 * (np.sin(2 * math.pi * (X + Y)) + np.cos(2 * math.pi * (X + Y))))
    step_of = n // N_STORE
    expected = []
    for w0 in fno_grf(n, 5, [0, 1]):
        w_hat = np.fft.rfft2(w0)
        frames = []
        for step in range(1, 7):
            w_hat = ((1 - 0.5 * dt * nu * k2) * w_hat + dt * _explicit(w_hat, f_hat, kx, ky, inv, keep)) / (
                1 + 0.5 * dt * nu * k2
            )
            if step in (3, 6):  # t = 0.003, 0.006
                frames.append(np.fft.irfft2(w_hat, s=(n, n))[::step_of, ::step_of])
        expected.append(frames)
    expected = np.asarray(expected)
    assert stored.shape == expected.shape == (2, 2, N_STORE, N_STORE)
    assert np.abs(stored - expected).max() <= 1e-12 * np.abs(expected).max()
    assert np.allclose(x, np.arange(N_STORE) / N_STORE, atol=1e-15)


# Carpenter & Kennedy (1994) RK4(3)5[2N], as torch-cfd's RK4CrankNicolsonStepper lists them
_CK_NODES = (0.0, 0.1496590219993, 0.3704009573644, 0.6222557631345, 0.9582821306748, 1.0)
_CK_A = (0.0, -0.4178904745, -1.192151694643, -1.697784692471, -1.514183444257)
_CK_B = (0.1496590219993, 0.3792103129999, 0.8229550293869, 0.6994504559488, 0.1530572479681)


def test_mcwilliams_recipe_is_torch_cfds_amplitude_law_rk4cn_and_bilinear(tmp_path):
    """Initial field: the McWilliams density as an amplitude on white noise,
    |psi_k| ~ k^-1 (1 + (k/4)^4)^-1, w = -Lap psi, zero mean, kinetic energy 0.25; then RK4-CN
    stages h = F(u) + A_s h, u = [(1 + mu L) u + B_s dt h] / (1 - mu L), mu = dt (c_{s+1} - c_s) / 2,
    at a fixed dt = 1e-3; bilinear 4n -> n."""
    spec = recipe(
        "mcwilliams",
        {
            "resolution": N_FINE,
            "store_resolution": N_STORE,
            "t_start": 0.002,
            "snapshot_interval": 0.002,
            "n_snapshots": 2,
            "store_dtype": "float64",
        },
    )
    assert (spec["stepper"], spec["dt_mode"], spec["dt"], spec["resample"]) == ("rk4cn", "fixed", 1e-3, "bilinear")
    path = str(tmp_path / "mcw.h5")
    generate(spec, path, 2, seed=5, batch_size=2, progress=False, log=None)
    stored, _ = _frames(path)

    n, box, nu, dt = N_FINE, 2 * math.pi, spec["viscosity"], spec["dt"]
    kx, ky, k2, inv, keep = _symbols(n, box)
    # the initial field on the full FFT grid: angular wavenumber magnitude (integer on (0, 2 pi)^2)
    m = np.fft.fftfreq(n, 1.0 / n)
    k_full = (2 * math.pi / box) * np.sqrt(m[:, None] ** 2 + m[None, :] ** 2)
    with np.errstate(divide="ignore"):
        amplitude = np.where(k_full > 0, 1.0 / (k_full * (1.0 + (k_full / 4.0) ** 4)), 0.0)
    lin = -nu * k2
    expected = []
    for i in range(2):
        xi = sample_rng(5, i).standard_normal((2, n, n))
        w = np.fft.ifft2(k_full**2 * amplitude * (xi[0] + 1j * xi[1])).real
        w -= w.mean()
        # kinetic energy (1/2) mean |u|^2 = (1/2) mean |grad psi|^2, by Parseval on the full grid
        psi_full = np.fft.fft2(w) / np.where(k_full > 0, k_full**2, np.inf)
        energy = 0.5 * np.sum(k_full**2 * np.abs(psi_full) ** 2) / n**4
        w *= math.sqrt(0.25 / energy)
        w_hat = np.fft.rfft2(w)
        frames = []
        for step in range(1, 7):
            h = 0.0
            for s in range(5):
                h = _explicit(w_hat, 0.0, kx, ky, inv, keep) + _CK_A[s] * h
                mu = 0.5 * dt * (_CK_NODES[s + 1] - _CK_NODES[s])
                w_hat = ((1 + mu * lin) * w_hat + _CK_B[s] * dt * h) / (1 - mu * lin)
            if step in (4, 6):
                frames.append(_bilinear_by_4(np.fft.irfft2(w_hat, s=(n, n))))
        expected.append(frames)
    expected = np.asarray(expected)
    # 13-digit published coefficients against the exact rationals: agreement to ~1e-12
    assert np.abs(stored - expected).max() <= 1e-10 * np.abs(expected).max()


def test_earlier_variants_keep_their_own_names():
    assert recipe("spectral-refiner-rk4cn")["resample"] == "spectral"
    old = recipe("mcwilliams1984")
    assert old["initial"] == {"type": "mcwilliams", "peak_wavenumber": 4.0, "energy": 1.0, "law": "power"}
    assert old["dt_mode"] == "cfl"


def test_unknown_recipe_key_is_refused_from_the_command_line():
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--n", "1", "--out", "x.h5", "--recipe", "spectral-refiner", "--set", "viscosty=1e-4"])
    with pytest.raises(ValueError) as err:
        spec_from_args(args)
    msg = str(err.value)
    assert "unknown key 'viscosty'" in msg and "did you mean 'viscosity'" in msg
    assert "allowed:" in msg and "snapshot_interval" in msg and "\n" not in msg
    with pytest.raises(ValueError, match="did you mean 'mcwilliams'"):
        recipe("mcwiliams")
