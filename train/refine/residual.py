"""The Navier-Stokes space-time residual of a vorticity trajectory on a periodic box.

For a vorticity trajectory ``w`` of shape ``(B, T, X, Y)`` sampled at uniform times ``t_i`` on the
periodic box ``[0, L)^2`` (unit torus by default), the residual of the 2D incompressible
vorticity equation (the FNO benchmark, Li et al., ICLR 2021) is::

    R(w) = w_t + u . grad w - nu Lap w + alpha w - f,     u = (d psi/dy, -d psi/dx),  -Lap psi = w,

(``alpha``: the generator's optional linear drag, 0 for the FNO data).

Choices, and why:

* Space: pseudo-spectral, with the generator's own operators (Poisson solve for the stream
  function, spectral derivatives, the 2/3-rule dealiasing mask; ``datagen.navier_stokes.spectral``)
  so that the quantity refined to zero is exactly the physics the data were generated with. Only
  the product ``u . grad w`` is de-aliased: it is formed in physical space on the grid of ``w``,
  transformed back and multiplied by the 2/3 rule's square mask (the generator's and torch-cfd's
  procedure); every linear term (``w_t``, ``nu Lap w``, ``alpha w``, ``f``) is kept on every mode of
  the grid (``band="full"``, the Spectral-Refiner paper's residual, Cao et al. 2025). The whole
  residual on the dealiased band only (``band="dealiased"``) is this toolkit's earlier choice,
  kept as an option: the modes above ``n/3`` then never enter the objective.
* Time: from the trajectory itself, by order-``p`` finite differences on the snapshot grid (default,
  error ``O(dt^p)``; exact for polynomials of degree ``p``) or spectrally for a window that is
  periodic by construction; see :mod:`train.refine.time_derivative`.
* Precision: the residual is a difference of nearly equal terms for a good trajectory; pass
  ``dtype=torch.float64`` to compute it in double precision whatever the input's dtype.

Linearisation. ``R`` is quadratic in ``w`` through the advection, so ``||R(w)||^2`` is not convex in
``w`` (nor in the weights of a layer that ``w`` depends on linearly). Around a frozen reference
trajectory ``w_ref`` (velocity ``u_ref``) two linearisations give residuals that are *affine* in
``w``, hence squared norms that are convex quadratics in ``w`` and in any layer weights ``w``
depends on affinely:

* ``"picard"``: ``R_P(w) = w_t + u_ref . grad w - nu Lap w - f`` (advection by a frozen velocity),
* ``"newton"``: ``R_N(w) = R(w_ref) + J(w_ref)(w - w_ref)`` with the Jacobian
  ``J d = d_t + u_ref . grad d + u(d) . grad w_ref - nu Lap d``, i.e.
  ``R_N(w) = w_t + u_ref . grad w + u(w) . grad w_ref - u_ref . grad w_ref - nu Lap w - f``.

Both agree with ``R`` at ``w = w_ref``; ``"newton"`` also has the same gradient there (Gauss-Newton).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from datagen.navier_stokes import spectral
from datagen.navier_stokes.rhs import VorticityRHS

from .time_derivative import TIME_DERIVATIVES, time_derivative

__all__ = [
    "LINEARIZATIONS",
    "BANDS",
    "LinearizationPoint",
    "residual_spectrum",
    "navier_stokes_residual",
    "residual_h_minus1_sq",
    "h_minus1_definition",
]

LINEARIZATIONS = ("none", "picard", "newton")
#: ``full``: only the advection product is de-aliased (paper); ``dealiased``: the whole residual is
#: restricted to the 2/3 band (earlier behaviour of this toolkit).
BANDS = ("full", "dealiased")


class LinearizationPoint:
    """A frozen reference trajectory ``w_ref`` ``(B, T, X, X)`` prepared once for many residual
    evaluations: its velocity ``u_ref`` and gradient ``grad w_ref`` in physical space
    (``(B, T, 2, X, X)`` each) and its dealiased advection spectrum ``P(u_ref . grad w_ref)``.
    The refiner evaluates the linearised residual dozens of times around one reference; this saves
    the ten transforms of the reference each time."""

    def __init__(self, reference: torch.Tensor, box: float = 1.0, dtype: Optional[torch.dtype] = None):
        ref = reference.detach()
        if dtype is not None:
            ref = ref.to(dtype)
        n = ref.shape[-1]
        grid = spectral.SpectralGrid(n, box, dtype=ref.dtype, device=ref.device)
        ref_hat = spectral.to_spectral(ref)
        self.shape, self.box, self.dtype = tuple(ref.shape), float(box), ref.dtype
        self.velocity = spectral.to_physical(torch.stack(spectral.velocity_hat(ref_hat, grid), dim=-3), grid)
        self.gradient = spectral.to_physical(torch.stack(spectral.gradient_hat(ref_hat, grid), dim=-3), grid)
        self.advection_hat = spectral.advection_hat(ref_hat, grid)


def _linearized_advection_hat(
    w_hat: torch.Tensor, point: LinearizationPoint, newton: bool, rhs: VorticityRHS
) -> torch.Tensor:
    """Dealiased ``u_ref . grad w`` (Picard), plus ``u(w) . grad w_ref - u_ref . grad w_ref``
    (Newton): products in physical space, transformed back, 2/3-rule mask -- the generator's
    procedure (:func:`datagen.navier_stokes.spectral.advection_hat`) applied to the mixed terms."""
    grid = rhs.grid
    wx, wy = spectral.to_physical(torch.stack(spectral.gradient_hat(w_hat, grid), dim=-3), grid).unbind(-3)
    u_ref, v_ref = point.velocity.unbind(-3)
    product = u_ref * wx + v_ref * wy
    if newton:
        u, v = spectral.to_physical(torch.stack(spectral.velocity_hat(w_hat, grid), dim=-3), grid).unbind(-3)
        rx, ry = point.gradient.unbind(-3)
        product = product + u * rx + v * ry
    adv_hat = spectral.to_spectral(product) * rhs.dealias
    return adv_hat - point.advection_hat if newton else adv_hat


def residual_spectrum(
    w: torch.Tensor,
    dt: float,
    viscosity: float,
    forcing: Optional[torch.Tensor] = None,
    box: float = 1.0,
    drag: float = 0.0,
    time_method: str = "fd",
    fd_order: int = 6,
    linearization: str = "none",
    reference=None,
    dtype: Optional[torch.dtype] = None,
    band: str = "full",
) -> torch.Tensor:
    """``rfft2`` coefficients of ``R(w)``, shape ``(B, T, X, X//2 + 1)``.

    Args:
        w: vorticity trajectory ``(B, T, X, X)`` at times ``t_0 + i dt`` (square periodic grid).
        dt: snapshot spacing.
        viscosity: ``nu`` (>= 0).
        forcing: ``f`` in physical space, broadcastable to ``(B, T, X, X)`` (e.g. ``(X, X)``), or
            ``None`` for no forcing.
        box: side length ``L`` of the periodic box.
        drag: linear drag ``alpha`` (the generator's optional ``- alpha w`` term; 0 for FNO data).
        time_method, fd_order: see :func:`train.refine.time_derivative.time_derivative`.
        linearization: ``"none"`` (the full residual), ``"picard"`` or ``"newton"`` around
            ``reference`` (module docstring).
        reference: ``w_ref``, shape of ``w``, or a :class:`LinearizationPoint` built from it;
            required unless ``linearization == "none"``; it is detached (it is a frozen point of
            the linearisation, not a variable).
        dtype: compute in this real dtype (e.g. ``torch.float64``); default ``w``'s.
        band: ``"full"`` (default: every mode, only the advection product de-aliased) or
            ``"dealiased"`` (the residual restricted to the 2/3 band).
    Returns:
        complex tensor; ``torch.fft.irfft2(., s=(X, X))`` gives ``R`` in physical space.
        Unnormalised ``rfft2`` convention (divide by ``X*X`` for Fourier-series coefficients).
    """
    if w.ndim != 4:
        raise ValueError(f"vorticity trajectory must have shape (B, T, X, Y), got {tuple(w.shape)}")
    n = w.shape[-1]
    if w.shape[-2] != n:
        raise ValueError(f"the residual needs a square periodic grid, got {w.shape[-2]} x {n}")
    if linearization not in LINEARIZATIONS:
        raise ValueError(f"unknown linearization {linearization!r}; allowed: {', '.join(LINEARIZATIONS)}")
    if band not in BANDS:
        raise ValueError(f"unknown residual band {band!r}; allowed: {', '.join(BANDS)}")
    if time_method not in TIME_DERIVATIVES:
        raise ValueError(f"unknown time derivative {time_method!r}; allowed: {', '.join(TIME_DERIVATIVES)}")
    if linearization != "none":
        if reference is None:
            raise ValueError(f"linearization={linearization!r} needs a reference trajectory")
        if tuple(reference.shape) != tuple(w.shape):
            raise ValueError(f"reference shape {tuple(reference.shape)} != trajectory shape {tuple(w.shape)}")
    if dtype is not None:
        w = w.to(dtype)
    grid = spectral.SpectralGrid(n, box, dtype=w.dtype, device=w.device)
    # the equation's terms as the generator's steppers define them (validates viscosity and drag)
    rhs = VorticityRHS(grid, viscosity, drag, forcing)
    if linearization != "none":
        point = reference
        if not isinstance(point, LinearizationPoint):
            point = LinearizationPoint(reference, box, w.dtype)
        if point.dtype != w.dtype or point.box != float(box):
            raise ValueError(
                f"linearization point built for dtype {point.dtype}, box {point.box}; the "
                f"residual is computed in {w.dtype} on box {box}"
            )

    w_hat = spectral.to_spectral(w)
    w_t_hat = spectral.to_spectral(time_derivative(w, dt, method=time_method, order=fd_order, dim=1))
    if linearization == "none":
        adv_hat = rhs.advection_hat(w_hat)
    else:
        adv_hat = _linearized_advection_hat(w_hat, point, linearization == "newton", rhs)

    # R = w_t - (L w + N(w)) = w_t + P(u . grad w) + (nu |k|^2 + alpha) w - f
    r_hat = w_t_hat + adv_hat - rhs.linear_hat(w_hat)
    f_hat = rhs.forcing_spectrum(w_hat.dtype)
    if f_hat is not None:
        r_hat = r_hat - f_hat
    return r_hat * rhs.dealias if band == "dealiased" else r_hat


def navier_stokes_residual(w: torch.Tensor, dt: float, viscosity: float, **kwargs) -> torch.Tensor:
    """``R(w)`` in physical space, shape ``(B, T, X, X)``; arguments as :func:`residual_spectrum`."""
    r_hat = residual_spectrum(w, dt, viscosity, **kwargs)
    return torch.fft.irfft2(r_hat, s=w.shape[-2:])


def residual_h_minus1_sq(r: torch.Tensor, box: float = 1.0, alpha: float = 1.0) -> torch.Tensor:
    """``||R(t_i)||_{H^-1}^2`` per sample and snapshot, shape ``(B, T)``, of a physical residual
    ``r`` ``(B, T, X, X)``::

        ||u||_{H^-1}^2 = L^2 sum_k |u_k|^2 / (alpha + 4 pi^2 |k / L|^2)

    with Fourier-series coefficients ``u_k`` (integer ``k``, every mode of the grid). ``alpha = 1``
    is the toolkit's Sobolev norm (:func:`neuralops.losses.sobolev_norm` with ``s = -1``); torch-cfd's
    ``SobolevLoss`` (Spectral-Refiner's code) uses ``alpha = 0.1`` by default. Each snapshot is its
    own function (no pooling over time). Parseval makes it exact for a trigonometric polynomial on
    the grid."""
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"the H^-1 weight's alpha must be a positive number, got {alpha!r}")
    n = r.shape[-1]
    grid = spectral.SpectralGrid(n, box, dtype=r.dtype, device=r.device)
    c = torch.fft.rfft2(r)
    p = (c.real**2 + c.imag**2) / (alpha + grid.k2)
    # half spectrum: columns 1 .. n/2 - 1 stand for two modes each, column 0 and Nyquist for one
    total = 2.0 * p.sum(dim=(-2, -1)) - p[..., 0].sum(-1) - p[..., -1].sum(-1)
    return total * (float(box) ** 2 / n**4)


def h_minus1_definition(alpha: float) -> str:
    """The norm :func:`residual_h_minus1_sq` computes, in words (for reports)."""
    return (
        f"||u||_{{H^-1}}^2 = L^2 sum_k |u_k|^2 / (alpha + 4 pi^2 |k/L|^2) over every mode of the grid, "
        f"alpha = {alpha:g} (u_k Fourier-series coefficients)"
    )
