"""Diagonal preconditioner for the convex refinement subproblems (preconditioned CG).

The refined SFNO output layer is a spectral multiplier with a Fourier-space bias: on each kept
space-time mode ``(k, omega)`` of its (time-padded) input ``h``,

    w_hat(k, omega) = W(k, omega) h_hat(k, omega) + b(k, omega),

so a weight and a bias entry move exactly one space-time Fourier mode of the prediction. The
linearised residual ``R = w_t + u_ref . grad w (+ u(w) . grad w_ref) - nu Lap w + alpha w - f`` acts
on that mode, measured in H^-1, with a size of about

    d(k, omega) = (omega^2 + (nu |k|^2 + drag)^2 + U^2 |k|^2 / 2) / (alpha + |k|^2)

(``U``: rms speed of the reference flow; ``(u . k)^2`` averages to ``U^2 |k|^2 / 2`` over
directions; ``alpha`` the H^-1 weight's constant). The Gauss-Newton Hessian's diagonal is therefore
about ``d`` for a bias entry and
``d * mean_b |h_hat_b(k, omega)|^2`` for a weight entry. These span ~8 decades on a 64^2 grid
(``omega`` from 0 to ``pi / dt``, ``|k|`` up to ``pi n``), which is what makes plain CG slow;
dividing the gradient by this diagonal (Jacobi preconditioning) removes most of that spread. It
only changes the path of CG, never the minimiser of the convex subproblem.
"""

from __future__ import annotations

import itertools
import math
from typing import Dict, Tuple

import torch
import torch.nn as nn

__all__ = ["output_mode_indices", "capture_layer_input", "jacobi_diagonal"]


def output_mode_indices(layer: nn.Module) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integer wavenumbers ``(m_x, m_y, m_t)`` of every entry of a 3-D spectral layer's weights,
    each of shape ``(n_corners, modes_x, modes_y, modes_t)``.

    Layout (:class:`neuralops.layers.spectral_conv.SpectralConv`): corner ``c`` enumerates the signs
    of ``(x, y)`` as ``itertools.product((0, 1), repeat=2)`` (1 = negative frequencies); the
    positive block holds ``0..m-1``, the negative block ``-m..-1``; time holds ``0..m_t-1``.
    ``tests/train/test_refine_stage.py`` checks this against the layer's actual output.
    """
    mx, my, mt = layer.modes
    out = []
    for axis_sign in itertools.product((0, 1), repeat=2):
        ax = torch.arange(mx) - (mx if axis_sign[0] else 0)
        ay = torch.arange(my) - (my if axis_sign[1] else 0)
        out.append(torch.meshgrid(ax, ay, torch.arange(mt), indexing="ij"))
    return tuple(torch.stack([o[i] for o in out]) for i in range(3))


class capture_layer_input:
    """Context manager that records the (first positional) input of ``layer``'s forward calls."""

    def __init__(self, layer: nn.Module):
        self.layer, self.inputs = layer, []

    def __enter__(self):
        self.handle = self.layer.register_forward_pre_hook(lambda _m, args: self.inputs.append(args[0].detach()))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def jacobi_diagonal(
    layer: nn.Module,
    layer_input: torch.Tensor,
    dt: float,
    viscosity: float,
    box: float,
    speed_rms: float,
    drag: float = 0.0,
    alpha: float = 1.0,
) -> Dict[str, torch.Tensor]:
    """Approximate Gauss-Newton Hessian diagonal for each parameter of ``layer`` (see the module
    docstring), shaped like the parameter (real and imaginary parts share a value).

    layer_input: the layer's input ``(B, 1, X, Y, T_pad)`` (its time axis gives the frequencies
    ``omega = 2 pi m_t / (T_pad dt)``).
    """
    # mode indices on the input's device (they are built on the CPU)
    mxi, myi, mti = (i.to(layer_input.device) for i in output_mode_indices(layer))
    nx, ny, t_pad = layer_input.shape[-3:]
    dtype = torch.float64
    kx = (2 * math.pi / box) * mxi.to(dtype)
    ky = (2 * math.pi / box) * myi.to(dtype)
    omega = (2 * math.pi / (t_pad * dt)) * mti.to(dtype)
    k2 = kx**2 + ky**2
    d = (omega**2 + (viscosity * k2 + drag) ** 2 + 0.5 * speed_rms**2 * k2) / (alpha + k2)
    # the (k, omega) = 0 mode is a null direction of R (a constant shift); any positive scale works
    floor = 1e-12 * float(d.max())
    d = d.clamp_min(floor)
    h_hat = torch.fft.rfftn(layer_input.to(dtype), dim=(-3, -2, -1), norm="forward")
    # modes that exist on this grid (indices modulo the axis length; rfft axis: non-negative only)
    power = (h_hat.abs() ** 2).mean(dim=(0, 1))  # (X, Y, T_pad // 2 + 1)
    valid = mti < power.shape[-1]
    h_power = power[mxi % nx, myi % ny, mti.clamp_max(power.shape[-1] - 1)] * valid
    out: Dict[str, torch.Tensor] = {}
    # weight (corners, C_in=1, C_out=1, mx, my, mt, 2); bias (corners, C_out=1, mx, my, mt, 2)
    w_diag = (d * h_power).clamp_min(floor)
    out["weight"] = w_diag[:, None, None, ..., None].expand_as(layer.weight)
    if getattr(layer, "bias", None) is not None:
        out["bias"] = d[:, None, ..., None].expand_as(layer.bias)
    return out
