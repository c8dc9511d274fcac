"""Time derivative of a sampled trajectory, taken from the trajectory itself.

Two methods, chosen by the caller (:func:`time_derivative`):

``"fd"`` (default): finite differences of order ``p`` on the uniform snapshot grid. Every row of
the differentiation matrix uses ``p + 1`` consecutive snapshots: centred where the window allows
(``p`` even), shifted towards the interior at the two ends (one-sided stencils). The weights are
those of the interpolating polynomial of degree ``p`` (Fornberg), so the derivative is *exact for
polynomials in t of degree <= p* and its error is ``O(dt^p)``: about
``C_p dt^p max|d^{p+1} w / dt^{p+1}|`` with ``C_p = 1/(p+1)`` centred and up to a few times that at
the ends. Nothing is assumed about the window's ends, which is why it is the default: a predicted
trajectory (and the solver's ground truth) is not periodic in time.

``"spectral"``: the window is treated as one period of a periodic function (period ``T dt``) and
differentiated with the FFT. Exact (to round-off) for trigonometric polynomials that are periodic
on the window, exponentially accurate for smooth periodic signals; for a window whose ends do not
match it has O(1) Gibbs errors near the ends that do not fall as dt -> 0. Use it only for
trajectories that are periodic by construction.

Both are linear in the trajectory, so they keep the refinement objective's convex structure.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = ["TIME_DERIVATIVES", "fd_weights", "fd_differentiation_matrix", "time_derivative"]

TIME_DERIVATIVES = ("fd", "spectral")


def fd_weights(offsets: np.ndarray) -> np.ndarray:
    """Weights ``c`` with ``f'(0) ~ sum_j c_j f(offsets_j)`` (unit spacing), exact for polynomials
    of degree ``len(offsets) - 1``: the solution of the Vandermonde system
    ``sum_j c_j offsets_j^m = d/dt t^m |_0 = [m == 1]``. Solved in float64; the stencils used here
    are at most 11 points wide, where this system is well conditioned enough for ~1e-13 weights."""
    offsets = np.asarray(offsets, dtype=np.float64)
    n = offsets.size
    vander = np.vander(offsets, n, increasing=True).T  # row m: offsets**m
    rhs = np.zeros(n)
    rhs[1] = 1.0
    return np.linalg.solve(vander, rhs)


@lru_cache(maxsize=64)
def _fd_matrix_np(n_times: int, order: int) -> np.ndarray:
    if order < 1:
        raise ValueError(f"finite-difference order must be >= 1, got {order}")
    if n_times < order + 1:
        raise ValueError(
            f"a time derivative of order {order} needs at least {order + 1} snapshots, the trajectory "
            f"has {n_times}; lower the order (fd_order) or give a longer window"
        )
    width = order + 1
    D = np.zeros((n_times, n_times))
    for i in range(n_times):
        # stencil start: centred (i - order//2), clipped into [0, n_times - width]
        start = min(max(i - order // 2, 0), n_times - width)
        offsets = np.arange(start, start + width) - i
        D[i, start : start + width] = fd_weights(offsets)
    return D


def fd_differentiation_matrix(n_times: int, order: int, dt: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """(n_times, n_times) matrix ``D`` with ``(D w)_i ~ dw/dt(t_i)`` to ``O(dt^order)``."""
    return torch.as_tensor(_fd_matrix_np(int(n_times), int(order)) / float(dt), dtype=dtype, device=device)


def time_derivative(w: torch.Tensor, dt: float, method: str = "fd", order: int = 6, dim: int = 1) -> torch.Tensor:
    """d w / d t of a trajectory sampled at uniform times ``t_i = t_0 + i dt`` along ``dim``.

    Args:
        w: real tensor, time along ``dim`` (the toolkit's layout is ``(B, T, X, Y)``, ``dim=1``).
        dt: snapshot spacing (> 0).
        method: ``"fd"`` (order-``order`` finite differences, see module docstring) or
            ``"spectral"`` (periodic window).
        order: finite-difference order (ignored for ``"spectral"``).
    Returns:
        tensor of ``w``'s shape and dtype.
    """
    if not dt > 0:
        raise ValueError(f"snapshot spacing dt must be > 0, got {dt}")
    n_times = w.shape[dim]
    if method == "fd":
        D = fd_differentiation_matrix(n_times, order, dt, dtype=w.dtype, device=w.device)
        w_t = torch.tensordot(D, w.movedim(dim, 0), dims=([1], [0]))
        return w_t.movedim(0, dim)
    if method == "spectral":
        w_hat = torch.fft.rfft(w, dim=dim)
        freq = torch.fft.rfftfreq(n_times, d=dt, device=w.device).to(w.dtype)
        factor = 2j * math.pi * freq
        if n_times % 2 == 0:
            # the Nyquist mode's derivative is not representable as a real signal: drop it
            factor[-1] = 0.0
        shape = [1] * w.ndim
        shape[dim] = -1
        return torch.fft.irfft(w_hat * factor.reshape(shape), n=n_times, dim=dim)
    raise ValueError(f"unknown time derivative {method!r}; allowed: {', '.join(TIME_DERIVATIVES)}")
