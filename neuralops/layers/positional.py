"""Positional embeddings: grid coordinates (FNO) and the space-time encoding of SFNO.

Coordinates live on the unit box. Two conventions, because data come in two kinds:

* ``endpoint=False`` (periodic data): ``x_i = i / n``, i = 0..n-1 -- the points of a periodic
  grid; the same physical point has the same coordinate at every resolution.
* ``endpoint=True`` (data with boundary nodes, e.g. Darcy on [0, 1]^2): ``x_i = i / (n - 1)``.

Appending coordinates makes a model depend on absolute position, so a periodic model with a
positional embedding is *not* translation-equivariant; every model here can switch it off.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

__all__ = ["grid_coordinates", "GridEmbedding", "SpaceTimeEncoding"]


def _axis(n: int, endpoint: bool, dtype, device) -> torch.Tensor:
    if endpoint:
        return torch.linspace(0.0, 1.0, n, dtype=dtype, device=device)
    return torch.arange(n, dtype=dtype, device=device) / n


def grid_coordinates(sizes: Sequence[int], endpoint: bool = False, dtype=torch.float32, device=None) -> torch.Tensor:
    """Coordinate channels ``(len(sizes), *sizes)``: channel ``j`` is the ``j``-th coordinate."""
    axes = [_axis(int(n), endpoint, dtype, device) for n in sizes]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


class GridEmbedding(nn.Module):
    """Append the grid coordinates of the last ``dim`` axes as channels:
    ``(B, C, *grid) -> (B, C + dim, *grid)``."""

    def __init__(self, dim: int, endpoint: bool = False):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.endpoint = bool(endpoint)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, endpoint={self.endpoint}"

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        grid = grid_coordinates(v.shape[-self.dim :], self.endpoint, v.dtype, v.device)
        grid = grid.unsqueeze(0).expand(v.shape[0], *grid.shape)
        return torch.cat([v, grid], dim=1)


class SpaceTimeEncoding(nn.Module):
    """SFNO's positional encoding of a scalar trajectory ``(B, 1, X, Y, T) -> (B, channels, X, Y, T)``
    (torch-cfd's ``SpaceTimePositionalEncoding`` without random features).

    The ``channels`` rows are added to the input field (broadcast over channels)::

        row 0: x_i = i / (n_x - 1)        row 1: y_j = j / (n_y - 1)     (linspace(0, 1, n): both ends)
        row 2: t_k = (k + 1) / max_time_steps                            (frame k of the window)
        row 3 + m (m = 0 .. channels - 4): exp(beta t) sin(pi (m + 1) t) (m even) / cos(...) (m odd)

    Frames sit on a fixed time lattice, so the encoding of frame ``k`` does not depend on how many
    frames are given; ``T`` may not exceed ``max_time_steps``. ``beta`` is the a-priori growth /
    decay rate of the solution's energy (torch-cfd: ``beta``; its FNO-data recipe uses 0.02, its
    class default is -0.01).

    ``spatial=False`` zeroes the ``x, y`` rows (same channel count): the encoding is then
    translation-invariant in space and a periodic SFNO becomes translation-equivariant. This is
    this toolkit's option; the reference always has them.
    """

    def __init__(self, channels: int, max_time_steps: int = 100, beta: float = -0.01, spatial: bool = True):
        super().__init__()
        if channels < 4 or max_time_steps < 1:
            raise ValueError(
                f"channels must be >= 4 (x, y, t and at least one harmonic) and "
                f"max_time_steps >= 1, got {channels}, {max_time_steps}"
            )
        self.channels = int(channels)
        self.max_time_steps = int(max_time_steps)
        self.beta = float(beta)
        self.spatial = bool(spatial)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, max_time_steps={self.max_time_steps}, beta={self.beta}, spatial={self.spatial}"
        )

    def encoding(self, nx: int, ny: int, nt: int, dtype=torch.float32, device=None) -> torch.Tensor:
        """The encoding tensor ``(1, channels, nx, ny, nt)``."""
        if nt > self.max_time_steps:
            raise ValueError(
                f"a window of {nt} frames does not fit the encoding's time lattice of "
                f"max_time_steps={self.max_time_steps} frames: raise max_time_steps"
            )
        t = torch.arange(1, nt + 1, dtype=dtype, device=device) / self.max_time_steps
        xy = grid_coordinates((nx, ny), True, dtype, device)
        if not self.spatial:
            xy = torch.zeros_like(xy)
        rows = [xy[0, :, :, None].expand(nx, ny, nt), xy[1, :, :, None].expand(nx, ny, nt), t.expand(nx, ny, nt)]
        growth = torch.exp(self.beta * t)
        for m in range(self.channels - 3):
            wave = torch.sin if m % 2 == 0 else torch.cos
            rows.append((growth * wave(torch.pi * (m + 1) * t)).expand(nx, ny, nt))
        return torch.stack(rows).unsqueeze(0)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if u.dim() != 5 or u.shape[1] != 1:
            raise ValueError(f"SpaceTimeEncoding expects (B, 1, X, Y, T), got {tuple(u.shape)}")
        _, _, nx, ny, nt = u.shape
        return u + self.encoding(nx, ny, nt, u.dtype, u.device)
