"""Initial vorticity fields, drawn per sample on the host in float64 (``datagen.seeding``).

Every sampler returns a NumPy array ``(B, n, n)`` for the sample indices asked for; sample ``i`` of a
run with seed ``s`` depends only on ``(s, i)`` (and the grid), never on the batch it is drawn in.

``fno-grf``   the FNO benchmark's Gaussian random field (:mod:`datagen.grf`, periodic): zero mean,
              covariance ``c^2 sigma^2 (-Lap + tau^2 I)^(-alpha)`` on the unit torus with
              ``alpha = 2.5``, ``tau = 7``, ``sigma = 7^1.5`` and ``c = sqrt 2``: independent complex
              normal coefficients ``xi_k = a_k + i b_k`` on every FFT mode scaled by
              ``sqrt 2 sigma (4 pi^2 |k|^2 + tau^2)^(-alpha/2)``, real part of the (sum-)inverse FFT,
              as the FNO generator draws it. So ``E|fft(w)_k|^2 / n^4 = 2 sigma^2 (4 pi^2|k|^2 +
              tau^2)^(-alpha)`` for ``k != 0``. The covariance is that of the unit torus whatever the box.
``mcwilliams`` decaying-turbulence field after McWilliams (1984), two laws (``law``):

              ``"power"`` (default; recipe ``mcwilliams1984``): stream function with random phases
              and power ``|psi_k|^2 ∝ |k|^(-1) (1 + (|k| / k_p)^4)^(-1)`` (``|k|`` the integer
              wavenumber), so the shell energy spectrum ``E(k) ∝ k^2 / (1 + (k / k_p)^4)`` peaks at
              the peak wavenumber ``k_p``; modes outside the 2/3-rule band are zero (the field is
              resolved and alias-free).

              ``"amplitude"`` (recipe ``mcwilliams``, torch-cfd's ``vorticity_field``): white noise
              filtered by the density as an *amplitude*, ``|psi_k| ∝ k^(-1) (1 + (k / k_p)^4)^(-1)``
              with the angular wavenumber ``k = 2 pi |m| / L`` (the integer one on ``(0, 2 pi)^2``),
              on every mode of the grid; so ``E(k) ∝ k / (1 + (k / k_p)^4)^2``.

              Both: ``w = -Lap psi``, zero mean, scaled so that the mean kinetic energy
              ``(1 / (2 |Omega|)) int |u|^2`` equals ``energy`` exactly (torch-cfd normalises
              ``2 mean |u|^2`` to 1, i.e. ``energy = 0.25``).
``file``      user-supplied fields: a ``.npy`` array ``(N, n, n)`` (memory-mapped) or an ``.npz`` /
              ``.h5`` file with the array under ``key``; sample ``i`` is row ``i``. A different
              resolution than the solver's is brought to it by Fourier interpolation/truncation.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np
import scipy.fft
import torch

from datagen.grf import GaussianRandomField
from datagen.seeding import sample_rng

from .spectral import SpectralGrid, kinetic_energy

__all__ = [
    "INITIAL_CONDITIONS",
    "MCWILLIAMS_LAWS",
    "fno_grf",
    "mcwilliams",
    "from_file",
    "initial_vorticity",
    "fourier_resize",
    "check_initial_spec",
]

INITIAL_CONDITIONS = ("fno-grf", "mcwilliams", "file")
MCWILLIAMS_LAWS = ("power", "amplitude")
_PARAMS = {
    "fno-grf": {"alpha", "tau", "sigma"},
    "mcwilliams": {"peak_wavenumber", "energy", "law"},
    "file": {"path", "key"},
}


def check_initial_spec(spec: Mapping) -> None:
    """Raise a clear ``ValueError`` for an unknown initial-condition type or parameter."""
    kind = spec.get("type")
    if kind not in INITIAL_CONDITIONS:
        raise ValueError(f"unknown initial condition {kind!r}; allowed: {', '.join(INITIAL_CONDITIONS)}")
    unknown = set(spec) - {"type"} - _PARAMS[kind]
    if unknown:
        raise ValueError(
            f"initial condition {kind!r}: unknown parameter(s) {sorted(unknown)}; allowed: {sorted(_PARAMS[kind])}"
        )
    if kind == "mcwilliams":
        kp, e = spec.get("peak_wavenumber", 4), spec.get("energy", 1.0)
        if not (kp > 0 and math.isfinite(kp)):
            raise ValueError(f"mcwilliams: peak_wavenumber must be > 0, got {kp!r}")
        if not (e > 0 and math.isfinite(e)):
            raise ValueError(f"mcwilliams: energy must be > 0, got {e!r}")
        law = spec.get("law", "power")
        if law not in MCWILLIAMS_LAWS:
            raise ValueError(f"mcwilliams: unknown law {law!r}; allowed: {', '.join(MCWILLIAMS_LAWS)}")
    if kind == "file" and not spec.get("path"):
        raise ValueError("initial condition 'file' needs a path")


def fno_grf(
    n: int, seed: int, indices: Sequence[int], alpha: float = 2.5, tau: float = 7.0, sigma: float | None = 7.0**1.5
) -> np.ndarray:
    """FNO Gaussian random field vorticity ``(B, n, n)`` (module doc for the amplitude convention)."""
    grf = GaussianRandomField((n, n), alpha=alpha, tau=tau, sigma=sigma, boundary="periodic")
    return grf.sample(seed, list(indices))


def mcwilliams(
    n: int,
    seed: int,
    indices: Sequence[int],
    box: float = 2 * math.pi,
    peak_wavenumber: float = 4.0,
    energy: float = 1.0,
    law: str = "power",
) -> np.ndarray:
    """McWilliams-type decaying-turbulence vorticity ``(B, n, n)`` on ``[0, box)^2`` (module doc)."""
    if law not in MCWILLIAMS_LAWS:
        raise ValueError(f"mcwilliams: unknown law {law!r}; allowed: {', '.join(MCWILLIAMS_LAWS)}")
    m = np.fft.fftfreq(n, d=1.0 / n)
    mx, my = np.meshgrid(m, m, indexing="ij")
    kmag = np.sqrt(mx**2 + my**2)
    with np.errstate(divide="ignore"):
        if law == "power":
            amp = np.sqrt(1.0 / (kmag * (1.0 + (kmag / peak_wavenumber) ** 4)))
        else:
            k = (2 * math.pi / box) * kmag
            amp = 1.0 / (k * (1.0 + (k / peak_wavenumber) ** 4))
    amp[0, 0] = 0.0
    if law == "power":
        limit = (2.0 / 3.0) * (n // 2)
        amp[(np.abs(mx) > limit) | (np.abs(my) > limit)] = 0.0
    k2 = (2 * math.pi / box) ** 2 * kmag**2
    out = np.empty((len(indices), n, n))
    for j, i in enumerate(indices):
        xi = sample_rng(seed, int(i)).standard_normal((2, n, n))
        psi_hat = amp * (xi[0] + 1j * xi[1])
        # w = -Lap psi; the real part of the inverse FFT keeps the spectrum's shape (Hermitian part)
        out[j] = scipy.fft.ifft2(k2 * psi_hat).real
    out -= out.mean(axis=(-2, -1), keepdims=True)
    grid = SpectralGrid(n, box, dtype=torch.float64)
    e = kinetic_energy(torch.fft.rfft2(torch.from_numpy(out)), grid).numpy()
    return out * np.sqrt(energy / e)[:, None, None]


def fourier_resize(w: np.ndarray, n: int) -> np.ndarray:
    """Periodic fields ``(B, m, m)`` on an ``n x n`` grid by Fourier zero-padding / truncation."""
    from .resample import fourier_resample

    return fourier_resample(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float64)), n).numpy()


def from_file(path: str, indices: Sequence[int], n: int, key: str | None = None) -> np.ndarray:
    """Rows ``indices`` of a user-supplied array of initial vorticities, on the ``n x n`` grid."""
    if not os.path.exists(path):
        raise ValueError(f"initial condition file {path!r} does not exist")
    if path.endswith(".npy"):
        arr = np.load(path, mmap_mode="r")
    elif path.endswith(".npz"):
        with np.load(path) as z:
            k = key or (z.files[0] if len(z.files) == 1 else None)
            if k is None or k not in z.files:
                raise ValueError(f"{path}: give the array's key (one of {z.files}), got {key!r}")
            arr = z[k]
    elif path.endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(path, "r") as f:
            if key is None or key not in f:
                raise ValueError(f"{path}: give the dataset key of the initial fields, got {key!r}")
            d = f[key]
            idx = np.asarray(indices)
            if idx.size and idx.max() >= d.shape[0]:
                raise ValueError(f"{path}[{key}] has {d.shape[0]} fields, sample {int(idx.max())} was asked for")
            arr = np.stack([d[int(i)] for i in idx]) if idx.size else np.empty((0,) + d.shape[1:])
            indices = range(len(idx))
    else:
        raise ValueError(f"initial condition file {path!r}: use .npy, .npz or .h5")
    if arr.ndim != 3 or arr.shape[-1] != arr.shape[-2]:
        raise ValueError(f"initial fields in {path!r} must have shape (N, m, m), got {arr.shape}")
    idx = np.asarray(list(indices), dtype=np.int64)
    if idx.size and idx.max() >= arr.shape[0]:
        raise ValueError(f"{path} holds {arr.shape[0]} initial fields, sample {int(idx.max())} was asked for")
    w = np.asarray(arr[idx], dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"initial fields in {path!r} contain non-finite values")
    if w.shape[-1] % 2:
        raise ValueError(f"initial fields in {path!r} need an even resolution, got {w.shape[-1]}")
    return fourier_resize(w, n)


def initial_vorticity(spec: Mapping, n: int, box: float, seed: int, indices: Sequence[int]) -> np.ndarray:
    """Initial vorticities ``(B, n, n)`` float64 of samples ``indices`` from an initial-condition spec."""
    check_initial_spec(spec)
    kind = spec["type"]
    params = {k: v for k, v in spec.items() if k != "type"}
    if kind == "fno-grf":
        return fno_grf(n, seed, indices, **params)
    if kind == "mcwilliams":
        return mcwilliams(n, seed, indices, box=box, **params)
    return from_file(params["path"], indices, n, key=params.get("key"))
