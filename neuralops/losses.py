"""Losses and norms on gridded fields: Lp and Sobolev H^s, absolute and relative.

Every function takes tensors ``(B, *other, *grid)`` whose last ``dim`` axes are the grid and says
exactly how it reduces the rest:

1. the norm of one function is taken over the ``dim`` grid axes;
2. ``pool`` names further (non-batch) axes folded *into* that norm -- ``"all"`` (every non-batch
   axis: one norm per sample, e.g. over all ``(t, x, y)`` as in the FNO paper's relative L2),
   a tuple of axis indices (e.g. ``(1,)`` for the time axis of ``(B, T, C, X, Y)``), or ``None``
   (each frame/channel is its own function). Pooling *sums* the p-th powers (squares for H^s)
   over the pooled entries: no mean over them, so no hidden ``sqrt(n_t)`` factor;
3. ``reduction`` over the remaining axes (batch and unpooled ones): ``"mean"``, ``"sum"`` or
   ``"none"`` (returns the tensor of per-function values, shape = input shape without the grid
   and pooled axes).

Norms (``box`` = side length ``L`` of the domain, a float or one per grid axis, ``|Omega| = prod L``):

* Lp: ``||u||_p = (|Omega| mean_grid |u|^p)^(1/p)`` -- the rectangle rule for ``int |u|^p``
  on a periodic/cell grid; ``p = inf``: ``max |u|``.
* Sobolev, periodic: with ``u(x) = sum_k u_k exp(2 pi i k.x / L)`` (``u_k = fftn(u) / N``, the
  Fourier coefficients on the box),
  ``||u||_{H^s}^2 = |Omega| sum_k (1 + 4 pi^2 |k / L|^2)^s |u_k|^2``; on the unit torus this is
  ``sum_k (1 + 4 pi^2 |k|^2)^s |u_k|^2``, and ``s = 0`` gives the L2 norm (Parseval). Any real
  ``s``, negative included.
* Sobolev, homogeneous Dirichlet (sine series): values on the interior nodes ``x_j = j L/(M+1)``,
  ``j = 1..M``, expanded as ``u = sum_k b_k prod sin(pi k_i x_i / L_i)`` (DST-I, computed with the
  FFT of the odd extension), ``||u||_{H^s}^2 = |Omega| 2^-d sum_k (1 + pi^2 |k / L|^2)^s b_k^2``
  (``1 + lambda_k`` with ``lambda_k`` the Dirichlet Laplacian's eigenvalue, as in the periodic case).
  ``includes_boundary=True`` drops the (zero) boundary nodes first.
* ``k_max``: keep only integer wavenumbers with Euclidean length ``|k| <= k_max`` (a frequency
  cut-off; ``k`` counts periods/half-periods over the box, independent of ``L``).

Relative errors are ``||pred - target|| / ||target||`` with both norms pooled the same way.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

__all__ = [
    "lp_norm",
    "lp_error",
    "relative_lp_error",
    "sobolev_norm",
    "sobolev_error",
    "relative_sobolev_error",
    "sine_coefficients",
    "LpLoss",
    "SobolevLoss",
]

Pool = Union[None, str, int, Sequence[int]]
Box = Union[float, Sequence[float]]
_REDUCTIONS = ("mean", "sum", "none")
_BOUNDARIES = ("periodic", "dirichlet")


# ------------------------------------------------------------------------------------------------
# reduction helpers
# ------------------------------------------------------------------------------------------------
def _check(u: torch.Tensor, dim: int, reduction: str) -> None:
    if dim < 1:
        raise ValueError(f"dim (number of grid axes) must be >= 1, got {dim}")
    if u.dim() < dim + 1:
        raise ValueError(f"expected a tensor (B, ..., <{dim} grid axes>), got shape {tuple(u.shape)}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")


def _pooled_axes(ndim_left: int, pool: Pool) -> Tuple[int, ...]:
    """Axes (of the tensor with the grid already reduced, ``ndim_left`` axes) to fold in."""
    if pool is None:
        return ()
    if isinstance(pool, str):
        if pool != "all":
            raise ValueError(f"pool must be None, 'all' or axis indices, got {pool!r}")
        return tuple(range(1, ndim_left))
    axes = (pool,) if isinstance(pool, int) else tuple(pool)
    out = []
    for a in axes:
        a = int(a)
        if not (1 <= a < ndim_left):
            raise ValueError(f"pool axis {a} is not a non-batch, non-grid axis (allowed: 1..{ndim_left - 1})")
        out.append(a)
    return tuple(sorted(set(out)))


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def _box(box: Box, dim: int) -> Tuple[float, ...]:
    sides = (float(box),) * dim if isinstance(box, (int, float)) else tuple(float(b) for b in box)
    if len(sides) != dim or any(not (b > 0) for b in sides):
        raise ValueError(f"box must be a positive length or {dim} of them, got {box}")
    return sides


# ------------------------------------------------------------------------------------------------
# Lp
# ------------------------------------------------------------------------------------------------
def _lp_power(u: torch.Tensor, p: float, dim: int, box: Box, pool: Pool) -> torch.Tensor:
    """``sum_pooled |Omega| mean_grid |u|^p`` (or the max for p = inf) per unpooled function."""
    grid_axes = tuple(range(-dim, 0))
    if math.isinf(p):
        v = u.abs().amax(dim=grid_axes)
        axes = _pooled_axes(v.dim(), pool)
        return v.amax(dim=axes) if axes else v
    volume = math.prod(_box(box, dim))
    v = volume * u.abs().pow(p).mean(dim=grid_axes)
    axes = _pooled_axes(v.dim(), pool)
    return v.sum(dim=axes) if axes else v


def _check_p(p: float) -> float:
    p = float(p)
    if not (p >= 1):
        raise ValueError(f"p must be >= 1 (or inf), got {p}")
    return p


def lp_norm(
    u: torch.Tensor, p: float = 2, dim: int = 2, box: Box = 1.0, pool: Pool = "all", reduction: str = "none"
) -> torch.Tensor:
    """``||u||_p`` over the last ``dim`` axes (and the ``pool`` axes); see the module docstring."""
    _check(u, dim, reduction)
    p = _check_p(p)
    power = _lp_power(u, p, dim, box, pool)
    return _reduce(power if math.isinf(p) else power.pow(1.0 / p), reduction)


def lp_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    p: float = 2,
    dim: int = 2,
    box: Box = 1.0,
    pool: Pool = "all",
    reduction: str = "mean",
) -> torch.Tensor:
    """Absolute error ``||pred - target||_p``, reduced as stated in the module docstring."""
    _same_shape(pred, target)
    return lp_norm(pred - target, p, dim, box, pool, reduction)


def relative_lp_error(
    pred: torch.Tensor, target: torch.Tensor, p: float = 2, dim: int = 2, pool: Pool = "all", reduction: str = "mean"
) -> torch.Tensor:
    """Relative error ``||pred - target||_p / ||target||_p`` per function, then reduced."""
    _same_shape(pred, target)
    err = lp_norm(pred - target, p, dim, 1.0, pool, "none")
    ref = lp_norm(target, p, dim, 1.0, pool, "none")
    return _reduce(err / ref, reduction)


def _same_shape(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")


# ------------------------------------------------------------------------------------------------
# Sobolev
# ------------------------------------------------------------------------------------------------
def sine_coefficients(u: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """DST-I coefficients ``b_k`` (k = 1..M per axis) of interior values over the last ``dim`` axes:
    ``u_j = sum_k b_k prod_i sin(pi k_i j_i / (M_i + 1))``. Computed axis by axis from the real FFT
    of the odd extension ``[0, u_1..u_M, 0, -u_M..-u_1]``, whose imaginary part is
    ``-(M+1) b_k``."""
    b = u
    for axis in range(-dim, 0):
        m = b.shape[axis]
        zero = torch.zeros_like(b.narrow(axis, 0, 1))
        ext = torch.cat([zero, b, zero, -b.flip(axis)], dim=axis)
        b = -torch.fft.rfft(ext, dim=axis).imag.narrow(axis, 1, m) / (m + 1)
    return b


def _sobolev_weights(
    shape: Sequence[int], s: float, sides: Sequence[float], boundary: str, k_max: Optional[float], dtype, device
) -> torch.Tensor:
    """``(1 + |2 pi k / L|^2)^s`` (periodic, full FFT on all but the last axis, rfft on the last)
    or ``(1 + |pi k / L|^2)^s`` (Dirichlet, k = 1..M), zero beyond ``k_max``."""
    d = len(shape)
    lam = torch.zeros((), dtype=dtype, device=device)
    k2 = torch.zeros((), dtype=dtype, device=device)
    for i, (n, side) in enumerate(zip(shape, sides)):
        if boundary == "periodic":
            if i == d - 1:
                k = torch.arange(n, dtype=dtype, device=device)  # the rfft half: 0..n//2
            else:
                k = torch.fft.fftfreq(n, d=1.0 / n, dtype=dtype, device=device)
            factor = 2 * math.pi / side
        else:
            k = torch.arange(1, n + 1, dtype=dtype, device=device)
            factor = math.pi / side
        view = [1] * d
        view[i] = n
        k = k.view(view)
        lam = lam + (factor * k) ** 2
        k2 = k2 + k**2
    weights = (1.0 + lam) ** s
    if k_max is not None:
        weights = torch.where(k2 <= float(k_max) ** 2, weights, torch.zeros_like(weights))
    return weights


def _sobolev_sq(
    u: torch.Tensor,
    s: float,
    dim: int,
    box: Box,
    boundary: str,
    k_max: Optional[float],
    includes_boundary: bool,
    pool: Pool,
) -> torch.Tensor:
    if boundary not in _BOUNDARIES:
        raise ValueError(f"boundary must be one of {', '.join(_BOUNDARIES)}, got {boundary!r}")
    if k_max is not None and not (k_max >= 0):
        raise ValueError(f"k_max must be >= 0 or None, got {k_max}")
    sides = _box(box, dim)
    volume = math.prod(sides)
    grid_axes = tuple(range(-dim, 0))
    real = torch.float64 if u.dtype == torch.float64 else torch.float32
    if boundary == "periodic":
        u_hat = torch.fft.rfftn(u, dim=grid_axes, norm="forward")
        power = u_hat.real**2 + u_hat.imag**2
        n_last = u.shape[-1]
        # the rfft half holds k_last >= 0 only: the modes 0 < k_last < n/2 stand for two
        multiplicity = torch.full((u_hat.shape[-1],), 2.0, dtype=real, device=u.device)
        multiplicity[0] = 1.0
        if n_last % 2 == 0:
            multiplicity[-1] = 1.0
        weights = _sobolev_weights(power.shape[-dim:], s, sides, boundary, k_max, real, u.device)
        weights = weights * multiplicity
    else:
        if includes_boundary:
            for axis in grid_axes:
                if u.shape[axis] < 3:
                    raise ValueError(f"includes_boundary=True needs >= 3 nodes per axis, got shape {tuple(u.shape)}")
                u = u.narrow(axis, 1, u.shape[axis] - 2)
        b = sine_coefficients(u, dim)
        power = b**2
        weights = _sobolev_weights(power.shape[-dim:], s, sides, boundary, k_max, real, u.device)
        weights = weights * 2.0 ** (-dim)
    sq = volume * (power * weights).sum(dim=grid_axes)
    axes = _pooled_axes(sq.dim(), pool)
    return sq.sum(dim=axes) if axes else sq


def sobolev_norm(
    u: torch.Tensor,
    s: float = 1.0,
    dim: int = 2,
    box: Box = 1.0,
    boundary: str = "periodic",
    k_max: Optional[float] = None,
    includes_boundary: bool = False,
    pool: Pool = "all",
    reduction: str = "none",
    squared: bool = False,
) -> torch.Tensor:
    """``||u||_{H^s}`` (or its square) over the last ``dim`` axes; see the module docstring."""
    _check(u, dim, reduction)
    sq = _sobolev_sq(u, float(s), dim, box, boundary, k_max, includes_boundary, pool)
    return _reduce(sq if squared else sq.sqrt(), reduction)


def sobolev_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    s: float = 1.0,
    dim: int = 2,
    box: Box = 1.0,
    boundary: str = "periodic",
    k_max: Optional[float] = None,
    includes_boundary: bool = False,
    pool: Pool = "all",
    reduction: str = "mean",
    squared: bool = False,
) -> torch.Tensor:
    """Absolute error ``||pred - target||_{H^s}`` (or squared), reduced as stated."""
    _same_shape(pred, target)
    return sobolev_norm(pred - target, s, dim, box, boundary, k_max, includes_boundary, pool, reduction, squared)


def relative_sobolev_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    s: float = 1.0,
    dim: int = 2,
    box: Box = 1.0,
    boundary: str = "periodic",
    k_max: Optional[float] = None,
    includes_boundary: bool = False,
    pool: Pool = "all",
    reduction: str = "mean",
) -> torch.Tensor:
    """``||pred - target||_{H^s} / ||target||_{H^s}`` per function, then reduced."""
    _same_shape(pred, target)
    _check(pred, dim, reduction)
    args = (float(s), dim, box, boundary, k_max, includes_boundary, pool)
    err = _sobolev_sq(pred - target, *args)
    ref = _sobolev_sq(target, *args)
    return _reduce((err / ref).sqrt(), reduction)


# ------------------------------------------------------------------------------------------------
# nn.Module wrappers
# ------------------------------------------------------------------------------------------------
class LpLoss(nn.Module):
    """``loss(pred, target)``: relative (default) or absolute Lp error, with the module docstring's
    ``dim`` / ``pool`` / ``reduction`` semantics (default: one norm per sample over all non-batch
    axes, mean over the batch -- the FNO paper's relative L2)."""

    def __init__(
        self,
        p: float = 2,
        relative: bool = True,
        dim: int = 2,
        box: Box = 1.0,
        pool: Pool = "all",
        reduction: str = "mean",
    ):
        super().__init__()
        self.p = _check_p(p)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")
        self.relative, self.dim, self.box, self.pool, self.reduction = relative, dim, box, pool, reduction

    def extra_repr(self) -> str:
        return f"p={self.p}, relative={self.relative}, dim={self.dim}, pool={self.pool!r}, reduction={self.reduction!r}"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.relative:
            return relative_lp_error(pred, target, self.p, self.dim, self.pool, self.reduction)
        return lp_error(pred, target, self.p, self.dim, self.box, self.pool, self.reduction)


class SobolevLoss(nn.Module):
    """``loss(pred, target)``: relative (default) or absolute H^s error (module docstring), e.g.
    ``SobolevLoss(s=1)`` = relative H1 loss, ``SobolevLoss(s=-1, relative=False, squared=True)`` =
    squared H^-1 norm of a residual."""

    def __init__(
        self,
        s: float = 1.0,
        relative: bool = True,
        dim: int = 2,
        box: Box = 1.0,
        boundary: str = "periodic",
        k_max: Optional[float] = None,
        includes_boundary: bool = False,
        pool: Pool = "all",
        reduction: str = "mean",
        squared: bool = False,
    ):
        super().__init__()
        if boundary not in _BOUNDARIES:
            raise ValueError(f"boundary must be one of {', '.join(_BOUNDARIES)}, got {boundary!r}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")
        if relative and squared:
            raise ValueError("squared=True is for absolute norms; relative errors are not squared")
        self.s, self.relative, self.dim, self.box = float(s), relative, dim, box
        self.boundary, self.k_max, self.includes_boundary = boundary, k_max, includes_boundary
        self.pool, self.reduction, self.squared = pool, reduction, squared

    def extra_repr(self) -> str:
        return (
            f"s={self.s}, relative={self.relative}, dim={self.dim}, boundary={self.boundary!r}, "
            f"k_max={self.k_max}, pool={self.pool!r}, reduction={self.reduction!r}"
        )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        kw = dict(
            s=self.s,
            dim=self.dim,
            box=self.box,
            boundary=self.boundary,
            k_max=self.k_max,
            includes_boundary=self.includes_boundary,
            pool=self.pool,
            reduction=self.reduction,
        )
        if self.relative:
            return relative_sobolev_error(pred, target, **kw)
        return sobolev_error(pred, target, squared=self.squared, **kw)
