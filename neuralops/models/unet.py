"""U-Nets with pre-norm residual blocks.

``unet_mod`` (:class:`UNetMod`) is PDEArena's ``Unetmod-64`` (Gupta & Brandstetter, 2022) as its
code builds it (144,263,683 parameters on its Navier-Stokes setting; see the class).

``unet`` (:class:`UNet`) is this toolkit's own, smaller U-Net of the same family, not a published
model: its level widths are ``hidden * multiplier`` (not compounded as in PDEArena), each up level
ends at its own width, the final GroupNorm has ``norm_groups`` groups and the default padding is
circular. The last ``T_hist`` frames of ``C`` fields in, the next ``T_future`` frames out::

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

__all__ = ["UNet", "UNetMod", "PreNormResidualBlock"]


class PreNormResidualBlock(nn.Module):
    """``(B, C_in, X, Y) -> (B, C_out, X, Y)``: ``conv(act(GN(conv(act(GN(x)))))) + shortcut(x)``."""

    def __init__(self, in_channels: int, out_channels: int, padding_mode: str, norm_groups: int = 1):
        super().__init__()
        for c in (in_channels, out_channels):
            if c % norm_groups:
                raise ValueError(f"norm_groups={norm_groups} does not divide the channel count {c}")
        self.residual = nn.Sequential(
            nn.GroupNorm(norm_groups, in_channels),
            nn.GELU(),
            padded_conv2d(in_channels, out_channels, 3, padding_mode),
            nn.GroupNorm(norm_groups, out_channels),
            nn.GELU(),
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

    def __init__(
        self,
        in_fields: int = 3,
        out_fields: Optional[int] = None,
        time_history: int = 4,
        time_future: int = 1,
        hidden_channels: int = 64,
        channel_multipliers: Sequence[int] = (1, 2, 2, 4),
        blocks_per_level: int = 2,
        padding_mode: str = "circular",
        norm_groups: int = 1,
        in_channels: Optional[int] = None,
        out_channels: Optional[int] = None,
    ):
        super().__init__()
        self._set_frames(in_fields, out_fields, time_history, time_future, in_channels, out_channels)
        for name, value in (
            ("hidden_channels", hidden_channels),
            ("blocks_per_level", blocks_per_level),
            ("norm_groups", norm_groups),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        multipliers = tuple(int(m) for m in channel_multipliers)
        if len(multipliers) < 1 or min(multipliers) < 1:
            raise ValueError(
                f"channel_multipliers must be a non-empty sequence of positive integers, got {channel_multipliers}"
            )
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
        self.middle = nn.Sequential(
            PreNormResidualBlock(channels, channels, padding_mode, norm_groups),
            PreNormResidualBlock(channels, channels, padding_mode, norm_groups),
        )
        self.up = nn.ModuleList()
        for level in range(self.num_levels - 1, -1, -1):
            stage = nn.ModuleList()
            out = hidden * multipliers[level]
            for _ in range(n_blocks + 1):
                stage.append(PreNormResidualBlock(channels + skip_channels.pop(), out, padding_mode, norm_groups))
                channels = out
            if level > 0:
                stage.append(
                    PaddedConvTranspose2d(
                        channels, channels, 4, stride=2, padding=1, padding_mode=padding_mode, bias=True
                    )
                )
            self.up.append(stage)
        self.head = nn.Sequential(
            nn.GroupNorm(norm_groups, channels), nn.GELU(), padded_conv2d(channels, self.out_channels, 3, padding_mode)
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        frames, with_time_axis = self._flatten_frames(frames)
        self._check_grid(
            frames.shape, 2 ** (self.num_levels - 1), self.padding_mode, self.num_levels, "2**(levels - 1)"
        )
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


@register("unet_mod")
class UNetMod(FrameModel):
    """PDEArena's ``Unetmod-64`` (``pdearena.modules.twod_unet.Unet`` with ``hidden_channels=64``,
    ``norm=True``; Gupta & Brandstetter 2022), layer by layer.

    Channels compound over the levels: ``c_l = hidden * prod(channel_multipliers[:l+1])``
    (64, 64, 128, 256, 1024 for multipliers (1, 2, 2, 4)). With ``c_{-1} = hidden``::

        h = P(frames)                                   3x3 conv -> hidden   (kept as a skip)
        down, level l:  n_blocks x R(. -> c_l)          each output kept as a skip
                        D: 3x3 stride-2 conv (c_l)      not after the last level; kept as a skip
        middle:         R(c_{L-1} -> c_{L-1}) twice
        up, level l = L-1..0:  n_blocks x R(cat[h, skip] -> c_l),  then R(cat[h, skip] -> c_{l-1})
                        U: 4x4 stride-2 transposed conv (c_{l-1})   not after level 0
        out = Q(GELU(GroupNorm(8 groups)(h)))           3x3 conv -> T_future * C_out

    ``R`` is the pre-norm residual block of :class:`PreNormResidualBlock` with GroupNorm(1 group)
    (PDEArena's ``ResidualBlock(norm=True)``). PDEArena pads with zeros (``padding_mode="zeros"``,
    the default here); ``circular`` is this toolkit's periodic option. No attention (``Unetmod``,
    not ``Unetmodattn``).

    Parameters on PDEArena's incompressible Navier-Stokes setting (smoke + 2 velocity components,
    ``T_hist = 4``, ``T_future = 1``): **144,263,683** (PDEArena's model table: 144.3M).
    """

    def __init__(
        self,
        in_fields: int = 3,
        out_fields: Optional[int] = None,
        time_history: int = 4,
        time_future: int = 1,
        hidden_channels: int = 64,
        channel_multipliers: Sequence[int] = (1, 2, 2, 4),
        blocks_per_level: int = 2,
        padding_mode: str = "zeros",
        final_norm_groups: int = 8,
        in_channels: Optional[int] = None,
        out_channels: Optional[int] = None,
    ):
        super().__init__()
        self._set_frames(in_fields, out_fields, time_history, time_future, in_channels, out_channels)
        multipliers = tuple(int(m) for m in channel_multipliers)
        if len(multipliers) < 1 or min(multipliers) < 1:
            raise ValueError(
                f"channel_multipliers must be a non-empty sequence of positive integers, got {channel_multipliers}"
            )
        hidden, n_blocks = int(hidden_channels), int(blocks_per_level)
        if hidden < 1 or n_blocks < 1:
            raise ValueError(
                f"hidden_channels and blocks_per_level must be positive, got {hidden_channels}, {blocks_per_level}"
            )
        if hidden % int(final_norm_groups):
            raise ValueError(f"final_norm_groups={final_norm_groups} does not divide hidden_channels={hidden}")
        self.padding_mode = check_padding_mode(padding_mode)
        self.num_levels = len(multipliers)
        mode = padding_mode

        self.lift = padded_conv2d(self.in_channels, hidden, 3, mode)
        self.down = nn.ModuleList()
        c_in = hidden
        widths = []
        for level, mult in enumerate(multipliers):
            c_out = c_in * mult
            for _ in range(n_blocks):
                self.down.append(PreNormResidualBlock(c_in, c_out, mode))
                c_in = c_out
            widths.append(c_out)
            if level < self.num_levels - 1:
                self.down.append(padded_conv2d(c_in, c_in, 3, mode, stride=2))
        self.middle = nn.Sequential(PreNormResidualBlock(c_in, c_in, mode), PreNormResidualBlock(c_in, c_in, mode))
        self.up = nn.ModuleList()
        for level in range(self.num_levels - 1, -1, -1):
            for _ in range(n_blocks):
                self.up.append(PreNormResidualBlock(2 * c_in, c_in, mode))
            c_out = c_in // multipliers[level]
            self.up.append(PreNormResidualBlock(c_in + c_out, c_out, mode))
            c_in = c_out
            if level > 0:
                self.up.append(PaddedConvTranspose2d(c_in, c_in, 4, stride=2, padding=1, padding_mode=mode, bias=True))
        self.head_norm = nn.GroupNorm(int(final_norm_groups), c_in)
        self.activation = nn.GELU()
        self.head = padded_conv2d(c_in, self.out_channels, 3, mode)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        frames, with_time_axis = self._flatten_frames(frames)
        self._check_grid(
            frames.shape, 2 ** (self.num_levels - 1), self.padding_mode, self.num_levels, "2**(levels - 1)"
        )
        h = self.lift(frames)
        skips = [h]
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        h = self.middle(h)
        for layer in self.up:
            if isinstance(layer, PreNormResidualBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1))
            else:
                h = layer(h)
        out = self.head(self.activation(self.head_norm(h)))
        return self._unflatten_frames(out, with_time_axis)
