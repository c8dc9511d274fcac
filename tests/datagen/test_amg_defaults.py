"""CG + GAMG's tuned defaults (issue 17): they reach rtol on real generated systems (true residuals
recomputed here from the stored files with SciPy), the user's options win over them, they leave the
options database as they found it, and the interpolation is rebuilt exactly as ``pc_reuse`` says."""

import json

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("petsc4py")

from petsc4py import PETSc  # noqa: E402

from datagen.elliptic.assembly import diffusion_system  # noqa: E402
from datagen.elliptic.backends import GAMG_DEFAULTS, PetscBackend, gamg_default_options  # noqa: E402
from datagen.elliptic.darcy import Darcy, darcy_system  # noqa: E402
from datagen.elliptic.generator import GenerationConfig, generate  # noqa: E402
from datagen.elliptic.heat import Heat, theta_step_matrices  # noqa: E402
from datagen.elliptic.poisson import Poisson, poisson_system  # noqa: E402

DEFAULT_NAMES = [f"skrcg_{name}" for name, _ in GAMG_DEFAULTS]


def interior(u):
    return np.asarray(u, dtype=np.float64)[(slice(1, -1),) * u.ndim].ravel()


def rel(A, b, x):
    return np.linalg.norm(b - A @ x) / np.linalg.norm(b)


def stored_residuals(path, family):
    """Every stored system's ||b - A x|| / ||b||, rebuilt from the stored inputs and outputs."""
    out = []
    with h5py.File(path, "r") as f:
        fields = {k: f["fields"][k][()] for k in f["fields"]}
    n = len(fields["u"])
    for i in range(n):
        if family.name == "darcy":
            A, b = darcy_system(fields["a"][i], family.forcing)
            out.append(rel(A, b, interior(fields["u"][i])))
        elif family.name == "poisson":
            A, b = poisson_system(fields["f"][i], fields["g"][i])
            out.append(rel(A, b, interior(fields["u"][i])))
        else:  # heat, backward Euler, no source: (I + dt L) u^{n+1} = u^n
            L = diffusion_system(fields["a"][i])[0]
            lhs, rhs = theta_step_matrices(L, family.dt, family.theta)
            prev = interior(fields["u0"][i])
            for state in fields["u"][i]:
                x = interior(state)
                out.append(rel(lhs, rhs @ prev, x))
                prev = x
    return np.array(out)


@pytest.mark.parametrize(
    "family,pc_reuse",
    [
        (Darcy(33), 1),
        (Darcy(33), 3),
        (Darcy(33, coefficient="piecewise"), 3),
        (Poisson(33), 1),
        (Heat(17, n_steps=3), 2),
    ],
    ids=["darcy", "darcy-reuse", "darcy-piecewise-reuse", "poisson", "heat-reuse"],
)
def test_tuned_defaults_reach_rtol_on_generated_systems(tmp_path, family, pc_reuse):
    cfg = GenerationConfig(
        n_samples=6, seed=3, solver="cg-gamg", rtol=1e-9, pc_reuse=pc_reuse, block=0, initial_guess="zero"
    )
    summary = generate(family, tmp_path / "d.h5", cfg, progress=False)
    assert summary.complete and summary.fallbacks == 0 and not summary.invalid
    res = stored_residuals(tmp_path / "d.h5", family)
    assert len(res) == 6 * family.systems_per_sample and res.max() <= 1e-9
    with h5py.File(tmp_path / "d.h5", "r") as f:
        solver = json.loads(f.attrs["spec"])["solver"]
    assert "-skrcg_mg_levels_pc_type sor" in solver["pc_defaults"]  # the defaults are recorded with the data
    assert not set(DEFAULT_NAMES) & set(PETSc.Options().getAll())  # and gone from the database


def test_user_options_win_over_the_defaults():
    opts = PETSc.Options()
    A = Darcy(33).operator(Darcy(33).sample(0, 0))
    plain = PetscBackend("cg-gamg")
    plain.set_operator(A)
    plain.setup()
    smoother = plain._ksp.getPC().getMGSmoother(1)
    assert (smoother.getType(), smoother.getPC().getType()) == ("richardson", "sor")
    opts.setValue("skrcg_mg_levels_ksp_type", "chebyshev")
    opts.setValue("skrcg_pc_gamg_threshold", "0.05")
    try:
        user = PetscBackend("cg-gamg")
        # the smoother goes as one group: the user's Chebyshev gets PETSc's Jacobi, not the default SOR
        names = [n for n, _ in user.gamg_defaults]
        assert names == ["skrcg_pc_gamg_esteig_ksp_max_it"]
        user.set_operator(A)
        user.setup()
        smoother = user._ksp.getPC().getMGSmoother(1)
        assert (smoother.getType(), smoother.getPC().getType()) == ("chebyshev", "jacobi")
        assert opts.getString("skrcg_pc_gamg_threshold") == "0.05"  # not overwritten by the default
        x, st = user.solve(np.ones(A.shape[0]))
        assert st.converged and rel(A, np.ones(A.shape[0]), x) <= 1e-8
        user.destroy()
    finally:
        opts.delValue("skrcg_mg_levels_ksp_type")
        opts.delValue("skrcg_pc_gamg_threshold")
    # the defaults are in the database only while PETSc reads them for their backend: never in another's
    assert not set(DEFAULT_NAMES) & set(opts.getAll())
    plain.set_operator(Darcy(33).operator(Darcy(33).sample(0, 1)))
    x, st = plain.solve(np.ones(A.shape[0]))
    smoother = plain._ksp.getPC().getMGSmoother(1)
    assert st.converged and (smoother.getType(), smoother.getPC().getType()) == ("richardson", "sor")
    plain.destroy()
    assert not set(DEFAULT_NAMES) & set(opts.getAll())


def test_default_options_skip_what_the_user_set():
    allnames = [n for n, _ in gamg_default_options("skrcg_", {})]
    assert allnames == DEFAULT_NAMES
    some = [n for n, _ in gamg_default_options("skrcg_", {"skrcg_mg_levels_ksp_max_it": "2"})]
    assert some == ["skrcg_pc_gamg_threshold", "skrcg_pc_gamg_esteig_ksp_max_it"]


def test_gamg_defaults_false_is_petsc_own():
    backend = PetscBackend("cg-gamg", gamg_defaults=False)
    A = Darcy(33).operator(Darcy(33).sample(0, 0))
    backend.set_operator(A)
    backend.setup()
    smoother = backend._ksp.getPC().getMGSmoother(1)
    assert (smoother.getType(), smoother.getPC().getType()) == ("chebyshev", "jacobi")
    backend.destroy()


def coarsenings():
    return PETSc.Log.Event("MatCoarsen").getPerfInfo()["count"]


@pytest.mark.parametrize("pc_reuse,builds", [(1, 6), (3, 2), (4, 2), (10, 1)])
def test_interpolation_is_rebuilt_every_pc_reuse_matrices(pc_reuse, builds):
    """PETSc 3.26 keeps GAMG's interpolation by default when a Mat gets new values; the backend rebuilds
    it for every matrix (pc_reuse 1) or every pc_reuse matrices, and at every reset."""
    PETSc.Log.begin()
    fam = Darcy(33)
    mats = [fam.operator(fam.sample(0, i)) for i in range(6)]
    b = np.ones(mats[0].shape[0])
    probe = PetscBackend("cg-gamg")
    probe.set_operator(mats[0])
    c0 = coarsenings()
    probe.solve(b)
    per_build = coarsenings() - c0
    probe.destroy()
    assert per_build >= 1
    backend = PetscBackend("cg-gamg", pc_reuse=pc_reuse, initial_guess="zero")
    c0 = coarsenings()
    for A in mats:
        backend.set_operator(A)
        x, st = backend.solve(b)
        assert st.converged and rel(A, b, x) <= 1e-8
    assert coarsenings() - c0 == builds * per_build
    c0 = coarsenings()
    backend.reset()
    backend.set_operator(mats[0])
    backend.solve(b)
    assert coarsenings() - c0 == per_build  # a reset always builds a new hierarchy
    backend.destroy()


def test_non_spd_operator_is_not_handed_to_gamg():
    """A zero row (not SPD) is reported as not converged with x = 0 (true residual 1), not solved: GAMG's
    SOR smoother would crash PETSc on the zero diagonal."""
    A = Darcy(17).operator(Darcy(17).sample(0, 0)).tocsr(copy=True)
    A.data[A.indptr[0] : A.indptr[1]] = 0.0
    backend = PetscBackend("cg-gamg")
    backend.set_operator(sp.csr_matrix(A))
    x, st = backend.solve(np.ones(A.shape[0]))
    assert not st.converged and st.residual == 1.0 and not x.any()
    assert "DIVERGED_INDEFINITE_MAT" in st.reason and "row 0" in st.reason
    good = Darcy(17).operator(Darcy(17).sample(0, 1))
    backend.set_operator(good)
    x, st = backend.solve(np.ones(good.shape[0]))
    assert st.converged
    backend.destroy()
