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
from scipy.linalg import lapack


def small_qr(a: np.ndarray, complete: bool = False):
    """``(Q, R)`` of a small dense ``rows x cols`` matrix from LAPACK ``dgeqrf`` / ``dorgqr``
    directly: the same factorisation as ``numpy.linalg.qr`` (``mode="reduced"``, or
    ``"complete"`` for ``complete=True``) without its per-call overhead, which dominates for the
    ~40 x 20 matrices of a GCRO-DR update."""
    rows, cols = a.shape
    if not np.isfinite(a).all():
        raise np.linalg.LinAlgError("QR of a matrix that is not finite")
    if rows == 0 or cols == 0:
        return np.linalg.qr(a, mode="complete" if complete else "reduced")
    qr, tau, _, info = lapack.dgeqrf(a)
    if info != 0:
        raise np.linalg.LinAlgError(f"LAPACK dgeqrf info {info}")
    width = rows if complete else min(rows, cols)
    r = np.triu(qr[:width])
    if width > cols:
        basis = np.zeros((rows, width), order="F")
        basis[:, :cols] = qr
    else:
        basis = qr[:, :width]
    q, _, info = lapack.dorgqr(basis, tau, max(64 * width, 1))
    if info != 0:
        raise np.linalg.LinAlgError(f"LAPACK dorgqr info {info}")
    return q, r


class LeastSquares:
    """Least-squares solves with one full-column-rank ``(p+1) x p`` matrix ``Gbar``:
    ``solve(X) = Gbar^+ X = R^{-1} (Q^T X)[:p]`` from one Householder QR (LAPACK ``dgeqrf``,
    ``dormqr``, ``dtrtrs`` called directly: ~4x cheaper than ``numpy.linalg.lstsq``'s SVD for
    the 41 x 40 matrices of a GCRO-DR update, and the factorisation serves both of its solves).

    Raises ``numpy.linalg.LinAlgError`` when ``Gbar`` is numerically rank deficient
    (``min |R_ii| <= (p+1) eps max |R_ii|``) or not finite.
    """

    def __init__(self, gbar: np.ndarray):
        rows, p = gbar.shape
        if not np.isfinite(gbar).all():
            raise np.linalg.LinAlgError("Gbar is not finite")
        self.p = p
        self._qr, self._tau, _, info = lapack.dgeqrf(gbar)
        if info != 0:
            raise np.linalg.LinAlgError(f"QR of Gbar failed (LAPACK dgeqrf info {info})")
        diag = np.abs(np.diagonal(self._qr)[:p])
        if p and not diag.min() > rows * np.finfo(float).eps * diag.max():
            raise np.linalg.LinAlgError("Gbar is rank deficient: no harmonic Ritz problem")

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``Gbar^+ rhs`` for a ``(p+1) x c`` right-hand side."""
        p = self.p
        rhs = np.asarray(rhs, dtype=float)
        cols = rhs.shape[1]
        if cols == 0:
            return np.zeros((p, 0))
        qtb, _, info = lapack.dormqr("L", "T", self._qr, self._tau, rhs, max(64 * cols, 1))
        if info != 0:
            raise np.linalg.LinAlgError(f"LAPACK dormqr info {info}")
        out, info = lapack.dtrtrs(self._qr[:p], qtb[:p])
        if info != 0 or not np.isfinite(out).all():
            raise np.linalg.LinAlgError("Gbar is rank deficient: no harmonic Ritz problem")
        return out


def harmonic_ritz_basis(
    gbar: np.ndarray, gram: np.ndarray, count: int, least_squares: LeastSquares | None = None
) -> np.ndarray:
    """Orthonormal real basis of the ``count`` harmonic Ritz vectors of smallest magnitude.

    Args:
        gbar: ``(p+1, p)`` matrix ``Gbar`` of ``Op Vhat = What Gbar``.
        gram: ``(p+1, p)`` Gram block ``What^T Vhat``.
        count: how many vectors to keep, ``1 <= count <= p``.
        least_squares: a :class:`LeastSquares` of ``gbar`` to reuse (made here if ``None``).

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
    # and mu = 0 is an infinite theta. Least squares (Householder QR) forms Gbar^+ Gram without
    # squaring Gbar's condition number; the standard eigensolver is ~2x cheaper than the QZ one.
    solved = (least_squares or LeastSquares(gbar)).solve(gram)
    mu, vectors = np.linalg.eig(solved)
    theta = np.full(p, np.inf, dtype=complex)
    finite = np.abs(mu) > 0
    theta[finite] = 1.0 / mu[finite]
    magnitude = np.abs(theta)
    if not np.isfinite(magnitude).any():
        raise np.linalg.LinAlgError("harmonic Ritz problem has no finite eigenvalue")
    selected = []  # (column, part) with part 0: real part, 1: imaginary part
    taken = [False] * p
    conj_theta = np.conj(theta)
    imaginary = (theta.imag != 0) & (np.abs(vectors.imag).max(axis=0) > 0)
    for index in np.argsort(magnitude, kind="stable").tolist():
        if len(selected) == count:
            break
        if taken[index]:
            continue
        taken[index] = True
        if imaginary[index]:
            # the conjugate partner spans the same real 2-D subspace: take Re and Im once.
            # LAPACK returns it next to this one; else the nearest conjugate not yet taken
            partner = next(
                (j for j in (index + 1, index - 1) if 0 <= j < p and not taken[j] and theta[j] == conj_theta[index]),
                None,
            )
            if partner is None:
                distance = np.abs(theta - conj_theta[index])
                distance[np.array(taken)] = np.inf
                partner = int(np.argmin(distance))
            taken[partner] = True
            selected.append((index, 0))
            if len(selected) < count:
                selected.append((index, 1))
        else:
            selected.append((index, 0))
    picked = vectors[:, [index for index, _ in selected]]
    parts = np.array([part for _, part in selected], dtype=bool)
    basis = np.where(parts[None, :], picked.imag, picked.real)
    # orthonormal coefficients keep Y = Vhat P well conditioned; the span is what matters
    q, r = small_qr(basis)
    if np.min(np.abs(np.diag(r))) <= 1e-14 * np.max(np.abs(np.diag(r))):
        raise np.linalg.LinAlgError("harmonic Ritz vectors are linearly dependent")
    return q
