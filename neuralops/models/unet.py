"""Modern U-Net baseline in the style of PDEArena (Gupta & Brandstetter, 2022): pre-norm residual blocks.

``unet``: the last ``T_hist`` frames of ``C`` fields in, the next ``T_future`` frames out::

    (B, T_hist * C_in, X, Y) -> (B, T_future * C_out, X, Y)      frames stacked time-major as channels
    (B, T_hist, C_in, X, Y)  -> (B, T_future, C_out, X, Y)       the same, with a time axis

Architecture (levels ``l = 0..L-1`` with ``c_l = hidden * channel_multipliers[l]``)::

    h = P(frames)                                     3x3 convolution to ``hidden`` channels
    down, level l:  n_blocks x R(.) -> c_l            every output kept as a skip
                    D: 3x3 stride-2 convolution       (not after the last level; output kept as a skip)
    middle:         R(c_{L-1} -> c_{L-1}) twice
    up, level l = L-1..0:  (n_blocks + 1) x R(cat[h, skip] -> c_l)   skips consumed last-in first-out
                    U: 4x4 stride-2 transposed convolution   (not after level 0)
    output = Q(GELU(GroupNorm(h)))                    3x3 convolution to ``T_future * C_out``

``R(i -> o)`` is the pre-activation residual block
``x -> conv3x3(GELU(GN(conv3x3(GELU(GN(x)))))) + shortcut(x)`` with ``GN`` a GroupNorm of
``norm_groups`` groups and ``shortcut`` a 1x1 convolution when ``i != o`` (identity otherwise).
All convolutions pad with ``padding_mode``; with ``circular`` the transposed convolution wraps
around too (:class:`~neuralops.layers.padding.ConvTranspose2d`), so the model commutes with rolls
by multiples of ``2 ** (L - 1)``. Grids must be divisible by ``2 ** (L - 1)``.

Parameter count of the default configuration (incompressible Navier-Stokes as for SineNet:
3 fields, ``T_hist = 4``, ``T_future = 1``, hidden 64, multipliers (1, 2, 2, 4) = channels 64, 128,
128, 256, 2 blocks per level, GroupNorm(1)): **16,361,859** = lifting 6,976 + down path 3,697,728 +
middle 2,362,368 + up path 10,292,928 + head 1,859, where a block costs
``R(i, o) = 2 i + (9 i o + o) + 2 o + (9 o^2 + o) + [i != o] (i o + o)``, a downsampling
``9 c^2 + c`` and an upsampling ``16 c^2 + c`` (no attention, no time/parameter conditioning).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from ..layers.padding import PaddedConvTranspose2d, check_padding_mode, padded_conv2d
from .frames import FrameModel
from .registry import register

__all__ = ["UNet", "PreNormResidualBlock"]


class PreNormResidualBlock(nn.Module):
    """``(B, C_in, X, Y) -> (B, C_out, X, Y)``: ``conv(act(GN(conv(act(GN(x)))))) + shortcut(x)``."""

    def __init__(self, in_channels: int, out_channels: int, padding_mode: str, norm_groups: int = 1):
        super().__init__()
        for c in (in_channels, out_channels):
            if c % norm_groups:
                raise ValueError(f"norm_groups={norm_groups} does not divide the channel count {c}")
        self.residual = nn.Sequential(
            nn.GroupNorm(norm_groups, in_channels), nn.GELU(),
            padded_conv2d(in_channels, out_channels, 3, padding_mode),
            nn.GroupNorm(norm_groups, out_channels), nn.GELU(),
            padded_conv2d(out_channels, out_channels, 3, padding_mode),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


@register("unet")
class UNet(FrameModel):
    """Modern U-Net (see the module docstring).

    Args:
        in_fields, out_fields: fields per frame in and out (``out_fields`` defaults to ``in_fields``).
        time_history, time_future: frames in and out.
        hidden_channels: channels after the lifting convolution.
        channel_multipliers: channels of each level relative to ``hidden_channels``; its length is
            the number of levels ``L`` (``L - 1`` downsamplings).
        blocks_per_level: residual blocks per level on the way down (one more on the way up).
        padding_mode: ``circular`` (periodic data, default), ``zeros``, ``reflect`` or ``replicate``.
        norm_groups: GroupNorm groups (1 = layer norm over channels and space, as in PDEArena).
        in_channels, out_channels: total input/output channels (default ``T_hist * C_in`` and
            ``T_future * C_out``); other values make a plain field-to-field map
            ``(B, in_channels, X, Y) -> (B, out_channels, X, Y)`` (e.g. Darcy ``a -> u``), without the
            5-d frame layout.
    """

    def __init__(self, in_fields: int = 3, out_fields: Optional[int] = None, time_history: int = 4,
                 time_future: int = 1, hidden_channels: int = 64,
                 channel_multipliers: Sequence[int] = (1, 2, 2, 4), blocks_per_level: int = 2,
                 padding_mode: str = "circular", norm_groups: int = 1, in_channels: Optional[int] = None,
                 out_channels: Optional[int] = None):
        super().__init__()
        self._set_frames(in_fields, out_fields, time_history, time_future, in_channels, out_channels)
        for name, value in (("hidden_channels", hidden_channels),
                            ("blocks_per_level", blocks_per_level), ("norm_groups", norm_groups)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        multipliers = tuple(int(m) for m in channel_multipliers)
        if len(multipliers) < 1 or min(multipliers) < 1:
            raise ValueError(f"channel_multipliers must be a non-empty sequence of positive integers, "
                             f"got {channel_multipliers}")
        self.padding_mode = check_padding_mode(padding_mode)
        self.num_levels = len(multipliers)
        hidden, n_blocks = int(hidden_channels), int(blocks_per_level)

        self.lift = padded_conv2d(self.in_channels, hidden, 3, padding_mode)
        skip_channels: List[int] = [hidden]
        self.down = nn.ModuleList()
        channels = hidden
        for level, mult in enumerate(multipliers):
            stage = nn.ModuleList()
            for _ in range(n_blocks):
                stage.append(PreNormResidualBlock(channels, hidden * mult, padding_mode, norm_groups))
                channels = hidden * mult
                skip_channels.append(channels)
            if level < self.num_levels - 1:
                stage.append(padded_conv2d(channels, channels, 3, padding_mode, stride=2))
                skip_channels.append(channels)
            self.down.append(stage)
        self.middle = nn.Sequential(PreNormResidualBlock(channels, channels, padding_mode, norm_groups),
                                    PreNormResidualBlock(channels, channels, padding_mode, norm_groups))
        self.up = nn.ModuleList()
        for level in range(self.num_levels - 1, -1, -1):
            stage = nn.ModuleList()
            out = hidden * multipliers[level]
            for _ in range(n_blocks + 1):
                stage.append(PreNormResidualBlock(channels + skip_channels.pop(), out, padding_mode, norm_groups))
                channels = out
            if level > 0:
                stage.append(PaddedConvTranspose2d(channels, channels, 4, stride=2, padding=1,
                                             padding_mode=padding_mode, bias=True))
            self.up.append(stage)
        self.head = nn.Sequential(nn.GroupNorm(norm_groups, channels), nn.GELU(),
                                  padded_conv2d(channels, self.out_channels, 3, padding_mode))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        frames, with_time_axis = self._flatten_frames(frames)
        self._check_grid(frames.shape, 2 ** (self.num_levels - 1), self.padding_mode, self.num_levels, "2**(levels - 1)")
        h = self.lift(frames)
        skips = [h]
        for stage in self.down:
            for layer in stage:
                h = layer(h)
                skips.append(h)
        h = self.middle(h)
        for stage in self.up:
            for layer in stage:
                if isinstance(layer, PreNormResidualBlock):
                    h = layer(torch.cat([h, skips.pop()], dim=1))
                else:
                    h = layer(h)
        out = self.head(h)
        return self._unflatten_frames(out, with_time_axis)
