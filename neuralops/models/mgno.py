"""MgNO: neural operator with multigrid-parameterised linear layers (He, Liu, Xu, ICLR 2024).

``mgno``: ``(B, C_in, X, Y) -> (B, C_out, X, Y)``. Each layer is the paper's neuron::

    u_{k+1} = GELU( V_k(u_k) + W_k u_k + b_k ),   k = 0 .. L-1,   u_0 = a (the input itself)
    output  = Q u_L

with ``V_k`` one learned multigrid V-cycle (:class:`~neuralops.layers.multigrid.MultigridVCycle`,
no biases), ``W_k`` a 1x1 convolution (no bias), ``b_k`` a function-valued bias
(:class:`FunctionValuedBias`) and ``Q`` a 1x1 convolution without bias. There is no lifting and no
projection: the first layer reads the ``C_in`` input channels directly as the right-hand side of
its V-cycle (``C_f = C_in``), every later layer has ``C_f = C_u = channels``.

Parameter accounting of the Darcy configuration (the defaults: ``C_in = C_out = 1``, 24 channels,
4 layers, 6 levels, smoothing ``(1 pre, 0 post)`` on levels 1-5 and 2 pre on the coarsest, constant
bias), with ``9 C_u C_f`` per smoother convolution::

    V-cycle, C_f = 1 (layer 1):    smoothers 13 * 9*24*1 = 2,808   (S on level 1; A,S on 2-5; 2x A,S on 6)
                                   restrictions 5 * (9*24*24 + 9*1*1) = 25,965
                                   prolongations 5 * 16*24*24 = 46,080          -> 74,853
    V-cycle, C_f = 24 (layers 2-4): 13 * 5,184 + 5 * (5,184 + 5,184) + 46,080     -> 165,312 each
    W_k + b_k: 1*24 + 24 = 48 (layer 1), 24*24 + 24 = 600 (layers 2-4)
    Q: 24*1 = 24
    total: 74,853 + 3*165,312 + 48 + 3*600 + 24 = 572,661 (the published 0.57M)

The count pins down the structure: no biases inside the V-cycle, the input enters the first
V-cycle with its own channel count (restricting ``f`` needs ``9 C_in^2`` per level), one bias
value per channel per layer (the bias function at resolution 1x1, i.e. a constant function) and no
bias on the head. ``bias_resolution = r > 1`` learns ``b_k`` as an ``r x r`` field that is
interpolated to the grid (``r^2 * channels`` parameters per layer; a non-constant bias makes the
model position-dependent, so it is no longer translation-equivariant).

Grid sizes: any ``X, Y`` (see the multigrid module: level sizes ``ceil(n / 2)``, the prolongation
is cropped to the finer grid). With ``padding_mode="circular"`` and both axes divisible by
``2 ** (levels - 1)`` the model commutes with rolls by multiples of ``2 ** (levels - 1)``. (The
published code's prolongation always zero-pads; here it wraps around for ``circular`` data, which
is what makes the periodic model exactly translation-equivariant. The parameters are the same.)

``mgno_ns`` (:class:`MgNONS`): the paper's Navier-Stokes network as its code builds it
(``MgNO_NS`` in xlliu2017/MgNO ``models.py``, configured by ``navier.py``): a different network from
the Darcy one, see its class docstring (2,885,194 parameters at 64^2).

``mgno_ts`` (:class:`MgNOTimeStepper`): this toolkit's own time-stepping variant (not a model of
the paper): the Darcy network applied to a history of frames,
``(B, T_hist * C, X, Y) -> (B, C, X, Y)`` with the frames stacked time-major (channel ``t * C + c``
is field ``c`` of frame ``t``, the last ``C`` channels are the latest frame) and the next frame
predicted as a residual on the latest one: ``u_{t+1} = u_t + MgNO(u_{t-T_hist+1..t})``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers.multigrid import MultigridVCycle, normalize_smoothing
from ..layers.padding import check_padding_mode, pad2d
from .contract import AUTOREGRESSIVE, STEADY, ModelContract
from .registry import register

__all__ = ["MgNO", "MgNONS", "MgNOTimeStepper", "FunctionValuedBias", "DARCY_SMOOTHING", "NS_SMOOTHING"]

#: Smoothing schedule of the paper's Darcy configuration: 1 pre-smoothing step on levels 1-5, 2 on level 6.
DARCY_SMOOTHING = ((1, 0),) * 5 + ((2, 0),)
#: Smoothing schedule of MgNO_NS (navier.py's num_iteration): 1 pre-step on levels 1-3, 2 on levels 4-5.
NS_SMOOTHING = ((1, 0),) * 3 + ((2, 0),) * 2


class FunctionValuedBias(nn.Module):
    """A learned bias function ``b(x) (C, X, Y)`` stored on an ``r x r`` grid and interpolated to the input's grid.

    ``r = 1`` is a constant function per channel. ``r > 1``: bilinear interpolation of the ``r x r``
    cell-centred values (periodic extension when ``padding_mode == "circular"``, edge-clamped
    otherwise), so the same bias function is evaluated at every resolution.
    """

    def __init__(self, channels: int, resolution: int = 1, padding_mode: str = "zeros"):
        super().__init__()
        if int(resolution) < 1:
            raise ValueError(f"bias_resolution must be a positive integer, got {resolution}")
        self.resolution = int(resolution)
        self.periodic = check_padding_mode(padding_mode) == "circular"
        self.values = nn.Parameter(torch.zeros(channels, self.resolution, self.resolution))

    def forward(self, grid_size: Sequence[int]) -> torch.Tensor:
        """The bias on a ``grid_size`` grid, shape ``(1, C, X, Y)`` (``(1, C, 1, 1)`` when ``r = 1``: broadcast)."""
        b = self.values.unsqueeze(0)
        if self.resolution == 1:
            return b
        if self.periodic:
            # interpolate the periodic extension: pad one cell circularly, map cell centres exactly
            r = self.resolution
            padded = pad2d(b, 1, "circular")
            nx, ny = (int(n) for n in grid_size)
            # cell centre (i + 0.5) / n of the fine grid -> index (i + 0.5) * r / n - 0.5 + 1 of the padded
            # grid; grid_sample (align_corners=False) reads a normalised g as index (g + 1) / 2 * (r + 2) - 0.5
            gx = ((torch.arange(nx, dtype=b.dtype, device=b.device) + 0.5) * r / nx + 1.0) / (r + 2) * 2 - 1
            gy = ((torch.arange(ny, dtype=b.dtype, device=b.device) + 0.5) * r / ny + 1.0) / (r + 2) * 2 - 1
            grid = torch.stack(torch.meshgrid(gy, gx, indexing="xy"), dim=-1).unsqueeze(0)
            return F.grid_sample(padded, grid, mode="bilinear", align_corners=False)
        return F.interpolate(b, size=tuple(int(n) for n in grid_size), mode="bilinear", align_corners=False)


@register("mgno")
class MgNO(nn.Module, ModelContract):
    """MgNO ``(B, in_channels, X, Y) -> (B, out_channels, X, Y)``; see the module docstring.

    Args:
        in_channels: input channels (Darcy: 1, the coefficient ``a``).
        out_channels: output channels (Darcy: 1, the solution).
        channels: ``C_u`` of every layer (paper: 24).
        num_layers: number of MgNO layers (paper: 4).
        smoothing: ``(pre, post)`` smoothing steps per multigrid level, finest first; its length is
            the number of levels (paper Darcy: 6 levels, :data:`DARCY_SMOOTHING`).
        padding_mode: ``zeros`` (Dirichlet), ``circular`` (periodic), ``reflect`` (e.g. Helmholtz)
            or ``replicate``.
        bias_resolution: grid of the function-valued biases (1: constant per channel, the paper's count).

    Contract: a field map (steady data; autoregressive steps with the frames stacked as channels).
    """

    kinds = (STEADY, AUTOREGRESSIVE)
    geometry = ("padding_mode",)

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: int = 24,
        num_layers: int = 4,
        smoothing: Sequence[Sequence[int]] = DARCY_SMOOTHING,
        padding_mode: str = "zeros",
        bias_resolution: int = 1,
    ):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("channels", channels),
            ("num_layers", num_layers),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.channels, self.num_layers = int(channels), int(num_layers)
        self.smoothing = normalize_smoothing(smoothing)
        self.padding_mode = check_padding_mode(padding_mode)
        widths = [self.in_channels] + [self.channels] * self.num_layers
        self.vcycles = nn.ModuleList(
            MultigridVCycle(widths[k], widths[k + 1], self.smoothing, padding_mode) for k in range(self.num_layers)
        )
        self.pointwise = nn.ModuleList(
            nn.Conv2d(widths[k], widths[k + 1], 1, bias=False) for k in range(self.num_layers)
        )
        self.biases = nn.ModuleList(
            FunctionValuedBias(self.channels, bias_resolution, padding_mode) for _ in range(self.num_layers)
        )
        self.head = nn.Conv2d(self.channels, self.out_channels, 1, bias=False)
        self.activation = nn.GELU()

    @property
    def levels(self) -> int:
        return len(self.smoothing)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if a.dim() != 4 or a.shape[1] != self.in_channels:
            raise ValueError(f"expected input of shape (B, {self.in_channels}, X, Y), got {tuple(a.shape)}")
        u = a
        for vcycle, pointwise, bias in zip(self.vcycles, self.pointwise, self.biases):
            u = self.activation(vcycle(u) + pointwise(u) + bias(u.shape[-2:]))
        return self.head(u)


class _HistoryContract(ModelContract):
    """Contract of the MgNO time steppers: ``t_in -> time_history``, ``in_channels -> fields``, one
    frame per step, as many fields out as in."""

    kinds = (AUTOREGRESSIVE,)
    geometry = ("padding_mode",)

    @classmethod
    def contract_arguments(cls, kind, in_channels, out_channels, t_in, t_out):
        if int(out_channels) != int(in_channels) or int(t_out) != 1:
            raise ValueError(
                f"{cls.__name__} predicts the next frame of the fields it reads (out_channels = "
                f"in_channels, t_out = 1), got {in_channels} -> {out_channels} fields, t_out={t_out}"
            )
        return {"time_history": int(t_in), "fields": int(in_channels)}


@register("mgno_ns")
class MgNONS(nn.Module, _HistoryContract):
    """``mgno_ns``: MgNO's Navier-Stokes network (its code's ``MgNO_NS``), next frame from the
    current one, ``(B, T_hist * C, X, Y) -> (B, C, X, Y)`` (reference: ``T_hist = C = 1``)::

        u_0 = x,   u_{k+1} = GELU( V_k(u_k) ),  k = 0 .. num_layers - 1,   out = Q u_L + x_last

    ``V_k``: a V-cycle (:class:`~neuralops.layers.multigrid.MultigridVCycle`) on 5 levels with
    smoothing ``(1, 0), (1, 0), (1, 0), (2, 0), (2, 0)``, circular padding in the smoothers and
    restrictions, biases on the smoothers' convolutions, a LayerNorm over ``(C, n/2^l, n/2^l)``
    after every coarse correction (levels 0..3) and the published plain (zero-padded, cropped)
    4x4 stride-2 transposed convolution as prolongation. Unlike the Darcy network there is no 1x1
    map ``W_k`` and no separate bias ``b_k``; ``Q`` is a 1x1 convolution without bias; the input
    frame is added to the output (``x_last``: the last ``C`` input channels).

    Parameters at 64^2 with 32 channels and 5 layers: **2,885,194** (2,883,300 with
    ``bias=False``), of which 1,740,800 are LayerNorm weights and biases:
    5 layers x 2 x 32 x (64^2 + 32^2 + 16^2 + 8^2).

    Resolution: those LayerNorms have one affine weight per grid point and normalise over the whole
    grid, so the network is bound to the grid it is built for (``resolution``, default 64): any
    other input grid is refused with a clear error. Building it with another ``resolution`` is a
    different network (different LayerNorm shapes and count; trained weights do not load), and
    evaluation at another resolution needs the data resampled to the training grid.

    Args:
        time_history, fields: input frames and channels per frame (reference: 1 and 1).
        channels: ``C`` (reference 32); num_layers: V-cycle layers (5); smoothing: per level.
        padding_mode: smoothers' and restrictions' padding (reference: circular).
        bias: biases on the smoothers (reference run: yes; its code's default flag: no).
        resolution: grid side the LayerNorms are built for (64).
        prolong_padding_mode: prolongation boundary: "zeros" (reference) or e.g. "circular"
            (periodic wrap-around, this toolkit's translation-equivariant option).
        activation: "gelu" (reference), "relu", "tanh" or "silu".
    """

    def __init__(
        self,
        time_history: int = 1,
        fields: int = 1,
        channels: int = 32,
        num_layers: int = 5,
        smoothing: Sequence[Sequence[int]] = NS_SMOOTHING,
        padding_mode: str = "circular",
        bias: bool = True,
        resolution: int = 64,
        prolong_padding_mode: str = "zeros",
        activation: str = "gelu",
    ):
        super().__init__()
        acts = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}
        for name, value in (
            ("time_history", time_history),
            ("fields", fields),
            ("channels", channels),
            ("num_layers", num_layers),
            ("resolution", resolution),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if activation not in acts:
            raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(acts)}")
        self.time_history, self.fields = int(time_history), int(fields)
        self.in_channels, self.out_channels = self.time_history * self.fields, self.fields
        self.resolution = int(resolution)
        self.smoothing = normalize_smoothing(smoothing)
        widths = [self.in_channels] + [int(channels)] * int(num_layers)
        self.vcycles = nn.ModuleList(
            MultigridVCycle(
                widths[k],
                widths[k + 1],
                self.smoothing,
                padding_mode,
                bias=bias,
                norm_size=(self.resolution, self.resolution),
                prolong_padding_mode=prolong_padding_mode,
            )
            for k in range(int(num_layers))
        )
        self.head = nn.Conv2d(int(channels), self.fields, 1, bias=False)
        self.activation = acts[activation]()

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        if history.dim() != 4 or history.shape[1] != self.in_channels:
            raise ValueError(
                f"expected history of shape (B, T_hist * C = {self.time_history} * {self.fields}, X, Y), "
                f"got {tuple(history.shape)}"
            )
        u = history
        for vcycle in self.vcycles:
            u = self.activation(vcycle(u))
        return self.head(u) + history[:, -self.fields :]


@register("mgno_ts")
class MgNOTimeStepper(nn.Module, _HistoryContract):
    """``mgno_ts``: this toolkit's own MgNO time stepper (not the paper's NS network, which is
    ``mgno_ns``): next frame from a history, ``(B, T_hist * C, X, Y) -> (B, C, X, Y)``.

    ``u_{t+1} = u_t + MgNO(u_{t-T_hist+1}, ..., u_t)``: an MgNO with ``T_hist * C`` input and ``C``
    output channels predicts the increment over the latest frame (the last ``C`` input channels).
    Rollouts feed predictions back by dropping the oldest frame (the training code's job).

    Defaults (Navier-Stokes vorticity on a periodic 64^2 grid: 10 frames of 1 field, circular
    padding, 24 channels, 4 layers, the Darcy smoothing schedule on 6 levels): 602,604 parameters
    = 572,661 + 25,272 + 4,455 + 216: the first layer's right-hand side has 10 channels instead of 1,
    which adds 13 * 9*24*(10-1) smoother weights, 5 * 9*(10^2-1) restriction weights and 24*(10-1)
    pointwise weights.
    """

    def __init__(
        self,
        time_history: int = 10,
        fields: int = 1,
        channels: int = 24,
        num_layers: int = 4,
        smoothing: Sequence[Sequence[int]] = DARCY_SMOOTHING,
        padding_mode: str = "circular",
        bias_resolution: int = 1,
    ):
        super().__init__()
        if int(time_history) < 1 or int(fields) < 1:
            raise ValueError(f"time_history and fields must be positive integers, got {time_history}, {fields}")
        self.time_history, self.fields = int(time_history), int(fields)
        self.in_channels, self.out_channels = self.time_history * self.fields, self.fields
        self.core = MgNO(
            self.time_history * self.fields, self.fields, channels, num_layers, smoothing, padding_mode, bias_resolution
        )

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        expected = self.time_history * self.fields
        if history.dim() != 4 or history.shape[1] != expected:
            raise ValueError(
                f"expected history of shape (B, T_hist * C = {self.time_history} * {self.fields}, X, Y), "
                f"got {tuple(history.shape)}"
            )
        return history[:, -self.fields :] + self.core(history)
