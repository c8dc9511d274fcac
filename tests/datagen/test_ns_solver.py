"""Time steppers and the batched solver: exact decay, convergence orders, invariants, blow-up."""

import math

import numpy as np
import pytest
import torch

from datagen.navier_stokes import spectral as S
from datagen.navier_stokes.initial import fno_grf, mcwilliams
from datagen.navier_stokes.solver import NavierStokesSolver
from datagen.navier_stokes.steppers import STEPPERS, make_stepper


def _smooth_field(grid):
    """A smooth, nonlinear (not a single shell) band-limited vorticity."""
    X, Y = grid.coordinates()
    k = 2 * math.pi / grid.box
    return 2 * torch.sin(k * X) * torch.cos(k * Y) + torch.cos(k * (X + 2 * Y)) + 0.5 * torch.sin(k * (2 * X - Y))


def _integrate(name, grid, w0, viscosity, dt, T, forcing=None, drag=0.0):
    st = make_stepper(name, grid, viscosity, (1,), forcing=forcing, drag=drag)
    st.set_dt(dt)
    w = S.to_spectral(w0[None].clone())
    for _ in range(round(T / dt)):
        st.step(w)
    return w


@pytest.mark.parametrize("stepper", STEPPERS)
@pytest.mark.parametrize("box", [1.0, 2 * math.pi])
def test_taylor_green_decays_at_the_exact_rate(stepper, box):
    # w = 2 k^2 psi with psi = sin(kx) sin(ky) (+ a mode on the same shell) is steady for the advection and
    # decays as exp(-(nu 2 k^2 + drag) t). Crank-Nicolson's rate error per step is (dt lambda)^3 / 12.
    nu, drag, dt, T = 1e-3, 0.05, 1e-3, 1.0
    solver = NavierStokesSolver(32, nu, box=box, drag=drag, stepper=stepper, dt=dt)
    X, Y = solver.grid.coordinates()
    k = 2 * math.pi / box
    w0 = 2 * (torch.sin(k * X) * torch.sin(k * Y) + 0.3 * torch.cos(k * (X + Y)))
    res = solver.run(w0[None], [0.5, T])
    lam = nu * 2 * k**2 + drag
    for t, w in zip(res.times, res.snapshots):
        steps = round(t / dt)
        exact = w0 * math.exp(-lam * t)
        # the Crank-Nicolson factor per (sub)step differs from exp(-lam dt) by (dt lam)^3 / 12
        rate_error = steps * (dt * lam) ** 3 / 12
        assert (w[0] - exact).abs().max() <= (1.5 * rate_error + 1e-13) * exact.abs().max()
        if stepper == "fno":  # and it is exactly CN's factor, to round-off
            cn = w0 * ((1 - dt * lam / 2) / (1 + dt * lam / 2)) ** steps
            assert (w[0] - cn).abs().max() < 1e-13 * cn.abs().max()


@pytest.mark.parametrize("stepper", STEPPERS)
@pytest.mark.parametrize("viscosity", [0.0, 0.02])
def test_temporal_convergence_order(stepper, viscosity):
    """Order measured on a smooth forced solution: fno 1; rk3cn 2 (3 without viscosity); rk4cn 2 (4)."""
    g = S.SpectralGrid(16, dtype=torch.float64)
    w0 = _smooth_field(g)
    f = S.fno_forcing(g)
    T = 0.5
    ref = _integrate("rk4cn", g, w0, viscosity, 1 / 1280, T, forcing=f)
    design = make_stepper(stepper, g, viscosity, (1,))
    order = design.inviscid_order if viscosity == 0 else design.order
    dts = [1 / 20, 1 / 40, 1 / 80]
    errs = [float((_integrate(stepper, g, w0, viscosity, dt, T, forcing=f) - ref).abs().max()) for dt in dts]
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(len(dts) - 1)]
    assert all(abs(r - order) < 0.25 for r in rates), (stepper, viscosity, errs, rates)


@pytest.mark.parametrize("stepper", ["rk3cn", "rk4cn"])
def test_inviscid_energy_and_enstrophy_conserved_to_scheme_accuracy(stepper):
    # A band-limited state stays in the 2/3 band, where the dealiased Galerkin system conserves energy
    # and enstrophy exactly; only the time discretisation changes them, at its order.
    g = S.SpectralGrid(32, 2 * math.pi)
    w0 = torch.from_numpy(mcwilliams(32, 0, [0], peak_wavenumber=3)[0])
    order = make_stepper(stepper, g, 0.0, (1,)).inviscid_order
    drift = []
    for dt in (0.02, 0.01):
        w = _integrate(stepper, g, w0, 0.0, dt, 1.0)
        e0, z0 = S.kinetic_energy(S.to_spectral(w0), g), S.enstrophy(S.to_spectral(w0), g)
        de = abs(float(S.kinetic_energy(w, g)[0] / e0 - 1))
        dz = abs(float(S.enstrophy(w, g)[0] / z0 - 1))
        drift.append((de, dz))
    assert drift[1][0] < 1e-3 and drift[1][1] < 1e-3
    # the drift falls at least at the scheme's order (energy error of an order-p scheme: O(dt^p))
    assert drift[0][0] / drift[1][0] > 2 ** (order - 0.5)
    assert drift[0][1] / drift[1][1] > 2 ** (order - 0.5)


def test_viscous_energy_and_enstrophy_decay_at_the_rate_the_spectrum_implies():
    # dE/dt = -nu <w^2> = -2 nu Z and dZ/dt = -nu <|grad w|^2> (no forcing, no drag)
    g = S.SpectralGrid(32, 2 * math.pi)
    w0 = torch.from_numpy(mcwilliams(32, 1, [0], peak_wavenumber=3)[0])
    nu, h = 0.01, 1e-3
    st = make_stepper("rk4cn", g, nu, (1,))
    st.set_dt(h)
    w = S.to_spectral(w0[None].clone())
    for _ in range(100):
        st.step(w)
    w_prev = w.clone()
    st.step(w)
    w_mid = w.clone()
    st.step(w)
    dE = (S.kinetic_energy(w, g) - S.kinetic_energy(w_prev, g)) / (2 * h)
    dZ = (S.enstrophy(w, g) - S.enstrophy(w_prev, g)) / (2 * h)
    Z = S.enstrophy(w_mid, g)
    grad2 = 0.5 * sum((S.to_physical(gh, g) ** 2).mean(dim=(-2, -1)) for gh in S.gradient_hat(w_mid, g))
    assert torch.allclose(dE, -2 * nu * Z, rtol=1e-5)
    assert torch.allclose(dZ, -2 * nu * grad2, rtol=1e-4)


def test_per_sample_dt_zero_leaves_a_sample_unchanged_and_matches_scalar_dt():
    g = S.SpectralGrid(16)
    w0 = torch.stack([_smooth_field(g), 0.5 * _smooth_field(g)])
    for name in STEPPERS:
        st = make_stepper(name, g, 1e-2, (2,), forcing=S.fno_forcing(g))
        w = S.to_spectral(w0.clone())
        start = w.clone()
        st.set_dt(torch.tensor([1e-2, 0.0], dtype=torch.float64))
        for _ in range(5):
            st.step(w)
        assert torch.equal(w[1], start[1])
        ref = _integrate(name, g, w0[0], 1e-2, 1e-2, 5e-2, forcing=S.fno_forcing(g))
        assert (w[0] - ref[0]).abs().max() < 1e-12 * ref.abs().max()


def test_cfl_mode_takes_steps_at_the_target_cfl_and_is_batch_independent():
    w0 = 10 * fno_grf(32, 0, range(3))  # fast enough for ~20 steps per interval
    solver = NavierStokesSolver(
        32, 1e-3, forcing={"type": "fno"}, stepper="rk3cn", dt=None, dt_mode="cfl", cfl=0.5, cfl_recheck=1.0
    )
    res = solver.run(w0, [0.5, 1.0])
    assert res.valid.all()
    # many steps per interval: the realised CFL number sits just under the target
    assert np.all(res.max_cfl <= 0.55) and np.all(res.max_cfl > 0.4), res.max_cfl
    speed = S.max_velocity(S.to_spectral(torch.from_numpy(w0)), solver.grid).numpy()
    first = np.ceil(0.5 / (0.5 * solver.grid.dx / speed) - 1e-9)
    first_only = solver.run(w0, [0.5])
    assert np.array_equal(first_only.steps, first)
    one = solver.run(w0[1:2], [0.5, 1.0])
    assert (one.vorticity()[0] - res.vorticity()[1]).abs().max() < 1e-12 * res.vorticity()[1].abs().max()
    # re-choosing the steps every 0.1 within the intervals: more (never fewer) steps, same solution
    fine = NavierStokesSolver(
        32, 1e-3, forcing={"type": "fno"}, stepper="rk3cn", dt=None, dt_mode="cfl", cfl=0.5, cfl_recheck=0.1
    ).run(w0, [0.5, 1.0])
    assert np.all(fine.steps >= res.steps) and np.all(fine.max_cfl <= 0.55)
    assert float((fine.vorticity() - res.vorticity()).abs().max() / res.vorticity().abs().max()) < 1e-3


def test_blow_up_is_recorded_not_raised():
    # forward-Euler advection without viscosity is unstable at CFL ~ 0.45: the sample must be flagged
    w0 = fno_grf(32, 0, range(2))
    speed = float(S.max_velocity(S.to_spectral(torch.from_numpy(w0)), S.SpectralGrid(32)).max())
    dt = 0.45 * (1 / 32) / speed
    dt = 1.0 / math.ceil(1.0 / dt)  # a whole number of steps per unit time
    solver = NavierStokesSolver(32, 0.0, stepper="fno", dt=dt)
    res = solver.run(w0, [100 * dt, 200 * dt, 300 * dt])
    assert not res.valid.any()
    assert all(("CFL violation" in r) or ("non-finite" in r) for r in res.reasons)
    assert all(torch.isfinite(s).all() for s in res.snapshots)  # frozen at zero, no NaN spreading


def test_bad_solver_input():
    with pytest.raises(ValueError, match="viscosity must be a finite number >= 0, got -0.001"):
        NavierStokesSolver(32, -1e-3)
    with pytest.raises(ValueError, match="unknown time stepper 'rk9'"):
        NavierStokesSolver(32, 1e-3, stepper="rk9")
    with pytest.raises(ValueError, match="violates the stability limit of the 'fno' scheme"):
        NavierStokesSolver(64, 1e-3, forcing={"type": "fno"}, dt=0.1).run(fno_grf(64, 0, range(1)), [1.0])
    with pytest.raises(ValueError, match="not a whole number of steps"):
        NavierStokesSolver(32, 1e-3, dt=3e-3).run(fno_grf(32, 0, range(1)), [0.01])
    with pytest.raises(ValueError, match="shape"):
        NavierStokesSolver(32, 1e-3, dt=1e-3).run(np.zeros((1, 16, 16)), [0.01])
    with pytest.raises(ValueError, match="cfl must be in"):
        NavierStokesSolver(32, 1e-3, stepper="rk3cn", dt_mode="cfl", cfl=1.2)
