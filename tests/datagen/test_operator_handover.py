"""The stencil matrix shares its pattern's read-only index arrays, and PetscBackend.set_operator takes a
matrix with the same arrays as the current pattern without converting and comparing them: the solves must
be bit for bit those of matrices with private copies of the pattern (the compared path), and the SPD check
must read the diagonal correctly from its cached slots."""

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("petsc4py")

from datagen.elliptic.assembly import diffusion_system, stencil_pattern  # noqa: E402
from datagen.elliptic.backends import PetscBackend  # noqa: E402
from datagen.grf import GaussianRandomField  # noqa: E402

S = 33


def coefficients(n=5):
    g = GaussianRandomField((S, S), alpha=2.5, tau=7.0, boundary="neumann")
    return [np.exp(x) for x in g.sample(0, range(n))]


def test_the_matrix_shares_the_read_only_pattern():
    A = diffusion_system(coefficients(1)[0])[0]
    pattern = stencil_pattern((S, S), True)
    assert A.indices is pattern.indices and A.indptr is pattern.indptr
    assert not A.indices.flags.writeable
    with pytest.raises(ValueError):
        A.indices[0] = 1  # the pattern of every later matrix cannot be changed by one


@pytest.mark.parametrize("method,reuse", [("cg-gamg", 2), ("gmres", 1), ("lu", 1)])
def test_shared_pattern_solves_equal_copied_pattern_solves(method, reuse):
    mats = [diffusion_system(a)[0] for a in coefficients()]
    b = np.ones(mats[0].shape[0])
    out = {}
    for kind in ("shared", "copied"):
        be = PetscBackend(method, rtol=1e-10, pc_reuse=reuse, pc="ilu" if method == "gmres" else None)
        xs = []
        for A in mats:
            if kind == "copied":
                A = sp.csr_matrix((A.data.copy(), A.indices.copy(), A.indptr.copy()), shape=A.shape)
            be.set_operator(A)
            # the shared pattern is recognised by identity (no conversion or comparison), a private copy is not
            assert (be._source_pattern[1] is stencil_pattern((S, S), True).indices) == (kind == "shared")
            x, st = be.solve(b)
            assert st.converged, st.reason
            xs.append(x)
        be.destroy()
        out[kind] = xs
    for x, y in zip(out["shared"], out["copied"]):
        np.testing.assert_array_equal(x, y)


def test_the_spd_check_reads_the_diagonal_of_each_matrix():
    mats = [diffusion_system(a)[0] for a in coefficients(2)]
    be = PetscBackend("cg-gamg", rtol=1e-8, pc_reuse=4)
    be.set_operator(mats[0])
    assert be.solve(np.ones(mats[0].shape[0]))[1].converged
    bad = sp.csr_matrix((mats[1].data.copy(), mats[1].indices, mats[1].indptr), shape=mats[1].shape)
    row = 7
    slot = np.flatnonzero(bad.indices[bad.indptr[row] : bad.indptr[row + 1]] == row)[0] + bad.indptr[row]
    bad.data[slot] = -1.0  # same (shared) pattern, a non-positive diagonal entry in row 7
    be.set_operator(bad)
    x, st = be.solve(np.ones(bad.shape[0]))
    assert not st.converged and "DIVERGED_INDEFINITE_MAT" in st.reason and "row 7" in st.reason
    be.destroy()
