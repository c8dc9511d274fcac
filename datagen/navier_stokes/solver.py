"""Batched pseudo-spectral solver of the 2D vorticity equation on a periodic box (CPU/GPU, fp32/fp64).

A batch of ``B`` trajectories ``w(t)`` of shape ``(B, n, n)`` is advanced in Fourier space by a
stepper from :mod:`datagen.navier_stokes.steppers` and handed out at the requested snapshot times.

Time step:
  * ``fixed``: one ``dt`` for every sample; every snapshot interval must be a whole number of steps
    (the step count is exact integer arithmetic, never an accumulated float time). Before the first
    step the advective CFL number ``dt max(|u| + |v|) / dx`` of every initial field is checked against
    the stepper's stability limit; a ``dt`` above it is rejected with a clear message.
  * ``cfl``: per sample, at the start of every snapshot interval (and every ``cfl_recheck`` of
    simulated time within longer ones), ``dt_i = min(max_dt, cfl dx / max(|u_i| + |v_i|))`` rounded
    down so that the piece is a whole number of steps. Each sample's step depends only on
    that sample, so results do not depend on which other samples share the batch (samples that have
    reached the snapshot wait with ``dt = 0``, which leaves them exactly unchanged).

Blow-up: at every snapshot each sample is checked for non-finite values and for a CFL number above the
stepper's limit; a sample that fails is recorded (``reasons``), frozen at zero (so it costs nothing
and cannot spread NaNs), and reported as invalid; the others go on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from .spectral import SpectralGrid, forcing_field, max_velocity, to_physical
from .steppers import STEPPERS, make_stepper

__all__ = ["NavierStokesSolver", "SolveResult", "CFL_LIMITS", "DT_MODES"]

DT_MODES = ("fixed", "cfl")

# Largest advective CFL number dt max(|u|+|v|)/dx each stepper accepts. The dealiased advection's
# eigenvalues lie on the imaginary axis up to 2 pi / 3 * CFL; RK3 (SMR) is stable there up to sqrt 3
# (CFL 0.83), Carpenter-Kennedy RK4 up to 3.34 (CFL 1.6). Forward Euler is never stable for pure
# advection: the FNO scheme relies on small steps (CFL ~ 0.05 in the benchmark); beyond 0.5 its
# amplification of a resolved mode exceeds sqrt 2 per step.
CFL_LIMITS = {"fno": 0.5, "rk3cn": 0.8, "rk4cn": 1.5}


@dataclass
class SolveResult:
    """What :meth:`NavierStokesSolver.run` returns.

    ``times`` ``(T,)``; ``snapshots``: whatever ``on_snapshot`` returned, per snapshot (default: the
    physical vorticity ``(B, n, n)`` on the host); ``valid`` ``(B,)`` bool; ``reasons``: ``B`` strings
    ("" when valid); ``steps`` ``(B,)`` time steps taken; ``max_cfl`` ``(B,)`` largest CFL number seen
    at the snapshots; ``seconds``: wall time of the run.
    """

    times: np.ndarray
    snapshots: List
    valid: np.ndarray
    reasons: List[str]
    steps: np.ndarray
    max_cfl: np.ndarray
    seconds: float = 0.0

    def vorticity(self) -> torch.Tensor:
        """Default snapshots stacked as ``(B, T, n, n)``."""
        return torch.stack(self.snapshots, dim=1)


class NavierStokesSolver:
    """``w_t + u . grad w = nu Lap w - alpha w + f`` on ``[0, L)^2``, batched.

    Args:
        n: grid points per axis (even).
        viscosity: ``nu >= 0``.
        box: side ``L``.
        forcing: forcing spec (``{"type": "fno"}``, ``{"type": "kolmogorov", ...}``; see
            :func:`datagen.navier_stokes.spectral.forcing_field`), a physical ``(n, n)`` array, or ``None``.
        drag: linear drag ``alpha >= 0``.
        stepper: ``"fno"`` (Euler + Crank-Nicolson), ``"rk3cn"`` or ``"rk4cn"``.
        dt: the fixed step, or the largest step in ``cfl`` mode (``None``: no cap).
        dt_mode: ``"fixed"`` or ``"cfl"``.
        cfl: target CFL number in ``cfl`` mode.
        cfl_limit: stability limit (default :data:`CFL_LIMITS` of the stepper).
        cfl_recheck: in ``cfl`` mode, the longest simulated time before the step sizes are chosen
            again (snapshot intervals and warm-ups longer than it are split into equal pieces).
        device, dtype: where and in which precision to compute (``torch.float32`` / ``torch.float64``).
    """

    def __init__(
        self,
        n: int,
        viscosity: float,
        box: float = 1.0,
        forcing=None,
        drag: float = 0.0,
        stepper: str = "fno",
        dt: Optional[float] = 1e-4,
        dt_mode: str = "fixed",
        cfl: float = 0.5,
        cfl_limit: Optional[float] = None,
        cfl_recheck: float = 0.1,
        device: Union[str, torch.device] = "cpu",
        dtype: torch.dtype = torch.float64,
    ):
        if not (isinstance(viscosity, (int, float)) and math.isfinite(viscosity) and viscosity >= 0):
            raise ValueError(f"viscosity must be a finite number >= 0, got {viscosity!r}")
        if not (math.isfinite(drag) and drag >= 0):
            raise ValueError(f"drag must be a finite number >= 0, got {drag!r}")
        if stepper not in STEPPERS:
            raise ValueError(f"unknown time stepper {stepper!r}; allowed: {', '.join(STEPPERS)}")
        if dt_mode not in DT_MODES:
            raise ValueError(f"unknown dt mode {dt_mode!r}; allowed: {', '.join(DT_MODES)}")
        if dt_mode == "fixed" and dt is None:
            raise ValueError("a fixed time step needs dt")
        if dt is not None and not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number, got {dt!r}")
        self.cfl_limit = float(cfl_limit if cfl_limit is not None else CFL_LIMITS[stepper])
        if dt_mode == "cfl" and not (0 < cfl <= self.cfl_limit):
            raise ValueError(f"cfl must be in (0, {self.cfl_limit}] for stepper {stepper!r}, got {cfl!r}")
        self.grid = SpectralGrid(n, box, dtype=dtype, device=device)
        self.viscosity, self.drag = float(viscosity), float(drag)
        if not (math.isfinite(cfl_recheck) and cfl_recheck > 0):
            raise ValueError(f"cfl_recheck must be a positive time, got {cfl_recheck!r}")
        self.stepper_name, self.dt, self.dt_mode, self.cfl = stepper, dt, dt_mode, float(cfl)
        self.cfl_recheck = float(cfl_recheck)
        if forcing is None or isinstance(forcing, Mapping):
            f = forcing_field(forcing, SpectralGrid(n, box, dtype=torch.float64, device=device))
        else:
            f = torch.as_tensor(forcing, dtype=torch.float64, device=device)
            if tuple(f.shape) != (n, n):
                raise ValueError(f"forcing array must have shape ({n}, {n}), got {tuple(f.shape)}")
        self.forcing = f
        self._stepper = None

    # ------------------------------------------------------------------------------ set-up
    def stepper_for(self, batch: int):
        """The (cached) stepper for a batch of ``batch`` trajectories."""
        st = self._stepper
        if st is None or st.batch_shape != (batch,):
            st = make_stepper(self.stepper_name, self.grid, self.viscosity, (batch,), self.forcing, self.drag)
            self._stepper = st
        return st

    def steps_between(self, t0: float, t1: float) -> int:
        """Number of fixed steps from ``t0`` to ``t1`` (raises unless it is a whole number)."""
        ratio = (t1 - t0) / self.dt
        k = round(ratio)
        if abs(ratio - k) > 1e-6 * max(1.0, abs(ratio)):
            raise ValueError(
                f"with a fixed dt = {self.dt:g} the snapshot interval {t1 - t0:g} "
                f"(from t = {t0:g} to {t1:g}) is not a whole number of steps"
            )
        return int(k)

    def cfl_numbers(self, w_hat: torch.Tensor, dt) -> torch.Tensor:
        """``dt max(|u| + |v|) / dx`` per sample."""
        return max_velocity(w_hat, self.grid) * dt / self.grid.dx

    # ------------------------------------------------------------------------------ run
    def run(
        self,
        w0,
        snapshot_times: Sequence[float],
        t0: float = 0.0,
        on_snapshot: Optional[Callable[[int, float, torch.Tensor, np.ndarray], object]] = None,
        progress: Optional[Callable[[float], None]] = None,
        progress_every: int = 200,
    ) -> SolveResult:
        """Advance ``w0`` ``(B, n, n)`` from ``t0`` through the increasing ``snapshot_times``.

        Args:
            w0: initial vorticities (array or tensor; moved to the solver's device and dtype).
            snapshot_times: times ``>= t0`` at which ``on_snapshot`` is called (``t0`` itself allowed).
            on_snapshot: ``f(k, t, w_hat, valid) -> object`` with the state spectrum ``(B, n, n//2+1)``
                (read-only, on the device) at snapshot ``k`` and the ``(B,)`` bool mask of samples still
                valid; default: physical vorticity on the host. Invalid samples are zero in ``w_hat``.
            progress: called with the simulated time advanced since its last call.
            progress_every: steps between ``progress`` calls.
        """
        g = self.grid
        w0 = torch.as_tensor(w0).to(device=g.device, dtype=g.dtype)
        if w0.ndim != 3 or tuple(w0.shape[1:]) != (g.n, g.n):
            raise ValueError(f"initial vorticity must have shape (B, {g.n}, {g.n}), got {tuple(w0.shape)}")
        if not bool(torch.isfinite(w0).all()):
            raise ValueError("initial vorticity has non-finite values")
        times = np.asarray(snapshot_times, dtype=np.float64)
        if times.ndim != 1 or times.size == 0:
            raise ValueError("snapshot_times must be a non-empty 1-D sequence")
        if times[0] < t0 or np.any(np.diff(times) <= 0):
            raise ValueError(f"snapshot times must increase and start at or after t0 = {t0}, got {times[:5]}...")
        if on_snapshot is None:

            def on_snapshot(k, t, w_hat, valid):
                return to_physical(w_hat, g).cpu()

        B = w0.shape[0]
        stepper = self.stepper_for(B)
        w_hat = torch.fft.rfft2(w0)
        start = time.perf_counter()
        valid = torch.ones(B, dtype=torch.bool, device=g.device)
        reasons = [""] * B
        steps = np.zeros(B, dtype=np.int64)
        max_cfl = np.zeros(B)

        if self.dt_mode == "fixed":
            counts = [self.steps_between(a, b) for a, b in zip(np.r_[t0, times[:-1]], times)]
            c0 = self.cfl_numbers(w_hat, self.dt)
            worst = float(c0.max())
            if worst > self.cfl_limit:
                i = int(c0.argmax())
                raise ValueError(
                    f"dt = {self.dt:g} violates the stability limit of the {self.stepper_name!r} scheme: the "
                    f"initial CFL number dt max(|u|+|v|)/dx is {worst:.3g} (sample {i} of the batch), above "
                    f"{self.cfl_limit:g}; use dt <= {self.dt * self.cfl_limit / worst:.3g} or dt_mode 'cfl'"
                )
            stepper.set_dt(self.dt)

        snapshots = []
        t_prev = float(t0)
        for k, t in enumerate(times):
            if self.dt_mode == "fixed":
                self._advance_fixed(stepper, w_hat, counts[k], progress, progress_every, t - t_prev)
                steps += counts[k] * valid.cpu().numpy()
                dt_used = self.dt
            else:
                span = float(t - t_prev)
                pieces = max(1, math.ceil(span / self.cfl_recheck - 1e-9))
                dt_used = 0.0
                for _ in range(pieces if span > 0 else 0):
                    dt_used = self._advance_cfl(stepper, w_hat, span / pieces, valid, steps, progress, progress_every)
            self._check(w_hat, valid, reasons, max_cfl, float(t), dt_used)
            snapshots.append(on_snapshot(k, float(t), w_hat, valid.cpu().numpy()))
            t_prev = float(t)
        return SolveResult(
            times=times,
            snapshots=snapshots,
            valid=valid.cpu().numpy(),
            reasons=reasons,
            steps=steps,
            max_cfl=max_cfl,
            seconds=time.perf_counter() - start,
        )

    def _advance_fixed(self, stepper, w_hat, count, progress, every, span):
        for j in range(count):
            stepper.step(w_hat)
            if progress is not None and (j + 1) % every == 0:
                progress(every * self.dt)
        if progress is not None:
            progress(span - (count // every) * every * self.dt)

    def _advance_cfl(self, stepper, w_hat, span, valid, steps, progress, every):
        """Per-sample steps ``dt_i = span / m_i`` with ``m_i = ceil(span / dt_cfl_i)``; returns ``dt_i``."""
        if span <= 0:
            return 0.0
        g = self.grid
        speed = max_velocity(w_hat, g).to(torch.float64)
        cap = self.dt if self.dt is not None else math.inf
        dt_cfl = torch.where(
            speed > 0, self.cfl * g.dx / speed.clamp_min(1e-300), torch.full_like(speed, math.inf)
        ).clamp(max=cap)
        bad = ~torch.isfinite(speed)
        if bool(torch.isinf(dt_cfl).any()):  # zero velocity and no cap: one step suffices
            dt_cfl = torch.where(torch.isinf(dt_cfl), torch.full_like(dt_cfl, span), dt_cfl)
        m = torch.ceil(span / dt_cfl - 1e-9).clamp(min=1).to(torch.int64)
        m = torch.where(valid & ~bad, m, torch.zeros_like(m))
        dt = torch.where(m > 0, span / m.clamp(min=1).to(torch.float64), torch.zeros_like(dt_cfl))
        m_host = m.cpu().numpy()
        total = int(m_host.max()) if m_host.size else 0
        stepper.set_dt(dt)
        # samples leave the loop in order of their step counts: dt -> 0 for those that are done
        for j in range(total):
            if j > 0 and np.any(m_host == j):
                dt = torch.where(m > j, dt, torch.zeros_like(dt))
                stepper.set_dt(dt)
            stepper.step(w_hat)
            if progress is not None and (j + 1) % every == 0:
                progress(span * every / total)
        if progress is not None:
            progress(span * (total - (total // every) * every) / total if total else span)
        steps += m_host
        return span / np.maximum(m_host, 1)

    def _check(self, w_hat, valid, reasons, max_cfl, t, dt_used):
        """Mark samples that blew up (non-finite, or CFL number of the last step above the limit)."""
        g = self.grid
        finite = torch.isfinite(torch.view_as_real(w_hat)).flatten(1).all(dim=1)
        speed = max_velocity(torch.where(finite[:, None, None], w_hat, torch.zeros_like(w_hat)), g)
        cfl_host = speed.to(torch.float64).cpu().numpy() * dt_used / g.dx
        finite_host = finite.cpu().numpy()
        valid_host = valid.cpu().numpy()
        for i in np.flatnonzero(valid_host):
            if not finite_host[i]:
                reasons[i] = f"non-finite vorticity at t = {t:g}"
            elif cfl_host[i] > self.cfl_limit:
                reasons[i] = (
                    f"CFL violation at t = {t:g}: CFL number {cfl_host[i]:.3g} > "
                    f"{self.cfl_limit:g} of the {self.stepper_name!r} scheme"
                )
            else:
                max_cfl[i] = max(max_cfl[i], float(cfl_host[i]))
                continue
            valid[i] = False
        dead = ~valid
        if bool(dead.any()):
            w_hat[dead] = 0
