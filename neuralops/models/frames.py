"""History frames in, future frames out: the channel layout shared by the U-shaped
autoregressive models (SineNet, U-Net).

Inputs are ``(B, T_hist * C_in, X, Y)`` with the frames stacked time-major as channels, or
``(B, T_hist, C_in, X, Y)``; outputs are ``(B, T_future * C_out, X, Y)``, or
``(B, T_future, C_out, X, Y)`` when the input had a time axis. Explicit ``in_channels`` /
``out_channels`` override the frame counts (e.g. a steady Darcy map), and then only 4-d inputs
are accepted.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn

from .contract import AUTOREGRESSIVE, STEADY, ModelContract


class FrameModel(nn.Module, ModelContract):
    """Base class: validates the frame counts and converts between the two input layouts.

    Contract: steady data make a field map (``in_channels``, ``out_channels``); autoregressive data
    the frame layout (``in_fields = out_fields = C``, ``time_history = t_in``, ``time_future = t_out``).
    """

    kinds = (STEADY, AUTOREGRESSIVE)
    geometry = ("padding_mode",)

    @classmethod
    def contract_arguments(cls, kind, in_channels, out_channels, t_in, t_out):
        if kind != AUTOREGRESSIVE:
            return {"in_channels": int(in_channels), "out_channels": int(out_channels)}
        return {
            "in_fields": int(in_channels),
            "out_fields": int(out_channels),
            "time_history": int(t_in),
            "time_future": int(t_out),
            "in_channels": int(t_in) * int(in_channels),
            "out_channels": int(t_out) * int(out_channels),
        }

    def _set_frames(
        self,
        in_fields: int,
        out_fields: Optional[int],
        time_history: int,
        time_future: int,
        in_channels: Optional[int],
        out_channels: Optional[int],
    ) -> None:
        out_fields = in_fields if out_fields is None else out_fields
        for name, value in (
            ("in_fields", in_fields),
            ("out_fields", out_fields),
            ("time_history", time_history),
            ("time_future", time_future),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        self.in_fields, self.out_fields = int(in_fields), int(out_fields)
        self.time_history, self.time_future = int(time_history), int(time_future)
        self.in_channels = self.time_history * self.in_fields if in_channels is None else int(in_channels)
        self.out_channels = self.time_future * self.out_fields if out_channels is None else int(out_channels)
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}")
        # (B, T, C, X, Y) inputs are accepted only when the channels are frames x fields
        self.frame_layout = (
            self.in_channels == self.time_history * self.in_fields
            and self.out_channels == self.time_future * self.out_fields
        )

    def _flatten_frames(self, frames: torch.Tensor) -> Tuple[torch.Tensor, bool]:
        """``(B, T, C, X, Y)`` or ``(B, T*C, X, Y)`` -> ``(B, T*C, X, Y)``, and whether a time axis was given."""
        with_time_axis = frames.dim() == 5
        if with_time_axis:
            if not self.frame_layout or frames.shape[1:3] != (self.time_history, self.in_fields):
                layout = (
                    f"(B, T_hist={self.time_history}, C={self.in_fields}, X, Y)"
                    if self.frame_layout
                    else f"4-d input (B, {self.in_channels}, X, Y)"
                )
                raise ValueError(f"expected {layout}, got {tuple(frames.shape)}")
            return frames.flatten(1, 2), True
        if frames.dim() != 4 or frames.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (B, {self.in_channels}, X, Y) (T_hist * C channels, time-major), got {tuple(frames.shape)}"
            )
        return frames, False

    def _unflatten_frames(self, out: torch.Tensor, with_time_axis: bool) -> torch.Tensor:
        return out.unflatten(1, (self.time_future, self.out_fields)) if with_time_axis else out

    @staticmethod
    def _check_grid(shape, factor: int, padding_mode: str, num_levels: int, rule: str) -> None:
        """The grid must halve ``log2(factor)`` times; reflect padding needs >= 2 coarsest points."""
        if shape[-2] % factor or shape[-1] % factor:
            raise ValueError(f"grid {tuple(shape[-2:])} is not divisible by {rule} = {factor}")
        if padding_mode == "reflect" and min(shape[-2:]) < 2 * factor:
            raise ValueError(
                f"reflect padding needs >= 2 points on the coarsest level: grid {tuple(shape[-2:])} "
                f"must be at least {2 * factor} per axis with {num_levels} levels"
            )
