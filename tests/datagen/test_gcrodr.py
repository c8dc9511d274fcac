"""GCRO-DR(m, k) on petsc4py (datagen.krylov): correctness against independent computations.

Test matrices are built here with SciPy (5-point variable-coefficient diffusion, a shifted
indefinite variant); nothing depends on the PDE-family modules.
"""

import contextlib

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

petsc4py = pytest.importorskip("petsc4py")
from petsc4py import PETSc  # noqa: E402

from datagen.krylov import GCRODR, PCReusePolicy, SolveResult  # noqa: E402
from datagen.krylov.harmonic_ritz import harmonic_ritz_basis  # noqa: E402
from datagen.krylov.reference import ReferenceGCRODR  # noqa: E402


# ----------------------------------------------------------------------------- helpers
def smooth_field(n, rng, decay=3.0):
    k = np.fft.fftfreq(n) * n
    filt = (1.0 + k[:, None] ** 2 + k[None, :] ** 2) ** (-decay / 2)
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * filt))
    return field / field.std()


def diffusion(coef, shift=0.0):
    """-div(coef grad u) - shift u, conservative 5-point stencil, zero Dirichlet, h = 1/(n+1)."""
    n = coef.shape[0]
    h = 1.0 / (n + 1)
    idx = np.arange(n * n).reshape(n, n)
    rows, cols, vals = [], [], []
    diag = np.zeros((n, n))
    fx = 2 * coef[:-1] * coef[1:] / (coef[:-1] + coef[1:])
    fy = 2 * coef[:, :-1] * coef[:, 1:] / (coef[:, :-1] + coef[:, 1:])
    for face, lo, hi in ((fx, idx[:-1], idx[1:]), (fy, idx[:, :-1], idx[:, 1:])):
        rows += [lo.ravel(), hi.ravel()]
        cols += [hi.ravel(), lo.ravel()]
        vals += [-face.ravel(), -face.ravel()]
    diag[:-1] += fx
    diag[1:] += fx
    diag[:, :-1] += fy
    diag[:, 1:] += fy
    diag[0] += coef[0]
    diag[-1] += coef[-1]
    diag[:, 0] += coef[:, 0]
    diag[:, -1] += coef[:, -1]
    rows.append(idx.ravel())
    cols.append(idx.ravel())
    vals.append(diag.ravel() - shift * h * h)
    mat = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n, n * n))
    return (mat / (h * h)).tocsr()


def sequence(n, count, seed=0, step=0.05, shift=0.0, amplitude=1.0):
    """Slowly varying systems, like neighbours after sorting: a = exp(cos t g1 + sin t g2)."""
    rng = np.random.default_rng(seed)
    g1, g2 = smooth_field(n, rng), smooth_field(n, rng)
    return [diffusion(np.exp(amplitude * (np.cos(step * i) * g1 + np.sin(step * i) * g2)), shift) for i in range(count)]


def to_petsc(mat):
    mat = mat.tocsr()
    return PETSc.Mat().createAIJ(size=mat.shape, csr=(mat.indptr, mat.indices, mat.data), comm=PETSc.COMM_SELF)


def vec(values):
    return PETSc.Vec().createWithArray(np.array(values, dtype=float), comm=PETSc.COMM_SELF)


_prefix_counter = [0]


def make_solver(pc_type="ilu", **kwargs):
    _prefix_counter[0] += 1
    prefix = f"tgcrodr{_prefix_counter[0]}_"
    PETSc.Options()[prefix + "pc_type"] = pc_type
    return GCRODR(options_prefix=prefix, **kwargs)


@contextlib.contextmanager
def options_ksp(prefix, settings):
    """A KSP set up from ``settings`` under ``prefix`` in the options database (both removed after)."""
    opts = PETSc.Options()
    for key, value in settings.items():
        opts[prefix + key] = value
    ksp = None
    try:
        ksp = PETSc.KSP().create(PETSc.COMM_SELF)
        ksp.setOptionsPrefix(prefix)
        ksp.setFromOptions()
        yield ksp
    finally:
        if ksp is not None:
            ksp.destroy()
        for key in settings:
            opts.delValue(prefix + key)


def petsc_gmres(A, b, restart, rtol, pc_type="ilu", max_it=10000):
    ksp = PETSc.KSP().create(PETSc.COMM_SELF)
    ksp.setType("gmres")
    ksp.setGMRESRestart(restart)
    ksp.setPCSide(PETSc.PC.Side.RIGHT)
    ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
    ksp.setTolerances(rtol=rtol, atol=0.0, max_it=max_it)
    ksp.getPC().setType(pc_type)
    ksp.setOperators(A)
    x = A.createVecRight()
    x.set(0.0)
    ksp.solve(b, x)
    its, reason = ksp.getIterationNumber(), ksp.getConvergedReason()
    out = x.getArray().copy()
    ksp.destroy()
    return out, its, reason


def true_relative_residual(mat, b, x):
    return np.linalg.norm(b - mat @ x) / np.linalg.norm(b)


def solve_checked(solver, mat, rtol):
    """Solve ``mat x = 1`` from zero; assert convergence and the true residual; return the result."""
    rhs = np.ones(mat.shape[0])
    x = vec(np.zeros(mat.shape[0]))
    res = solver.solve(to_petsc(mat), vec(rhs), x)
    assert res.converged
    assert true_relative_residual(mat, rhs, x.getArray()) <= rtol
    return res


# ----------------------------------------------------------------------------- tests
def test_single_system_matches_direct_solve():
    mat = sequence(32, 1, seed=3)[0]
    rhs = np.random.default_rng(0).standard_normal(mat.shape[0])
    A, b = to_petsc(mat), vec(rhs)
    x = vec(np.zeros(mat.shape[0]))
    res = make_solver(restart=20, recycle=6, rtol=1e-11).solve(A, b, x)
    exact = spla.spsolve(mat.tocsc(), rhs)
    assert res.converged and res.reason == "CONVERGED_RTOL"
    assert np.linalg.norm(x.getArray() - exact) <= 1e-8 * np.linalg.norm(exact)
    # the reported residual is the true one, recomputed independently here
    assert res.residual == pytest.approx(true_relative_residual(mat, rhs, x.getArray()), rel=1e-6)
    assert res.residual <= 1e-11


@pytest.mark.parametrize("pc_type", ["ilu", "jacobi"])
def test_sequence_needs_fewer_iterations_than_petsc_gmres(pc_type):
    mats = sequence(40, 6, seed=1)
    rtol, m = 1e-8, 30
    solver = make_solver(pc_type, restart=m, recycle=10, rtol=rtol)
    total_gcrodr, total_gmres = 0, 0
    for mat in mats:
        A = to_petsc(mat)
        rhs = np.ones(mat.shape[0])
        x = vec(np.zeros(mat.shape[0]))
        res = solver.solve(A, vec(rhs), x)
        assert res.converged
        assert true_relative_residual(mat, rhs, x.getArray()) <= rtol
        total_gcrodr += res.iterations
        _, its, reason = petsc_gmres(A, vec(rhs), m, rtol, pc_type)
        assert reason > 0
        total_gmres += its
    assert total_gcrodr < 0.7 * total_gmres, (total_gcrodr, total_gmres)


def test_recycle_zero_is_gmres():
    mat = sequence(40, 1, seed=2)[0]
    rhs = np.random.default_rng(1).standard_normal(mat.shape[0])
    A = to_petsc(mat)
    for m in (10, 30):
        x = vec(np.zeros(mat.shape[0]))
        res = make_solver(restart=m, recycle=0, rtol=1e-8).solve(A, vec(rhs), x)
        x_gmres, its, reason = petsc_gmres(A, vec(rhs), m, 1e-8)
        assert reason > 0 and res.converged
        assert abs(res.iterations - its) <= 2, (res.iterations, its)
        assert np.linalg.norm(x.getArray() - x_gmres) <= 1e-6 * np.linalg.norm(x_gmres)


def test_matches_reference_implementation_on_a_sequence():
    """The blocked solver (carried C^T U, U^T U recurrences, Cholesky QR, fused GEMMs) and the
    plain reference (explicit inner products, Householder QR, lstsq) take the same iterations."""
    mats = sequence(24, 5, seed=4, step=0.1)
    m, k, rtol = 16, 6, 1e-9
    solver = make_solver(
        "jacobi", restart=m, recycle=k, rtol=rtol, reorthogonalize="always", update_rank_tol=0.0
    )  # the full update of Parks et al., as the reference
    diag_inv = None
    reference = ReferenceGCRODR(m, k, rtol, apply_pc=lambda v: diag_inv * v)
    for mat in mats:
        diag_inv = 1.0 / mat.diagonal()
        rhs = np.ones(mat.shape[0])
        x = vec(np.zeros(mat.shape[0]))
        res = solver.solve(to_petsc(mat), vec(rhs), x)
        x_ref, its_ref, resid_ref = reference.solve(mat, rhs, np.zeros(mat.shape[0]))
        assert res.converged and resid_ref <= rtol
        assert abs(res.iterations - its_ref) <= 1, (res.iterations, its_ref)
        assert np.linalg.norm(x.getArray() - x_ref) <= 1e-6 * np.linalg.norm(x_ref)
    assert solver.recycle_dim == k


def test_low_rank_update_keeps_the_recycling_relation_exact():
    """After solves whose recycled-space updates were low-rank (rank-r changes in place), the
    stored vectors still satisfy Op U = C Lambda with orthonormal C, and the carried small Gram
    matrices C^T U and U^T U equal the products formed here from the stored vectors."""
    mats = sequence(40, 5, seed=7, step=0.05)
    solver = make_solver("jacobi", restart=24, recycle=8, rtol=1e-9, update_rank_tol=0.1)
    for mat in mats:
        solve_checked(solver, mat, 1e-9)
    stats = solver.update_stats
    assert stats["low_rank"] > 0 and 0 < stats["rank_sum"] < stats["low_rank"] * 8, stats
    U, C, lam = solver.recycled_space()
    assert U.shape == C.shape == (8, mats[-1].shape[0]) and lam.shape == (8, 8)
    op_u = mats[-1] @ (U.T / mats[-1].diagonal()[:, None])  # A M^{-1} U, M = diag(A)
    assert np.linalg.norm(op_u - C.T @ lam) <= 1e-9 * np.linalg.norm(op_u)
    assert np.abs(C @ C.T - np.eye(8)).max() <= 1e-10
    assert np.allclose(solver._ctu, C @ U.T, rtol=0, atol=1e-9)
    assert np.allclose(solver._utu, U @ U.T, rtol=0, atol=1e-9)


@pytest.mark.parametrize("shift", [0.0, 160.0])
def test_low_rank_update_takes_the_iterations_of_the_full_update(shift):
    """The low-rank update only drops components below its threshold: on a sorted sequence
    (SPD, and indefinite) it needs the full update's iterations to within a few percent, while
    writing fewer directions than the full update would (k per update)."""
    mats = sequence(40, 5, seed=8, step=0.05, shift=shift, amplitude=0.3 if shift else 1.0)
    totals = {}
    for tol in (0.0, 0.1):
        solver = make_solver("ilu", restart=24, recycle=10, rtol=1e-9, max_it=3000, update_rank_tol=tol)
        totals[tol] = 0
        for mat in mats:
            totals[tol] += solve_checked(solver, mat, 1e-9).iterations
        if tol:
            stats = solver.update_stats
            assert stats["low_rank"] + stats["unchanged"] > stats["full"], stats
            assert stats["rank_sum"] <= 0.5 * 10 * stats["low_rank"], stats
        else:
            assert solver.update_stats["low_rank"] == 0
    assert abs(totals[0.1] - totals[0.0]) <= 0.05 * totals[0.0] + 2, totals


def test_nonconvergence_is_reported():
    mat = sequence(32, 1, seed=5)[0]
    rhs = np.ones(mat.shape[0])
    x = vec(np.zeros(mat.shape[0]))
    res = make_solver("none", restart=10, recycle=4, rtol=1e-10, max_it=7).solve(to_petsc(mat), vec(rhs), x)
    assert not res.converged
    assert res.reason == "DIVERGED_MAX_IT"
    assert res.iterations == 7
    independent = true_relative_residual(mat, rhs, x.getArray())
    assert res.residual == pytest.approx(independent, rel=1e-8)
    assert res.residual > 1e-10


def test_indefinite_shifted_operator():
    """-div(a grad u) - s u with s past several eigenvalues: GMRES(m) restarts stagnate, the
    recycled space (deflating the small harmonic Ritz values) converges."""
    mats = sequence(32, 3, seed=6, shift=160.0, amplitude=0.3)
    eigs = np.linalg.eigvalsh(mats[0].toarray())
    assert (eigs < 0).sum() >= 8  # genuinely indefinite
    rtol, m = 1e-8, 20
    solver = make_solver("ilu", restart=m, recycle=8, rtol=rtol, max_it=3000)
    total_gcrodr, total_gmres = 0, 0
    for mat in mats:
        total_gcrodr += solve_checked(solver, mat, rtol).iterations
        _, its, _ = petsc_gmres(to_petsc(mat), vec(np.ones(mat.shape[0])), m, rtol, "ilu", max_it=3000)
        total_gmres += its  # 3000 where GMRES(m) stalls
    assert total_gcrodr < 0.2 * total_gmres, (total_gcrodr, total_gmres)


def test_left_preconditioning_stops_on_true_residual():
    mats = sequence(32, 3, seed=7)
    rtol = 1e-8
    solver = make_solver("ilu", restart=20, recycle=6, rtol=rtol, pc_side="left")
    for mat in mats:
        rhs = np.random.default_rng(2).standard_normal(mat.shape[0])
        x = vec(np.zeros(mat.shape[0]))
        res = solver.solve(to_petsc(mat), vec(rhs), x)
        assert res.converged
        assert true_relative_residual(mat, rhs, x.getArray()) <= rtol
        assert res.residual == pytest.approx(true_relative_residual(mat, rhs, x.getArray()), rel=1e-6)


def test_initial_guess_and_zero_rhs():
    mat = sequence(24, 1, seed=8)[0]
    A = to_petsc(mat)
    rhs = np.ones(mat.shape[0])
    exact = spla.spsolve(mat.tocsc(), rhs)
    solver = make_solver(restart=20, recycle=5, rtol=1e-8)
    res = solver.solve(A, vec(rhs), vec(exact))  # exact initial guess: nothing to do
    assert res.converged and res.iterations == 0
    x = vec(np.ones(mat.shape[0]))
    res = solver.solve(A, vec(np.zeros(mat.shape[0])), x)
    assert res.converged and res.reason == "CONVERGED_ZERO_RHS"
    assert np.all(x.getArray() == 0.0)


def test_same_matrix_new_rhs_reuses_space_without_remap():
    mat = sequence(32, 1, seed=9)[0]
    A = to_petsc(mat)
    rng = np.random.default_rng(3)
    solver = make_solver(restart=20, recycle=8, rtol=1e-8)
    first = solver.solve(A, vec(rng.standard_normal(mat.shape[0])), vec(np.zeros(mat.shape[0])))
    second = solver.solve(A, vec(rng.standard_normal(mat.shape[0])), vec(np.zeros(mat.shape[0])))
    assert first.converged and second.converged
    assert not second.pc_rebuilt  # same matrix: the PC is exact for it
    # no k extra operator applications for a re-map: one per Arnoldi step and per residual
    assert second.operator_applications == second.iterations + second.cycles + 1
    assert second.iterations < first.iterations


def test_reset_reproduces_a_fresh_start():
    mats = sequence(24, 3, seed=10)
    solver = make_solver(restart=16, recycle=6, rtol=1e-9)
    counts = []
    for mat in mats:
        counts.append(solver.solve(to_petsc(mat), vec(np.ones(mat.shape[0])), vec(np.zeros(mat.shape[0]))).iterations)
    solver.reset()
    assert solver.recycle_dim == 0
    again = solver.solve(to_petsc(mats[0]), vec(np.ones(mats[0].shape[0])), vec(np.zeros(mats[0].shape[0]))).iterations
    assert again == counts[0]
    assert counts[2] < counts[0]
    solver.destroy()  # frees the PETSc objects; the solver starts empty if used again
    assert solver.recycle_dim == 0 and solver.pc is None
    assert (
        solver.solve(to_petsc(mats[0]), vec(np.ones(mats[0].shape[0])), vec(np.zeros(mats[0].shape[0]))).iterations
        == counts[0]
    )


def test_pc_reuse_keeps_neighbour_preconditioner():
    mats = sequence(32, 5, seed=11, step=0.02)
    rtol = 1e-8
    solver = make_solver("ilu", restart=20, recycle=8, rtol=rtol)
    solver.set_pc_reuse(max_systems=3, iteration_growth=10.0)
    rebuilt = []
    for mat in mats:
        rebuilt.append(solve_checked(solver, mat, rtol).pc_rebuilt)
    assert rebuilt == [True, False, False, True, False]


def test_pc_reuse_policy_rebuilds_when_iterations_grow():
    policy = PCReusePolicy(max_systems=10, iteration_growth=1.5, min_baseline=10)
    assert policy.needs_rebuild("A0") and not policy.keeps_for_new_matrix()
    policy.built("A0")
    policy.solved(40)
    assert not policy.needs_rebuild("A1") and policy.keeps_for_new_matrix()
    policy.solved(59)
    assert not policy.needs_rebuild("A2")
    policy.solved(61)
    assert policy.needs_rebuild("A3") and not policy.keeps_for_new_matrix()
    assert not policy.needs_rebuild("A0")  # the matrix the PC was built for
    # a near-exact PC (2 iterations) is not rebuilt for reaching 12: the baseline floor is 10
    policy.built("B0")
    policy.solved(2)
    policy.solved(12)
    assert not policy.needs_rebuild("B1")
    policy.solved(16)
    assert policy.needs_rebuild("B2")
    with pytest.raises(ValueError, match="min_baseline"):
        PCReusePolicy(min_baseline=0)


def test_ksp_python_route_via_options():
    mats = sequence(32, 3, seed=12)
    settings = {
        "ksp_type": "python",
        "ksp_python_type": "datagen.krylov.ksp_python.GCRODRKSP",
        "ksp_gcrodr_restart": 20,
        "ksp_gcrodr_recycle": 6,
        "ksp_gcrodr_update_rank_tol": 0.2,
        "ksp_rtol": 1e-9,
        "ksp_atol": 0.0,
        "pc_type": "ilu",
    }
    with options_ksp("tkspgcrodr_", settings) as ksp:
        assert ksp.getType() == "python"
        assert ksp.getPCSide() == PETSc.PC.Side.RIGHT
        direct = make_solver("ilu", restart=20, recycle=6, rtol=1e-9, reorthogonalize="never", update_rank_tol=0.2)
        for mat in mats:
            A = to_petsc(mat)
            rhs = np.ones(mat.shape[0])
            x = vec(np.zeros(mat.shape[0]))
            ksp.setOperators(A)
            ksp.solve(vec(rhs), x)
            assert ksp.getConvergedReason() > 0
            assert true_relative_residual(mat, rhs, x.getArray()) <= 1e-9
            assert ksp.getResidualNorm() == pytest.approx(np.linalg.norm(rhs - mat @ x.getArray()), rel=1e-6)
            res = direct.solve(A, vec(rhs), vec(np.zeros(mat.shape[0])))
            assert ksp.getIterationNumber() == res.iterations
        ctx = ksp.getPythonContext()
        assert ctx.solver.recycle_dim == 6
        assert ctx.solver.update_rank_tol == 0.2
        # a cap that is too small ends with a negative (diverged) reason, never a positive one
        ksp.setTolerances(max_it=3)
        ksp.solve(vec(np.ones(mats[0].shape[0])), vec(np.zeros(mats[0].shape[0])))
        assert ksp.getConvergedReason() < 0
        assert ctx.last_result.reason == "DIVERGED_MAX_IT"


def test_ksp_python_rejects_bad_option():
    opts = PETSc.Options()
    prefix = "tkspbad_"
    opts[prefix + "ksp_type"] = "python"
    opts[prefix + "ksp_python_type"] = "datagen.krylov.ksp_python.GCRODRKSP"
    opts[prefix + "ksp_gcrodr_recycle"] = 50
    try:
        ksp = PETSc.KSP().create(PETSc.COMM_SELF)
        ksp.setOptionsPrefix(prefix)
        with pytest.raises(PETSc.Error) as info:
            ksp.setFromOptions()
        # petsc4py keeps the Python error as the cause: the message names the bad value
        assert isinstance(info.value.__cause__, ValueError)
        assert "recycle (k)" in str(info.value.__cause__) and "50" in str(info.value.__cause__)
    finally:
        for key in ("ksp_type", "ksp_python_type", "ksp_gcrodr_recycle"):
            opts.delValue(prefix + key)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(restart=0), "restart"),
        (dict(restart=10, recycle=10), "recycle"),
        (dict(recycle=-1), "recycle"),
        (dict(rtol=0.0, atol=0.0), "rtol and atol"),
        (dict(rtol=-1e-8), "rtol"),
        (dict(rtol=1.5), "rtol"),
        (dict(max_it=0), "max_it"),
        (dict(pc_side="symmetric"), "pc_side"),
        (dict(reorthogonalize="sometimes"), "reorthogonalize"),
        (dict(update_interval=0), "update_interval"),
        (dict(update_rank_tol=1.0), "update_rank_tol"),
        (dict(update_rank_tol=-0.1), "update_rank_tol"),
        (dict(update_rank_tol=float("nan")), "update_rank_tol"),
    ],
)
def test_bad_input_raises_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GCRODR(**kwargs)


def test_result_rejects_inconsistent_state():
    with pytest.raises(ValueError, match="contradicts"):
        SolveResult(iterations=1, residual=1.0, converged=True, seconds=0.0, reason="DIVERGED_MAX_IT")


def test_harmonic_ritz_on_invariant_subspace_gives_eigenvectors():
    """With a full Krylov space (Arnoldi breaks down) harmonic Ritz values are eigenvalues, so
    the selected basis spans the eigenvectors of the smallest |lambda|, including a rotation
    block (complex pair) taken as its real 2-D invariant plane."""
    rng = np.random.default_rng(0)
    n = 8
    A = np.diag([5.0, -0.3, 7.0, 9.0, 2.0, 11.0, 0.0, 0.0])
    A[6:, 6:] = [[0.1, 0.2], [-0.2, 0.1]]  # eigenvalues 0.1 +- 0.2i, |.| = 0.224
    V = np.zeros((n, n + 1))
    H = np.zeros((n + 1, n))
    V[:, 0] = rng.standard_normal(n)
    V[:, 0] /= np.linalg.norm(V[:, 0])
    for j in range(n):
        w = A @ V[:, j]
        for _ in range(2):
            coef = V[:, : j + 1].T @ w
            w -= V[:, : j + 1] @ coef
            H[: j + 1, j] += coef
        H[j + 1, j] = np.linalg.norm(w)
        if j + 1 < n:
            V[:, j + 1] = w / H[j + 1, j]
    assert H[n, n - 1] < 1e-10
    gram = np.eye(n + 1, n)
    P = harmonic_ritz_basis(H, gram, 3)
    Y = V[:, :n] @ P
    target = np.zeros((n, 3))
    target[6, 0] = target[7, 1] = target[1, 2] = 1.0  # the pair's plane and lambda = -0.3
    projector = Y @ np.linalg.pinv(Y)
    assert np.linalg.norm(target - projector @ target) < 1e-8
    assert np.allclose(P.T @ P, np.eye(3))


def test_matrix_refilled_in_place_is_detected_as_new():
    """A Mat whose values are overwritten in place (same object, new state) must trigger the
    re-mapping of the recycled space exactly like a fresh Mat with the same values."""
    mats = sequence(24, 4, seed=13, step=0.1)
    fresh = make_solver("jacobi", restart=16, recycle=6, rtol=1e-9)
    in_place = make_solver("jacobi", restart=16, recycle=6, rtol=1e-9)
    shared = to_petsc(mats[0])
    for mat in mats:
        rhs = np.ones(mat.shape[0])
        res_fresh = fresh.solve(to_petsc(mat), vec(rhs), vec(np.zeros(mat.shape[0])))
        shared.zeroEntries()
        shared.setValuesCSR(mat.indptr, mat.indices, mat.data)
        shared.assemble()
        x = vec(np.zeros(mat.shape[0]))
        res_in_place = in_place.solve(shared, vec(rhs), x)
        assert res_in_place.converged
        assert true_relative_residual(mat, rhs, x.getArray()) <= 1e-9
        assert res_in_place.iterations == res_fresh.iterations
        assert res_in_place.operator_applications == res_fresh.operator_applications


def test_ksp_python_left_side_and_pc_reuse_options():
    mats = sequence(32, 4, seed=14, step=0.02)
    settings = {
        "ksp_type": "python",
        "ksp_python_type": "datagen.krylov.ksp_python.GCRODRKSP",
        "ksp_gcrodr_restart": 20,
        "ksp_gcrodr_recycle": 6,
        "ksp_pc_side": "left",
        "ksp_gcrodr_pc_reuse_max": 2,
        "ksp_rtol": 1e-9,
        "pc_type": "ilu",
    }
    with options_ksp("tkspleft_", settings) as ksp:
        assert ksp.getPCSide() == PETSc.PC.Side.LEFT
        ctx = ksp.getPythonContext()
        reusing = []
        for mat in mats:
            rhs = np.ones(mat.shape[0])
            x = vec(np.zeros(mat.shape[0]))
            ksp.setOperators(to_petsc(mat))
            ksp.solve(vec(rhs), x)
            assert ksp.getConvergedReason() > 0
            assert ctx.solver.pc_side == "left"
            # left preconditioning still stops on the true residual
            assert true_relative_residual(mat, rhs, x.getArray()) <= 1e-9
            reusing.append(ctx._reusing)
        assert reusing == [True, False, True, False]  # build, reuse, build, reuse


def test_pc_reuse_with_stored_preconditioned_space_is_the_same_algorithm():
    """Under PC reuse the solver keeps Z = M^{-1} U~ so that re-mapping onto a new matrix costs
    k products with A instead of k PC applications; the iterates must not change."""
    mats = sequence(32, 5, seed=15, step=0.03)
    with_z = make_solver("ilu", restart=20, recycle=8, rtol=1e-9)
    with_z.set_pc_reuse(max_systems=3, iteration_growth=10.0)
    without_z = make_solver("ilu", restart=20, recycle=8, rtol=1e-9)
    without_z.set_pc_reuse(max_systems=3, iteration_growth=10.0)
    without_z._store_z = False  # force the plain path for comparison
    assert with_z._store_z
    for mat in mats:
        rhs = np.ones(mat.shape[0])
        A = to_petsc(mat)
        x1, x2 = vec(np.zeros(mat.shape[0])), vec(np.zeros(mat.shape[0]))
        r1 = with_z.solve(A, vec(rhs), x1)
        r2 = without_z.solve(A, vec(rhs), x2)
        assert r1.converged and r2.converged
        assert abs(r1.iterations - r2.iterations) <= 1, (r1.iterations, r2.iterations)
        assert np.linalg.norm(x1.getArray() - x2.getArray()) <= 1e-7 * np.linalg.norm(x2.getArray())
        assert true_relative_residual(mat, rhs, x1.getArray()) <= 1e-9
        assert r1.operator_applications == r2.operator_applications
        if not r1.pc_rebuilt:  # re-map under the kept PC: k products with A, no PC application
            assert r1.pc_applications == r1.iterations
            assert r2.pc_applications == r2.iterations + r2.cycles + with_z.recycle


_MPI_SCRIPT = r"""
import sys
sys.path.insert(0, {tests!r})
import numpy as np
from petsc4py import PETSc
from test_gcrodr import sequence
from datagen.krylov import GCRODR
comm = PETSc.COMM_WORLD
PETSc.Options()["mpit_pc_type"] = "jacobi"
solver = GCRODR(20, 6, rtol=1e-9, comm=comm, options_prefix="mpit_")
for mat in sequence(24, 3, seed=1):
    A = PETSc.Mat().createAIJ(size=mat.shape, comm=comm)
    A.setUp()
    lo, hi = A.getOwnershipRange()
    A.setValuesCSR(mat[lo:hi].indptr, mat[lo:hi].indices, mat[lo:hi].data)
    A.assemble()
    b = A.createVecLeft(); b.set(1.0); x = A.createVecRight(); x.set(0.0)
    res = solver.solve(A, b, x)
    full = np.concatenate(comm.tompi4py().allgather(x.getArray()))
    true = np.linalg.norm(1.0 - mat @ full) / np.sqrt(mat.shape[0])
    if comm.getRank() == 0:
        print("RESULT", res.iterations, int(res.converged), true, flush=True)
"""


@pytest.mark.mpi
def test_distributed_matrix_gives_the_same_iterations(tmp_path):
    """Inner products are summed over ranks: a Mat split over 2 ranks takes the same
    iterations as on 1 rank (Jacobi PC, identical on both)."""
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec not available")
    script = tmp_path / "gcrodr_mpi.py"
    script.write_text(_MPI_SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = {}
    for ranks in (1, 2):
        proc = subprocess.run(
            ["mpiexec", "-n", str(ranks), sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[ranks] = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert len(runs[1]) == len(runs[2]) == 3
    for one, two in zip(runs[1], runs[2]):
        assert one[1] == two[1] == "1"
        assert abs(int(one[0]) - int(two[0])) <= 1
        assert float(two[2]) <= 1e-9


def test_unknown_preconditioner_is_a_clear_error():
    mat = sequence(8, 1)[0]
    solver = make_solver("no_such_pc", restart=10, recycle=2)
    with pytest.raises(ValueError, match="no_such_pc"):
        solver.solve(to_petsc(mat), vec(np.ones(64)), vec(np.zeros(64)))


def test_external_pc_reused_by_caller_matches_own_pc_reuse():
    """A caller that owns the PC and keeps it (PCSetReusePreconditioner) gets the same iterates
    as the solver's own reuse policy, and the cheap re-map when it says pc_reused=True."""
    mats = sequence(32, 5, seed=16, step=0.03)
    own = make_solver("ilu", restart=20, recycle=8, rtol=1e-9)
    own.set_pc_reuse(max_systems=3, iteration_growth=10.0)
    external = GCRODR(restart=20, recycle=8, rtol=1e-9)  # never builds a PC of its own
    external.set_pc_reuse(max_systems=3)  # switches on the stored M^{-1} U~
    pc = PETSc.PC().create(PETSc.COMM_SELF)
    pc.setType("ilu")
    shared = to_petsc(mats[0])
    for i, mat in enumerate(mats):
        reuse = i % 3 != 0
        shared.zeroEntries()
        shared.setValuesCSR(mat.indptr, mat.indices, mat.data)
        shared.assemble()
        pc.setOperators(shared, shared)
        pc.setReusePreconditioner(reuse)
        rhs = np.ones(mat.shape[0])
        x_ext, x_own = vec(np.zeros(mat.shape[0])), vec(np.zeros(mat.shape[0]))
        r_ext = external.solve(shared, vec(rhs), x_ext, pc=pc, pc_reused=reuse)
        r_own = own.solve(to_petsc(mat), vec(rhs), x_own)
        assert r_own.pc_rebuilt == (not reuse)
        assert r_ext.converged and r_own.converged
        assert abs(r_ext.iterations - r_own.iterations) <= 1, (i, r_ext.iterations, r_own.iterations)
        assert true_relative_residual(mat, rhs, x_ext.getArray()) <= 1e-9
        if reuse:
            assert r_ext.pc_applications == r_ext.iterations
    pc.destroy()


def test_pc_reuse_really_applies_the_kept_preconditioner_on_an_in_place_refilled_matrix():
    """PETSc rebuilds a PC whose Mat changed state unless told to reuse it: a kept ILU must be
    the first matrix's ILU, not silently the current one's."""
    mats = sequence(24, 3, seed=5, step=0.3)
    solver = make_solver("ilu", restart=20, recycle=4, rtol=1e-8)
    solver.set_pc_reuse(max_systems=3, iteration_growth=100.0)
    A = to_petsc(mats[0])
    n = mats[0].shape[0]
    for mat in mats:
        A.zeroEntries()
        csr = mat.tocsr()
        A.setValuesCSR(csr.indptr, csr.indices, csr.data)
        A.assemble()
        x = vec(np.zeros(n))
        assert solver.solve(A, vec(np.ones(n)), x).converged
    probe = np.random.default_rng(0).standard_normal(n)
    kept = vec(np.zeros(n))
    solver._pc.apply(vec(probe), kept)
    first = PETSc.PC().create(PETSc.COMM_SELF)
    first.setType("ilu")
    first.setOperators(to_petsc(mats[0]))
    first.setUp()
    ref = vec(np.zeros(n))
    first.apply(vec(probe), ref)
    np.testing.assert_allclose(kept.getArray(), ref.getArray(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- skipped / dropped counts
def test_failed_harmonic_ritz_update_is_counted_and_the_solve_still_converges(monkeypatch):
    """Force the 'harmonic Ritz update failed' path: it is counted per solve and in update_stats."""
    import datagen.krylov.gcrodr as gcrodr_module

    mats = sequence(24, 3, seed=5)
    solver = make_solver(restart=20, recycle=6, rtol=1e-10)
    first = solve_checked(solver, mats[0], 1e-10)
    assert first.updates_skipped == 0 and not first.space_dropped and solver.recycle_dim == 6
    kept = solver.recycled_space()

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("forced failure")

    monkeypatch.setattr(gcrodr_module, "harmonic_ritz_basis", broken)
    second = solve_checked(solver, mats[1], 1e-10)
    # every cycle's update failed: one skip per cycle that wanted an update, the old space was kept
    assert second.updates_skipped == second.cycles >= 1 and not second.space_dropped
    assert solver.update_stats["skipped"] == second.updates_skipped
    assert solver.recycle_dim == 6 and solver.recycled_space()[0].shape == kept[0].shape
    monkeypatch.undo()
    third = solve_checked(solver, mats[2], 1e-10)
    assert third.updates_skipped == 0


def test_ill_conditioned_recycled_space_is_dropped_and_reported():
    """Force the 'drop' path: on the zero operator Op U~ = 0, the re-mapped space is dependent."""
    mats = sequence(16, 2, seed=7)
    n = mats[0].shape[0]
    solver = make_solver("none", restart=20, recycle=6, rtol=1e-10, max_it=5000)
    assert solve_checked(solver, mats[0], 1e-10).space_dropped is False and solver.recycle_dim == 6
    zero = sp.csr_matrix((np.zeros(n), (np.arange(n), np.arange(n))), shape=(n, n))
    x = vec(np.zeros(n))
    res = solver.solve(to_petsc(zero), vec(np.ones(n)), x)
    assert res.space_dropped and not res.converged and res.reason == "DIVERGED_BREAKDOWN"
    assert solver.update_stats["dropped"] == 1 and solver.recycle_dim == 0
    # the next solve is unaffected (a fresh space is built again)
    again = solve_checked(solver, mats[1], 1e-10)
    assert not again.space_dropped and solver.recycle_dim == 6


def test_ksp_python_set_from_options_keeps_the_recycled_space_unless_a_recycling_option_changes():
    """KSPSetFromOptions between solves must not rebuild GCRO-DR (iterations 38, 26, 26 must not become
    38, 38, 38); changing -ksp_gcrodr_recycle does rebuild it (a fresh start, GMRES-like iterations)."""
    from datagen.krylov.ksp_python import GCRODRKSP

    mats = sequence(32, 4, seed=21)
    prefix = "tkspkeep_"
    opts = PETSc.Options()
    opts[prefix + "pc_type"] = "ilu"

    def run(set_from_options_each_time, change_at=None):
        ksp = PETSc.KSP().create(PETSc.COMM_SELF)
        ksp.setOptionsPrefix(prefix)
        ksp.setType("python")
        ksp.setPythonContext(GCRODRKSP(restart=20, recycle=6))
        ksp.setTolerances(rtol=1e-9, atol=0.0)
        ksp.setFromOptions()
        its = []
        for i, mat in enumerate(mats):
            if i == change_at:
                opts[prefix + "ksp_gcrodr_recycle"] = 5
            if set_from_options_each_time:
                ksp.setFromOptions()
            ksp.setOperators(to_petsc(mat))
            x = vec(np.zeros(mat.shape[0]))
            ksp.solve(vec(np.ones(mat.shape[0])), x)
            assert ksp.getConvergedReason() > 0
            its.append(ksp.getIterationNumber())
        ksp.destroy()
        return its

    try:
        plain = run(False)
        assert max(plain[1:]) < plain[0]  # recycling pays on the neighbours
        assert run(True) == plain  # the space survived every KSPSetFromOptions
        changed = run(True, change_at=2)
        assert changed[:2] == plain[:2] and changed[2] > plain[2]  # a new k: the space starts empty
    finally:
        for key in ("pc_type", "ksp_gcrodr_recycle"):
            if opts.hasName(prefix + key):
                opts.delValue(prefix + key)
