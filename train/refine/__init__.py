"""Spectral refinement of SFNO (Cao, Brarda, Li, Xi, "Spectral-Refiner", ICLR 2025).

* :mod:`.time_derivative` - time derivatives of sampled trajectories (finite differences / spectral),
* :mod:`.residual` - the Navier-Stokes space-time residual and its H^-1 norm (with the generator's
  spectral operators), its Picard and Newton linearisations,
* :mod:`.preconditioner` - Jacobi preconditioner of the convex refinement subproblems,
* :mod:`.refine` - freezing, widening and fine-tuning the SFNO's output layer,
* :mod:`.cli` - ``neuralops-train refine``.
"""

from .refine import Physics, RefineConfig, SpectralRefiner  # noqa: F401
from .residual import LinearizationPoint, navier_stokes_residual, residual_h_minus1_sq, residual_spectrum  # noqa: F401
