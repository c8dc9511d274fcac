"""Helmholtz: ``-Lap u - k(x)^2 u = f`` on the unit square (or cube), real arithmetic.

Wavenumber field: ``k(x) = k0 exp(contrast * g(x))`` with ``g`` a unit-variance cosine-series GRF
(alpha, tau) and a per-sample mean wavenumber ``k0 = wavenumber * (1 + spread * (2 U - 1))``,
``U ~ U(0, 1)``. The default ``wavenumber = 4 pi`` puts two wavelengths across the square: with
Dirichlet conditions the operator has about 9 negative eigenvalues (genuinely indefinite).
Source ``f``: a cosine-series GRF (alpha 2.5, tau 7, stream 1).

Boundary conditions: ``dirichlet`` (``u = 0``; unknowns = interior nodes) or ``neumann``
(``du/dn = 0``; all nodes, dual-volume weighted so the matrix stays symmetric). Discretisation:
the finite-volume Laplacian of :mod:`datagen.elliptic.assembly` (second order) minus the lumped
mass term ``k^2 V``. Resolution: the local wavelength ``2 pi / k(x)`` must span at least 10 grid
spacings; fewer triggers a warning (and is recorded in the spec).
Stored fields: ``k`` and ``f`` (inputs), ``u`` (output); param ``k0``.
"""

from __future__ import annotations

import math
import warnings
from typing import Dict

import numpy as np
import scipy.sparse as sp

from datagen.elliptic.assembly import dual_volumes, embed_interior, face_weights, interior_mask, stencil_pattern
from datagen.elliptic.family import EllipticFamily, LinearSolve, ProblemSample
from datagen.grf import GaussianRandomField
from datagen.seeding import sample_rng
from datagen.spec import BOUNDARY_CONDITIONS, check_bc, check_contrast, check_spread, check_wavenumber

__all__ = ["BOUNDARY_CONDITIONS", "MIN_POINTS_PER_WAVELENGTH", "Helmholtz", "helmholtz_system"]
MIN_POINTS_PER_WAVELENGTH = 10.0


def helmholtz_system(k: np.ndarray, f: np.ndarray, bc: str = "dirichlet"):
    """``(A, b)`` for nodal wavenumber ``k`` and source ``f`` (both ``(s,)*d``), homogeneous ``bc``."""
    check_bc(bc)
    shape = k.shape
    k2 = np.asarray(k, dtype=np.float64) ** 2
    f = np.asarray(f, dtype=np.float64)
    weights = face_weights(np.ones(shape))
    if bc == "dirichlet":
        # K_II - diag(k^2): the Laplacian's fixed pattern, diagonal shifted (no sparse additions)
        A = stencil_pattern(shape, True).matrix(weights, diagonal=-k2)
        b = f.ravel()[interior_mask(shape).ravel()]
    else:
        V = dual_volumes(shape)
        A = stencil_pattern(shape, False).matrix(weights, diagonal=-(k2 * V))
        b = (f * V).ravel()
    return A, b


class Helmholtz(EllipticFamily):
    name = "helmholtz"
    feature_fields = ("k", "f")

    def __init__(
        self,
        resolution: int,
        dim: int = 2,
        wavenumber: float = 4.0 * math.pi,
        contrast: float = 0.1,
        spread: float = 0.0,
        alpha: float = 2.5,
        tau: float = 7.0,
        bc: str = "dirichlet",
    ):
        super().__init__(resolution, dim)
        self.name = "helmholtz" if dim == 2 else "helmholtz3d"
        self.wavenumber, self.contrast = check_wavenumber(wavenumber), check_contrast(contrast)
        self.spread, self.bc = check_spread(spread), check_bc(bc)
        self.k_grf = GaussianRandomField(self.shape, alpha=alpha, tau=tau, boundary="neumann")
        self._k_std = float(np.sqrt(self.k_grf.expected_power().sum()))
        self.f_grf = GaussianRandomField(self.shape, alpha=2.5, tau=7.0, boundary="neumann")
        # 4 standard deviations of g cover the wavenumbers that occur in practice
        k_max = self.wavenumber * (1 + self.spread) * math.exp(4.0 * self.contrast)
        self.points_per_wavelength = 2 * math.pi / k_max / self.h
        if self.points_per_wavelength < MIN_POINTS_PER_WAVELENGTH:
            warnings.warn(
                f"helmholtz: only {self.points_per_wavelength:.1f} grid points per local wavelength at "
                f"k = {k_max:.3g} (resolution {resolution}); at least {MIN_POINTS_PER_WAVELENGTH:.0f} are "
                f"needed for an accurate solution: raise the resolution to "
                f"{math.ceil(MIN_POINTS_PER_WAVELENGTH * k_max / (2 * math.pi)) + 1} or lower the wavenumber",
                stacklevel=2,
            )

    def field_roles(self):
        return {"k": (self.shape, "input"), "f": (self.shape, "input"), "u": (self.shape, "output")}

    @property
    def param_names(self):
        return ["k0"]

    def boundary(self):
        return {ax: self.bc for ax in ("x", "y", "z")[: self.dim]}

    def options(self) -> dict:
        return {
            "equation": "-Lap u - k(x)^2 u = f",
            "boundary_condition": self.bc,
            "scheme": "finite volume, second order, lumped mass, symmetric indefinite",
            "wavenumber_law": "k = k0 exp(contrast g / std(g)), k0 = wavenumber (1 + spread (2U - 1))",
            "wavenumber": self.wavenumber,
            "contrast": self.contrast,
            "spread": self.spread,
            "k_grf": self.k_grf.spec(),
            "f_grf": self.f_grf.spec(),
            "points_per_wavelength_min": self.points_per_wavelength,
        }

    def sample(self, seed: int, index: int) -> ProblemSample:
        g = self.k_grf.sample(seed, [index], stream=0)[0] / self._k_std
        k0 = self.wavenumber * (1.0 + self.spread * (2.0 * sample_rng(seed, index, 2).random() - 1.0))
        k = k0 * np.exp(self.contrast * g)
        f = self.f_grf.sample(seed, [index], stream=1)[0]
        return ProblemSample(index, {"k": k, "f": f}, {"k0": float(k0)})

    def param_scales(self):
        return {"k0": 1.0 / self.wavenumber}  # |k0_i - k0_j| relative to the mean wavenumber

    def feature_transform(self, name, field):
        return field / self.wavenumber if name == "k" else field

    def operator(self, sample: ProblemSample) -> sp.csr_matrix:
        return helmholtz_system(sample.inputs["k"], sample.inputs["f"], self.bc)[0]

    def solve(self, sample: ProblemSample, matrix, linear_solve: LinearSolve) -> Dict[str, np.ndarray]:
        f = sample.inputs["f"]
        if self.bc == "dirichlet":
            x = linear_solve(f[(slice(1, -1),) * self.dim].ravel().copy(), None)
            return {"u": embed_interior(x, self.shape)}
        x = linear_solve((f * dual_volumes(self.shape)).ravel(), None)
        return {"u": x.reshape(self.shape)}
