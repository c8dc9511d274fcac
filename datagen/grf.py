"""Gaussian random fields with the FNO convention (alpha, tau, sigma), sampled spectrally.

A field is ``u = sum_k lambda_k xi_k phi_k(x)`` over the eigenfunctions ``phi_k`` of the Laplacian
on the unit box with the chosen boundary condition, with independent standard normal ``xi_k``. The
square-root eigenvalues follow the FNO convention

    lambda_k = c * sigma * (mu_k + tau^2)^(-alpha / 2),     sigma defaults to tau^((2 alpha - d) / 2),

where ``mu_k`` are the eigenvalues of ``-Lap`` and ``d`` the dimension, so the covariance operator is
``c^2 sigma^2 (-Lap + tau^2 I)^(-alpha)``. Larger ``alpha`` gives smoother fields, larger ``tau`` a
shorter correlation length.

Boundary variants (``shape`` is the per-sample grid, one entry per axis, d = 1, 2 or 3):

``periodic``  unit torus, grid ``x_j = j / n`` (``n`` points, no duplicate end point),
              ``mu_k = 4 pi^2 |k|^2``, ``k`` the FFT wavenumbers. Sampled exactly as the FNO
              reference generator (``GaussianRF``) does: independent complex normal coefficients
              ``xi_k = a_k + i b_k`` on every FFT mode, ``c = sqrt(2)``, the real part of the inverse
              FFT taken, and the mean mode ``k = 0`` set to zero. The result has zero mean and
              covariance ``E[u(x) u(y)] = sum_{k != 0} 2 sigma^2 (4 pi^2 |k|^2 + tau^2)^(-alpha)
              cos(2 pi k.(x - y))``; equivalently ``E|fft(u)_k|^2 / n_total^2 = lambda_k^2``.
              The FNO Navier-Stokes initial vorticity is ``periodic`` with alpha = 2.5, tau = 7,
              sigma = 7^1.5 (the default sigma for d = 2).
``dirichlet`` unit box with zero boundary values, grid ``x_j = j / (n - 1)`` including both end
              points (the boundary rows are exactly zero), eigenfunctions ``prod_i sqrt(2)
              sin(pi k_i x_i)`` (orthonormal in L2), ``k_i >= 1``, ``mu_k = pi^2 |k|^2``, real
              normal ``xi_k``, ``c = 1``: covariance exactly ``sigma^2 (-Lap_D + tau^2)^(-alpha)``.
              Evaluated with a type-I discrete sine transform.
``neumann``   unit box, grid as ``dirichlet``, eigenfunctions ``prod_i sqrt(2 - delta_{k_i 0})
              cos(pi k_i x_i)``, ``k_i >= 0`` up to ``n - 1``, ``mu_k = pi^2 |k|^2``, mean mode
              removed, real normal ``xi_k``, ``c = 1`` (the cosine-series convention of the FNO Darcy
              data). Evaluated with a type-I discrete cosine transform.

Sampling is vectorised over samples (one batched transform) and seeded per sample: sample ``i`` of a
run with ``seed`` draws its noise from ``datagen.seeding.sample_rng(seed, i, stream)``, so it does not
depend on how many samples are drawn, in which batches, or on how many processes.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import scipy.fft

from datagen.seeding import sample_rng

BOUNDARIES = ("periodic", "dirichlet", "neumann")


class GaussianRandomField:
    """Sampler of N(mean, c^2 sigma^2 (-Lap + tau^2)^(-alpha)) on a uniform grid (see module doc).

    Args:
        shape: grid points per axis, e.g. ``(64, 64)``; 1 to 3 axes, each >= 2 (>= 3 for dirichlet).
        alpha: smoothness exponent, > d / 2 for a field with finite point variance.
        tau: inverse correlation length, >= 0 (tau = 0 is allowed: the mean mode is removed or absent).
        sigma: amplitude; ``None`` gives the FNO default ``tau^((2 alpha - d) / 2)``.
        boundary: ``"periodic"``, ``"dirichlet"`` or ``"neumann"``.
        mean: constant added to every sample.
    """

    def __init__(
        self,
        shape: Sequence[int],
        alpha: float = 2.0,
        tau: float = 3.0,
        sigma: float | None = None,
        boundary: str = "periodic",
        mean: float = 0.0,
    ):
        shape = tuple(int(s) for s in (shape if isinstance(shape, Iterable) else (shape,)))
        if not 1 <= len(shape) <= 3:
            raise ValueError(f"GaussianRandomField: shape must have 1 to 3 axes, got {shape}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"GaussianRandomField: unknown boundary {boundary!r}; allowed: {', '.join(BOUNDARIES)}")
        min_n = 3 if boundary == "dirichlet" else 2
        if any(s < min_n for s in shape):
            raise ValueError(f"GaussianRandomField: every axis needs >= {min_n} points for {boundary}, got {shape}")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"GaussianRandomField: alpha must be a positive number, got {alpha!r}")
        if not (math.isfinite(tau) and tau >= 0):
            raise ValueError(f"GaussianRandomField: tau must be a non-negative number, got {tau!r}")
        d = len(shape)
        if sigma is None:
            sigma = tau ** (0.5 * (2.0 * alpha - d)) if tau > 0 else 1.0
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"GaussianRandomField: sigma must be a non-negative number, got {sigma!r}")
        self.shape, self.dim = shape, d
        self.alpha, self.tau, self.sigma = float(alpha), float(tau), float(sigma)
        self.boundary, self.mean = boundary, float(mean)
        self._sqrt_eig = self._square_root_eigenvalues()
        self._dct_weights = []
        if boundary == "neumann":
            for ax, n in enumerate(shape):
                w = np.full(n, math.sqrt(2.0) / 2.0)
                w[0] = 1.0
                w[-1] = math.sqrt(2.0)  # the last mode enters DCT-I without the factor 2
                self._dct_weights.append(w.reshape((1,) + tuple(n if a == ax else 1 for a in range(d))))

    # ------------------------------------------------------------------ spectrum
    def _mode_grid(self) -> list[np.ndarray]:
        """Wavenumbers per axis in the layout of the transform used for this boundary."""
        if self.boundary == "periodic":
            return [np.fft.fftfreq(n, d=1.0 / n) for n in self.shape]  # 0..n/2-1, -n/2..-1
        if self.boundary == "dirichlet":
            return [np.arange(1, n - 1, dtype=float) for n in self.shape]  # interior sine modes
        return [np.arange(0, n, dtype=float) for n in self.shape]  # cosine modes 0..n-1

    def laplacian_eigenvalues(self) -> np.ndarray:
        """``mu_k`` of ``-Lap`` on the mode grid of this boundary, shape = coefficient array shape."""
        ks = np.meshgrid(*self._mode_grid(), indexing="ij")
        k2 = sum(k * k for k in ks)
        scale = 4.0 * math.pi**2 if self.boundary == "periodic" else math.pi**2
        return scale * k2

    def _square_root_eigenvalues(self) -> np.ndarray:
        mu = self.laplacian_eigenvalues()
        c = math.sqrt(2.0) if self.boundary == "periodic" else 1.0
        with np.errstate(divide="ignore"):
            lam = c * self.sigma * (mu + self.tau**2) ** (-self.alpha / 2.0)
        if self.boundary in ("periodic", "neumann"):
            lam[(0,) * self.dim] = 0.0  # zero-mean field
        return lam

    @property
    def sqrt_eigenvalues(self) -> np.ndarray:
        """``lambda_k`` on the coefficient grid (read-only view)."""
        v = self._sqrt_eig.view()
        v.flags.writeable = False
        return v

    def coefficient_shape(self) -> tuple[int, ...]:
        """Shape of one sample's noise array (periodic: a leading axis of 2 for real and imaginary parts)."""
        base = self._sqrt_eig.shape
        return (2,) + base if self.boundary == "periodic" else base

    def coordinates(self) -> list[np.ndarray]:
        """1-D grid coordinates per axis matching the sample layout."""
        if self.boundary == "periodic":
            return [np.arange(n) / n for n in self.shape]
        return [np.linspace(0.0, 1.0, n) for n in self.shape]

    # ------------------------------------------------------------------ sampling
    def from_noise(self, noise: np.ndarray) -> np.ndarray:
        """Fields from standard normal noise.

        Args:
            noise: ``(B, *coefficient_shape())`` float64 standard normal draws.
        Returns:
            ``(B, *shape)`` float64 fields.
        """
        noise = np.asarray(noise, dtype=np.float64)
        cshape = self.coefficient_shape()
        if noise.shape[1:] != cshape:
            raise ValueError(f"GaussianRandomField.from_noise: noise must have shape (B, {cshape}), got {noise.shape}")
        axes = tuple(range(1, self.dim + 1))
        if self.boundary == "periodic":
            coeff = (noise[:, 0] + 1j * noise[:, 1]) * self._sqrt_eig
            # unnormalised inverse FFT (sum over modes) = ifftn * n_total, as in the FNO generator
            u = scipy.fft.ifftn(coeff, axes=axes, norm="forward").real
        elif self.boundary == "dirichlet":
            coeff = noise * self._sqrt_eig
            # DST-I gives 2 sum_k c_k sin(pi k j/(n-1)) per axis; the eigenfunction has sqrt(2): factor 2^(-d/2)
            interior = scipy.fft.dstn(coeff, type=1, axes=axes) * 2.0 ** (-self.dim / 2.0)
            u = np.zeros((noise.shape[0],) + self.shape)
            u[(slice(None),) + (slice(1, -1),) * self.dim] = interior
        else:
            # DCT-I: y_j = c_0 + (-1)^j c_{n-1} + 2 sum_{k=1}^{n-2} c_k cos(pi k j/(n-1)); we need
            # sum_k s_k c_k cos(...) with s_0 = 1, s_k = sqrt(2): pre-scale so the transform produces it.
            coeff = noise * self._sqrt_eig
            for w in self._dct_weights:
                coeff *= w  # in place: the same products, no temporaries
            u = scipy.fft.dctn(coeff, type=1, axes=axes)
        return u + self.mean

    def noise(self, seed: int, indices: Iterable[int], stream: int = 0) -> np.ndarray:
        """``(B, *coefficient_shape())`` noise of the given samples, each from its own generator."""
        cshape = self.coefficient_shape()
        idx = list(indices)
        out = np.empty((len(idx),) + cshape)
        for j, i in enumerate(idx):
            # drawn in place (the same draws in the same order as standard_normal(cshape), no temporary)
            sample_rng(seed, int(i), stream).standard_normal(out=out[j])
        return out

    def sample(self, seed: int, indices: Iterable[int] | int, stream: int = 0) -> np.ndarray:
        """Fields of samples ``indices`` of a run with ``seed``: ``(B, *shape)`` float64.

        An integer ``indices`` means ``range(indices)``. Sample ``i`` is the same whatever else is drawn.
        """
        if isinstance(indices, (int, np.integer)):
            if indices < 0:
                raise ValueError(f"GaussianRandomField.sample: number of samples must be >= 0, got {indices}")
            indices = range(int(indices))
        return self.from_noise(self.noise(seed, indices, stream))

    def expected_power(self) -> np.ndarray:
        """Expected squared spectral coefficient of a sample in its own transform basis.

        periodic: ``E|fft(u)_k|^2 / n_total^2`` on the FFT grid; dirichlet/neumann: ``E[c_k^2]`` of the
        orthonormal eigenfunction expansion. Both equal ``lambda_k^2`` (used by the covariance tests).
        """
        return self._sqrt_eig**2

    def spec(self) -> dict:
        """JSON-ready description for a dataset's ``spec``."""
        return {
            "type": "gaussian_random_field",
            "shape": list(self.shape),
            "alpha": self.alpha,
            "tau": self.tau,
            "sigma": self.sigma,
            "boundary": self.boundary,
            "mean": self.mean,
            "covariance": "c^2 sigma^2 (-Lap + tau^2 I)^(-alpha), c = sqrt(2) periodic (FNO), else 1",
        }


def fno_navier_stokes_initial_vorticity(n: int) -> GaussianRandomField:
    """The FNO Navier-Stokes initial condition: periodic, alpha 2.5, tau 7, sigma 7^1.5 on an ``n x n`` grid."""
    return GaussianRandomField((n, n), alpha=2.5, tau=7.0, sigma=7.0**1.5, boundary="periodic")
