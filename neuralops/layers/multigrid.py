"""Learned multigrid V-cycle: the linear operator of one MgNO layer (He, Liu, Xu, ICLR 2024).

The layer reads its input ``f`` (``C_f`` channels) as the right-hand side of an unknown linear
system ``A u = f`` and returns the result ``u`` (``C_u`` channels) of one multigrid V-cycle whose
operators are all learned convolutions, with no biases (the cycle is a linear map of ``f``):

* smoothing on level ``l`` (``A_l: C_u -> C_f``, ``S_l: C_f -> C_u``, 3x3, a new pair per step)::

      u_l <- u_l + S_l (f_l - A_l u_l)        first step on the finest level, where u_0 = 0:  u_0 = S_0 f_0

* restriction to level ``l + 1`` (stride-2 3x3 convolutions, grid ``n -> ceil(n / 2)``)::

      u_{l+1} = Pi_l u_l   (C_u -> C_u),      f_{l+1} = R_l f_l   (C_f -> C_f)

  As in the published code the right-hand side itself is restricted, not the residual
  ``f_l - A_l u_l`` (the learned ``R_l`` and the next level's smoothers can absorb the difference).
* after the coarsest level's smoothing, for ``l = L-2 .. 0`` the prolongation (4x4 stride-2
  transposed convolution, ``C_u -> C_u``) and the optional post-smoothing::

      u_l <- u_l + RT_l u_{l+1},      then ``post_l`` steps  u_l <- u_l + S_l (f_l - A_l u_l)

``smoothing`` lists ``(pre, post)`` steps per level, finest first; its length is the number of
levels ``L``. On the coarsest level pre and post steps are the same thing (``pre + post`` steps).

Parameters (3x3 kernels, ``P_l = pre_l + post_l``)::

    smoothers     9 C_u C_f (2 P_l - 1 on the finest level, 2 P_l on the others)
    restrictions  (L - 1) * 9 (C_u^2 + C_f^2)
    prolongations (L - 1) * 16 C_u^2

Options for MgNO's Navier-Stokes network (its code's ``MgConv`` inside ``MgNO_NS``):
``bias=True`` gives the smoothers' ``S`` and ``A`` convolutions biases (restrictions and
prolongations never have one); ``norm_size=(n_x, n_y)`` applies a LayerNorm over
``(C_u, n_x / 2^l, n_y / 2^l)`` with elementwise affine parameters after the coarse correction of
every level ``l < L - 1``, i.e. ``u_l <- LN_l(u_l + RT_l u_{l+1})`` before the post-smoothing. Those
LayerNorms are bound to the grid they were built for (``2 C_u n_x n_y / 4^l`` parameters each): the
cycle refuses any other input grid (see :class:`MultigridVCycle`); ``prolong_padding_mode="zeros"``
uses the plain (cropped, non-periodic) transposed convolution of the published code whatever the
smoothers' padding.

Boundary conditions: every 3x3 and stride-2 convolution pads with ``padding_mode`` (``zeros`` for
Dirichlet data, ``circular`` for periodic data, ``reflect`` e.g. for Helmholtz). The prolongation
wraps around for ``circular`` data and is cropped otherwise (:class:`PaddedConvTranspose2d`).

Grid sizes: any ``n`` works. Level ``l + 1`` has ``ceil(n_l / 2)`` points; the prolongation is told
the size of the finer grid, so an odd ``n_l = 2 m - 1`` is recovered from its ``m`` coarse points
(coarse point ``i`` on fine point ``2 i``: vertex-centred coarsening, with both ends of the axis on
the coarse grid). With ``circular`` padding the cycle commutes with rolls by multiples of
``2 ** (L - 1)`` when every axis is divisible by ``2 ** (L - 1)``; on other sizes stride-2 sampling
cannot be translation-equivariant. ``reflect`` needs at least 2 points on the coarsest grid.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .padding import PaddedConvTranspose2d, check_padding_mode, padded_conv2d

__all__ = ["MultigridVCycle", "SmoothingStep", "normalize_smoothing", "vcycle_level_sizes"]


def normalize_smoothing(smoothing: Sequence[Sequence[int]]) -> Tuple[Tuple[int, int], ...]:
    """Validate ``[(pre, post), ...]`` (one pair per level, finest first) and return it as int tuples."""
    try:
        pairs = tuple((int(pre), int(post)) for pre, post in smoothing)
    except (TypeError, ValueError):
        raise ValueError(
            f"smoothing must be a sequence of (pre, post) pairs, one per level, got {smoothing!r}"
        ) from None
    if len(pairs) < 1:
        raise ValueError("smoothing needs at least one level")
    if any(pre < 0 or post < 0 for pre, post in pairs):
        raise ValueError(f"smoothing steps must be non-negative, got {pairs}")
    if pairs[0][0] < 1:
        raise ValueError(
            f"the finest level needs at least one pre-smoothing step (it initialises u = S f), got {pairs}"
        )
    return pairs


def vcycle_level_sizes(size: Sequence[int], levels: int) -> List[Tuple[int, int]]:
    """Grid sizes of the ``levels`` levels of a V-cycle on a ``size`` grid (each ``n -> ceil(n / 2)``)."""
    sizes = [tuple(int(n) for n in size)]
    for _ in range(levels - 1):
        sizes.append(tuple((n + 1) // 2 for n in sizes[-1]))
    return sizes


class SmoothingStep(nn.Module):
    """One learned smoothing step ``u <- u + S (f - A u)``; without ``A`` (first step, ``u = 0``): ``u = S f``."""

    def __init__(self, u_channels: int, f_channels: int, padding_mode: str, initial: bool = False, bias: bool = False):
        super().__init__()
        self.S = padded_conv2d(f_channels, u_channels, 3, padding_mode, bias=bias)
        self.A = None if initial else padded_conv2d(u_channels, f_channels, 3, padding_mode, bias=bias)

    def forward(self, u: Optional[torch.Tensor], f: torch.Tensor) -> torch.Tensor:
        if self.A is None:
            return self.S(f)
        return u + self.S(f - self.A(u))


class MultigridVCycle(nn.Module):
    """One learned V-cycle ``f (B, C_f, X, Y) -> u (B, C_u, X, Y)``; see the module docstring.

    Args:
        in_channels: ``C_f``, channels of the right-hand side ``f``.
        out_channels: ``C_u``, channels of the solution ``u``.
        smoothing: ``(pre, post)`` smoothing steps per level, finest first (MgNO Darcy:
            ``[(1, 0)] * 5 + [(2, 0)]``).
        padding_mode: ``zeros``, ``circular``, ``reflect`` or ``replicate``.
        bias: biases on the smoothers' convolutions (MgNO_NS).
        norm_size: ``(n_x, n_y)``: LayerNorm after each coarse correction, built for that finest
            grid (MgNO_NS: ``(64, 64)``); the cycle then accepts only that grid.
        prolong_padding_mode: boundary handling of the prolongation (default: ``padding_mode``;
            ``"zeros"``: the published code's plain transposed convolution).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        smoothing: Sequence[Sequence[int]] = ((1, 0),) * 5 + ((2, 0),),
        padding_mode: str = "zeros",
        bias: bool = False,
        norm_size: Optional[Sequence[int]] = None,
        prolong_padding_mode: Optional[str] = None,
    ):
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"channel counts must be positive, got in_channels={in_channels}, out_channels={out_channels}"
            )
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.smoothing = normalize_smoothing(smoothing)
        self.padding_mode = check_padding_mode(padding_mode)
        self.levels = len(self.smoothing)
        cu, cf, mode = self.out_channels, self.in_channels, padding_mode
        coarsest = self.levels - 1

        self.pre_smoothers = nn.ModuleList()
        self.post_smoothers = nn.ModuleList()
        for level, (pre, post) in enumerate(self.smoothing):
            if level == coarsest:  # no prolongation in between: all of the coarsest level's steps come first
                pre, post = pre + post, 0
            self.pre_smoothers.append(
                nn.ModuleList(
                    SmoothingStep(cu, cf, mode, initial=(level == 0 and step == 0), bias=bias) for step in range(pre)
                )
            )
            self.post_smoothers.append(nn.ModuleList(SmoothingStep(cu, cf, mode, bias=bias) for _ in range(post)))
        self.restrict_u = nn.ModuleList(padded_conv2d(cu, cu, 3, mode, stride=2, bias=False) for _ in range(coarsest))
        self.restrict_f = nn.ModuleList(padded_conv2d(cf, cf, 3, mode, stride=2, bias=False) for _ in range(coarsest))
        self.prolong_padding_mode = check_padding_mode(prolong_padding_mode or padding_mode)
        self.prolong = nn.ModuleList(
            PaddedConvTranspose2d(cu, cu, 4, stride=2, padding=1, padding_mode=self.prolong_padding_mode, bias=False)
            for _ in range(coarsest)
        )
        self.norm_size = None
        self.norms = None
        if norm_size is not None:
            size = tuple(int(n) for n in norm_size)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"norm_size must be two positive grid sizes (n_x, n_y), got {norm_size}")
            self.norm_size = size
            self.norms = nn.ModuleList(
                nn.LayerNorm([cu, *level_size]) for level_size in vcycle_level_sizes(size, self.levels)[:-1]
            )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels} -> {self.out_channels}, smoothing={self.smoothing}, padding_mode={self.padding_mode!r}"
        )

    def _check_input(self, f: torch.Tensor) -> None:
        if f.dim() != 4 or f.shape[1] != self.in_channels:
            raise ValueError(f"expected f of shape (B, {self.in_channels}, X, Y), got {tuple(f.shape)}")
        if self.norm_size is not None and tuple(f.shape[-2:]) != self.norm_size:
            raise ValueError(
                f"this V-cycle's LayerNorms were built for a {self.norm_size[0]}x{self.norm_size[1]} "
                f"grid (one affine weight per grid point), got {tuple(f.shape[-2:])}: build the "
                f"model for the data's grid (mgno_ns: resolution; V-cycle: norm_size) or "
                f"resample the data to {self.norm_size}"
            )
        if self.padding_mode == "reflect":
            coarsest = vcycle_level_sizes(f.shape[-2:], self.levels)[-1]
            if min(coarsest) < 2:
                raise ValueError(
                    f"reflect padding needs >= 2 points on the coarsest of {self.levels} levels; "
                    f"grid {tuple(f.shape[-2:])} coarsens to {coarsest}: "
                    f"use fewer levels or a larger grid"
                )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        self._check_input(f)
        u: Optional[torch.Tensor] = None
        us: List[torch.Tensor] = []
        fs: List[torch.Tensor] = []
        for level in range(self.levels):
            if level > 0:
                u = self.restrict_u[level - 1](u)
                f = self.restrict_f[level - 1](f)
            for step in self.pre_smoothers[level]:
                u = step(u, f)
            us.append(u)
            fs.append(f)
        u = us[-1]
        for level in range(self.levels - 2, -1, -1):
            u = us[level] + self.prolong[level](u, output_size=us[level].shape[-2:])
            if self.norms is not None:
                u = self.norms[level](u)
            for step in self.post_smoothers[level]:
                u = step(u, fs[level])
        return u
