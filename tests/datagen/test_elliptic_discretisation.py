"""Each elliptic discretisation converges at its expected order on a manufactured solution."""

import math

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import sympy as sym

from datagen.elliptic.assembly import diffusion_graph_laplacian, dirichlet_system, embed_interior
from datagen.elliptic.darcy import darcy_system
from datagen.elliptic.heat import theta_trajectory
from datagen.elliptic.helmholtz import helmholtz_system
from datagen.elliptic.poisson import poisson_system

X, Y, Z, T = sym.symbols("x y z t")


def grid(s, d):
    x = np.linspace(0, 1, s)
    return np.meshgrid(*([x] * d), indexing="ij")


def lam(expr, syms):
    return sym.lambdify(syms, expr, "numpy")


def rates(errors, sizes):
    h = [1.0 / (s - 1) for s in sizes]
    return [math.log(errors[i] / errors[i + 1]) / math.log(h[i] / h[i + 1]) for i in range(len(errors) - 1)]


def darcy_error(s, d):
    syms = (X, Y, Z)[:d]
    u = sym.sin(sym.pi * X) * sym.sin(2 * sym.pi * Y) * sym.exp(X)
    a = 1 + 0.5 * sym.sin(2 * sym.pi * X) * sym.cos(sym.pi * Y) + X * Y
    if d == 3:
        u = u * sym.sin(sym.pi * Z)
        a = a + Z**2
    f = -sum(sym.diff(a * sym.diff(u, v), v) for v in syms)
    pts = grid(s, d)
    an, fn, un = (np.broadcast_to(lam(e, syms)(*pts), pts[0].shape) for e in (a, f, u))
    A, b = darcy_system(an, fn)
    x = spla.spsolve(A.tocsc(), b)
    return np.abs(embed_interior(x, an.shape) - un).max()


@pytest.mark.parametrize("d, sizes", [(2, [17, 33, 65]), (3, [9, 17, 25])])
def test_darcy_harmonic_mean_scheme_is_second_order(d, sizes):
    errs = [darcy_error(s, d) for s in sizes]
    assert all(r > 1.85 for r in rates(errs, sizes)), (errs, rates(errs, sizes))


def test_darcy_matrix_is_symmetric_positive_definite_and_conservative():
    rng = np.random.default_rng(0)
    a = np.exp(rng.standard_normal((12, 12)))
    A, _ = darcy_system(a, 1.0)
    assert abs(A - A.T).max() < 1e-12
    assert np.linalg.eigvalsh(A.toarray()).min() > 0
    # conservative: the full graph Laplacian annihilates constants (fluxes sum to zero)
    K = diffusion_graph_laplacian(a)
    assert np.abs(K @ np.ones(a.size)).max() < 1e-9 * np.abs(K).max()
    # harmonic-mean face coefficient between nodes (3,4) and (4,4), h = 1/11: off-diagonal -a_f/h^2
    h = 1 / 11
    af = 2 * a[3, 4] * a[4, 4] / (a[3, 4] + a[4, 4])
    p, q = 2 * 10 + 3, 3 * 10 + 3  # interior numbering (i-1)*(s-2) + (j-1)
    assert A[p, q] == pytest.approx(-af / h**2, rel=1e-12)


@pytest.mark.parametrize("bc", ["dirichlet", "neumann"])
def test_helmholtz_is_second_order(bc):
    k = (5 + X * Y) if bc == "dirichlet" else (2 + X * Y / 2)  # k^2 between Laplacian eigenvalues
    if bc == "dirichlet":
        u = sym.sin(sym.pi * X) * sym.sin(sym.pi * Y) * (1 + X)
    else:
        u = sym.cos(sym.pi * X) * sym.cos(2 * sym.pi * Y) + sym.cos(3 * sym.pi * Y)
    f = -sym.diff(u, X, 2) - sym.diff(u, Y, 2) - k**2 * u
    sizes = [17, 33, 65]
    errs = []
    for s in sizes:
        pts = grid(s, 2)
        kn, fn, un = (np.broadcast_to(lam(e, (X, Y))(*pts), pts[0].shape) for e in (k, f, u))
        A, b = helmholtz_system(kn, fn, bc)
        assert abs(A - A.T).max() < 1e-9 * abs(A).max()
        x = spla.spsolve(A.tocsc(), b)
        uh = embed_interior(x, kn.shape) if bc == "dirichlet" else x.reshape(kn.shape)
        errs.append(np.abs(uh - un).max())
    assert all(r > 1.85 for r in rates(errs, sizes)), (errs, rates(errs, sizes))


def test_poisson_with_boundary_data_is_second_order():
    u = sym.exp(X) * sym.sin(2 * Y) + X * Y**3
    f = -sym.diff(u, X, 2) - sym.diff(u, Y, 2)
    sizes = [17, 33, 65]
    errs = []
    for s in sizes:
        pts = grid(s, 2)
        fn, un = (np.broadcast_to(lam(e, (X, Y))(*pts), pts[0].shape) for e in (f, u))
        A, b = poisson_system(fn, un)  # boundary values of the exact solution as data
        x = spla.spsolve(A.tocsc(), b)
        errs.append(np.abs(embed_interior(x, un.shape, boundary_values=un) - un).max())
    assert all(r > 1.9 for r in rates(errs, sizes)), (errs, rates(errs, sizes))


def heat_solution(s, dt, n_steps, theta):
    """u = exp(-t) sin(pi x) sin(pi y) (1 + x), a = 1 + x y; returns (numerical, exact) at T."""
    a = 1 + X * Y
    u = sym.exp(-T) * sym.sin(sym.pi * X) * sym.sin(sym.pi * Y) * (1 + X)
    f = sym.diff(u, T) - sym.diff(a * sym.diff(u, X), X) - sym.diff(a * sym.diff(u, Y), Y)
    pts = grid(s, 2)
    inner = (slice(1, -1), slice(1, -1))
    an = lam(a, (X, Y))(*pts)
    L = dirichlet_system(diffusion_graph_laplacian(an), an.shape)[0]
    f_t, u_t = lam(f, (X, Y, T)), lam(u, (X, Y, T))
    lu = spla.splu((__import__("scipy.sparse", fromlist=["identity"]).identity(L.shape[0]) + theta * dt * L).tocsc())
    states = theta_trajectory(
        L,
        u_t(*pts, 0.0)[inner].ravel(),
        dt,
        n_steps,
        theta,
        lambda b, x0: lu.solve(b),
        source=lambda t: f_t(*pts, t)[inner].ravel(),
    )
    return states[-1], u_t(*pts, dt * n_steps)[inner].ravel()


@pytest.mark.parametrize("theta, order", [(1.0, 1), (0.5, 2)])
def test_heat_time_order(theta, order):
    """Successive differences of the final state as dt halves fall like dt^order (spatial error cancels)."""
    s, T_end = 17, 0.4
    finals = [heat_solution(s, T_end / n, n, theta)[0] for n in (16, 32, 64, 128)]
    diffs = [np.abs(finals[i] - finals[i + 1]).max() for i in range(3)]
    r = [math.log2(diffs[i] / diffs[i + 1]) for i in range(2)]
    # Crank-Nicolson reaches its asymptotic rate from above (undamped stiff modes start tiny)
    assert abs(r[-1] - order) < 0.2 and r[0] > order - 0.2, (diffs, r)


def test_heat_space_order():
    """Crank-Nicolson with a small step: the error against the exact solution falls like h^2."""
    sizes = [9, 17, 33]
    errs = []
    for s in sizes:
        num, exact = heat_solution(s, 0.2 / 200, 200, 0.5)
        errs.append(np.abs(num - exact).max())
    assert all(r > 1.85 for r in rates(errs, sizes)), (errs, rates(errs, sizes))
