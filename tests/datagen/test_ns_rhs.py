"""The vorticity right-hand side defined once (:class:`datagen.navier_stokes.rhs.VorticityRHS`): its terms
against closed forms, and the time steppers' updates consistent with it (the steppers fold the same
terms into their coefficients; the refinement residual's side is in tests/train/test_refine_residual_rhs.py)."""

import math

import pytest
import torch

from datagen.navier_stokes.physics import Forcing, NavierStokesPhysics
from datagen.navier_stokes.rhs import VorticityRHS
from datagen.navier_stokes.spectral import SpectralGrid, fno_forcing, kolmogorov_forcing, to_physical, to_spectral
from datagen.navier_stokes.steppers import STEPPERS, make_stepper


def test_terms_of_a_steady_euler_mode_in_closed_form():
    """``w = cos(k x) cos(k y)`` is a function of its stream function, so ``u . grad w = 0`` exactly and
    ``dw/dt = -(nu 2k^2 + alpha) w + f``; on a 2 pi box with the Kolmogorov forcing."""
    n, box, nu, alpha, m = 32, 2 * math.pi, 0.01, 0.1, 3
    grid = SpectralGrid(n, box)
    X, Y = grid.coordinates()
    k = 2 * math.pi * m / box
    w = torch.cos(k * X) * torch.cos(k * Y)
    f = kolmogorov_forcing(grid)
    rhs = VorticityRHS(grid, nu, alpha, f)
    w_hat = to_spectral(w)
    assert to_physical(rhs.advection_hat(w_hat), grid).abs().max() < 1e-12
    expected = -(nu * 2 * k**2 + alpha) * w + f
    torch.testing.assert_close(to_physical(rhs(w_hat), grid), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        to_physical(rhs.linear_hat(w_hat), grid), -(nu * 2 * k**2 + alpha) * w, atol=1e-12, rtol=0
    )


def test_advection_of_a_shear_against_its_closed_form():
    """``w = sin(x) + sin(2y)`` (box 2 pi): ``psi = sin(x) + sin(2y)/4``, ``u = psi_y = cos(2y)/2``,
    ``v = -psi_x = -cos(x)``; ``u w_x + v w_y = cos(2y) cos(x)/2 - 2 cos(x) cos(2y) = -1.5 cos(x) cos(2y)``,
    inside the 2/3 band."""
    grid = SpectralGrid(16, 2 * math.pi)
    X, Y = grid.coordinates()
    w = torch.sin(X) + torch.sin(2 * Y)
    rhs = VorticityRHS(grid, 0.0)
    adv = to_physical(rhs.advection_hat(to_spectral(w)), grid)
    torch.testing.assert_close(adv, -1.5 * torch.cos(X) * torch.cos(2 * Y), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", STEPPERS)
@pytest.mark.parametrize("drag", [0.0, 0.2])
def test_steppers_advance_by_the_shared_rhs(name, drag):
    """``(w(dt) - w) / dt -> dw/dt`` of :class:`VorticityRHS` as ``dt -> 0`` (first order in ``dt``), for
    every stepper, with forcing and drag: the steppers solve the equation the shared terms define."""
    n, batch, nu = 32, 3, 1e-2
    grid = SpectralGrid(n)
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(batch, n, n, generator=gen, dtype=torch.float64)
    w0_hat = to_spectral(w0) * (grid.k2 < (2 * math.pi * 4) ** 2)  # smooth: a few modes
    rhs = VorticityRHS(grid, nu, drag, fno_forcing(grid))
    target = rhs(w0_hat)
    errors = []
    for dt in (1e-4, 5e-5):
        st = make_stepper(name, grid, nu, (batch,), fno_forcing(grid), drag)
        st.set_dt(dt)
        w = w0_hat.clone().contiguous()
        st.step(w)
        errors.append(float(((w - w0_hat) / dt - target).abs().max() / target.abs().max()))
    assert errors[0] < 1e-3
    assert errors[1] < 0.6 * errors[0]  # converges (first order: ratio 1/2)


def test_steppers_take_their_terms_from_the_shared_rhs():
    grid = SpectralGrid(16, dtype=torch.float32)
    f = fno_forcing(SpectralGrid(16))
    st = make_stepper("rk4cn", grid, 1e-3, (2,), f, 0.1)
    assert st.rhs.damping is st._minus_L
    assert torch.equal(st.forcing_hat, st.rhs.forcing_spectrum(torch.complex64))
    assert torch.equal(st.rhs.damping, 1e-3 * grid.k2.double() + 0.1)


def test_from_physics_and_its_errors():
    physics = NavierStokesPhysics(viscosity=1e-3, dt=1.0, box=1.0, forcing=Forcing("fno"), drag=0.05)
    grid = SpectralGrid(16)
    rhs = VorticityRHS.from_physics(physics, grid)
    assert (rhs.viscosity, rhs.drag) == (1e-3, 0.05)
    torch.testing.assert_close(rhs.forcing_hat, to_spectral(fno_forcing(grid)), atol=1e-12, rtol=0)
    assert VorticityRHS.from_physics(NavierStokesPhysics(viscosity=1e-3, dt=1.0), grid).forcing_hat is None
    with pytest.raises(ValueError, match="box=physics.box"):
        VorticityRHS.from_physics(physics, SpectralGrid(16, 2.0))
    with pytest.raises(ValueError, match="viscosity must be >= 0"):
        VorticityRHS(grid, -1.0)
    with pytest.raises(ValueError, match="drag must be >= 0"):
        VorticityRHS(grid, 1.0, drag=-0.1)
    with pytest.raises(ValueError, match=r"trailing shape \(16, 16\)"):
        VorticityRHS(grid, 1.0, forcing=torch.zeros(8, 8))
