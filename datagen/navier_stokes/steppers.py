"""Time steppers for the vorticity equation in Fourier space, in place and batched.

Split the right-hand side as ``dw/dt = L w + N(w)`` with the diagonal linear part
``L = -(nu |k|^2 + alpha)`` (diffusion and linear drag) and the explicit part
``N(w) = -P(u . grad w) + f`` (``P`` the 2/3-rule mask, ``f`` the fixed forcing). The terms (the
symbol of ``L``, the forcing spectrum, the mask, the product ``u . grad w`` and its in-place chunk
kernel) come from :class:`datagen.navier_stokes.rhs.VorticityRHS`, which the refinement residual uses
too; the steppers fold them into their update coefficients.

``fno`` (:class:`EulerCrankNicolson`): forward Euler for ``N``, Crank-Nicolson for ``L``::

    w^{n+1} = [(1 + dt L / 2) w^n + dt N(w^n)] / (1 - dt L / 2),

exactly the FNO benchmark generator's update (first order in time; second order when ``N = f``).

``rk3cn`` / ``rk4cn`` (:class:`IMEXRungeKuttaCN`): low-storage IMEX Runge-Kutta, explicit in ``N``
and Crank-Nicolson in ``L`` over each substep. Stage ``s = 1..S`` with nodes ``c_s`` (``c_1 = 0``,
``c_{S+1} = 1``), substep ``h_s = c_{s+1} - c_s``::

    w_s = [(1 + h_s dt L / 2) w_{s-1} + dt E_s] / (1 - h_s dt L / 2),     w_0 = w^n,  w^{n+1} = w_S,

with the explicit increment ``E_s`` of a low-storage Runge-Kutta scheme:
  * ``rk3cn``: Spalart, Moser & Rogers (1991), ``E_s = beta_s N(w_{s-1}) + gamma_s N(w_{s-2})`` with
    ``beta = (8/15, 5/12, 3/4)``, ``gamma = (0, -17/60, -5/12)``, ``c = (0, 8/15, 2/3, 1)``
    (``h_s = beta_s + gamma_s``); third order for ``N`` alone, second order overall (Crank-Nicolson
    substeps); stable for advection eigenvalues ``i omega`` with ``|omega dt| <= sqrt 3``.
  * ``rk4cn``: the five-stage, fourth-order 2N-storage scheme RK4(3)5[2N] of Carpenter & Kennedy (1994),
    ``R_s = N(w_{s-1}) + A_s R_{s-1}``, ``E_s = B_s R_s``, nodes ``c_s``; fourth order for ``N``
    alone, second order overall; stable for ``|omega dt| <= 3.34``.

All steppers advance ``w_hat`` (shape ``(*batch, n, n//2 + 1)``) in place, reuse preallocated buffers
(no allocation per step), take ``dt`` as a float (one step for the batch) or as a tensor of shape
``batch`` (one step per sample, ``dt = 0`` leaves a sample exactly unchanged), and transform the fixed
forcing once.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from .rhs import VorticityRHS
from .spectral import AdvectionBuffers, SpectralGrid, advection_product_chunk

__all__ = ["Stepper", "EulerCrankNicolson", "IMEXRungeKuttaCN", "STEPPERS", "make_stepper", "RK_TABLES"]

Dt = Union[float, torch.Tensor]

# Each table: form, beta_s, gamma_s per stage, and the nodes c_1..c_{S+1} (c_1 = 0, c_{S+1} = 1).
#   "smr": w_s = CN[w_{s-1} + dt (beta_s N_{s-1} + gamma_s N_{s-2})]        (Spalart-Moser-Rogers)
#   "2n":  R_s = N_{s-1} + gamma_s R_{s-1};  w_s = CN[w_{s-1} + dt beta_s R_s]  (Williamson 2N registers)
RK_TABLES: Dict[str, Tuple[str, Tuple[float, ...], Tuple[float, ...], Tuple[float, ...]]] = {
    "rk3cn": ("smr", (8 / 15, 5 / 12, 3 / 4), (0.0, -17 / 60, -5 / 12), (0.0, 8 / 15, 2 / 3, 1.0)),
    # Carpenter & Kennedy (1994), RK4(3)5[2N]: A_s -> gamma_s, B_s -> beta_s, c_s
    "rk4cn": (
        "2n",
        (
            1432997174477 / 9575080441755,
            5161836677717 / 13612068292357,
            1720146321549 / 2090206949498,
            3134564353537 / 4481467310338,
            2277821191437 / 14882151754819,
        ),
        (
            0.0,
            -567301805773 / 1357537059087,
            -2404267990393 / 2016746695238,
            -3550918686646 / 2091501179385,
            -1275806237668 / 842570457699,
        ),
        (
            0.0,
            1432997174477 / 9575080441755,
            2526269341429 / 6820363266361,
            2006345519317 / 3224310063776,
            2802321613138 / 2924317926251,
            1.0,
        ),
    ),
}


class Stepper:
    """Base class: grid, linear symbol, forcing spectrum and work buffers for a batch shape.

    Args:
        grid: the spectral grid (device and dtype of the run).
        viscosity: ``nu >= 0``.
        batch_shape: leading shape of the state spectra, e.g. ``(B,)``.
        forcing: physical forcing broadcastable to ``(*batch, n, n)`` (e.g. ``(n, n)``) or ``None``.
        drag: linear drag ``alpha >= 0``.
    """

    name = "base"
    order = 0  # design order with diffusion
    inviscid_order = 0  # design order of the explicit part alone (nu = alpha = 0)
    stages = 1  # nonlinear evaluations per step

    def __init__(
        self,
        grid: SpectralGrid,
        viscosity: float,
        batch_shape: Sequence[int],
        forcing: Optional[torch.Tensor] = None,
        drag: float = 0.0,
    ):
        # the right-hand side's terms, defined once (datagen.navier_stokes.rhs; the residual uses them too)
        self.rhs = VorticityRHS(grid, viscosity, drag, forcing)
        self.grid, self.viscosity, self.drag = grid, self.rhs.viscosity, self.rhs.drag
        self.batch_shape = tuple(int(b) for b in batch_shape)
        self.buffers = AdvectionBuffers(grid, self.batch_shape)
        # symbol of -L = nu |k|^2 + alpha, kept in float64 until the coefficients are formed
        self._minus_L = self.rhs.damping
        # the forcing spectrum (transformed once, in float64) rounded to the run's dtype
        self.forcing_hat = self.rhs.forcing_spectrum(grid.complex_dtype)
        self.dealias = self.rhs.dealias.to(torch.float64)
        self.dt: Dt = 0.0

    def _dt_tensor(self, dt: Dt) -> torch.Tensor:
        """``dt`` as float64 tensor broadcastable to a spectrum: scalar or ``(*batch, 1, 1)``."""
        if isinstance(dt, torch.Tensor) and dt.ndim > 0:
            if tuple(dt.shape) != self.batch_shape:
                raise ValueError(f"per-sample dt must have shape {self.batch_shape}, got {tuple(dt.shape)}")
            d = dt.to(device=self.grid.device, dtype=torch.float64)
            if not bool(torch.all(d >= 0)):
                raise ValueError("time steps must be >= 0")
            return d[..., None, None]
        d = float(dt)
        if not d >= 0:
            raise ValueError(f"time step must be >= 0, got {dt!r}")
        return torch.tensor(d, dtype=torch.float64, device=self.grid.device)

    def set_dt(self, dt: Dt) -> None:
        """Form the step's coefficient arrays for ``dt`` (float, or tensor of shape ``batch``)."""
        raise NotImplementedError

    def step(self, w_hat: torch.Tensor) -> torch.Tensor:
        """Advance ``w_hat`` ``(*batch, n, n//2+1)`` by one step in place; returns it."""
        raise NotImplementedError

    def _flat(self, coefficient: torch.Tensor) -> torch.Tensor:
        """Per-sample coefficients ``(*batch, n, m)`` as ``(B, n, m)`` rows; shared ones unchanged."""
        if coefficient.ndim > 2:
            return (
                coefficient.expand(self.batch_shape + self.grid.spectral_shape)
                .reshape((-1,) + self.grid.spectral_shape)
                .contiguous()
            )
        return coefficient

    @staticmethod
    def _rows(coefficient: Optional[torch.Tensor], start: int, stop: int) -> Optional[torch.Tensor]:
        """The rows of samples ``start:stop`` of a per-sample coefficient (shared ones as they are)."""
        if coefficient is None or coefficient.ndim <= 2:
            return coefficient
        return coefficient[start:stop]

    def _flat_state(self, w_hat: torch.Tensor) -> torch.Tensor:
        """``w_hat`` as a ``(B, n, m)`` view (the steppers update it in place, chunk by chunk)."""
        self._check_state(w_hat)
        if not w_hat.is_contiguous():
            raise ValueError(f"{self.name}: the state spectrum must be contiguous to be advanced in place")
        return w_hat.view((-1,) + self.grid.spectral_shape)

    def _check_state(self, w_hat: torch.Tensor) -> None:
        if not self.buffers.matches(w_hat):
            raise ValueError(
                f"{self.name}: state must be a {self.grid.complex_dtype} spectrum of shape "
                f"{self.batch_shape + self.grid.spectral_shape} on {self.grid.device}, got "
                f"{w_hat.dtype} {tuple(w_hat.shape)} on {w_hat.device}"
            )


class EulerCrankNicolson(Stepper):
    """The FNO benchmark scheme: explicit (forward Euler) advection, Crank-Nicolson diffusion."""

    name, order, inviscid_order, stages = "fno", 1, 1, 1

    def set_dt(self, dt: Dt) -> None:
        d = self._dt_tensor(dt)
        half = 0.5 * d * self._minus_L
        denom = 1.0 + half
        cplx = self.grid.complex_dtype
        real = self.grid.dtype
        self.decay = self._flat(((1.0 - half) / denom).to(real))  # (1 + dt L/2) / (1 - dt L/2)
        self.advect = self._flat((-d * self.dealias / denom).to(real))  # -dt P / (1 - dt L/2)
        self.source = (
            None
            if self.forcing_hat is None
            else self._flat(((d / denom) * self.forcing_hat.to(torch.complex128)).to(cplx))
        )  # dt f / (1 - dt L/2)
        self.dt = dt

    def step(self, w_hat: torch.Tensor) -> torch.Tensor:
        plan = self._plan(w_hat)
        split = self.buffers.split_fields
        multipliers = self.buffers.multipliers
        for w, w4, spectra, fields, spectra_j, fields_j, product, adv, decay, advect, source in plan:
            # advection_hat's chunk kernel (u, v, w_x, w_y on the grid, u w_x + v w_y, its rfft2) on views
            # made once per state tensor, then the update of these samples while they are in the cache:
            # w <- decay w - dt P adv / (1 - dt L/2) + dt f / (1 - dt L/2)
            advection_product_chunk(w4, multipliers, spectra, fields, spectra_j, fields_j, product, adv, split)
            if source is not None:
                torch.addcmul(source, decay, w, out=w)
            else:
                w.mul_(decay)
            w.addcmul_(adv, advect)
        return w_hat

    def _plan(self, w_hat: torch.Tensor) -> list:
        """Per chunk of :class:`AdvectionBuffers`: the views one step works on, built once per state tensor
        (and per :meth:`set_dt`): slicing and viewing cost about as much as the update itself at 256^2."""
        # the plan keeps the state's storage and the coefficient tensors alive, so neither the address nor
        # the objects compared here can be reused by other tensors while it is cached
        key = (w_hat.data_ptr(), tuple(w_hat.shape), tuple(w_hat.stride()), w_hat.dtype, w_hat.device)
        owners = (self.buffers, self.decay, self.advect, self.source)
        cached = getattr(self, "_plan_cache", None)
        if cached is not None and cached[0] == key and all(a is b for a, b in zip(cached[1], owners)):
            return cached[2]
        w_flat = self._flat_state(w_hat)
        b, rows = self.buffers, self._rows
        out_flat = b.out.view((b.flat,) + self.grid.spectral_shape)
        plan = []
        for start in range(0, b.flat, b.chunk):
            stop = min(start + b.chunk, b.flat)
            c = stop - start
            spectra, fields = b.spectra[:, :c], b.fields[:, :c]
            w = w_flat[start:stop]
            plan.append(
                (
                    w,
                    w.unsqueeze(0),
                    spectra,
                    fields,
                    list(spectra.unbind(0)),
                    list(fields.unbind(0)),
                    b.product[:c],
                    out_flat[start:stop],
                    rows(self.decay, start, stop),
                    rows(self.advect, start, stop),
                    rows(self.source, start, stop),
                )
            )
        self._plan_cache = (key, owners, plan)
        return plan


class IMEXRungeKuttaCN(Stepper):
    """Low-storage IMEX Runge-Kutta (explicit advection) with Crank-Nicolson substeps (module doc)."""

    def __init__(
        self,
        grid: SpectralGrid,
        viscosity: float,
        batch_shape: Sequence[int],
        forcing: Optional[torch.Tensor] = None,
        drag: float = 0.0,
        scheme: str = "rk3cn",
    ):
        if scheme not in RK_TABLES:
            raise ValueError(f"unknown IMEX Runge-Kutta scheme {scheme!r}; allowed: {', '.join(RK_TABLES)}")
        super().__init__(grid, viscosity, batch_shape, forcing, drag)
        self.name = scheme
        self.form, self.beta, self.gamma, self.nodes = RK_TABLES[scheme]
        self.stages = len(self.beta)
        self.order = 2
        self.inviscid_order = {"rk3cn": 3, "rk4cn": 4}[scheme]
        shape = self.batch_shape + grid.spectral_shape
        # two complex registers: the current N and either the previous N ("smr") or R ("2n")
        self._n_cur = torch.empty(shape, dtype=grid.complex_dtype, device=grid.device)
        self._other = torch.empty_like(self._n_cur)
        self._minus_dealias = (-self.dealias).to(grid.dtype)

    def set_dt(self, dt: Dt) -> None:
        d = self._dt_tensor(dt)
        real = self.grid.dtype
        self.decay, self.gain, self.gain_prev = [], [], []
        for s in range(self.stages):
            h = self.nodes[s + 1] - self.nodes[s]
            half = 0.5 * h * d * self._minus_L
            g = d / (1.0 + half)
            self.decay.append(self._flat(((1.0 - half) / (1.0 + half)).to(real)))
            self.gain.append(self._flat((self.beta[s] * g).to(real)))
            self.gain_prev.append(self._flat((self.gamma[s] * g).to(real)))
        self.dt = dt

    def step(self, w_hat: torch.Tensor) -> torch.Tensor:
        w_flat = self._flat_state(w_hat)
        shape = (-1,) + self.grid.spectral_shape
        rows, f_hat = self._rows, self.forcing_hat
        for s in range(self.stages):
            n_cur, other = self._n_cur.view(shape), self._other.view(shape)
            decay, gain, gain_prev, gamma = self.decay[s], self.gain[s], self.gain_prev[s], self.gamma[s]

            def update(a: int, b: int, adv: torch.Tensor) -> None:
                # N = -P adv + f for samples a:b, then their Crank-Nicolson substep, in cache
                n_s = n_cur[a:b]
                torch.mul(adv, self._minus_dealias, out=n_s)
                if f_hat is not None:
                    n_s.add_(f_hat)
                w = w_flat[a:b].mul_(rows(decay, a, b))
                if self.form == "smr":  # E = beta N_s + gamma N_{s-1} (other = N_{s-1})
                    w.addcmul_(n_s, rows(gain, a, b))
                    if gamma != 0.0:
                        w.addcmul_(other[a:b], rows(gain_prev, a, b))
                else:  # R = N_s + gamma R, E = beta R (other = R)
                    r = other[a:b]
                    if gamma == 0.0:
                        r.copy_(n_s)
                    else:
                        r.mul_(gamma).add_(n_s)
                    w.addcmul_(r, rows(gain, a, b))

            self.rhs.advection_hat(w_hat, self.buffers, dealias=False, epilogue=update)
            if self.form == "smr":  # N_s becomes "previous" for stage s + 1
                self._n_cur, self._other = self._other, self._n_cur
        return w_hat


STEPPERS = ("fno", "rk3cn", "rk4cn")


def make_stepper(
    name: str,
    grid: SpectralGrid,
    viscosity: float,
    batch_shape: Sequence[int],
    forcing: Optional[torch.Tensor] = None,
    drag: float = 0.0,
) -> Stepper:
    """Stepper by name: ``fno`` (Euler + Crank-Nicolson), ``rk3cn``, ``rk4cn`` (IMEX RK + CN)."""
    if name == "fno":
        return EulerCrankNicolson(grid, viscosity, batch_shape, forcing, drag)
    if name in RK_TABLES:
        return IMEXRungeKuttaCN(grid, viscosity, batch_shape, forcing, drag, scheme=name)
    raise ValueError(f"unknown time stepper {name!r}; allowed: {', '.join(STEPPERS)}")
