"""Harmonic Ritz vectors for the GCRO-DR recycled-space update (small dense algebra only).

After a cycle, GCRO-DR (Parks, de Sturler, Mackey, Johnson, Maiti, SISC 2006) has the relation

    Op  Vhat = What  Gbar,      Vhat = [U~, V_s]  (n x p),   What = [C, V_{s+1}]  (n x (p+1)),

with ``p = k + s``, ``C`` orthonormal, ``V_{s+1}`` the Arnoldi basis, ``U~`` the recycled space
(``Op U~ = C Lambda``, ``Lambda`` invertible) and ``Gbar = [[Lambda, B], [0, Hbar]]`` ((p+1) x p). Harmonic Ritz pairs
``(theta, Vhat z)`` of ``Op`` with respect to ``range(Vhat)`` satisfy
``(Op Vhat)^T (Op Vhat z - theta Vhat z) = 0``, i.e. the generalised eigenproblem

    Gbar^T Gbar z = theta Gbar^T (What^T Vhat) z.

``What^T Vhat = [[C^T U~, 0], [V_{s+1}^T U~, I_{(s+1) x s}]]`` is the Gram block: it is *not*
the identity because ``U~`` is not orthogonal to ``C`` or ``V``, and it has to be formed from
real inner products (replacing it by ``[I; 0]`` gives wrong Ritz vectors and can diverge).
The ``k`` pairs of smallest ``|theta|`` approximate the eigenvectors that slow the iteration
most; deflating them is what recycling buys.
"""
from __future__ import annotations

import numpy as np


def harmonic_ritz_basis(gbar: np.ndarray, gram: np.ndarray, count: int) -> np.ndarray:
    """Orthonormal real basis of the ``count`` harmonic Ritz vectors of smallest magnitude.

    Args:
        gbar: ``(p+1, p)`` matrix ``Gbar`` of ``Op Vhat = What Gbar``.
        gram: ``(p+1, p)`` Gram block ``What^T Vhat``.
        count: how many vectors to keep, ``1 <= count <= p``.

    Returns:
        ``P`` of shape ``(p, count)`` with orthonormal columns spanning the selected harmonic
        Ritz vectors' coefficients (``Y = Vhat P``). A complex-conjugate pair contributes its
        real and imaginary parts (same 2-D invariant subspace, real arithmetic); when only one
        slot is left for a pair, its real part is kept.

    Raises:
        numpy.linalg.LinAlgError: if the eigenproblem cannot be solved or yields no finite
            value (the caller then keeps its previous recycled space).
    """
    p = gbar.shape[1]
    if gbar.shape != (p + 1, p) or gram.shape != (p + 1, p):
        raise ValueError(f"gbar and gram must both be (p+1, p); got {gbar.shape} and {gram.shape}")
    if not 1 <= count <= p:
        raise ValueError(f"count must be in [1, {p}], got {count}")
    # Gbar has full column rank, so the problem is equivalent to the standard one
    # (Gbar^+ Gram) z = mu z with mu = 1 / theta: the smallest |theta| are the largest |mu|,
    # and mu = 0 is an infinite theta. Least squares (SVD) forms Gbar^+ Gram without squaring
    # Gbar's condition number; the standard eigensolver is ~2x cheaper than the QZ one.
    solved, _, rank, _ = np.linalg.lstsq(gbar, gram, rcond=None)
    if rank < p or not np.isfinite(solved).all():
        raise np.linalg.LinAlgError("Gbar is rank deficient: no harmonic Ritz problem")
    mu, vectors = np.linalg.eig(solved)
    theta = np.full(p, np.inf, dtype=complex)
    finite = np.abs(mu) > 0
    theta[finite] = 1.0 / mu[finite]
    magnitude = np.abs(theta)
    if not np.isfinite(magnitude).any():
        raise np.linalg.LinAlgError("harmonic Ritz problem has no finite eigenvalue")
    columns = []
    taken = np.zeros(p, dtype=bool)
    for index in np.argsort(magnitude, kind="stable"):
        if len(columns) == count:
            break
        if taken[index]:
            continue
        taken[index] = True
        vector = vectors[:, index]
        if theta[index].imag != 0 and np.abs(vector.imag).max() > 0:
            # the conjugate partner spans the same real 2-D subspace: take Re and Im once
            distance = np.where(taken, np.inf, np.abs(theta - np.conj(theta[index])))
            taken[int(np.argmin(distance))] = True
            columns.append(vector.real)
            if len(columns) < count:
                columns.append(vector.imag)
        else:
            columns.append(vector.real)
    basis = np.column_stack(columns)
    # orthonormal coefficients keep Y = Vhat P well conditioned; the span is what matters
    q, r = np.linalg.qr(basis)
    if np.min(np.abs(np.diag(r))) <= 1e-14 * np.max(np.abs(np.diag(r))):
        raise np.linalg.LinAlgError("harmonic Ritz vectors are linearly dependent")
    return q
