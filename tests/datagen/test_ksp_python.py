"""GCRO-DR as a PETSc KSP (datagen.krylov.ksp_python): what a PETSc user expects from any KSP.

Driven through petsc4py and the options database on Darcy systems from the generator's own family
(``datagen.elliptic.darcy.Darcy``): divtol, the convergence history, a user convergence test,
monitors, ``KSPBuildSolution`` / ``KSPBuildResidual`` and the PETSc log events of the dense work.
Every residual the KSP reports is checked against ``||b - A x||`` recomputed here with SciPy.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("petsc4py")
from petsc4py import PETSc  # noqa: E402

from datagen.elliptic.darcy import Darcy  # noqa: E402
from datagen.krylov.ksp_python import GCRODRKSP  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REASON = PETSc.KSP.ConvergedReason


def darcy_systems(resolution=33, count=3):
    """Consecutive Darcy operators of the generator's family (SciPy CSR) and its right-hand side."""
    fam = Darcy(resolution)
    mats = [fam.operator(fam.sample(0, i)) for i in range(count)]
    return mats, np.full(mats[0].shape[0], fam.forcing)


def to_petsc(mat):
    return PETSc.Mat().createAIJ(size=mat.shape, csr=(mat.indptr, mat.indices, mat.data), comm=PETSc.COMM_SELF)


def vec(values):
    return PETSc.Vec().createWithArray(np.array(values, dtype=float), comm=PETSc.COMM_SELF)


_counter = [0]


def make_ksp(options=None, restart=20, recycle=6, rtol=1e-9):
    """A KSP of type python with GCRO-DR under a fresh prefix, configured from the options database."""
    _counter[0] += 1
    prefix = f"tksppy{_counter[0]}_"
    opts = PETSc.Options()
    settings = {"pc_type": "ilu", **(options or {})}
    for key, value in settings.items():
        opts[prefix + key] = value
    ksp = PETSc.KSP().create(PETSc.COMM_SELF)
    ksp.setOptionsPrefix(prefix)
    ksp.setType("python")
    ksp.setPythonContext(GCRODRKSP(restart=restart, recycle=recycle))
    ksp.setTolerances(rtol=rtol, atol=0.0)
    ksp.setFromOptions()
    for key in settings:
        opts.delValue(prefix + key)
    return ksp


def true_norm(mat, b, x):
    return float(np.linalg.norm(b - mat @ x))


def test_convergence_history_equals_true_residuals_of_the_iterates_built_in_a_monitor():
    """Each history entry is the true residual of the iterate ``KSPBuildSolution`` gives at that report (right
    preconditioning: the in-cycle GMRES estimate is that norm up to rounding); ``KSPBuildResidual`` is b - A x_j;
    the last report's iterate is the returned solution; the recycled space is kept across solves."""
    mats, b = darcy_systems()
    ksp = make_ksp()
    ksp.setConvergenceHistory(reset=True)  # as -ksp_converged_history: each KSPSolve starts anew
    its_per_system = []
    for mat in mats:
        seen = []

        def monitor(k, its, rnorm, mat=mat, seen=seen):
            x_j = k.buildSolution().getArray().copy()
            r_j = k.buildResidual().getArray().copy()
            seen.append((its, rnorm, true_norm(mat, b, x_j), x_j))
            np.testing.assert_allclose(r_j, b - mat @ x_j, rtol=0, atol=1e-9 * np.linalg.norm(b))

        ksp.monitorCancel()
        ksp.setMonitor(monitor)
        ksp.setOperators(to_petsc(mat))
        x = vec(np.zeros_like(b))
        ksp.solve(vec(b), x)
        assert ksp.getConvergedReason() == REASON.CONVERGED_RTOL
        history = ksp.getConvergenceHistory()
        independent = np.array([t for _, _, t, _ in seen])
        assert len(history) == len(seen) > ksp.getIterationNumber()  # one entry per report
        np.testing.assert_allclose(history, [r for _, r, _, _ in seen], rtol=1e-15)
        np.testing.assert_allclose(history, independent, rtol=1e-6, atol=1e-11 * np.linalg.norm(b))
        assert [s[0] for s in seen][0] == 0 and seen[-1][0] == ksp.getIterationNumber()
        np.testing.assert_allclose(seen[-1][3], x.getArray(), rtol=0, atol=1e-12 * np.abs(x.getArray()).max())
        assert true_norm(mat, b, x.getArray()) <= 1e-9 * np.linalg.norm(b)
        assert ksp.getResidualNorm() == pytest.approx(true_norm(mat, b, x.getArray()), rel=1e-6)
        its_per_system.append(ksp.getIterationNumber())
    assert max(its_per_system[1:]) < its_per_system[0]  # the monitors did not cost the recycled space
    ksp.destroy()


def test_divtol_stops_a_solve_from_a_bad_initial_guess_and_unlimited_lets_it_recover():
    mats, b = darcy_systems(count=1)
    A = to_petsc(mats[0])
    bad = np.full_like(b, 1e4)
    assert true_norm(mats[0], b, bad) > 1e3 * np.linalg.norm(b)
    ksp = make_ksp({"ksp_divtol": 1e3})
    assert ksp.getTolerances()[2] == 1e3
    ksp.setOperators(A)
    ksp.setInitialGuessNonzero(True)
    x = vec(bad)
    ksp.solve(vec(b), x)
    assert ksp.getConvergedReason() == REASON.DIVERGED_DTOL and ksp.getIterationNumber() == 0
    assert ksp.getPythonContext().last_result.reason == "DIVERGED_DTOL"
    np.testing.assert_array_equal(x.getArray(), bad)  # stopped before any step
    # a guess that is merely poor (below divtol ||b||) is not stopped
    ksp.setTolerances(divtol=1e8)
    ksp.solve(vec(b), x)
    assert ksp.getConvergedReason() == REASON.CONVERGED_RTOL
    assert true_norm(mats[0], b, x.getArray()) <= 1e-9 * np.linalg.norm(b)
    # PETSC_UNLIMITED switches the test off
    ksp.setTolerances(divtol=PETSc.UNLIMITED)
    x = vec(bad)
    ksp.solve(vec(b), x)
    assert ksp.getConvergedReason() == REASON.CONVERGED_RTOL
    ksp.destroy()


@pytest.mark.parametrize("stop_at", [5, 17])  # inside the first cycle (14 steps), and in the second one
def test_user_convergence_test_is_called_at_every_report_and_stops_at_its_iteration(stop_at):
    mats, b = darcy_systems(count=2)
    ksp = make_ksp()
    ksp.setOperators(to_petsc(mats[0]))
    ksp.solve(vec(b), vec(np.zeros_like(b)))  # a recycled space exists now
    first_its = ksp.getIterationNumber()
    assert first_its > stop_at + 5
    calls, built = [], {}

    def test(k, its, rnorm):
        calls.append((its, rnorm))
        built[its] = k.buildSolution().getArray().copy()
        return REASON.CONVERGED_ITS if its == stop_at else REASON.ITERATING

    ksp.setConvergenceTest(test)
    ksp.setConvergenceHistory(reset=True)
    ksp.setOperators(to_petsc(mats[1]))
    x = vec(np.zeros_like(b))
    ksp.solve(vec(b), x)
    assert ksp.getConvergedReason() == REASON.CONVERGED_ITS and ksp.getIterationNumber() == stop_at
    assert ksp.getPythonContext().last_result.reason == "CONVERGED_ITS"
    iterations = [its for its, _ in calls]
    assert iterations[0] == 0 and iterations[-1] == stop_at
    assert sorted(set(iterations)) == list(range(stop_at + 1))  # every iteration was tested
    np.testing.assert_allclose(ksp.getConvergenceHistory(), [r for _, r in calls], rtol=1e-15)
    # x is the iterate of the stopping iteration (not the end of its cycle), and its true residual is reported
    np.testing.assert_allclose(x.getArray(), built[stop_at], rtol=0, atol=1e-12 * np.abs(built[stop_at]).max())
    assert true_norm(mats[1], b, x.getArray()) == pytest.approx(calls[-1][1], rel=1e-6)
    assert ksp.getResidualNorm() == pytest.approx(true_norm(mats[1], b, x.getArray()), rel=1e-6)
    # a diverged verdict is reported as such; a test that never stops runs into max_it
    ksp.setConvergenceTest(lambda k, its, rnorm: REASON.DIVERGED_USER if its == 3 else REASON.ITERATING)
    ksp.solve(vec(b), vec(np.zeros_like(b)))
    assert ksp.getConvergedReason() == REASON.DIVERGED_USER and ksp.getIterationNumber() == 3
    assert ksp.getPythonContext().last_result.reason == "DIVERGED_USER"
    ksp.setConvergenceTest(lambda k, its, rnorm: REASON.ITERATING)
    ksp.setTolerances(max_it=9)
    ksp.solve(vec(b), vec(np.zeros_like(b)))
    assert ksp.getConvergedReason() == REASON.DIVERGED_MAX_IT and ksp.getIterationNumber() == 9
    ksp.destroy()


def test_monitor_options_print_petsc_lines_with_the_true_residual():
    """-ksp_monitor and -ksp_monitor_true_residual from the options database print PETSc's own lines; the
    true residual column (KSPBuildResidual) matches the reported norm and the history, and ||r||/||b|| of the
    last line meets rtol."""
    script = f"""
import sys, json, petsc4py
petsc4py.init(sys.argv[1:])
from petsc4py import PETSc
import numpy as np
sys.path.insert(0, {ROOT!r})
from datagen.elliptic.darcy import Darcy
fam = Darcy(33)
ksp = PETSc.KSP().create(PETSc.COMM_SELF)
ksp.setOptionsPrefix("mon_")
ksp.setTolerances(rtol=1e-9, atol=0.0)
ksp.setFromOptions()
ksp.setConvergenceHistory(reset=True)
hist = []
for i in range(2):
    A = fam.operator(fam.sample(0, i))
    M = PETSc.Mat().createAIJ(size=A.shape, csr=(A.indptr, A.indices, A.data), comm=PETSc.COMM_SELF)
    b = M.createVecLeft(); b.set(fam.forcing); x = M.createVecRight(); x.set(0.0)
    ksp.setOperators(M)
    ksp.solve(b, x)
    hist.append(ksp.getConvergenceHistory().tolist())
print("HISTORY", json.dumps(hist), flush=True)
"""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PETSC_OPTIONS", None)
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "-mon_ksp_type",
            "python",
            "-mon_ksp_python_type",
            "datagen.krylov.ksp_python.GCRODRKSP",
            "-mon_ksp_gcrodr_restart",
            "20",
            "-mon_ksp_gcrodr_recycle",
            "6",
            "-mon_pc_type",
            "ilu",
            "-mon_ksp_monitor",
            "-mon_ksp_monitor_true_residual",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    import json

    history = json.loads(r.stdout.split("HISTORY", 1)[1])
    plain = [(int(i), float(v)) for i, v in re.findall(r"^\s*(\d+) KSP Residual norm (\S+)$", r.stdout, re.M)]
    true = [
        (int(i), float(u), float(t), float(q))
        for i, u, t, q in re.findall(
            r"^\s*(\d+) KSP unpreconditioned resid norm (\S+) true resid norm (\S+) \|\|r\(i\)\|\|/\|\|b\|\| (\S+)$",
            r.stdout,
            re.M,
        )
    ]
    flat = [v for h in history for v in h]
    assert len(plain) == len(true) == len(flat) > 20
    np.testing.assert_allclose([v for _, v in plain], flat, rtol=1e-11)
    np.testing.assert_allclose([u for _, u, _, _ in true], flat, rtol=1e-11)
    bnorm = np.sqrt(31 * 31) * Darcy(33).forcing
    np.testing.assert_allclose([t for _, _, t, _ in true], flat, rtol=1e-6, atol=1e-11 * bnorm)
    assert [i for i, _ in plain][:1] == [0] and true[-1][3] <= 1e-9


GCRODR_EVENTS = ("GCRODROrthog", "GCRODRLstSq", "GCRODRUpdate", "GCRODRRemap")
# PETSc's own events that run directly under the python KSPSolve (not nested in one another or in the GCRODR
# events: MatSolve is inside PCApply, VecMAXPY inside GCRODROrthog)
TOP_LEVEL_PETSC = ("PCSetUp", "PCApply", "MatMult", "VecNorm", "VecAYPX", "VecWAXPY", "VecCopy", "VecAXPY", "VecSet")


def test_log_events_count_the_dense_work_with_flops_and_account_for_the_solve():
    """With logging on, the GCRO-DR events exist with nonzero counts and flops, and together with the PETSc
    events the KSPSolve runs directly they account for most of KSPSolve's time (and not more than all of it)."""
    from datagen.krylov.gcrodr import LOG_EVENTS

    assert LOG_EVENTS == GCRODR_EVENTS
    mats, b = darcy_systems(resolution=65, count=3)
    PETSc.Log.begin()
    stage = PETSc.Log.Stage("tksppy_log")
    stage.push()
    try:
        ksp = make_ksp(restart=30, recycle=10, rtol=1e-8)
        for mat in mats:
            ksp.setOperators(to_petsc(mat))
            ksp.solve(vec(b), vec(np.zeros_like(b)))
            assert ksp.getConvergedReason() > 0
        ksp.destroy()
    finally:
        stage.pop()
    info = {
        name: PETSc.Log.Event(name).getPerfInfo(stage)
        for name in ("KSPSolve", "VecMAXPY") + GCRODR_EVENTS + TOP_LEVEL_PETSC
    }
    assert info["KSPSolve"]["count"] == 3
    for name in GCRODR_EVENTS:
        assert info[name]["count"] > 0 and info[name]["flops"] > 0 and info[name]["time"] > 0, (name, info[name])
    # the orthogonalisation event contains its VecMAXPY (nested), so it holds at least those flops
    assert info["GCRODROrthog"]["flops"] > info["VecMAXPY"]["flops"] > 0
    covered = sum(info[name]["time"] for name in GCRODR_EVENTS + TOP_LEVEL_PETSC)
    total = info["KSPSolve"]["time"]
    assert 0.8 * total <= covered <= 1.02 * total, (covered, total)
    assert info["KSPSolve"]["flops"] >= sum(info[name]["flops"] for name in GCRODR_EVENTS)


def test_log_view_lists_the_gcrodr_events_of_a_generator_run(tmp_path):
    """The generator's --solver skr with -log_view: the events appear in PETSc's table with flops."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    env.pop("PETSC_OPTIONS", None)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "datagen.cli",
            "darcy",
            "--n",
            "3",
            "--resolution",
            "33",
            "--solver",
            "skr",
            "--no-progress",
            "--out",
            str(tmp_path / "l.h5"),
            "--",
            "-log_view",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    rows = {m.group(1): m.group(2).split() for m in re.finditer(r"^(GCRODR\w+|KSPSolve)\s+(.*)$", r.stdout, re.M)}
    assert set(GCRODR_EVENTS) <= set(rows), sorted(rows)
    for name in GCRODR_EVENTS:
        count, flops = int(rows[name][0]), float(rows[name][4])  # Count Max Ratio, Time Max Ratio, Flop Max
        assert count > 0 and flops > 0, (name, rows[name])
