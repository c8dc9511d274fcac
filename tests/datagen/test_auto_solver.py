"""``--solver auto`` decides by measurement, and ``lu`` factors with a pivoting package when the build has one.

Every test writes real files with the generator (Darcy/Helmholtz on small grids) and reads back their spec.
"""

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("petsc4py")

from datagen.dataset import open_dataset  # noqa: E402
from datagen.elliptic import generator as G  # noqa: E402
from datagen.elliptic.backends import LU_PACKAGES, PetscBackend, default_lu_package, lu_packages  # noqa: E402
from datagen.elliptic.darcy import Darcy  # noqa: E402
from datagen.elliptic.generator import AutoCandidate, GenerationConfig, generate  # noqa: E402
from datagen.elliptic.helmholtz import Helmholtz  # noqa: E402

N = G.AUTO_MIN_SAMPLES  # the smallest run auto measures on


def _auto_run(tmp_path, name="auto.h5", family=None, **kw):
    fam = family or Darcy(17)
    cfg = GenerationConfig(n_samples=kw.pop("n", N), seed=kw.pop("seed", 5), solver="auto", rtol=1e-9, **kw)
    summary = generate(fam, tmp_path / name, cfg, progress=False)
    ds = open_dataset(tmp_path / name)
    return summary, ds, ds.spec["solver"]


def test_auto_times_every_candidate_and_records_trial_and_choice(tmp_path):
    summary, ds, solver = _auto_run(tmp_path)
    auto = solver["auto"]
    assert auto["rule"] == "measured" and auto["trial_samples"] == G.AUTO_TRIAL_SAMPLES
    names = [c["name"] for c in auto["candidates"]]
    # every LU package of this build, CG+GAMG (Darcy is SPD), LU-reuse GMRES, SKR and GMRES with ILU
    lus = [f"lu:{p}" for p in dict.fromkeys((lu_packages()[0], "petsc"))]  # the default package and native LU
    assert sorted(names) == sorted(lus + ["cg-gamg", "gmres+lu-reuse8", "skr+ilu", "gmres+ilu"])
    assert names[0] == f"lu:{default_lu_package()}"  # the table's guess (Darcy 15^2: LU) goes first
    for c in auto["candidates"]:
        # each ran at least the first trial sample; survivors ran all of them and have a projection
        assert 1 <= len(c["seconds"]) <= G.AUTO_TRIAL_MAX and all(t > 0 for t in c["seconds"])
        if c["dropped_after_sample"] is None:
            # survivors: the trial proper, and close contenders up to AUTO_TRIAL_MAX samples
            assert G.AUTO_TRIAL_SAMPLES <= len(c["seconds"]) <= G.AUTO_TRIAL_MAX
            assert c["projected_seconds"] >= (c["seconds"][0] + min(c["seconds"][1:]) * (N - 1)) * 0.99
        else:
            # left after the first sample only when that took AUTO_DROP_FIRST times the fastest first sample
            assert (
                c["dropped_after_sample"] > 0
                or c["seconds"][0] > G.AUTO_DROP_FIRST * min(d["seconds"][0] for d in auto["candidates"]) * 0.999
            )
    chosen = next(c for c in auto["candidates"] if c["name"] == auto["choice"])
    assert chosen["dropped_after_sample"] is None
    live = [c for c in auto["candidates"] if c["dropped_after_sample"] is None]
    assert chosen["projected_seconds"] == min(c["projected_seconds"] for c in live)
    assert solver["method"] == chosen["method"] == summary.solver
    assert solver["auto_reason"].startswith("measured: fastest projected total")
    # the trial is in the run's time; every stored sample is converged and the trial samples are stored
    assert 0 < summary.trial_seconds < summary.total_seconds and "auto trial" in summary.text()
    assert summary.solved == N and np.all(ds.solver("residual") <= 1e-9)
    # the projection itself: f t0 + (n - f) min(t1..)
    cand = AutoCandidate(chosen["name"], chosen["method"], chosen["pc"], chosen["pc_reuse"], chosen["factor"])
    f = cand.first_like(N, 32)
    t = chosen["seconds"]
    assert chosen["projected_seconds"] == pytest.approx(f * t[0] + (N - f) * np.min(t[1:]))


def test_auto_data_equal_the_chosen_method_alone(tmp_path):
    _, ds, solver = _auto_run(tmp_path)
    ch = solver["auto"]["chosen"]
    petsc = f"-skrlu_pc_factor_mat_solver_type {ch['factor']}" if ch["method"] == "lu" else ""
    cfg = GenerationConfig(
        n_samples=N, seed=5, solver=ch["method"], rtol=1e-9, pc=ch["pc"], pc_reuse=ch["pc_reuse"], petsc_options=petsc
    )
    generate(Darcy(17), tmp_path / "alone.h5", cfg, progress=False)
    alone = open_dataset(tmp_path / "alone.h5")
    assert alone.spec["solver"]["factor_used"] == solver["factor_used"]
    u_auto, u_alone = ds.read("u"), alone.read("u")
    scale = np.abs(u_alone).max()
    # the same method from the same state along the same order: equal up to the solver tolerance
    assert np.abs(u_auto - u_alone).max() <= 1e-6 * scale
    np.testing.assert_array_equal(ds.solver("order"), alone.solver("order"))


def test_auto_never_replaces_an_explicit_pc(tmp_path):
    _, ds, solver = _auto_run(tmp_path, pc="jacobi")
    assert [c["name"] for c in solver["auto"]["candidates"]] == ["skr+jacobi", "gmres+jacobi"]
    assert solver["method"] in ("skr", "gmres") and solver["pc_used"] == "jacobi"
    # the same through the options database
    _, _, solver = _auto_run(tmp_path, name="opt.h5", petsc_options="-skr_pc_type jacobi")
    assert [c["name"] for c in solver["auto"]["candidates"]] == ["skr+jacobi", "gmres+jacobi"]
    assert solver["petsc_options"] == "-skr_pc_type jacobi"
    # below the measuring threshold the table decides, and still keeps the PC
    _, _, solver = _auto_run(tmp_path, name="few.h5", n=4, pc="jacobi")
    assert solver["auto"]["rule"] == "table" and solver["method"] == "gmres" and solver["pc_used"] == "jacobi"


def test_auto_resume_goes_on_with_the_recorded_choice(tmp_path):
    fam = Darcy(17)
    cfg = GenerationConfig(n_samples=N, seed=2, solver="auto", rtol=1e-9)
    part = generate(fam, tmp_path / "r.h5", cfg, progress=False, max_new=5)
    assert not part.complete
    rest = generate(fam, tmp_path / "r.h5", cfg, progress=False, resume=True)
    assert rest.complete and rest.trial_seconds == 0.0  # no second trial
    ds = open_dataset(tmp_path / "r.h5")
    assert ds.spec["solver"]["auto"]["rule"] == "measured" and np.all(ds.solver("residual") <= 1e-9)


def _swap_matrix(n=40):
    """A nonsingular matrix whose diagonal is zero (a permutation-like saddle pattern): any LU without
    row pivoting meets a zero pivot at once."""
    rng = np.random.default_rng(0)
    A = sp.lil_matrix((n, n))
    for i in range(0, n, 2):
        A[i, i + 1] = 1.0 + rng.random()
        A[i + 1, i] = 1.0 + rng.random()
        if i + 2 < n:
            A[i, i + 2] = 0.3
            A[i + 2, i] = 0.2
    return A.tocsr()


@pytest.mark.skipif(default_lu_package() == "petsc", reason="this PETSc build has no pivoting LU package")
def test_lu_pivots_by_default():
    A = _swap_matrix()
    b = np.arange(1.0, A.shape[0] + 1)
    be = PetscBackend("lu", rtol=1e-10)
    be.set_operator(A)
    x, st = be.solve(b)
    assert be.factor_used == default_lu_package() and be.factor_used in LU_PACKAGES[:-1]
    assert st.converged and np.linalg.norm(b - A @ x) <= 1e-10 * np.linalg.norm(b)
    be.destroy()
    # PETSc's native LU (no pivoting) cannot: the zero pivot stops it
    native = PetscBackend("lu", rtol=1e-10, factor="petsc")
    native.set_operator(A)
    from petsc4py import PETSc

    try:
        _, st = native.solve(b)
        assert not st.converged
    except PETSc.Error:
        pass
    native.destroy()


def test_lu_package_is_recorded_and_bad_package_named(tmp_path):
    fam = Helmholtz(17, wavenumber=5.0)
    generate(fam, tmp_path / "h.h5", GenerationConfig(n_samples=3, solver="lu", rtol=1e-9), progress=False)
    ds = open_dataset(tmp_path / "h.h5")
    assert ds.spec["solver"]["factor_used"] == default_lu_package()
    with pytest.raises(
        ValueError,
        match=r"LU package 'nosuch' is not a sparse LU package PETSc knows; this build "
        r"has: .*petsc",
    ):
        PetscBackend("lu", factor="nosuch")
