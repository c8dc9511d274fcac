"""The refinement residual is ``R = w_t - dw/dt`` with the right-hand side the generator's steppers use
(:class:`datagen.navier_stokes.rhs.VorticityRHS`, built from the dataset's physics record)."""

import pytest
import torch

from datagen.navier_stokes.physics import Forcing, NavierStokesPhysics
from datagen.navier_stokes.rhs import VorticityRHS
from datagen.navier_stokes.spectral import SpectralGrid, to_spectral
from train.refine.residual import residual_spectrum
from train.refine.time_derivative import time_derivative


@pytest.mark.parametrize(
    "forcing,drag,box", [(Forcing("fno"), 0.0, 1.0), (Forcing("kolmogorov"), 0.1, 6.0), (Forcing("none"), 0.0, 1.0)]
)
def test_residual_is_time_derivative_minus_shared_rhs(forcing, drag, box):
    n = 32
    physics = NavierStokesPhysics(viscosity=1e-3, dt=0.01, box=box, forcing=forcing, drag=drag)
    w = torch.randn(2, 8, n, n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    rhs = VorticityRHS.from_physics(physics, SpectralGrid(n, box))
    expected = to_spectral(time_derivative(w, physics.dt, dim=1)) - rhs(to_spectral(w))
    got = residual_spectrum(w, physics.dt, physics.viscosity, forcing=physics.forcing_field(n), box=box, drag=drag)
    torch.testing.assert_close(got, expected, atol=1e-10 * expected.abs().max().item(), rtol=0)
