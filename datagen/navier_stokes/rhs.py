"""The right-hand side of the vorticity equation, defined once for the solvers and the residual.

On the periodic box ``[0, L)^2`` (:mod:`.spectral` for the conventions)::

    dw/dt = L w + N(w),    L = -(nu |k|^2 + alpha),    N(w) = -P(u . grad w) + f,

with viscosity ``nu``, linear drag ``alpha``, the fixed forcing ``f`` and the 2/3-rule mask ``P``
applied to the product ``u . grad w`` after it is formed in physical space (the FNO generator's
procedure). :class:`VorticityRHS` holds the four terms' definitions for one :class:`SpectralGrid`:

* ``damping``: the symbol of ``-L``, ``nu |k|^2 + alpha`` ``(n, n//2+1)``, float64 (the steppers form
  their Crank-Nicolson coefficients from it in float64 and round once; the residual rounds it to its
  dtype);
* ``forcing_hat``: ``rfft2(f)`` ``(n, n//2+1)``, transformed once in float64 (complex128), or ``None``;
* ``dealias``: the boolean 2/3-rule mask ``P`` ``(n, n//2+1)``;
* :meth:`advection_hat`: the product ``u . grad w``'s spectrum (masked or not), with optional
  preallocated buffers and a per-chunk epilogue (:func:`.spectral.advection_hat`; the in-place chunk
  kernel :func:`.spectral.advection_product_chunk` is the one the ``fno`` stepper runs too).

Users: the time steppers (:mod:`.steppers`, which fold ``L``, ``P`` and ``f`` into their update
coefficients) and the Spectral-Refiner residual ``R = w_t - L w - N(w)`` (``train.refine.residual``).
Build it from a dataset's physics record with :meth:`VorticityRHS.from_physics`.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from .spectral import AdvectionBuffers, SpectralGrid, advection_hat

__all__ = ["VorticityRHS"]


class VorticityRHS:
    """The terms of ``dw/dt = -(nu |k|^2 + alpha) w - P(u . grad w) + f`` on one grid (module doc).

    Args:
        grid: the spectral grid (device and dtype of the run).
        viscosity: ``nu >= 0``.
        drag: linear drag ``alpha >= 0``.
        forcing: physical forcing with trailing shape ``(n, n)`` (any real dtype; transformed in
            float64) or ``None``.
    """

    def __init__(self, grid: SpectralGrid, viscosity: float, drag: float = 0.0, forcing: Optional[torch.Tensor] = None):
        if not viscosity >= 0:
            raise ValueError(f"viscosity must be >= 0, got {viscosity!r}")
        if not drag >= 0:
            raise ValueError(f"drag must be >= 0, got {drag!r}")
        self.grid, self.viscosity, self.drag = grid, float(viscosity), float(drag)
        # symbol of -L = nu |k|^2 + alpha, in float64 (the grid's |k|^2 as the run's dtype holds it)
        self.damping = self.viscosity * grid.k2.to(torch.float64) + self.drag
        self.forcing_hat: Optional[torch.Tensor] = None
        if forcing is not None:
            f = torch.as_tensor(forcing).to(device=grid.device, dtype=torch.float64)
            if tuple(f.shape[-2:]) != (grid.n, grid.n):
                raise ValueError(f"forcing must have trailing shape ({grid.n}, {grid.n}), got {tuple(f.shape)}")
            # the forcing is fixed: transform it once, in float64
            self.forcing_hat = torch.fft.rfft2(f)
        self.dealias = grid.dealias

    @classmethod
    def from_physics(cls, physics, grid: SpectralGrid) -> "VorticityRHS":
        """From a :class:`datagen.navier_stokes.physics.NavierStokesPhysics` record (viscosity, drag,
        forcing evaluated on this grid at the record's origin); the grid's box must be the record's."""
        if not math.isclose(grid.box, float(physics.box), rel_tol=1e-12):
            raise ValueError(
                f"grid box {grid.box:g} differs from the physics record's box {physics.box:g}; "
                f"build the SpectralGrid with box=physics.box"
            )
        return cls(grid, physics.viscosity, physics.drag, physics.forcing_field(grid.n))

    def forcing_spectrum(self, dtype: torch.dtype) -> Optional[torch.Tensor]:
        """``rfft2(f)`` rounded to the complex ``dtype`` (or ``None``)."""
        return None if self.forcing_hat is None else self.forcing_hat.to(dtype)

    def advection_hat(
        self,
        w_hat: torch.Tensor,
        buffers: Optional[AdvectionBuffers] = None,
        dealias: bool = True,
        epilogue: Optional[Callable[[int, int, torch.Tensor], None]] = None,
    ) -> torch.Tensor:
        """``P(u . grad w)`` (``dealias=False``: without ``P``) of ``w_hat`` ``(..., n, n//2+1)``;
        arguments as :func:`datagen.navier_stokes.spectral.advection_hat`."""
        return advection_hat(w_hat, self.grid, buffers, dealias=dealias, epilogue=epilogue)

    def linear_hat(self, w_hat: torch.Tensor) -> torch.Tensor:
        """``L w`` ``= -(nu |k|^2 + alpha) w_hat`` (the symbol rounded to ``w_hat``'s real dtype)."""
        return -(self.damping.to(w_hat.real.dtype) * w_hat)

    def __call__(self, w_hat: torch.Tensor) -> torch.Tensor:
        """``dw/dt`` spectrum ``L w + N(w)`` of ``w_hat`` ``(..., n, n//2+1)`` (allocating; for checks
        and diagnostics: the steppers fold the same terms into their in-place updates)."""
        out = self.linear_hat(w_hat) - self.advection_hat(w_hat)
        f_hat = self.forcing_spectrum(w_hat.dtype)
        return out if f_hat is None else out + f_hat
