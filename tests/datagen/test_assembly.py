"""The fixed-pattern stencil assembly equals the general sparse assembly (COO + submatrix) it replaced.

``reference_*`` below is the previous implementation, kept here only as the independent statement of
the operators: every face ``w_f (e_p - e_q)(e_p - e_q)^T`` summed through COO, the Dirichlet system
as the submatrix ``K[inner][:, inner]`` and the lift as ``-K_IB g_B``.
"""

import time

import numpy as np
import pytest
import scipy.sparse as sp

from datagen.elliptic.assembly import (
    block_average,
    diffusion_graph_laplacian,
    diffusion_system,
    dirichlet_system,
    dual_volumes,
    face_weights,
    interior_mask,
    scale_and_shift,
    stencil_pattern,
)
from datagen.elliptic.darcy import Darcy, darcy_system
from datagen.elliptic.heat import Heat, theta_step_matrices
from datagen.elliptic.helmholtz import Helmholtz, helmholtz_system
from datagen.elliptic.poisson import Poisson, poisson_system


def reference_laplacian(a):
    a = np.asarray(a, dtype=np.float64)
    shape, d = a.shape, a.ndim
    h = 1.0 / (shape[0] - 1)
    index = np.arange(a.size).reshape(shape)
    half = [np.ones(n) for n in shape]
    for w in half:
        w[0] = w[-1] = 0.5
    rows, cols, weights = [], [], []
    for ax in range(d):
        lo = tuple(slice(0, -1) if b == ax else slice(None) for b in range(d))
        hi = tuple(slice(1, None) if b == ax else slice(None) for b in range(d))
        w = 2.0 * a[lo] * a[hi] / (a[lo] + a[hi]) / h**2
        for other in range(d):
            if other != ax:
                w = w * half[other].reshape(tuple(-1 if b == other else 1 for b in range(d)))
        rows.append(index[lo].ravel())
        cols.append(index[hi].ravel())
        weights.append(w.ravel())
    p, q, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    n = a.size
    off = sp.coo_matrix((-w, (p, q)), shape=(n, n))
    diag = np.bincount(p, weights=w, minlength=n) + np.bincount(q, weights=w, minlength=n)
    K = (off + off.T + sp.diags(diag)).tocsr()
    K.sum_duplicates()
    K.sort_indices()
    return K


def reference_dirichlet(K, shape, g=None):
    inner = interior_mask(shape).ravel()
    A = K[inner][:, inner].tocsr()
    A.sort_indices()
    lift = np.zeros(A.shape[0]) if g is None else -(K[inner] @ np.where(inner, 0.0, g.ravel()))
    return A, lift


def assert_same_matrix(A, B, rtol=0.0):
    A, B = sp.csr_matrix(A), sp.csr_matrix(B)
    A.sort_indices()
    B.sort_indices()
    assert A.shape == B.shape
    np.testing.assert_array_equal(A.indptr, B.indptr)
    np.testing.assert_array_equal(A.indices, B.indices)
    if rtol == 0.0:
        np.testing.assert_array_equal(A.data, B.data)  # bit for bit: the same sums in the same order
    else:
        np.testing.assert_allclose(A.data, B.data, rtol=rtol, atol=0.0)


def lognormal(shape, seed):
    return np.exp(np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize("shape", [(3, 3), (7, 7), (17, 17), (4, 4, 4), (9, 9, 9)])
def test_stencil_laplacian_and_dirichlet_system_equal_the_sparse_assembly(shape):
    a = lognormal(shape, 1)
    g = np.random.default_rng(2).standard_normal(shape)
    K_ref = reference_laplacian(a)
    assert_same_matrix(diffusion_graph_laplacian(a), K_ref)
    A_ref, lift_ref = reference_dirichlet(K_ref, shape, g)
    A, lift = diffusion_system(a, g)
    assert_same_matrix(A, A_ref)
    # the lift sums the same products in another order: equal to round-off
    np.testing.assert_allclose(lift, lift_ref, rtol=1e-14, atol=1e-14 * np.abs(lift_ref).max())
    # the generic restriction (kept for any K) agrees as well
    A2, lift2 = dirichlet_system(K_ref, shape, g)
    assert_same_matrix(A2, A_ref)
    np.testing.assert_allclose(lift2, lift_ref, rtol=0, atol=0)


def test_family_systems_equal_the_sparse_assembly():
    s = 13
    a, k, f = lognormal((s, s), 3), 3.0 + lognormal((s, s), 4), np.random.default_rng(5).standard_normal((s, s))
    g = np.random.default_rng(6).standard_normal((s, s))
    inner = interior_mask((s, s)).ravel()
    # Darcy with Dirichlet data
    A_ref, lift_ref = reference_dirichlet(reference_laplacian(a), a.shape, g)
    A, b = darcy_system(a, f, g)
    assert_same_matrix(A, A_ref)
    np.testing.assert_allclose(b, f.ravel()[inner] + lift_ref, rtol=1e-14, atol=1e-12)
    # Poisson
    K1 = reference_laplacian(np.ones((s, s)))
    A_ref, lift_ref = reference_dirichlet(K1, (s, s), g)
    A, b = poisson_system(f, g)
    assert_same_matrix(A, A_ref)
    np.testing.assert_allclose(b, f.ravel()[inner] + lift_ref, rtol=1e-14, atol=1e-12)
    # Helmholtz, both boundary conditions: Laplacian minus the lumped k^2 mass
    k2 = (k**2).ravel()
    A_ref = (reference_dirichlet(K1, (s, s))[0] - sp.diags(k2[inner])).tocsr()
    assert_same_matrix(helmholtz_system(k, f, "dirichlet")[0], A_ref)
    A_ref = (K1 - sp.diags(k2 * dual_volumes((s, s)).ravel())).tocsr()
    assert_same_matrix(helmholtz_system(k, f, "neumann")[0], A_ref)
    # heat: theta-scheme matrices from the Dirichlet Laplacian
    L = reference_dirichlet(reference_laplacian(a), a.shape)[0]
    eye = sp.identity(L.shape[0], format="csr")
    for theta in (1.0, 0.5):
        lhs, rhs = theta_step_matrices(L, 0.01, theta)
        assert_same_matrix(lhs, eye + (theta * 0.01) * L)
        u = np.random.default_rng(7).standard_normal(L.shape[0])
        np.testing.assert_allclose(rhs @ u, (eye - ((1 - theta) * 0.01) * L) @ u, rtol=1e-14, atol=1e-13)


def test_families_assemble_the_reference_operator_for_their_samples():
    s = 17
    for fam in (
        Darcy(s),
        Darcy(9, dim=3, coefficient="piecewise"),
        Heat(s, n_steps=2),
        Helmholtz(s, bc="neumann", wavenumber=6.0),
        Poisson(s),
    ):
        smp = fam.sample(0, 3)
        A = fam.operator(smp)
        if isinstance(fam, Darcy):
            ref = reference_dirichlet(reference_laplacian(smp.inputs["a"]), fam.shape)[0]
        elif isinstance(fam, Heat):
            L = reference_dirichlet(reference_laplacian(smp.inputs["a"]), fam.shape)[0]
            ref = sp.identity(L.shape[0]) + (fam.theta * fam.dt) * L
        elif isinstance(fam, Helmholtz):
            k2v = (smp.inputs["k"] ** 2 * dual_volumes(fam.shape)).ravel()
            ref = reference_laplacian(np.ones(fam.shape)) - sp.diags(k2v)
        else:
            ref = reference_dirichlet(reference_laplacian(np.ones(fam.shape)), fam.shape)[0]
        assert_same_matrix(A, ref)


def test_scale_and_shift_falls_back_without_a_stored_diagonal():
    A = sp.csr_matrix(np.array([[0.0, 2.0], [3.0, 4.0]]))
    A.eliminate_zeros()
    np.testing.assert_array_equal(scale_and_shift(A, 2.0, 1.0).toarray(), [[1.0, 4.0], [6.0, 9.0]])


def test_stencil_pattern_is_cached_read_only_and_checks_the_weights():
    p = stencil_pattern((9, 9), True)
    assert stencil_pattern((9, 9), True) is p and p.size == 49
    assert not p.gather.flags.writeable and not p.indices.flags.writeable
    with pytest.raises(ValueError):
        p.matrix(face_weights(np.ones((7, 7))))
    with pytest.raises(ValueError, match="positive"):
        face_weights(-np.ones((5, 5)))


def test_block_average_equals_the_mean_over_each_cell():
    rng = np.random.default_rng(0)
    for shape, cells in (((37, 37), 16), ((10, 11, 12), 4), ((5, 5), 16)):
        x = rng.standard_normal(shape)
        out = block_average(x, cells)
        # independent statement: cell of node j along an axis of n nodes is floor(j c / n)
        ref = np.zeros(out.shape)
        cnt = np.zeros(out.shape)
        idx = np.indices(shape).reshape(len(shape), -1)
        owner = tuple(np.minimum(idx[ax] * out.shape[ax] // shape[ax], out.shape[ax] - 1) for ax in range(len(shape)))
        np.add.at(ref, owner, x.ravel())
        np.add.at(cnt, owner, 1.0)
        np.testing.assert_allclose(out, ref / cnt, rtol=1e-12, atol=1e-14)


def test_vectorised_assembly_is_faster_than_the_sparse_route():
    """The reason for the pattern: at 129^2 the gather is several times cheaper (loose bound, loaded CI)."""
    a = lognormal((129, 129), 0)
    diffusion_system(a)

    def best(fn, reps=5):
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    fast = best(lambda: diffusion_system(a))
    slow = best(lambda: reference_dirichlet(reference_laplacian(a), a.shape))
    assert fast < slow / 2, (fast, slow)
