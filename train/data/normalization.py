"""Per-channel unit-Gaussian normalisation, fitted on the training split only.

``encode(u) = (u - mean_c) / std_c`` and ``decode(v) = v * std_c + mean_c`` with one ``(mean, std)``
per channel ``c``. The statistics are the mean and the (population) standard deviation of every
value of that channel over the training samples (all grid points, and all frames of the training
windows for trajectories). They live in module *buffers*, so they are saved in and restored from
every Lightning checkpoint with the weights.

``kind="none"`` keeps the identity map (mean 0, std 1) with the same interface.

:class:`PointwiseNormalizer` is the FNO scripts' ``UnitGaussianNormalizer`` (``fourier_3d.py``
normalises inputs and outputs this way): one ``(mean, std)`` per grid point (and per frame and
channel), the mean and the *sample* standard deviation (``torch.std``, divisor ``N - 1``) over the
training samples, ``encode(u) = (u - mean) / (std + eps)`` with ``eps = 1e-5``. Its statistics are
fitted by :class:`RunningPointwiseStats` (streaming, float64). It is bound to the grid (and window)
it was fitted on. ``normalization: pointwise`` in a data module selects it: the data module fits
:class:`RunningPointwiseStats` on the inputs and on the outputs of the training split (steady pairs,
or the direct protocol window: ``(t_in, C, X, Y)`` in, ``(t_out, C, X, Y)`` out; autoregressive
rollouts need one statistics for inputs and outputs and refuse it), and the LightningModule builds
one :class:`PointwiseNormalizer` for each.
"""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

__all__ = [
    "ChannelNormalizer",
    "RunningChannelStats",
    "PointwiseNormalizer",
    "RunningPointwiseStats",
    "pointwise_statistics",
    "NORMALIZATIONS",
]

NORMALIZATIONS = ("gaussian", "none", "pointwise")
CHANNEL_KINDS = ("gaussian", "none")


class _RunningMoments:
    """Count, mean and sum of squared deviations ``m2`` of a stream of blocks, merged block by block
    with Chan, Golub and LeVeque's pairwise update (float64): for a block of ``n_b`` values with mean
    ``mean_b`` and ``m2_b``, ``mean += delta n_b / n`` and ``m2 += m2_b + delta^2 count n_b / n``
    (``delta = mean_b - mean``, ``n = count + n_b``)."""

    def __init__(self, shape):
        self.count = 0
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)

    def _merge(self, x: np.ndarray, axis: int) -> None:
        """Add ``x`` (float64), whose axis ``axis`` runs over the new values (the others have the
        statistics' shape)."""
        n_b = x.shape[axis]
        if n_b == 0:
            return
        mean_b = x.mean(axis=axis)
        m2_b = ((x - np.expand_dims(mean_b, axis)) ** 2).sum(axis=axis)
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.count * n_b / n)
        self.count = n


class RunningChannelStats(_RunningMoments):
    """Streaming per-channel mean and variance (Chan et al.'s pairwise merge, float64).

    ``update(block, channel_axis)`` adds every value of ``block`` to the statistics of its channel.
    """

    def __init__(self, n_channels: int):
        super().__init__(n_channels)

    def update(self, block: np.ndarray, channel_axis: int) -> None:
        x = np.moveaxis(np.asarray(block, dtype=np.float64), channel_axis, 0).reshape(self.mean.size, -1)
        self._merge(x, axis=1)

    def result(self) -> Tuple[np.ndarray, np.ndarray]:
        if self.count == 0:
            raise ValueError("no values were seen: cannot fit normalisation statistics on an empty split")
        return self.mean.copy(), np.sqrt(self.m2 / self.count)


def _checked_statistics(mean, std, shape: tuple) -> Tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` as float64 tensors of ``shape``, finite, or a ValueError that says why not."""
    mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float64))
    std_t = torch.as_tensor(np.asarray(std, dtype=np.float64))
    if tuple(mean_t.shape) != shape or tuple(std_t.shape) != shape:
        raise ValueError(f"statistics must have shape {shape}, got {tuple(mean_t.shape)} and {tuple(std_t.shape)}")
    if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all()):
        raise ValueError("normalisation statistics are not finite: the training data holds NaN/inf")
    return mean_t, std_t


class ChannelNormalizer(nn.Module):
    """Affine per-channel map between physical and normalised fields.

    Buffers: ``mean`` ``(C,)``, ``std`` ``(C,)`` (float64, so the round trip is exact to float32
    precision whatever the data scale) and ``fitted`` (scalar bool).
    ``encode(u, channel_dim)`` / ``decode(v, channel_dim)`` broadcast over every other axis.
    """

    def __init__(self, n_channels: int, kind: str = "gaussian", eps: float = 1e-12):
        super().__init__()
        if kind not in CHANNEL_KINDS:
            raise ValueError(
                f"a channel normaliser's kind must be one of {', '.join(CHANNEL_KINDS)}, got {kind!r} "
                "(pointwise: PointwiseNormalizer)"
            )
        if int(n_channels) < 1:
            raise ValueError(f"n_channels must be positive, got {n_channels}")
        self.kind = kind
        self.eps = float(eps)
        self.register_buffer("mean", torch.zeros(int(n_channels), dtype=torch.float64))
        self.register_buffer("std", torch.ones(int(n_channels), dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(kind == "none"))

    @property
    def n_channels(self) -> int:
        return int(self.mean.numel())

    def extra_repr(self) -> str:
        return f"channels={self.n_channels}, kind={self.kind!r}, fitted={bool(self.fitted)}"

    @torch.no_grad()
    def set_statistics(self, mean: Iterable[float], std: Iterable[float]) -> None:
        if self.kind == "none":
            return
        mean_t, std_t = _checked_statistics(mean, std, tuple(self.mean.shape))
        self.mean.copy_(mean_t)
        # a constant channel (std 0) is only shifted: dividing by 0 would make it NaN
        self.std.copy_(torch.where(std_t > self.eps, std_t, torch.ones_like(std_t)))
        self.fitted.fill_(True)

    def _shape(self, x: torch.Tensor, channel_dim: int) -> list:
        d = channel_dim % x.dim()
        if x.shape[d] != self.n_channels:
            raise ValueError(
                f"normaliser has {self.n_channels} channels but axis {channel_dim} of a tensor of "
                f"shape {tuple(x.shape)} has {x.shape[d]}"
            )
        shape = [1] * x.dim()
        shape[d] = self.n_channels
        return shape

    def encode(self, x: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
        if self.kind == "none":
            return x
        shape = self._shape(x, channel_dim)
        return (x - self.mean.to(x.dtype).view(shape)) / self.std.to(x.dtype).view(shape)

    def decode(self, x: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
        if self.kind == "none":
            return x
        shape = self._shape(x, channel_dim)
        return x * self.std.to(x.dtype).view(shape) + self.mean.to(x.dtype).view(shape)


class RunningPointwiseStats(_RunningMoments):
    """Streaming mean and sample variance per point of a sample ``shape`` (Chan et al.'s pairwise
    merge, float64): ``update(block)`` adds the samples of ``block (N, *shape)``."""

    def __init__(self, shape):
        self.shape = tuple(int(n) for n in shape)
        super().__init__(self.shape)

    def update(self, block: np.ndarray) -> None:
        x = np.asarray(block, dtype=np.float64)
        if x.shape[1:] != self.shape:
            raise ValueError(f"samples of shape {x.shape[1:]} do not match the statistics' shape {self.shape}")
        self._merge(x, axis=0)

    def result(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` with the sample standard deviation (``N - 1``, as ``torch.std``)."""
        if self.count < 2:
            raise ValueError(f"pointwise statistics need at least 2 training samples, got {self.count}")
        return self.mean.copy(), np.sqrt(self.m2 / (self.count - 1))


def pointwise_statistics(blocks: Iterable[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` per point of the samples in ``blocks`` (each ``(n, *shape)``), as
    :class:`RunningPointwiseStats` (sample standard deviation)."""
    stats = None
    for block in blocks:
        stats = stats or RunningPointwiseStats(np.shape(block)[1:])
        stats.update(block)
    if stats is None:
        raise ValueError("no samples were seen: cannot fit pointwise statistics on an empty split")
    return stats.result()


class PointwiseNormalizer(nn.Module):
    """Unit-Gaussian normalisation per grid point (the FNO scripts' ``UnitGaussianNormalizer``).

    Buffers ``mean`` and ``std`` of the sample shape (e.g. ``(T, C, X, Y)``; float64) and ``fitted``.
    ``encode(u) = (u - mean) / (std + eps)``, ``decode(v) = v * (std + eps) + mean``, broadcast over
    the leading (batch) axes of ``u``.
    """

    def __init__(self, shape, eps: float = 1e-5):
        super().__init__()
        shape = tuple(int(n) for n in shape)
        if not shape or any(n < 1 for n in shape):
            raise ValueError(f"shape must be positive sizes, got {shape}")
        self.eps = float(eps)
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("std", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def set_statistics(self, mean, std) -> None:
        mean_t, std_t = _checked_statistics(mean, std, tuple(self.mean.shape))
        self.mean.copy_(mean_t)
        self.std.copy_(std_t)
        self.fitted.fill_(True)

    def fit(self, samples: torch.Tensor) -> "PointwiseNormalizer":
        """Fit on training samples ``(N, *shape)``."""
        stats = RunningPointwiseStats(self.mean.shape)
        stats.update(torch.as_tensor(samples).detach().cpu().double().numpy())
        self.set_statistics(*stats.result())
        return self

    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[x.dim() - self.mean.dim() :]) != tuple(self.mean.shape):
            raise ValueError(
                f"pointwise normaliser fitted on samples of shape {tuple(self.mean.shape)} "
                f"cannot encode a tensor of shape {tuple(x.shape)} (it is bound to its grid "
                f"and window)"
            )

    def encode(self, x: torch.Tensor, channel_dim: Optional[int] = None) -> torch.Tensor:
        """``channel_dim`` is ignored (the interface of :class:`ChannelNormalizer`)."""
        self._check(x)
        return (x - self.mean.to(x.dtype)) / (self.std.to(x.dtype) + self.eps)

    def decode(self, x: torch.Tensor, channel_dim: Optional[int] = None) -> torch.Tensor:
        self._check(x)
        return x * (self.std.to(x.dtype) + self.eps) + self.mean.to(x.dtype)
