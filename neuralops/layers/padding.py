"""Boundary handling for convolutional operators: padding modes and periodic-aware resampling.

A convolutional neural operator encodes the boundary condition of the data in how its kernels see
the outside of the grid:

=============  ===========================================  ==========================
mode           ghost values outside the grid                use for
=============  ===========================================  ==========================
``zeros``      0                                            homogeneous Dirichlet data
``circular``   wrap around: ``u[-1] = u[n-1]``              periodic data (torus)
``reflect``    mirror without the edge: ``u[-1] = u[1]``    Neumann-like / Helmholtz
``replicate``  copy the edge: ``u[-1] = u[0]``              outflow-like boundaries
=============  ===========================================  ==========================

Everything here acts on channels-first 2-d tensors ``(B, C, X, Y)``.

* :func:`padded_conv2d` builds a ``k x k`` convolution (default 3x3, "same" padding ``k // 2``) whose
  padding mode is validated; strided versions are the restriction/downsampling convolutions.
* :class:`PaddedConvTranspose2d` is the prolongation/upsampling transposed convolution. For
  ``circular`` data the parts of the output that fall outside the grid are wrapped around and
  added on the other side (the exact adjoint of a circularly padded strided convolution), so a
  periodic model stays translation-equivariant; the output size is an argument, which handles odd
  grids (see the class docstring).
* :func:`avg_pool2x` and :func:`upsample` resample by factors of two. Periodic upsampling pads
  circularly, interpolates and crops, so bicubic/bilinear interpolation near the edge uses the
  values on the other side of the torus instead of clamping.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "PADDING_MODES",
    "check_padding_mode",
    "pad2d",
    "padded_conv2d",
    "PaddedConvTranspose2d",
    "avg_pool2x",
    "upsample",
]

PADDING_MODES: Tuple[str, ...] = ("zeros", "circular", "reflect", "replicate")
_INTERPOLATION_MODES = ("nearest", "bilinear", "bicubic")


def check_padding_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`PADDING_MODES`, else raise ``ValueError``."""
    if mode not in PADDING_MODES:
        raise ValueError(f"padding_mode {mode!r} is not supported; choose one of {', '.join(PADDING_MODES)}")
    return mode


def pad2d(x: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """Pad the last two axes of ``(B, C, X, Y)`` by ``pad`` cells on every side with ``mode``.

    ``reflect`` needs ``pad < n`` on both axes (torch's rule: the mirror image excludes the edge).
    """
    check_padding_mode(mode)
    if pad == 0:
        return x
    if mode == "reflect" and min(x.shape[-2:]) <= pad:
        raise ValueError(f"reflect padding by {pad} needs every axis longer than {pad}, got grid {tuple(x.shape[-2:])}")
    if mode == "zeros":
        return F.pad(x, (pad,) * 4)
    return F.pad(x, (pad,) * 4, mode=mode)


def padded_conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    padding_mode: str = "zeros",
    stride: int = 1,
    bias: bool = True,
) -> nn.Conv2d:
    """A ``kernel_size`` x ``kernel_size`` convolution with "same" padding ``kernel_size // 2`` in ``padding_mode``.

    With ``stride = 2`` and ``kernel_size = 3`` an axis of ``n`` points becomes ``ceil(n / 2)``
    points (output point ``i`` sits on input point ``2 i``).
    """
    check_padding_mode(padding_mode)
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer for 'same' padding, got {kernel_size}")
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        padding_mode=padding_mode,
        bias=bias,
    )


def _wrap_fold(full: torch.Tensor, dim: int, size: int, offset: int) -> torch.Tensor:
    """Fold ``full`` along ``dim`` onto a periodic axis of ``size`` points: ``J -> (J - offset) mod size``."""
    index = (torch.arange(full.shape[dim], device=full.device) - offset) % size
    shape = list(full.shape)
    shape[dim] = size
    return full.new_zeros(shape).index_add(dim, index, full)


def _wrap_pad(x: torch.Tensor, dim: int, pad: int) -> torch.Tensor:
    """Circular padding by ``pad`` along ``dim`` that also works when the axis is shorter than ``pad``."""
    n = x.shape[dim]
    index = torch.arange(-pad, n + pad, device=x.device) % n
    return x.index_select(dim, index)


class PaddedConvTranspose2d(nn.ConvTranspose2d):
    """Transposed convolution ``(B, C_in, m_x, m_y) -> (B, C_out, n_x, n_y)`` with a boundary mode.

    The prolongation of MgNO and the upsampling of the U-Net: kernel ``k``, stride ``s``, padding
    ``p`` (MgNO/U-Net: 4, 2, 1). Without padding the operator produces the full output
    ``F[J] = sum_{J = s i + j} w[j] x[i]``, ``J = 0 .. s (m - 1) + k - 1``; point ``J`` lies on
    grid point ``J - p``.

    * ``circular``: output point ``j`` is ``sum_{J : (J - p) mod n = j} F[J]``: the pieces of the
      stencil that leave the grid re-enter on the other side. This is the adjoint of the circularly
      padded strided convolution, and it commutes with rolls: rolling the coarse input by ``r``
      rolls the output by ``s r``.
    * ``zeros``, ``reflect``, ``replicate``: the standard transposed convolution, cropped to the
      output size (the pieces outside the grid are dropped, i.e. the adjoint of zero padding; a
      transposed convolution has no mirror analogue, and the published MgNO code uses this for
      every boundary condition).

    ``output_size`` (default ``s * m``) may be smaller than ``s * m`` (down to ``s * m - s + 1``):
    this is how a grid of odd size ``n`` is recovered from its ``ceil(n / 2)``-point coarse grid
    (coarse point ``i`` on fine point ``2 i``); for ``circular`` the wrap-around then uses period ``n``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 4,
        stride: int = 2,
        padding: int = 1,
        padding_mode: str = "zeros",
        bias: bool = False,
    ):
        check_padding_mode(padding_mode)
        if padding < 0 or kernel_size < 1 or stride < 1:
            raise ValueError(
                f"need kernel_size >= 1, stride >= 1, padding >= 0; got {kernel_size}, {stride}, {padding}"
            )
        # The parent always uses zero padding; boundary handling is done here in forward().
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=bias)
        self.crop = int(padding)
        self.boundary = padding_mode

    def extra_repr(self) -> str:
        return super().extra_repr() + f", crop={self.crop}, boundary={self.boundary!r}"

    def forward(
        self,
        x: torch.Tensor,  # type: ignore[override]
        output_size: Optional[Sequence[int]] = None,
    ) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected (B, C, X, Y), got shape {tuple(x.shape)}")
        s = self.stride[0]
        coarse = tuple(x.shape[-2:])
        if output_size is None:
            output_size = tuple(s * m for m in coarse)
        output_size = tuple(int(n) for n in output_size[-2:])
        for m, n in zip(coarse, output_size):
            if not s * m - s + 1 <= n <= s * m:
                raise ValueError(
                    f"output size {output_size} is not reachable from grid {coarse} with stride {s}; "
                    f"each axis must be between {s} * m - {s - 1} and {s} * m"
                )
        k = self.kernel_size[0]
        if self.boundary == "circular" and k - 2 * self.crop == s and output_size == (s * coarse[0], s * coarse[1]):
            # Same result, cheaper: the transposed convolution of the periodic extension, cropped to one
            # period. q coarse ghost cells per side cover every stencil that reaches the period.
            p = self.crop
            q = max(0, -((p + 1 - k) // s), p // s + 1)
            out = F.conv_transpose2d(
                _wrap_pad(_wrap_pad(x, -2, q), -1, q), self.weight, None, stride=s, padding=p + s * q
            )
        elif self.boundary == "circular":
            full = F.conv_transpose2d(x, self.weight, None, stride=s)
            out = _wrap_fold(_wrap_fold(full, -2, output_size[0], self.crop), -1, output_size[1], self.crop)
        else:
            p = self.crop
            full = F.conv_transpose2d(x, self.weight, None, stride=s)
            out = full[..., p : p + output_size[0], p : p + output_size[1]]
            if out.shape[-2:] != output_size:  # kernel shorter than stride + padding: zeros beyond the stencil
                out = F.pad(out, (0, output_size[1] - out.shape[-1], 0, output_size[0] - out.shape[-2]))
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out


def avg_pool2x(x: torch.Tensor) -> torch.Tensor:
    """Average 2x2 blocks: ``(B, C, X, Y) -> (B, C, X/2, Y/2)``; both axes must be even.

    Averaging non-overlapping blocks needs no ghost values, so it is the same for every boundary
    condition and commutes with rolls by even shifts.
    """
    if x.dim() != 4:
        raise ValueError(f"expected (B, C, X, Y), got shape {tuple(x.shape)}")
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        raise ValueError(f"2x average pooling needs even grid sizes, got {tuple(x.shape[-2:])}")
    return F.avg_pool2d(x, 2)


def upsample(x: torch.Tensor, scale_factor: int = 2, mode: str = "bicubic", periodic: bool = False) -> torch.Tensor:
    """Interpolate ``(B, C, X, Y) -> (B, C, s X, s Y)`` (cell-centred, ``align_corners=False``).

    ``periodic=True``: pad 2 cells circularly, interpolate, crop ``2 s`` cells per side. With
    ``align_corners=False`` output point ``j`` of the padded result is input coordinate
    ``(j + 0.5) / s - 0.5`` of the padded grid, so the crop restores the unpadded geometry exactly,
    and the cubic (4-point) stencil never reaches beyond the 2 padded cells. The result equals
    interpolating the periodic extension of ``x``: rolling ``x`` by ``r`` rolls it by ``s r``.
    """
    if mode not in _INTERPOLATION_MODES:
        raise ValueError(
            f"interpolation mode {mode!r} is not supported; choose one of {', '.join(_INTERPOLATION_MODES)}"
        )
    if int(scale_factor) != scale_factor or scale_factor < 1:
        raise ValueError(f"scale_factor must be a positive integer, got {scale_factor}")
    s = int(scale_factor)
    extra = {} if mode == "nearest" else {"align_corners": False}
    if not periodic:
        return F.interpolate(x, scale_factor=s, mode=mode, **extra)
    pad = 2
    padded = _wrap_pad(_wrap_pad(x, -2, pad), -1, pad)
    fine = F.interpolate(padded, scale_factor=s, mode=mode, **extra)
    c = pad * s
    return fine[..., c:-c, c:-c]
