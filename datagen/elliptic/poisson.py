"""Poisson with many right-hand sides: ``-Lap u = f`` on the unit square (cube), ``u = g`` on the boundary.

One fixed operator (the finite-volume 5/7-point Laplacian of :mod:`datagen.elliptic.assembly`,
second order, SPD); per sample a random source ``f`` (cosine-series GRF, alpha 2.5, tau 7, stream 0)
and random boundary data ``g`` (the boundary values of a cosine-series GRF, alpha 3, tau 3, stream 1).
Stored fields: ``f``, ``g`` (inputs; ``g`` is zero inside), ``u`` (output).
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import scipy.sparse as sp

from datagen.elliptic.assembly import diffusion_system, dirichlet_lift, embed_interior, face_weights, interior_mask
from datagen.elliptic.family import EllipticFamily, LinearSolve, ProblemSample
from datagen.grf import GaussianRandomField


def poisson_system(f: np.ndarray, g: np.ndarray | None = None):
    """``(A, b)`` on the interior nodes for nodal source ``f`` and Dirichlet data ``g`` (``(s,)*d``)."""
    f = np.asarray(f, dtype=np.float64)
    A, lift = diffusion_system(np.ones(f.shape), g)
    return A, f[(slice(1, -1),) * f.ndim].ravel() + lift


class Poisson(EllipticFamily):
    name = "poisson"
    feature_fields = ("f", "g")

    def __init__(
        self,
        resolution: int,
        dim: int = 2,
        alpha: float = 2.5,
        tau: float = 7.0,
        boundary_alpha: float = 3.0,
        boundary_tau: float = 3.0,
    ):
        super().__init__(resolution, dim)
        self.f_grf = GaussianRandomField(self.shape, alpha=alpha, tau=tau, boundary="neumann")
        self.g_grf = GaussianRandomField(self.shape, alpha=boundary_alpha, tau=boundary_tau, boundary="neumann")
        self._weights = face_weights(np.ones(self.shape))
        self._A, _ = diffusion_system(np.ones(self.shape))

    def field_roles(self):
        return {"f": (self.shape, "input"), "g": (self.shape, "input"), "u": (self.shape, "output")}

    def options(self) -> dict:
        return {
            "equation": "-Lap u = f, u = g on the boundary",
            "scheme": "finite volume 5/7-point Laplacian, second order, SPD, one matrix for all samples",
            "f_grf": self.f_grf.spec(),
            "g_grf": self.g_grf.spec(),
            "g_storage": "full grid, boundary values = data, interior = 0",
        }

    def sample(self, seed: int, index: int) -> ProblemSample:
        f = self.f_grf.sample(seed, [index], stream=0)[0]
        g = self.g_grf.sample(seed, [index], stream=1)[0]
        g[interior_mask(self.shape)] = 0.0
        return ProblemSample(index, {"f": f, "g": g})

    def operator(self, sample: ProblemSample) -> sp.csr_matrix:
        return self._A

    def solve(self, sample: ProblemSample, matrix, linear_solve: LinearSolve) -> Dict[str, np.ndarray]:
        f, g = sample.inputs["f"], sample.inputs["g"]
        lift = dirichlet_lift(self._weights, g)
        b = f[(slice(1, -1),) * self.dim].ravel() + lift
        x = linear_solve(b, None)
        return {"u": embed_interior(x, self.shape, boundary_values=g)}
