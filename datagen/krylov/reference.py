"""A plain NumPy/SciPy GCRO-DR(m, k), written straight from Parks et al. (2006): the test oracle.

No blocking, no carried small recurrences, no buffer reuse: ``U`` is stored unscaled with
``Op U = C``, every inner product (``C^T r``, the Gram block ``What^T Vhat``) is computed
explicitly, the least-squares problem is the full ``min ||[C^T r; beta e1] - Gbar y||`` solved
with ``lstsq`` at every step, orthogonalisation is CGS2, and the residual is recomputed from
``b - A x``. Right preconditioning only (``Op = A M^{-1}``). It is slow and meant for small
test problems; :class:`datagen.krylov.GCRODR` must reproduce its iteration counts.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


class ReferenceGCRODR:
    """GCRO-DR(m, k) on a SciPy sparse/dense ``A`` with ``apply_pc(v) = M^{-1} v``.

    The recycled pair ``(U, C)`` persists across :meth:`solve` calls; ``solve`` with a new
    matrix re-maps it (``[Q, R] = qr(Op U)``, ``C = Q``, ``U = U R^{-1}``).
    """

    def __init__(self, restart: int, recycle: int, rtol: float, max_it: int = 10000, apply_pc=None):
        if not 0 <= recycle < restart:
            raise ValueError(f"need 0 <= recycle < restart, got k={recycle}, m={restart}")
        self.m, self.k, self.rtol, self.max_it = restart, recycle, rtol, max_it
        self.apply_pc = apply_pc if apply_pc is not None else (lambda v: v.copy())
        self.U = None
        self.C = None
        self._A = None

    def solve(self, A, b, x0):
        """Returns ``(x, iterations, relative_true_residual)``."""
        op = lambda v: A @ self.apply_pc(v)  # noqa: E731
        x = np.array(x0, dtype=float)
        bnorm = np.linalg.norm(b)
        target = self.rtol * bnorm
        if self.U is not None and A is not self._A:
            image = np.column_stack([op(u) for u in self.U.T])
            q, r = np.linalg.qr(image)
            self.C = q
            self.U = scipy.linalg.solve_triangular(r, self.U.T, trans="T").T  # U R^{-1}
        self._A = A
        r = b - A @ x
        if self.U is not None:
            # Parks et al.: x_1 = x_0 + U C^T r_0 (through M^{-1}: Op U = C)
            x += self.apply_pc(self.U @ (self.C.T @ r))
            r = b - A @ x
        its = 0
        while np.linalg.norm(r) > target and its < self.max_it:
            steps = self._cycle(A, op, b, x, r, target, self.max_it - its)
            its += steps
            r = b - A @ x
        return x, its, np.linalg.norm(b - A @ x) / bnorm

    def _cycle(self, A, op, b, x, r, target, budget):
        n = b.size
        k_act = 0 if self.U is None else self.U.shape[1]
        C = np.zeros((n, 0)) if self.C is None else self.C
        s_max = min(self.m - k_act, budget)
        c_r = C.T @ r
        r_perp = r - C @ c_r
        c_fix = C.T @ r_perp
        r_perp -= C @ c_fix
        c_r += c_fix
        beta = np.linalg.norm(r_perp)
        V = np.zeros((n, s_max + 1))
        V[:, 0] = r_perp / beta
        H = np.zeros((s_max + 1, s_max))
        B = np.zeros((k_act, s_max))
        if k_act:
            scale = 1.0 / np.linalg.norm(self.U, axis=0)
            U_tilde = self.U * scale
            D = np.diag(scale)
        else:
            U_tilde = np.zeros((n, 0))
            D = np.zeros((0, 0))
        steps, y = 0, np.zeros(k_act)
        breakdown = False
        for j in range(s_max):
            w = op(V[:, j])
            basis = np.column_stack([C, V[:, : j + 1]])
            coef = basis.T @ w
            w = w - basis @ coef
            coef2 = basis.T @ w  # CGS2: second pass
            w = w - basis @ coef2
            coef += coef2
            B[:, j] = coef[:k_act]
            H[: j + 1, j] = coef[k_act:]
            H[j + 1, j] = np.linalg.norm(w)
            steps = j + 1
            gbar = self._gbar(D, B[:, :steps], H[: steps + 1, :steps])
            rhs = np.concatenate([c_r, beta * np.eye(steps + 1)[0]])
            y, *_ = np.linalg.lstsq(gbar, rhs, rcond=None)
            resid = np.linalg.norm(rhs - gbar @ y)
            if H[j + 1, j] <= 1e-14 * np.abs(coef).max():
                breakdown = True
                break
            V[:, j + 1] = w / H[j + 1, j]
            if resid <= target:
                break
        if steps == 0:
            y, *_ = np.linalg.lstsq(D, c_r, rcond=None) if k_act else (np.zeros(0),)
        vhat = np.column_stack([U_tilde, V[:, :steps]])
        x += self.apply_pc(vhat @ y)
        if steps and self.k and not breakdown:
            self._update(D, B[:, :steps], H[: steps + 1, :steps], C, V[:, : steps + 1], vhat)
        return steps

    @staticmethod
    def _gbar(D, B, Hbar):
        k_act, s = B.shape
        gbar = np.zeros((k_act + s + 1, k_act + s))
        gbar[:k_act, :k_act] = D
        gbar[:k_act, k_act:] = B
        gbar[k_act:, k_act:] = Hbar
        return gbar

    def _update(self, D, B, Hbar, C, V, vhat):
        gbar = self._gbar(D, B, Hbar)
        what = np.column_stack([C, V])
        gram = what.T @ vhat
        theta, Z = scipy.linalg.eig(gbar.T @ gbar, gbar.T @ gram)
        theta = np.where(np.isfinite(theta), theta, np.inf)
        order = np.argsort(np.abs(theta), kind="stable")
        k_new = min(self.k, gbar.shape[1])
        cols, used = [], set()
        for i in order:
            if len(cols) == k_new:
                break
            if i in used:
                continue
            used.add(i)
            if theta[i].imag != 0:
                partner = min((j for j in order if j not in used), key=lambda j: abs(theta[j] - np.conj(theta[i])))
                used.add(partner)
                cols.append(Z[:, i].real)
                if len(cols) < k_new:
                    cols.append(Z[:, i].imag)
            else:
                cols.append(Z[:, i].real)
        P = np.column_stack(cols)
        q, r = np.linalg.qr(gbar @ P)
        self.C = what @ q
        self.U = vhat @ scipy.linalg.solve_triangular(r, P.T, trans="T").T
