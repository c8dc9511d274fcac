"""SineNet: K sequential U-shaped waves for time-dependent PDEs (Zhang et al., ICLR 2024).

``sinenet``: the last ``T_hist`` frames of ``C`` fields in, the next ``T_future`` frames out::

    (B, T_hist * C_in, X, Y) -> (B, T_future * C_out, X, Y)      frames stacked time-major as channels
    (B, T_hist, C_in, X, Y)  -> (B, T_future, C_out, X, Y)       the same, with a time axis

The network::

    x_0     = P(frames)                        lifting: 3x3 convolution to c_0 = 64 channels
    x_k     = x_{k-1} + V_k(x_{k-1}),  k = 1..K     K waves, each with a residual around it
    output  = Q(x_K)                           projection: 3x3 convolution to T_future * C_out

Each wave ``V`` is a U-Net with ``L = 4`` levels of channels ``c_l = floor(c_0 * m^l)``
(SineNet-8: ``m = 1.425``, 64 -> 91 -> 129 -> 185 -> 263)::

    encoder, l = 1..L:  h_l = B(cat[pool(h_{l-1}), pool^l(x)]) + W(pool(h_{l-1}))       h_0 = x
    decoder, l = L..1:  g_{l-1} = B(cat[h_{l-1}, up(g_l)]) + W(up(g_l))                g_L = h_L
    V(x) = g_0

``pool`` is 2x2 average pooling, ``up`` bicubic interpolation by 2 (periodic data: padded
circularly, interpolated, cropped), ``B`` two [3x3 conv, GroupNorm(1 group), GELU] and ``W`` a 1x1
convolution: the residual shortcut, fed with the block's main input only. ``pool^l(x)`` is the
"disentangled" path: the wave's own input, pooled ``l`` times, is concatenated to the features at
every encoder level after the first (at level 1 it would duplicate ``pool(h_0)``). The decoder
concatenates the encoder's skip ``h_{l-1}`` with the upsampled features. All 3x3 convolutions pad
with ``padding_mode`` (``circular`` for periodic data).

Parameter accounting (``conv(i, o, k) = k^2 i o + o``, ``B(i, o) = conv(i, o, 3) + conv(o, o, 3) + 4 o``)::

    per wave = sum_{l=1..L} [ B(c_{l-1} + [l > 1] c_0, c_l) + conv(c_{l-1}, c_l, 1)       encoder
                            + B(c_l + c_{l-1}, c_{l-1})     + conv(c_l, c_{l-1}, 1) ]     decoder
    total    = conv(T_hist C_in, c_0, 3) + K * per wave + conv(c_0, T_future C_out, 3)

Incompressible Navier-Stokes (smoke + 2 velocity components, T_hist = 4, T_future = 1):
SineNet-8 (m = 1.425) has 6,976 + 8 * 4,435,189 + 1,731 = **35,490,219** parameters, the paper's
count. The paper's equal-budget variants (:data:`WAVE_MULTIPLIERS`): K = 6, m = 1.5 (64, 96, 144,
216, 324): 35,475,499; K = 4, m = 1.611 (64, 103, 166, 267, 431): 35,493,699; K = 2, m = 1.8075
(64, 115, 209, 377, 683): 35,499,989. :func:`sinenet_parameter_count` evaluates the formula.

Grid sizes: both axes divisible by ``2 ** L`` (16). With ``circular`` padding the model commutes
with rolls by multiples of ``2 ** L`` (pooling and the circular bicubic upsampling commute with
those; all convolutions with any roll).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from ..layers.padding import avg_pool2x, check_padding_mode, padded_conv2d, upsample
from .frames import FrameModel
from .registry import register

__all__ = ["SineNet", "SineNetWave", "ConvNormBlock", "WAVE_MULTIPLIERS", "sinenet_channels", "sinenet_parameter_count"]

#: Channel multipliers of the paper's equal-budget (~35.5M) SineNets on incompressible Navier-Stokes, by K.
WAVE_MULTIPLIERS = {2: 1.8075, 4: 1.611, 6: 1.5, 8: 1.425}


def sinenet_channels(hidden_channels: int, multiplier: float, num_levels: int = 4) -> List[int]:
    """Channels per level, ``c_l = floor(hidden_channels * multiplier ** l)`` (the paper's rounding)."""
    return [int(hidden_channels * multiplier**level) for level in range(num_levels + 1)]


def sinenet_parameter_count(
    num_waves: int = 8,
    multiplier: Optional[float] = None,
    in_channels: int = 12,
    out_channels: int = 3,
    hidden_channels: int = 64,
    num_levels: int = 4,
    disentangle: bool = True,
) -> int:
    """The closed-form parameter count of :class:`SineNet` (see the module docstring)."""
    if multiplier is None:
        multiplier = WAVE_MULTIPLIERS[num_waves]
    c = sinenet_channels(hidden_channels, multiplier, num_levels)

    def conv(i: int, o: int, k: int) -> int:
        return k * k * i * o + o

    def block(i: int, o: int) -> int:
        return conv(i, o, 3) + conv(o, o, 3) + 4 * o

    wave = 0
    for level in range(1, num_levels + 1):
        extra = c[0] if (disentangle and level > 1) else 0
        wave += block(c[level - 1] + extra, c[level]) + conv(c[level - 1], c[level], 1)
        wave += block(c[level] + c[level - 1], c[level - 1]) + conv(c[level], c[level - 1], 1)
    return conv(in_channels, c[0], 3) + num_waves * wave + conv(c[0], out_channels, 3)


class ConvNormBlock(nn.Module):
    """``(B, C_in, X, Y) -> (B, C_out, X, Y)``: two [3x3 conv, GroupNorm(1 group), GELU]."""

    def __init__(self, in_channels: int, out_channels: int, padding_mode: str):
        super().__init__()
        self.layers = nn.Sequential(
            padded_conv2d(in_channels, out_channels, 3, padding_mode),
            nn.GroupNorm(1, out_channels),
            nn.GELU(),
            padded_conv2d(out_channels, out_channels, 3, padding_mode),
            nn.GroupNorm(1, out_channels),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class _EncoderLevel(nn.Module):
    """``h_l = B(cat[pool(h_{l-1}), pool^l(x)]) + W pool(h_{l-1})`` (the wave input part only when disentangled)."""

    def __init__(self, in_channels: int, out_channels: int, wave_channels: int, padding_mode: str):
        super().__init__()
        self.block = ConvNormBlock(in_channels + wave_channels, out_channels, padding_mode)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, h: torch.Tensor, pooled_input: Optional[torch.Tensor]) -> torch.Tensor:
        main = h if pooled_input is None else torch.cat([h, pooled_input], dim=1)
        return self.block(main) + self.shortcut(h)


class _DecoderLevel(nn.Module):
    """``g_{l-1} = B(cat[h_{l-1}, up(g_l)]) + W up(g_l)``."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, padding_mode: str):
        super().__init__()
        self.block = ConvNormBlock(skip_channels + in_channels, out_channels, padding_mode)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, upsampled: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([skip, upsampled], dim=1)) + self.shortcut(upsampled)


class SineNetWave(nn.Module):
    """One wave ``V: (B, c_0, X, Y) -> (B, c_0, X, Y)``: a U-Net over ``len(channels) - 1`` levels, no residual."""

    def __init__(
        self,
        channels: Sequence[int],
        padding_mode: str = "circular",
        interpolation: str = "bicubic",
        disentangle: bool = True,
    ):
        super().__init__()
        self.channels = list(channels)
        self.periodic = padding_mode == "circular"
        self.interpolation = interpolation
        self.disentangle = disentangle
        c = self.channels
        self.encoder = nn.ModuleList(
            _EncoderLevel(c[l - 1], c[l], c[0] if (disentangle and l > 1) else 0, padding_mode)
            for l in range(1, len(c))
        )
        self.decoder = nn.ModuleList(
            _DecoderLevel(c[l], c[l - 1], c[l - 1], padding_mode) for l in range(len(c) - 1, 0, -1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        h = x
        pooled_input = x
        for level, encode in enumerate(self.encoder, start=1):
            h = avg_pool2x(h)
            pooled_input = avg_pool2x(pooled_input)
            h = encode(h, pooled_input if (self.disentangle and level > 1) else None)
            skips.append(h)
        g = skips.pop()
        for decode in self.decoder:
            g = decode(upsample(g, 2, self.interpolation, periodic=self.periodic), skips.pop())
        return g


@register("sinenet")
class SineNet(FrameModel):
    """SineNet (see the module docstring for layout, equations and parameter accounting).

    Args:
        in_fields: fields per input frame (incompressible NS: 3 = smoke + 2 velocity components).
        out_fields: fields per output frame (default ``in_fields``).
        time_history: input frames ``T_hist`` (paper: 4).
        time_future: output frames ``T_future`` (paper: 1).
        hidden_channels: ``c_0``, channels after lifting (paper: 64).
        num_waves: ``K`` (paper's main model: 8).
        multiplier: channel multiplier per level; ``None`` takes the paper's value for ``K`` in
            :data:`WAVE_MULTIPLIERS` (K = 2, 4, 6, 8).
        num_levels: downsamplings per wave (paper: 4).
        padding_mode: ``circular`` (periodic data, default), ``zeros``, ``reflect`` or ``replicate``;
            ``circular`` also makes the upsampling wrap around.
        interpolation: ``bicubic`` (paper), ``bilinear`` or ``nearest``.
        disentangle: concatenate the pooled wave input at encoder levels 2..L (paper: yes).
        wave_residual: ``x_k = x_{k-1} + V_k(x_{k-1})`` (paper: yes) instead of ``x_k = V_k(x_{k-1})``.
        in_channels, out_channels: total input/output channels (default ``T_hist * C_in`` and
            ``T_future * C_out``); other values make a plain field-to-field map
            ``(B, in_channels, X, Y) -> (B, out_channels, X, Y)`` without the 5-d frame layout.
    """

    def __init__(
        self,
        in_fields: int = 3,
        out_fields: Optional[int] = None,
        time_history: int = 4,
        time_future: int = 1,
        hidden_channels: int = 64,
        num_waves: int = 8,
        multiplier: Optional[float] = None,
        num_levels: int = 4,
        padding_mode: str = "circular",
        interpolation: str = "bicubic",
        disentangle: bool = True,
        wave_residual: bool = True,
        in_channels: Optional[int] = None,
        out_channels: Optional[int] = None,
    ):
        super().__init__()
        self._set_frames(in_fields, out_fields, time_history, time_future, in_channels, out_channels)
        for name, value in (("hidden_channels", hidden_channels), ("num_waves", num_waves), ("num_levels", num_levels)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if multiplier is None:
            if num_waves not in WAVE_MULTIPLIERS:
                raise ValueError(
                    f"no published multiplier for num_waves={num_waves} (known: "
                    f"{sorted(WAVE_MULTIPLIERS)}); pass multiplier explicitly"
                )
            multiplier = WAVE_MULTIPLIERS[num_waves]
        if not multiplier > 0:
            raise ValueError(f"multiplier must be positive, got {multiplier}")
        if interpolation not in ("bicubic", "bilinear", "nearest"):
            raise ValueError(f"interpolation {interpolation!r} is not supported; choose bicubic, bilinear or nearest")
        self.padding_mode = check_padding_mode(padding_mode)
        self.num_levels = int(num_levels)
        self.multiplier = float(multiplier)
        self.wave_residual = bool(wave_residual)
        self.channels = sinenet_channels(int(hidden_channels), self.multiplier, self.num_levels)
        if min(self.channels) < 1:
            raise ValueError(f"multiplier {multiplier} gives empty levels: channels {self.channels}")
        self.lift = padded_conv2d(self.in_channels, self.channels[0], 3, padding_mode)
        self.waves = nn.ModuleList(
            SineNetWave(self.channels, padding_mode, interpolation, disentangle) for _ in range(int(num_waves))
        )
        self.project = padded_conv2d(self.channels[0], self.out_channels, 3, padding_mode)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        frames, with_time_axis = self._flatten_frames(frames)
        self._check_grid(frames.shape, 2**self.num_levels, self.padding_mode, self.num_levels, "2**num_levels")
        x = self.lift(frames)
        for wave in self.waves:
            x = x + wave(x) if self.wave_residual else wave(x)
        out = self.project(x)
        return self._unflatten_frames(out, with_time_axis)
