"""Spectral refinement of a trained SFNO (Cao, Brarda, Li, Xi, "Spectral-Refiner", ICLR 2025).

Stage: freeze every parameter of the SFNO, replace its output spectral layer by a wider one
(by default every mode of the grid, ``n/2`` per sign in space, and every available temporal mode:
the paper's widening *without* frequency truncation) whose low modes hold the trained weights, and
fine-tune only that layer against the Navier-Stokes residual of the predicted trajectory (only its
advection product de-aliased, :mod:`train.refine.residual`) measured in the H^-1 norm with weight
``(alpha + 4 pi^2 |k|^2)^-1``, optionally plus a data term::

    J(theta) = mean_{b, i in outputs} ||R(z_b)(t_i)||_{H^-1}^2  +  lambda * mean (w - w_true)^2 / mean w_true^2

where ``z_b = [context input frames, w_b(theta)]`` is the trajectory on the snapshot grid: the last
``context`` input frames (data) followed by the prediction ``w = head(latent(x), x)``; their
derivative stencils anchor the prediction to the known past (without them the residual alone
would not pin the solution: every Navier-Stokes trajectory has zero residual). The sum over
``i`` runs over the output snapshots only and is the rectangle rule for
``(1/|window|) int ||R||_{H^-1}^2 dt``.

Convexity, honestly. ``w`` is affine in the output layer's weights (a spectral multiplier plus a
Fourier-space bias plus the last input frame; any affine denormalisation keeps it affine), but
``R`` is quadratic in ``w`` through ``u . grad w``, so ``J`` is a quartic in the weights and not
convex in general. The refiner therefore works in outer iterations: it freezes a reference
trajectory ``w_ref`` (the current prediction) and minimises ``J`` with ``R`` replaced by its
``"newton"`` (Gauss-Newton, default) or ``"picard"`` linearisation around ``w_ref``
(:mod:`train.refine.residual`). Each such subproblem *is* a convex quadratic in the weights; it is
solved by a few steps of conjugate gradients (``optimizer="cg"``, exact line searches on a
quadratic, Jacobi-preconditioned by :mod:`train.refine.preconditioner`) or Adam/SGD, then ``w_ref``
is updated. ``linearization="none"`` optimises the full (non-convex) objective directly, as the
paper's code does (with Adam).

Only the output layer is evaluated in the loop: the frozen latent is computed once per batch.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from datagen.navier_stokes.physics import NavierStokesPhysics

from .preconditioner import capture_layer_input, jacobi_diagonal
from .residual import BANDS, LINEARIZATIONS, LinearizationPoint, residual_h_minus1_sq, residual_spectrum
from .time_derivative import TIME_DERIVATIVES

__all__ = [
    "OPTIMIZERS",
    "RefineConfig",
    "Physics",
    "check_sfno",
    "dealiasing_mode_limit",
    "spatial_mode_limit",
    "output_time_frequencies",
    "widen_for_refinement",
    "freeze_all_but_output",
    "SpectralRefiner",
]

OPTIMIZERS = ("cg", "adam", "sgd")


@dataclass
class RefineConfig:
    """Settings of one refinement run (all stated in the report).

    steps: total optimiser steps per trajectory / batch: CG iterations (two gradient evaluations
        each: the step and the curvature probe) or Adam/SGD steps (one each).
    relinearize_every: steps per convex subproblem before the reference is moved (outer
        iteration length); ignored for ``linearization="none"``.
    modes: ``(modes_x, modes_y, modes_t)`` of the widened layer, ``None`` entries = the limit
        of the band (``full``: ``n/2`` per sign, the whole grid; ``dealiased``: ``n/3``) in space,
        every available temporal mode in time.
    band: ``"full"`` (default, the paper's: residual on every mode with only the advection product
        de-aliased, modes up to ``n/2``) or ``"dealiased"`` (this toolkit's earlier refinement:
        residual and modes restricted to the 2/3 band).
    h_minus1_alpha: ``alpha`` of the H^-1 weight ``(alpha + 4 pi^2 |k / L|^2)^-1`` (default 0.1, the
        default of torch-cfd's ``SobolevLoss``; 1 is the toolkit's ``sobolev_norm``).
    """

    steps: int = 60
    optimizer: str = "cg"
    lr: float = 1e-3
    linearization: str = "newton"
    relinearize_every: int = 20
    data_weight: float = 0.0
    modes: Tuple[Optional[int], Optional[int], Optional[int]] = (None, None, None)
    time_method: str = "fd"
    fd_order: int = 6
    context: Optional[int] = None  # input frames prepended for the time stencils; None: fd_order
    residual_dtype: str = "float64"
    per: str = "trajectory"  # "trajectory" (one refined layer each) or "batch" (one shared layer)
    preconditioner: str = "jacobi"  # for cg: "jacobi" (train.refine.preconditioner) or "none"
    band: str = "full"
    h_minus1_alpha: float = 0.1

    def validate(self) -> None:
        if self.band not in BANDS:
            raise ValueError(f"unknown band {self.band!r}; allowed: {', '.join(BANDS)}")
        if not (
            isinstance(self.h_minus1_alpha, (int, float))
            and math.isfinite(self.h_minus1_alpha)
            and self.h_minus1_alpha > 0
        ):
            raise ValueError(f"h_minus1_alpha must be a positive number, got {self.h_minus1_alpha!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        if self.linearization not in LINEARIZATIONS:
            raise ValueError(f"unknown linearization {self.linearization!r}; allowed: {', '.join(LINEARIZATIONS)}")
        if self.optimizer == "cg" and self.linearization == "none":
            raise ValueError(
                "optimizer 'cg' solves convex quadratic subproblems and needs "
                "linearization 'newton' or 'picard', not 'none'"
            )
        if self.time_method not in TIME_DERIVATIVES:
            raise ValueError(f"unknown time derivative {self.time_method!r}; allowed: {', '.join(TIME_DERIVATIVES)}")
        if self.steps < 0 or self.relinearize_every < 1:
            raise ValueError(
                f"steps must be >= 0 and relinearize_every >= 1, got {self.steps}, {self.relinearize_every}"
            )
        if self.preconditioner not in ("jacobi", "none"):
            raise ValueError(f"preconditioner must be 'jacobi' or 'none', got {self.preconditioner!r}")
        if self.per not in ("trajectory", "batch"):
            raise ValueError(f"per must be 'trajectory' or 'batch', got {self.per!r}")
        if self.residual_dtype not in ("float32", "float64"):
            raise ValueError(f"residual_dtype must be float32 or float64, got {self.residual_dtype!r}")
        if self.data_weight < 0:
            raise ValueError(f"data_weight must be >= 0, got {self.data_weight}")


#: What the residual needs to know about the data (``viscosity``, snapshot spacing ``dt``, ``box``,
#: forcing, ``drag``): the typed record of :mod:`datagen.navier_stokes.physics`, read from any dataset.
Physics = NavierStokesPhysics


# --------------------------------------------------------------------------------------------
# model surgery
# --------------------------------------------------------------------------------------------
_SFNO_API = ("output_layer", "latent", "head", "widen_output")


def check_sfno(model: nn.Module, where: str = "model") -> None:
    """Raise a clear ``TypeError`` unless ``model`` has the SFNO refinement API."""
    missing = [name for name in _SFNO_API if not hasattr(model, name)]
    if missing:
        raise TypeError(
            f"{where} is a {type(model).__name__}, not an SFNO: spectral refinement needs a model "
            f"with {', '.join(_SFNO_API)} (missing: {', '.join(missing)}); train one with "
            f"model 'sfno'"
        )


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so wall-clock times are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dealiasing_mode_limit(n: int) -> int:
    """Largest spatial wavenumber the 2/3 rule keeps on an ``n``-point periodic axis: ``n // 3``."""
    return n // 3


def spatial_mode_limit(n: int, band: str = "full") -> int:
    """Most spatial modes per sign the widened layer may have on an ``n``-point axis: ``n // 2``
    (every frequency ``-n/2 .. n/2 - 1`` of the grid) for ``band="full"``, ``n // 3`` (the 2/3 rule)
    for ``band="dealiased"``."""
    if band not in BANDS:
        raise ValueError(f"unknown band {band!r}; allowed: {', '.join(BANDS)}")
    return n // 2 if band == "full" else dealiasing_mode_limit(n)


def widen_for_refinement(
    model: nn.Module, n: int, t_out: int, modes: Sequence[Optional[int]] = (None, None, None), band: str = "full"
) -> Tuple[int, int, int]:
    """Widen the SFNO's output layer in place to ``modes`` (``None`` = the limit) for an ``n x n``
    grid and ``t_out`` output frames; the trained weights go into the low modes, new modes start at
    zero (so the output is unchanged). Returns the modes used.

    Limits: spatial modes per sign <= :func:`spatial_mode_limit` ``(n, band)`` (the SFNO keeps
    frequencies ``-m..m-1``: ``n/2`` is the whole grid, the paper's widening; ``n/3`` the 2/3 band);
    temporal modes <= :func:`output_time_frequencies` (every frequency of the output layer's time
    axis).
    """
    check_sfno(model)
    limit = spatial_mode_limit(n, band)
    t_limit = output_time_frequencies(model, t_out)
    old = _output_modes(model)
    mx, my, mt = (
        limit if modes[0] is None else int(modes[0]),
        limit if modes[1] is None else int(modes[1]),
        t_limit if modes[2] is None else int(modes[2]),
    )
    for name, value, cap in (("modes_x", mx, limit), ("modes_y", my, limit)):
        if value > cap:
            if band == "full":
                raise ValueError(
                    f"{name}={value} is too many for a {n}x{n} grid: the grid holds at most {cap} (= {n}//2) "
                    f"modes per sign; use a finer evaluation grid (at least {2 * value}) or fewer modes"
                )
            raise ValueError(
                f"{name}={value} is too many for a {n}x{n} grid: the 2/3 dealiasing limit allows at "
                f"most {cap} (= {n}//3); use a finer evaluation grid (at least {3 * value}) or fewer modes"
            )
    if mt > t_limit:
        raise ValueError(
            f"modes_t={mt} is too many for {t_out} output frames: the output layer's "
            f"time axis has {t_limit} frequencies"
        )
    if old is not None:
        mx, my, mt = max(mx, old[0]), max(my, old[1]), max(mt, old[2])
    model.widen_output(mx, my, mt)
    return mx, my, mt


def output_time_frequencies(model: nn.Module, t_out: int) -> int:
    """Number of rfft frequencies on the output layer's time axis for ``t_out`` output frames.

    The SFNO's head applies the output layer to ``context_frames + t_out`` latent frames zero-padded
    in time to twice that length (``neuralops.models.sfno.SFNO.head``), so
    ``context_frames + t_out + 1`` frequencies exist."""
    length = 2 * (int(getattr(model, "context_frames", 0)) + int(t_out))
    return length // 2 + 1


def _output_modes(model: nn.Module) -> Optional[Tuple[int, int, int]]:
    layer = model.output_layer
    for attr in ("modes", "n_modes"):
        m = getattr(layer, attr, None)
        if m is not None and len(m) == 3:
            return tuple(int(v) for v in m)
    return None


def freeze_all_but_output(model: nn.Module) -> List[nn.Parameter]:
    """Set ``requires_grad`` False everywhere except the output layer; return its parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = list(model.output_layer.parameters())
    for p in trainable:
        p.requires_grad_(True)
    if not trainable:
        raise TypeError("the SFNO's output_layer has no parameters to refine")
    return trainable


# --------------------------------------------------------------------------------------------
# the refiner
# --------------------------------------------------------------------------------------------
class SpectralRefiner:
    """Refine an SFNO's output layer on trajectories, against the H^-1 Navier-Stokes residual.

    Args:
        model: trained SFNO (maps ``(B, T_in, X, Y)`` normalised inputs to ``(B, T_out, X, Y)``).
            It is modified in place: frozen, and its output layer widened (:meth:`prepare`).
        physics: viscosity, snapshot spacing, box, forcing (:class:`Physics`).
        config: :class:`RefineConfig`.
        encode / decode: affine maps between physical vorticity and the model's normalised
            variables (identity when the model was trained on raw data). ``decode`` must be affine
            for the convexity statement to hold.
    """

    def __init__(
        self,
        model: nn.Module,
        physics: Physics,
        config: RefineConfig,
        encode: Callable[[torch.Tensor], torch.Tensor] = lambda v: v,
        decode: Callable[[torch.Tensor], torch.Tensor] = lambda v: v,
    ):
        check_sfno(model)
        config.validate()
        self.model = model
        self.physics = physics
        self.config = config
        self.encode = encode
        self.decode = decode
        self.residual_dtype = getattr(torch, config.residual_dtype)
        self.modes: Optional[Tuple[int, int, int]] = None
        self._initial_state: Optional[Dict[str, torch.Tensor]] = None
        self._forcing_cache: Dict[int, torch.Tensor] = {}

    # -- set-up --------------------------------------------------------------------------------
    def prepare(self, n: int, t_out: int) -> Tuple[int, int, int]:
        """Freeze, widen (for an ``n x n`` grid and ``t_out`` frames) and remember the widened
        layer's initial state (each trajectory starts from it with ``per="trajectory"``)."""
        self.modes = widen_for_refinement(self.model, n, t_out, self.config.modes, self.config.band)
        self.trainable = freeze_all_but_output(self.model)
        self._initial_state = copy.deepcopy(self.model.output_layer.state_dict())
        return self.modes

    def reset_output_layer(self) -> None:
        self.model.output_layer.load_state_dict(self._initial_state)

    # -- pieces of the objective ---------------------------------------------------------------
    def _forcing(self, n: int) -> Optional[torch.Tensor]:
        """The forcing on an ``n x n`` grid, evaluated once per grid size (it is fixed in time)."""
        if n not in self._forcing_cache:
            self._forcing_cache[n] = self.physics.forcing_field(n)
        return self._forcing_cache[n]

    def context_frames(self, t_in: int) -> int:
        c = self.config.fd_order if self.config.context is None else int(self.config.context)
        return max(0, min(c, t_in))

    def predict(self, latent: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Physical-space prediction ``(B, T_out, X, Y)`` from the frozen latent."""
        return self.decode(self.model.head(latent, x))

    def trajectory(self, inputs_phys: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        c = self.context_frames(inputs_phys.shape[1])
        if c == 0:
            return w
        return torch.cat([inputs_phys[:, -c:].to(w.dtype), w], dim=1)

    def residual_sq(self, z: torch.Tensor, t_out: int, linearization: str = "none", reference=None) -> torch.Tensor:
        """``||R(z)(t_i)||_{H^-1}^2`` for the last ``t_out`` snapshots of ``z``: ``(B, t_out)``."""
        n = z.shape[-1]
        forcing = self._forcing(n)
        r_hat = residual_spectrum(
            z,
            self.physics.dt,
            self.physics.viscosity,
            forcing=forcing,
            box=self.physics.box,
            drag=getattr(self.physics, "drag", 0.0),
            time_method=self.config.time_method,
            fd_order=self.config.fd_order,
            linearization=linearization,
            reference=reference,
            dtype=self.residual_dtype,
            band=self.config.band,
        )
        r = torch.fft.irfft2(r_hat[:, -t_out:], s=z.shape[-2:])
        return residual_h_minus1_sq(r, box=self.physics.box, alpha=self.config.h_minus1_alpha)

    def objective(self, latent, x, inputs_phys, target=None, linearization="none", reference=None):
        """The refinement objective ``J`` (module docstring) as a 0-d tensor."""
        w = self.predict(latent, x)
        t_out = w.shape[1]
        z = self.trajectory(inputs_phys, w)
        loss = self.residual_sq(z, t_out, linearization, reference).mean()
        if self.config.data_weight > 0 and target is not None:
            target = target.to(loss.dtype)
            mismatch = ((w.to(loss.dtype) - target) ** 2).mean() / (target**2).mean()
            loss = loss + self.config.data_weight * mismatch
        return loss

    # -- optimisation --------------------------------------------------------------------------
    def _grad(self, loss_fn) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        loss = loss_fn()
        grads = torch.autograd.grad(loss, self.trainable)
        return loss.detach(), [g.detach() for g in grads]

    @staticmethod
    def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
        # Euclidean inner product of the (real) parameter tensors; the spectral weights are stored
        # as real (re, im) pairs, so this is Re <a, b> of the complex weights
        return sum((ai.detach() * bi.detach()).sum().double() for ai, bi in zip(a, b))

    def _cg(
        self, loss_fn, iterations: int, history: List[float], diagonal: Optional[List[torch.Tensor]] = None
    ) -> None:
        """(Preconditioned) conjugate gradients on the convex quadratic ``loss_fn`` of the
        trainable parameters; ``diagonal``: Jacobi preconditioner, one tensor per parameter.

        For a quadratic, ``H p = grad(theta + p) - grad(theta)`` exactly, so no second derivatives
        are needed; the step length is the exact line minimiser ``g.z / p.Hp`` (``z = M^-1 g``)."""
        params = self.trainable
        precondition = (lambda g: [gi / mi for gi, mi in zip(g, diagonal)]) if diagonal else (lambda g: g)
        loss, g = self._grad(loss_fn)
        history.append(float(loss))
        z = precondition(g)
        p = [-zi for zi in z]
        gz = self._dot(g, z)
        for _ in range(iterations):
            if gz <= 0:
                break
            # probe with a step of the parameters' own size, so that the gradient difference is
            # well above round-off
            scale = float(torch.sqrt(self._dot(params, params) / self._dot(p, p)).clamp(1e-8, 1e8))
            with torch.no_grad():
                for pi, di in zip(params, p):
                    pi.add_(di, alpha=scale)
            _, g_probe = self._grad(loss_fn)
            with torch.no_grad():
                for pi, di in zip(params, p):
                    pi.sub_(di, alpha=scale)
            hp = [(gp - gi) / scale for gp, gi in zip(g_probe, g)]
            curvature = self._dot(p, hp)
            if curvature <= 0:  # flat or (round-off) non-convex direction: stop this subproblem
                break
            alpha = float(gz / curvature)
            with torch.no_grad():
                for pi, di in zip(params, p):
                    pi.add_(di, alpha=alpha)
            loss, g = self._grad(loss_fn)  # fresh gradient (not the recurrence) resists drift
            history.append(float(loss))
            z = precondition(g)
            gz_new = self._dot(g, z)
            beta = float(gz_new / gz)
            gz = gz_new
            p = [-zi + beta * di for zi, di in zip(z, p)]

    def _jacobi(self, latent: torch.Tensor, x: torch.Tensor, point: LinearizationPoint) -> List[torch.Tensor]:
        """Jacobi diagonal (:mod:`train.refine.preconditioner`) around the linearisation point."""
        layer = self.model.output_layer
        with torch.no_grad(), capture_layer_input(layer) as cap:
            self.model.head(latent, x)
        speed_rms = float((point.velocity**2).sum(dim=-3).mean().sqrt())
        diag = jacobi_diagonal(
            layer,
            cap.inputs[0],
            self.physics.dt,
            self.physics.viscosity,
            self.physics.box,
            speed_rms,
            getattr(self.physics, "drag", 0.0),
            alpha=self.config.h_minus1_alpha,
        )
        names = [name for name, _ in layer.named_parameters()]
        return [diag[name].to(device=p.device, dtype=p.dtype) for name, p in zip(names, self.trainable)]

    def refine_batch(
        self, x: torch.Tensor, inputs_phys: torch.Tensor, t_out: int, target: Optional[torch.Tensor] = None
    ) -> Dict[str, object]:
        """Refine the output layer on one batch (one shared layer) and return the refined
        prediction and the objective history. ``x``: model input ``(B, T_in, X, Y)`` (normalised as
        the model expects); ``inputs_phys``: the same frames in physical units."""
        cfg = self.config
        with torch.no_grad():
            latent = self.model.latent(x, t_out)
        history: List[float] = []
        if cfg.linearization == "none":
            opt = self._make_optimizer()
            for _ in range(cfg.steps):
                opt.zero_grad(set_to_none=True)
                loss = self.objective(latent, x, inputs_phys, target)
                loss.backward()
                history.append(float(loss.detach()))
                opt.step()
        else:
            done = 0
            while done < cfg.steps:
                inner = min(cfg.relinearize_every, cfg.steps - done)
                with torch.no_grad():
                    reference = self.trajectory(inputs_phys, self.predict(latent, x))
                point = LinearizationPoint(reference, self.physics.box, self.residual_dtype)
                loss_fn = lambda: self.objective(latent, x, inputs_phys, target, cfg.linearization, point)
                if cfg.optimizer == "cg":
                    diagonal = self._jacobi(latent, x, point) if cfg.preconditioner == "jacobi" else None
                    self._cg(loss_fn, inner, history, diagonal)
                else:
                    opt = self._make_optimizer()
                    for _ in range(inner):
                        opt.zero_grad(set_to_none=True)
                        loss = loss_fn()
                        loss.backward()
                        history.append(float(loss.detach()))
                        opt.step()
                done += inner
        with torch.no_grad():
            w = self.predict(latent, x)
        return {"prediction": w, "history": history}

    def _make_optimizer(self) -> torch.optim.Optimizer:
        if self.config.optimizer == "adam":
            return torch.optim.Adam(self.trainable, lr=self.config.lr)
        return torch.optim.SGD(self.trainable, lr=self.config.lr)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, inputs_phys: torch.Tensor, t_out: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Prediction (physical) and its full residual ``sqrt(time-mean ||R||_{H^-1}^2)`` per sample."""
        w = self.decode(self.model(x, t_out))
        res = self.residual_sq(self.trajectory(inputs_phys, w), t_out).mean(dim=1).sqrt()
        return w, res

    def refine(
        self, x: torch.Tensor, inputs_phys: torch.Tensor, t_out: int, target: Optional[torch.Tensor] = None
    ) -> Dict[str, object]:
        """Refine per trajectory (each from the widened trained layer) or per batch, as configured.
        Returns ``prediction`` (B, T_out, X, Y) physical (``prediction_before``: the widened but
        unrefined layer's, equal to the trained model's), ``residual_before/after`` (B,),
        ``seconds`` (B,) per trajectory, ``history`` (list per refinement)."""
        if self._initial_state is None:
            raise RuntimeError("call prepare(n, t_out) before refine()")
        b = x.shape[0]
        self.reset_output_layer()  # "before" = the widened trained layer, not a previous refinement
        w_before, res_before = self.evaluate(x, inputs_phys, t_out)
        groups = [slice(i, i + 1) for i in range(b)] if self.config.per == "trajectory" else [slice(0, b)]
        preds, res_after, seconds, histories = [], [], [], []
        for sl in groups:
            self.reset_output_layer()
            synchronize(x.device)
            t0 = time.perf_counter()
            out = self.refine_batch(x[sl], inputs_phys[sl], t_out, None if target is None else target[sl])
            synchronize(x.device)
            elapsed = time.perf_counter() - t0
            with torch.no_grad():
                w = out["prediction"]
                res = self.residual_sq(self.trajectory(inputs_phys[sl], w), t_out).mean(dim=1).sqrt()
            preds.append(w)
            res_after.append(res)
            n_in_group = w.shape[0]
            seconds.extend([elapsed / n_in_group] * n_in_group)
            histories.append(out["history"])
        return {
            "prediction_before": w_before,
            "prediction": torch.cat(preds),
            "residual_before": res_before,
            "residual_after": torch.cat(res_after),
            "seconds": torch.tensor(seconds),
            "history": histories,
        }
