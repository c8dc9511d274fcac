"""Fourier neural operators of the FNO paper (Li et al., ICLR 2021): FNO-2D and FNO-3D.

Both are the paper's iteration, with ``K_l`` a spectral convolution (:class:`SpectralConv`,
modes kept in every frequency corner) and ``W_l`` a pointwise (1x1) linear map::

    v_0     = P [a, coordinates]                            lifting, 1x1
    v_{l+1} = sigma( BN_l( K_l v_l + W_l v_l ) ),  l = 0..L-1   (no sigma after the last layer)
    u       = Q_2 sigma(Q_1 v_L)                              projection width -> 128 -> out, 1x1
                                                              (evaluated in slabs: PointwiseMLP)

* ``fno2d``: ``(B, C_in, X, Y) -> (B, C_out, X, Y)``. On Navier-Stokes (paper: "FNO-2D") the
  input is the last 10 vorticity frames as channels and the output the next frame; a trajectory is
  produced recurrently, one step at a time, by the training/rollout code.
  Non-periodic data (Darcy): pass ``padding`` (the FNO Darcy setup zero-pads 9 cells at the high
  end of each axis after lifting and crops them before the projection) and ``endpoint=True``
  (coordinates of a grid with boundary nodes), e.g.
  ``get("fno2d", in_channels=1, modes=12, width=32, padding=9, endpoint=True, norm="none", activation="gelu")``.
* ``fno3d``: ``(B, T_in, X, Y) -> (B, T_out, X, Y)``: convolution in space-time. The ``T_in``
  input frames are repeated along a new time axis of ``T_out`` points and the ``(x, y, t)``
  coordinates appended (10 + 3 = 13 channels); ``T_out`` is a call-time argument (default
  ``out_steps``). Optionally (``time_padding > 0``, the 2021-08 script) the non-periodic time axis
  is zero-padded after lifting and cropped before the projection.

Which revision of the FNO scripts (github.com/zongyi-li/fourier_neural_operator) the defaults
follow, one per model:

* ``fno3d``: ``fourier_3d.py`` as of commit 3d0ac240 (2021-01-04, the ICLR 2021 version; the same
  network since the 2020-12-01 fix of the last layer's skip): BatchNorm after every Fourier layer,
  ReLU, no padding of the time axis, coordinates ``x_i = i / (S - 1)``, ``y_j = j / (S - 1)``
  (``linspace(0, 1, S)``) and ``t_k = (k + 1) / T_out`` (``linspace(0, 1, T + 1)[1:]``),
  with the paper's 8 modes (that script's own default is 4; the published 6,558,537 parameters
  need 8). The 2021-08 revision (GELU, BatchNorm declared but not applied, time padding 6,
  ``t_k = k / (T - 1)``) is reachable with ``norm="none", activation="gelu", time_padding=6,
  time_coordinate="linspace"``.
* ``fno2d``: ``fourier_2d_time.py`` as of commit 0acad9c4 (2021-01-19): BatchNorm, ReLU,
  coordinates ``linspace(0, 1, S)``, the paper's 8 modes (the script's default is 12).

The coordinate channels come after the data channels here (the scripts put them first; that only
permutes the lifting's weights).

Parameter counts (real numbers; a complex weight counts twice) of the paper's Navier-Stokes
configurations, which are the defaults (width 20, 4 layers, modes 8 on every axis, BatchNorm,
projection to 128):

* FNO-3D, 13 input channels: lifting 13*20+20 = 280; per layer spectral 4 corners * 20*20*8*8*8
  complex = 1,638,400, skip 420, BatchNorm 40; projection 20*128+128 + 128+1 = 2,817
  -> 280 + 4 * 1,638,860 + 2,817 = **6,558,537** (the paper's number).
* FNO-2D, 12 input channels: lifting 260; per layer spectral 2 * 20*20*8*8 complex = 102,400,
  skip 420, BatchNorm 40; projection 2,817 -> **414,517** (the paper's number). The published
  count requires 8 modes (16 * 20^2 * m^2 + 4,917 = 414,517 only for m = 8): with 12 modes the
  same network has 926,517.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers.pointwise import DEFAULT_CHUNK_ELEMENTS, PointwiseMLP
from ..layers.positional import GridEmbedding, grid_coordinates
from ..layers.spectral_conv import SpectralConv
from .contract import AUTOREGRESSIVE, DIRECT, STEADY, ModelContract, single_field
from .registry import register

__all__ = ["FNO", "FNO2d", "FNO3d"]

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_BATCHNORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class FNO(nn.Module):
    """The FNO iteration on ``dim``-d grids, channels first: ``(B, C_in, *grid) -> (B, C_out, *grid)``.

    Args:
        in_channels: input channels *before* the coordinates are appended.
        out_channels: output channels.
        modes: int or ``dim`` ints (per sign on the first ``dim - 1`` axes, non-negative on the last).
        width: hidden channels; n_layers: Fourier layers; projection_channels: width of ``Q_1``.
        positional_embedding: append the grid coordinates (``dim`` channels). Without it a periodic
            FNO is exactly translation-equivariant.
        endpoint: coordinate convention (:mod:`neuralops.layers.positional`).
        padding: int or ``dim`` ints: zeros appended at the high end of each axis after lifting,
            cropped before the projection (for non-periodic axes).
        norm: "batch" (BatchNorm after each Fourier layer, as in the paper's code) or "none".
        activation: "relu" (paper), "gelu", "silu", "tanh".
        projection_chunk_elements: memory bound of the projection (:class:`~neuralops.layers.PointwiseMLP`);
            ``None``: one piece.
    """

    def __init__(
        self,
        dim: int,
        in_channels: int,
        out_channels: int,
        modes: Union[int, Sequence[int]] = 8,
        width: int = 20,
        n_layers: int = 4,
        projection_channels: int = 128,
        positional_embedding: bool = True,
        endpoint: bool = False,
        padding: Union[int, Sequence[int]] = 0,
        norm: str = "batch",
        activation: str = "relu",
        projection_chunk_elements: Optional[int] = DEFAULT_CHUNK_ELEMENTS,
    ):
        super().__init__()
        if dim not in _CONV:
            raise ValueError(f"FNO supports dim 2 or 3, got {dim}")
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("width", width),
            ("n_layers", n_layers),
            ("projection_channels", projection_channels),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', got {norm!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(_ACTIVATIONS)}")
        pad = (int(padding),) * dim if isinstance(padding, int) else tuple(int(p) for p in padding)
        if len(pad) != dim or any(p < 0 for p in pad):
            raise ValueError(f"padding must be a non-negative int or {dim} of them, got {padding}")
        self.dim = dim
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.padding = pad
        conv = _CONV[dim]
        self.embedding = GridEmbedding(dim, endpoint) if positional_embedding else None
        lifted_in = in_channels + (dim if positional_embedding else 0)
        self.lift = conv(lifted_in, width, 1)
        self.spectral = nn.ModuleList(SpectralConv(width, width, modes, dim=dim) for _ in range(n_layers))
        self.skip = nn.ModuleList(conv(width, width, 1) for _ in range(n_layers))
        self.norms = nn.ModuleList(
            (_BATCHNORM[dim](width) if norm == "batch" else nn.Identity()) for _ in range(n_layers)
        )
        self.activation = _ACTIVATIONS[activation]()
        self.projection = PointwiseMLP(
            dim, width, projection_channels, out_channels, _ACTIVATIONS[activation](), projection_chunk_elements
        )

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if a.dim() != self.dim + 2 or a.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expected (B, {self.in_channels}, <{self.dim} grid axes>), got {tuple(a.shape)}"
            )
        if self.embedding is not None:
            a = self.embedding(a)
        v = self.lift(a)
        grid = v.shape[2:]
        if any(self.padding):
            # F.pad lists the last axis first
            v = F.pad(v, [q for p in reversed(self.padding) for q in (0, p)])
        last = len(self.spectral) - 1
        for i, (spectral, skip, norm) in enumerate(zip(self.spectral, self.skip, self.norms)):
            v = norm(spectral(v) + skip(v))
            if i < last:
                v = self.activation(v)
        if any(self.padding):
            v = v[(Ellipsis,) + tuple(slice(0, n) for n in grid)]
        return self.projection(v)


class _SpaceTimeGrid(nn.Module):
    """Append ``x, y`` (``endpoint`` convention) and ``t`` (``shifted``: ``(k + 1) / T``;
    ``linspace``: ``k / (T - 1)``) coordinate channels to ``(B, C, X, Y, T)``."""

    def __init__(self, endpoint: bool, time_coordinate: str):
        super().__init__()
        self.endpoint, self.time_coordinate = bool(endpoint), time_coordinate

    def extra_repr(self) -> str:
        return f"endpoint={self.endpoint}, time_coordinate={self.time_coordinate!r}"

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        nx, ny, nt = v.shape[-3:]
        xy = grid_coordinates((nx, ny), self.endpoint, v.dtype, v.device)
        if self.time_coordinate == "shifted":
            t = torch.arange(1, nt + 1, dtype=v.dtype, device=v.device) / nt
        else:
            t = torch.linspace(0.0, 1.0, nt, dtype=v.dtype, device=v.device)
        grid = torch.stack(
            [xy[0, :, :, None].expand(nx, ny, nt), xy[1, :, :, None].expand(nx, ny, nt), t.expand(nx, ny, nt)]
        )
        return torch.cat([v, grid.unsqueeze(0).expand(v.shape[0], *grid.shape)], dim=1)


@register("fno2d")
class FNO2d(FNO, ModelContract):
    """FNO-2D: ``(B, C_in, X, Y) -> (B, C_out, X, Y)``; defaults = the paper's Navier-Stokes
    configuration (10 frames in, 1 frame out, 414,517 parameters); see the module docstring.
    Contract: a field map (steady data; autoregressive steps with the frames stacked as channels)."""

    kinds = (STEADY, AUTOREGRESSIVE)
    geometry = ("endpoint",)

    def __init__(
        self,
        in_channels: int = 10,
        out_channels: int = 1,
        modes: Union[int, Sequence[int]] = 8,
        width: int = 20,
        n_layers: int = 4,
        projection_channels: int = 128,
        positional_embedding: bool = True,
        endpoint: bool = True,
        padding: Union[int, Sequence[int]] = 0,
        norm: str = "batch",
        activation: str = "relu",
        projection_chunk_elements: Optional[int] = DEFAULT_CHUNK_ELEMENTS,
    ):
        super().__init__(
            2,
            in_channels,
            out_channels,
            modes,
            width,
            n_layers,
            projection_channels,
            positional_embedding,
            endpoint,
            padding,
            norm,
            activation,
            projection_chunk_elements,
        )


@register("fno3d")
class FNO3d(FNO, ModelContract):
    """FNO-3D: ``(B, T_in, X, Y) -> (B, T_out, X, Y)`` with ``T_out`` free at call time;
    defaults = the paper's Navier-Stokes configuration (6,558,537 parameters); see the module
    docstring. ``time_padding`` zeros are appended to the (non-periodic) time axis.

    ``time_coordinate``: ``"shifted"`` (``t_k = (k + 1) / T_out``, the 2021-01 script) or
    ``"linspace"`` (``t_k = k / (T_out - 1)``, the 2021-08 script); ``endpoint`` sets ``x, y``.
    Contract: a direct trajectory model, ``t_in -> in_steps``, ``t_out -> out_steps``, one field.
    """

    kinds = (DIRECT,)
    geometry = ("endpoint",)

    @classmethod
    def contract_arguments(cls, kind, in_channels, out_channels, t_in, t_out):
        single_field("fno3d", in_channels, out_channels)
        return {"in_steps": int(t_in), "out_steps": int(t_out)}

    def __init__(
        self,
        in_steps: int = 10,
        out_steps: int = 40,
        modes: Union[int, Sequence[int]] = 8,
        width: int = 20,
        n_layers: int = 4,
        projection_channels: int = 128,
        positional_embedding: bool = True,
        endpoint: bool = True,
        spatial_padding: int = 0,
        time_padding: int = 0,
        norm: str = "batch",
        activation: str = "relu",
        time_coordinate: str = "shifted",
        projection_chunk_elements: Optional[int] = DEFAULT_CHUNK_ELEMENTS,
    ):
        if int(out_steps) < 1:
            raise ValueError(f"out_steps must be a positive integer, got {out_steps}")
        if time_coordinate not in ("shifted", "linspace"):
            raise ValueError(f"time_coordinate must be 'shifted' or 'linspace', got {time_coordinate!r}")
        super().__init__(
            3,
            in_steps,
            1,
            modes,
            width,
            n_layers,
            projection_channels,
            positional_embedding,
            endpoint,
            (spatial_padding, spatial_padding, time_padding),
            norm,
            activation,
            projection_chunk_elements,
        )
        self.out_steps = int(out_steps)
        if positional_embedding:
            self.embedding = _SpaceTimeGrid(endpoint, time_coordinate)

    def forward(self, x: torch.Tensor, t_out: Optional[int] = None) -> torch.Tensor:
        """``(B, T_in, X, Y) -> (B, t_out, X, Y)``, or the data layout ``(B, T_in, 1, X, Y) ->
        (B, t_out, 1, X, Y)``."""
        layout = x.dim() == 5 and x.shape[2] == 1
        if not (x.dim() == 4 or layout) or x.shape[1] != self.in_channels:
            raise ValueError(
                f"FNO3d expects x of shape (B, T_in={self.in_channels}, X, Y) or "
                f"(B, T_in={self.in_channels}, 1, X, Y), got {tuple(x.shape)}"
            )
        if layout:
            x = x.flatten(1, 2)  # frames x one field -> channels
        t_out = self.out_steps if t_out is None else int(t_out)
        if t_out < 1:
            raise ValueError(f"t_out must be >= 1, got {t_out}")
        # the input frames are channels, repeated at every output time (B, T_in, X, Y, T_out)
        a = x.unsqueeze(-1).expand(*x.shape, t_out)
        out = super().forward(a)  # (B, 1, X, Y, t_out)
        return out.movedim(-1, 1) if layout else out.squeeze(1).movedim(-1, 1)
