"""Transient heat equation: ``u_t - div(a grad u) = f`` on the unit square, ``u = 0`` on the boundary.

Space: the conservative harmonic-mean finite-volume operator ``L`` of :mod:`datagen.elliptic.assembly`
(second order). Time: the theta scheme on ``t_n = n dt``,

    (I + theta dt L) u^{n+1} = (I - (1 - theta) dt L) u^n + dt (theta f^{n+1} + (1 - theta) f^n),

backward Euler for ``theta = 1`` (first order, L-stable, the default: robust for rough initial data),
Crank-Nicolson for ``theta = 1/2`` (second order). Every step of one sample solves with the same
matrix ``I + theta dt L`` (a sequence of right-hand sides), each from the previous state as initial guess.

Per sample: conductivity ``a = exp(GRF(alpha, tau))`` (cosine series, stream 0), initial state ``u0`` a
sine-series (Dirichlet-compatible) GRF (alpha 2.5, tau 7, stream 1), constant source ``f``.
Stored fields: ``a``, ``u0`` (inputs, ``(s, s)``), ``u`` (output, ``(T, s, s)`` at ``t_1..t_T``).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np
import scipy.sparse as sp

from datagen.elliptic.assembly import diffusion_system, embed_interior, scale_and_shift
from datagen.elliptic.family import EllipticFamily, LinearSolve, ProblemSample
from datagen.grf import GaussianRandomField
from datagen.spec import check_dt, check_n_steps, check_source, check_theta


def theta_step_matrices(L: sp.csr_matrix, dt: float, theta: float):
    """``(I + theta dt L, I - (1 - theta) dt L)`` as CSR matrices."""
    lhs = scale_and_shift(L, theta * dt, 1.0)
    lhs.sort_indices()
    if theta == 1.0:
        return lhs, sp.identity(L.shape[0], format="csr")
    return lhs, scale_and_shift(L, -(1.0 - theta) * dt, 1.0)


def theta_trajectory(
    L: sp.csr_matrix,
    u0: np.ndarray,
    dt: float,
    n_steps: int,
    theta: float,
    linear_solve: LinearSolve,
    source: Optional[Callable[[float], np.ndarray]] = None,
) -> np.ndarray:
    """States ``(n_steps, n)`` at ``t_1..t_T`` of the theta scheme; ``linear_solve`` solves with
    ``I + theta dt L``; ``source(t)`` gives the interior source (None: zero)."""
    _, rhs_matrix = theta_step_matrices(L, dt, theta)
    u = np.asarray(u0, dtype=np.float64).copy()
    out = np.empty((n_steps, u.size))
    for n in range(n_steps):
        b = rhs_matrix @ u
        if source is not None:
            b += dt * (theta * source((n + 1) * dt) + (1.0 - theta) * source(n * dt))
        u = linear_solve(b, u)
        out[n] = u
    return out


class Heat(EllipticFamily):
    name = "heat"
    feature_fields = ("a", "u0")

    def __init__(
        self,
        resolution: int,
        dim: int = 2,
        n_steps: int = 10,
        dt: float = 0.005,
        theta: float = 1.0,
        alpha: float = 2.5,
        tau: float = 7.0,
        forcing: float = 0.0,
    ):
        super().__init__(resolution, dim)
        self.n_steps, self.dt, self.theta = check_n_steps(n_steps), check_dt(dt), check_theta(theta)
        self.forcing = check_source(forcing)
        self.a_grf = GaussianRandomField(self.shape, alpha=alpha, tau=tau, boundary="neumann")
        self.u0_grf = GaussianRandomField(self.shape, alpha=2.5, tau=7.0, boundary="dirichlet")

    @property
    def systems_per_sample(self) -> int:
        return self.n_steps

    def field_roles(self):
        return {"a": (self.shape, "input"), "u0": (self.shape, "input"), "u": ((self.n_steps,) + self.shape, "output")}

    def coordinates(self):
        c = super().coordinates()
        c["t"] = self.dt * np.arange(1, self.n_steps + 1)
        return c

    def options(self) -> dict:
        return {
            "equation": "u_t - div(a grad u) = f, u = 0 on the boundary",
            "scheme": "conservative finite volume (harmonic mean) in space, theta scheme in time",
            "n_steps": self.n_steps,
            "dt": self.dt,
            "theta": self.theta,
            "forcing": self.forcing,
            "a_law": "a = exp(g)",
            "a_grf": self.a_grf.spec(),
            "u0_grf": self.u0_grf.spec(),
            "u_times": "t_1..t_T (u0 stored separately)",
        }

    def sample(self, seed: int, index: int) -> ProblemSample:
        a = np.exp(self.a_grf.sample(seed, [index], stream=0)[0])
        u0 = self.u0_grf.sample(seed, [index], stream=1)[0]
        return ProblemSample(index, {"a": a, "u0": u0})

    def feature_transform(self, name, field):
        return np.log(field) if name == "a" else field

    def _laplacian(self, sample: ProblemSample) -> sp.csr_matrix:
        return diffusion_system(sample.inputs["a"])[0]

    def operator(self, sample: ProblemSample) -> sp.csr_matrix:
        return theta_step_matrices(self._laplacian(sample), self.dt, self.theta)[0]

    def solve(self, sample: ProblemSample, matrix, linear_solve: LinearSolve) -> Dict[str, np.ndarray]:
        L = self._laplacian(sample)
        inner = (slice(1, -1),) * self.dim
        u0 = sample.inputs["u0"][inner].ravel()
        f = np.full(u0.size, self.forcing)
        states = theta_trajectory(
            L,
            u0,
            self.dt,
            self.n_steps,
            self.theta,
            linear_solve,
            source=(lambda t: f) if self.forcing != 0.0 else None,
        )
        return {"u": np.stack([embed_interior(s, self.shape) for s in states])}
