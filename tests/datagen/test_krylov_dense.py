"""The small dense kernels of the GCRO-DR update (datagen.krylov.harmonic_ritz) against NumPy's own."""

import numpy as np
import pytest

from datagen.krylov.harmonic_ritz import LeastSquares, harmonic_ritz_basis, small_qr


@pytest.mark.parametrize("shape", [(41, 20), (40, 40), (20, 16), (21, 20), (41, 3), (5, 1)])
@pytest.mark.parametrize("complete", [False, True])
def test_small_qr_is_numpys_factorisation(shape, complete):
    a = np.random.default_rng(shape[0] * 100 + shape[1]).standard_normal(shape)
    q, r = small_qr(a, complete=complete)
    q_np, r_np = np.linalg.qr(a, mode="complete" if complete else "reduced")
    assert q.shape == q_np.shape and r.shape == r_np.shape
    np.testing.assert_allclose(q @ r, a, atol=1e-13)
    np.testing.assert_allclose(q.T @ q, np.eye(q.shape[1]), atol=1e-13)
    np.testing.assert_allclose(np.abs(r), np.abs(r_np), atol=1e-12)  # unique up to signs
    assert np.allclose(np.tril(r, -1), 0.0)


def test_least_squares_matches_lstsq_and_refuses_a_rank_deficient_gbar():
    rng = np.random.default_rng(3)
    p = 30
    gbar = np.triu(rng.standard_normal((p + 1, p)), -1) + 4.0 * np.eye(p + 1, p)  # Hessenberg-like, full rank
    rhs = rng.standard_normal((p + 1, p))
    ls = LeastSquares(gbar)
    np.testing.assert_allclose(ls.solve(rhs), np.linalg.lstsq(gbar, rhs, rcond=None)[0], atol=1e-12)
    np.testing.assert_allclose(ls.solve(rhs[:, :2]), np.linalg.lstsq(gbar, rhs[:, :2], rcond=None)[0], atol=1e-12)
    assert ls.solve(rhs[:, :0]).shape == (p, 0)
    deficient = gbar.copy()
    deficient[:, 5] = deficient[:, 4]
    with pytest.raises(np.linalg.LinAlgError, match="rank deficient"):
        LeastSquares(deficient)
    gram = rng.standard_normal((p + 1, p))
    # the basis is the same subspace whether the caller passes its factorisation or not
    a, b = harmonic_ritz_basis(gbar, gram, 7), harmonic_ritz_basis(gbar, gram, 7, least_squares=ls)
    np.testing.assert_allclose(a @ a.T, b @ b.T, atol=1e-10)
