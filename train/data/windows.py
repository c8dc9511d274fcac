"""Map-style torch datasets over data-contract files: steady pairs and trajectory windows.

They read lazily (one sample, or the frames of one window, per ``__getitem__``) through
:func:`datagen.dataset.open_dataset`, whose HDF5 handle is reopened in each DataLoader worker.
Items are raw (physical) float32 tensors; normalisation happens in the LightningModule, on the
device, with statistics stored in its checkpoint.

Layouts of one item ``(x, y)``:

* :class:`SteadyPairs`: ``x`` ``(C_in, X, Y)`` = the input fields stacked as channels (a field with
  components ``(C, X, Y)`` contributes ``C`` channels), ``y`` ``(C_out, X, Y)`` likewise.
* :class:`TrajectoryWindows`: ``x`` ``(T_in, C, X, Y)`` = frames ``s .. s + T_in - 1`` and ``y``
  ``(T_out, C, X, Y)`` = frames ``s + T_in .. s + T_in + T_out - 1`` of trajectory ``i``, with the
  ``C`` channels the state fields (scalar fields ``(T, X, Y)`` have one channel). The windows are
  the pairs ``(i, s)`` given at construction: :func:`protocol_windows` (one fixed start per
  trajectory) or :func:`all_windows` (every start time, for training on random start times).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

__all__ = ["SteadyPairs", "TrajectoryWindows", "protocol_windows", "all_windows", "field_channels"]


def field_channels(shape: Tuple[int, ...], spatial_dims: int, time_dependent: bool) -> int:
    """Channels a field contributes: per-sample shape ``[T,] [C,] X, Y`` -> ``C`` (1 if absent)."""
    lead = len(shape) - spatial_dims - (1 if time_dependent else 0)
    if lead == 0:
        return 1
    if lead == 1:
        return int(shape[1 if time_dependent else 0])
    raise ValueError(f"field of per-sample shape {shape} is not [T,] [C,] + {spatial_dims} grid axes")


class SteadyPairs(TorchDataset):
    """``(x, y)`` = (input fields, output fields) of the samples ``indices`` of one file."""

    def __init__(
        self, ds, indices: Sequence[int], inputs: Sequence[str], outputs: Sequence[str], spatial_dims: int = 2
    ):
        self.ds = ds
        self.indices = np.asarray(indices, dtype=np.int64)
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.spatial_dims = spatial_dims

    def __len__(self) -> int:
        return int(self.indices.size)

    def _stack(self, names: List[str], i: int) -> torch.Tensor:
        parts = []
        for name in names:
            a = np.asarray(self.ds.read(name, i), dtype=np.float32)
            parts.append(a[None] if a.ndim == self.spatial_dims else a)
        return torch.from_numpy(np.concatenate(parts, axis=0))

    def __getitem__(self, k: int):
        i = int(self.indices[k])
        return self._stack(self.inputs, i), self._stack(self.outputs, i)


def protocol_windows(indices: Sequence[int], start: int) -> np.ndarray:
    """One window per trajectory, all starting at frame ``start``: ``(N, 2)`` rows ``(i, start)``."""
    idx = np.asarray(indices, dtype=np.int64)
    return np.stack([idx, np.full_like(idx, int(start))], axis=1)


def all_windows(indices: Sequence[int], n_frames: int, window: int, stride: int = 1) -> np.ndarray:
    """Every window of ``window`` frames in trajectories of ``n_frames`` frames, start times
    ``0, stride, 2 stride, ...``: ``(N * S, 2)`` rows ``(i, s)``, trajectory-major."""
    if window > n_frames:
        raise ValueError(f"a window of {window} frames does not fit trajectories of {n_frames} frames")
    starts = np.arange(0, n_frames - window + 1, int(stride), dtype=np.int64)
    idx = np.asarray(indices, dtype=np.int64)
    return np.stack([np.repeat(idx, starts.size), np.tile(starts, idx.size)], axis=1)


class TrajectoryWindows(TorchDataset):
    """``(x, y)`` = (``t_in`` frames, the next ``t_out`` frames) at the windows ``(i, s)``."""

    def __init__(self, ds, windows: np.ndarray, fields: Sequence[str], t_in: int, t_out: int, spatial_dims: int = 2):
        self.ds = ds
        self.windows = np.asarray(windows, dtype=np.int64).reshape(-1, 2)
        self.fields = list(fields)
        self.t_in, self.t_out = int(t_in), int(t_out)
        self.spatial_dims = spatial_dims

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def frames(self, i: int, s: int, n: int) -> np.ndarray:
        """Frames ``s .. s + n - 1`` of trajectory ``i`` as ``(n, C, X, Y)`` float32."""
        parts = []
        for name in self.fields:
            a = np.asarray(self.ds.read(name, i, frames=slice(s, s + n)), dtype=np.float32)
            parts.append(a[:, None] if a.ndim == 1 + self.spatial_dims else a)
        return np.concatenate(parts, axis=1)

    def __getitem__(self, k: int):
        i, s = (int(v) for v in self.windows[k])
        block = torch.from_numpy(self.frames(i, s, self.t_in + self.t_out))
        return block[: self.t_in], block[self.t_in :]
