"""Darcy flow: ``-div(a grad u) = f`` on the unit square (or cube), ``u = 0`` on the boundary.

Discretisation: the conservative finite-volume / 5-point (7-point in 3D) scheme of
:mod:`datagen.elliptic.assembly` with harmonic-mean face coefficients ``a_pq = 2 a_p a_q/(a_p + a_q)``
on the nodes ``x_j = j h``, ``h = 1/(s-1)``; unknowns are the ``(s-2)^d`` interior nodes, the matrix
is symmetric positive definite and the scheme is second-order accurate for smooth ``a``.

Coefficient distributions (the GRF is the cosine-series ``neumann`` variant of :mod:`datagen.grf`):
- ``lognormal``: ``a = exp(GRF(alpha, tau))``, defaults alpha = 2.5, tau = 7 (the SKR paper's Darcy set).
- ``piecewise``: ``a = 12`` where ``GRF >= 0`` else ``3`` (the FNO Darcy data), defaults alpha = 2, tau = 3.
Source ``f`` is a constant (default 1). Stored fields: ``a`` (input), ``u`` (output), both ``(s,)*d``.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import scipy.sparse as sp

from datagen.elliptic.assembly import diffusion_system, embed_interior
from datagen.elliptic.family import EllipticFamily, LinearSolve, ProblemSample
from datagen.grf import GaussianRandomField
from datagen.spec import check_source

COEFFICIENTS = ("lognormal", "piecewise")
DEFAULT_GRF = {"lognormal": (2.5, 7.0), "piecewise": (2.0, 3.0)}


def darcy_system(a: np.ndarray, f: np.ndarray | float, g: np.ndarray | None = None):
    """``(A, b)`` on the interior nodes for nodal ``a`` ``(s,)*d``, source ``f`` (array or constant) and
    optional Dirichlet data ``g`` (full-grid array whose boundary values are used)."""
    A, lift = diffusion_system(a, g)
    inner = (slice(1, -1),) * a.ndim
    f_in = np.broadcast_to(np.asarray(f, dtype=np.float64), a.shape)[inner].ravel()
    return A, f_in + lift


class Darcy(EllipticFamily):
    name = "darcy"
    feature_fields = ("a",)

    def __init__(
        self,
        resolution: int,
        dim: int = 2,
        coefficient: str = "lognormal",
        alpha: float | None = None,
        tau: float | None = None,
        forcing: float = 1.0,
    ):
        super().__init__(resolution, dim)
        if coefficient not in COEFFICIENTS:
            raise ValueError(f"darcy: unknown coefficient {coefficient!r}; allowed: {', '.join(COEFFICIENTS)}")
        forcing = check_source(forcing)
        self.name = "darcy" if dim == 2 else "darcy3d"
        self.coefficient = coefficient
        alpha0, tau0 = DEFAULT_GRF[coefficient]
        self.grf = GaussianRandomField(
            self.shape, alpha=alpha0 if alpha is None else alpha, tau=tau0 if tau is None else tau, boundary="neumann"
        )
        self.forcing = float(forcing)

    def field_roles(self):
        return {"a": (self.shape, "input"), "u": (self.shape, "output")}

    def options(self) -> dict:
        return {
            "equation": "-div(a grad u) = f, u = 0 on the boundary",
            "scheme": "conservative finite volume, harmonic-mean face coefficients, "
            f"{5 if self.dim == 2 else 7}-point, SPD",
            "coefficient": self.coefficient,
            "coefficient_law": "a = exp(g)" if self.coefficient == "lognormal" else "a = 12 if g >= 0 else 3",
            "grf": self.grf.spec(),
            "forcing": self.forcing,
        }

    def coefficient_from_grf(self, g: np.ndarray) -> np.ndarray:
        if self.coefficient == "lognormal":
            return np.exp(g)
        return np.where(g >= 0.0, 12.0, 3.0)

    def sample(self, seed: int, index: int) -> ProblemSample:
        g = self.grf.sample(seed, [index], stream=0)[0]
        return ProblemSample(index, {"a": self.coefficient_from_grf(g)})

    def feature_transform(self, name, field):
        return np.log(field)  # distances between log-coefficients (the GRF itself)

    def operator(self, sample: ProblemSample) -> sp.csr_matrix:
        A, _ = darcy_system(sample.inputs["a"], self.forcing)
        return A

    def solve(self, sample: ProblemSample, matrix, linear_solve: LinearSolve) -> Dict[str, np.ndarray]:
        x = linear_solve(np.full(matrix.shape[0], self.forcing), None)
        return {"u": embed_interior(x, self.shape)}
