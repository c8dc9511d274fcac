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


def grid_coordinates(sizes: Sequence[int], endpoint: bool = False, dtype=torch.float32,
                     device=None) -> torch.Tensor:
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
        grid = grid_coordinates(v.shape[-self.dim:], self.endpoint, v.dtype, v.device)
        grid = grid.unsqueeze(0).expand(v.shape[0], *grid.shape)
        return torch.cat([v, grid], dim=1)


class SpaceTimeEncoding(nn.Module):
    """SFNO's lifting encoding of a scalar trajectory ``(B, 1, X, Y, T) -> (B, 3 + n_time, X, Y, T)``.

    Channels (each added to the input field, broadcast over channels):
    ``x``, ``y`` (``spatial=True`` only), ``t``, and ``n_time`` damped harmonics in time
    ``exp(decay * t) * sin(pi (k+1) t)`` (k even) / ``cos`` (k odd), with frame ``j`` at
    ``t_j = (j + 1) / max_time_steps`` (frames sit on a fixed time lattice, so the encoding of a
    frame does not depend on how many frames are given). ``decay`` follows the a-priori energy decay
    of Navier-Stokes solutions (the SFNO paper uses a small negative rate).

    With ``spatial=False`` the ``x, y`` channels are left out (2 fewer channels): the encoding is
    then translation-invariant in space and a periodic SFNO becomes translation-equivariant.
    """

    def __init__(self, n_time: int, max_time_steps: int = 100, decay: float = -0.01,
                 spatial: bool = True, endpoint: bool = False):
        super().__init__()
        if n_time < 0 or max_time_steps < 1:
            raise ValueError(f"n_time must be >= 0 and max_time_steps >= 1, got {n_time}, {max_time_steps}")
        self.n_time = int(n_time)
        self.max_time_steps = int(max_time_steps)
        self.decay = float(decay)
        self.spatial = bool(spatial)
        self.endpoint = bool(endpoint)

    @property
    def channels(self) -> int:
        return (3 if self.spatial else 1) + self.n_time

    def extra_repr(self) -> str:
        return (f"n_time={self.n_time}, max_time_steps={self.max_time_steps}, decay={self.decay}, "
                f"spatial={self.spatial}")

    def encoding(self, nx: int, ny: int, nt: int, dtype=torch.float32, device=None) -> torch.Tensor:
        """The encoding tensor ``(1, channels, nx, ny, nt)``."""
        t = torch.arange(1, nt + 1, dtype=dtype, device=device) / self.max_time_steps
        rows = []
        if self.spatial:
            xy = grid_coordinates((nx, ny), self.endpoint, dtype, device)
            rows += [xy[0, :, :, None].expand(nx, ny, nt), xy[1, :, :, None].expand(nx, ny, nt)]
        rows.append(t.expand(nx, ny, nt))
        damping = torch.exp(self.decay * t)
        for k in range(self.n_time):
            wave = torch.sin if k % 2 == 0 else torch.cos
            rows.append((damping * wave(torch.pi * (k + 1) * t)).expand(nx, ny, nt))
        return torch.stack(rows).unsqueeze(0)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if u.dim() != 5 or u.shape[1] != 1:
            raise ValueError(f"SpaceTimeEncoding expects (B, 1, X, Y, T), got {tuple(u.shape)}")
        _, _, nx, ny, nt = u.shape
        return u + self.encoding(nx, ny, nt, u.dtype, u.device)
