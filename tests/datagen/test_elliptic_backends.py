"""The PETSc solver backends: true residuals, LU symbolic reuse, PC reuse, option parsing."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla

pytest.importorskip("petsc4py")

from datagen.elliptic.backends import PetscBackend, parse_petsc_options  # noqa: E402
from datagen.elliptic.darcy import Darcy  # noqa: E402
from datagen.elliptic.helmholtz import Helmholtz  # noqa: E402


def systems(fam, n):
    out = []
    for i in range(n):
        s = fam.sample(0, i)
        out.append(fam.operator(s))
    return out


@pytest.mark.parametrize("method", ["skr", "gmres", "lu", "cg-gamg"])
def test_each_method_meets_the_true_residual(method):
    fam = Darcy(33)
    be = PetscBackend(method, rtol=1e-9, pc="ilu")
    for A in systems(fam, 3):
        be.set_operator(A)
        b = np.ones(A.shape[0])
        x, st = be.solve(b, None)
        assert st.converged and st.method == method
        true = np.linalg.norm(b - A @ x) / np.linalg.norm(b)
        assert st.residual == pytest.approx(true, rel=1e-6, abs=1e-15) and true <= 1e-9
        np.testing.assert_allclose(x, spla.spsolve(A.tocsc(), b), rtol=1e-5)
    be.destroy()


def test_unconverged_solves_are_reported():
    fam = Helmholtz(33)
    be = PetscBackend("gmres", rtol=1e-10, max_it=3)
    be.set_operator(fam.operator(fam.sample(0, 0)))
    x, st = be.solve(np.ones(31 * 31), None)
    assert not st.converged and st.residual > 1e-10 and st.iterations == 3


def test_pc_reuse_keeps_the_preconditioner_and_still_converges():
    fam = Darcy(33)
    mats = systems(fam, 4)
    b = np.ones(mats[0].shape[0])
    for method in ("gmres", "skr"):
        fresh, reused = [], []
        for pc_reuse, out in ((1, fresh), (4, reused)):
            be = PetscBackend(method, rtol=1e-9, pc="ilu", pc_reuse=pc_reuse, initial_guess="zero")
            for A in mats:
                be.set_operator(A)
                x, st = be.solve(b, None)
                assert st.converged
                out.append(st.iterations)
            be.destroy()
        assert fresh[0] == reused[0]
        # with a stale ILU the later systems need more iterations: the PC really was kept
        assert sum(reused[1:]) > sum(fresh[1:]), (method, fresh, reused)


def test_parse_petsc_options():
    assert parse_petsc_options("-skr_pc_type ilu -ksp_view -x -3") == [
        ("skr_pc_type", "ilu"),
        ("ksp_view", None),
        ("x", "-3"),
    ]
    assert parse_petsc_options(["-a", "1"]) == [("a", "1")]
    for bad in ("pc_type ilu", "-a 1 2", "-a 'unterminated"):
        with pytest.raises(ValueError, match="do not parse"):
            parse_petsc_options(bad)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="bicg"), "unknown solver 'bicg'"),
        (dict(method="gmres", rtol=0.0), "rtol"),
        (dict(method="skr", restart=10, recycle=10), "recycle"),
        (dict(method="gmres", pc="nosuch"), "unknown preconditioner 'nosuch'"),
        (dict(method="gmres", pc_reuse=0), "pc_reuse"),
    ],
)
def test_bad_backend_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PetscBackend(**kwargs)
