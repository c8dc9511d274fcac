"""Pointwise (1x1) two-layer MLP evaluated in slabs, so that its wide hidden tensor never exists
at full size.

    u = W_2 sigma(W_1 v + b_1) + b_2          (B, C_in, *grid) -> (B, C_out, *grid), per grid point

FNO's projection (width -> 128 -> out) and SFNO's hidden MLPs (width -> 128 -> width) widen the
channels 6.4x: the hidden tensor and its gradients dominate a training step's memory (FNO-3D on
64^2 x 40: 168 MB each at batch 2). Being pointwise, the MLP is computed slab by slab along the
first grid axis, at most ``chunk_elements`` hidden values per slab; with autograd on, each slab is
checkpointed (only its input is kept; the hidden values are recomputed during backward). Outputs
and gradients are those of the one-piece computation (the same operations at every point).

The bound is for the CPU, where a large hidden tensor costs memory traffic (and, under glibc's
default malloc, page faults). Its default, ``DEFAULT_CHUNK_ELEMENTS`` = 2^24 values (64 MiB in
float32), was chosen by measurement (``benchmarks/fno_cpu_paths.py``, record
``benchmarks/results/fno_cpu_paths.json``; quiet 2-core AMD EPYC, one thread, tcmalloc): FNO-3D's
training step on 64^2 x 40 at batch 10 (the ``ns_fno3d`` config) took 0.63 s of CPU per sample with
2^22, 0.54 s with 2^24, 0.51 s with 2^26 and 0.50 s in one piece (the slabs' recomputation is what a
small bound costs), while the hidden tensor in one piece is 840 MB: 2^24 keeps most of the speed at
a 64 MiB slab. On an accelerator the
bound is ``ACCELERATOR_FACTOR`` times larger (2^30 values, 4 GiB in float32, by default):
there memory is plentiful and each slab is a separate round of small kernels plus a recomputation
(on one H200, FNO-3D trained through Lightning on 64^2 x 30 at batch 10 took 4.1x neuraloperator's
time per epoch with the CPU bound applied there, ``benchmarks/results/gpu_h200_fidelity.json``; the
larger bound is not yet measured on a GPU).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

__all__ = ["PointwiseMLP", "DEFAULT_CHUNK_ELEMENTS"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
DEFAULT_CHUNK_ELEMENTS = 2**24  # hidden values per slab on the CPU (module docstring)
ACCELERATOR_FACTOR = 64  # chunk bound multiplier off the CPU (module docstring)


class PointwiseMLP(nn.Module):
    """``(B, C_in, *grid) -> (B, C_out, *grid)``: 1x1 conv ``hidden``, ``activation``, 1x1 conv
    ``out`` (parameters as two ``nn.Conv{dim}d`` with kernel 1). ``chunk_elements=None``: one piece."""

    def __init__(
        self,
        dim: int,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        activation: nn.Module,
        chunk_elements: Optional[int] = DEFAULT_CHUNK_ELEMENTS,
    ):
        super().__init__()
        if dim not in _CONV:
            raise ValueError(f"dim must be 1, 2 or 3, got {dim}")
        if chunk_elements is not None and int(chunk_elements) < 1:
            raise ValueError(f"chunk_elements must be a positive integer or None, got {chunk_elements}")
        self.hidden = _CONV[dim](in_channels, hidden_channels, 1)
        self.activation = activation
        self.out = _CONV[dim](hidden_channels, out_channels, 1)
        self.chunk_elements = None if chunk_elements is None else int(chunk_elements)

    def extra_repr(self) -> str:
        return f"chunk_elements={self.chunk_elements}"

    def _mlp(self, v: torch.Tensor) -> torch.Tensor:
        return self.out(self.activation(self.hidden(v)))

    def chunk_limit(self, device: torch.device) -> Optional[int]:
        """Most hidden values per slab on ``device`` (``None``: one piece)."""
        if self.chunk_elements is None:
            return None
        return self.chunk_elements if device.type == "cpu" else self.chunk_elements * ACCELERATOR_FACTOR

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        n_first = v.shape[2]
        per_row = v.shape[0] * self.hidden.out_channels * (v[0, 0].numel() // max(n_first, 1))
        limit = self.chunk_limit(v.device)
        if limit is None or per_row * n_first <= limit:
            return self._mlp(v)
        rows = max(1, limit // per_row)
        recompute = torch.is_grad_enabled() and (v.requires_grad or any(p.requires_grad for p in self.parameters()))
        pieces = []
        for start in range(0, n_first, rows):
            slab = v.narrow(2, start, min(rows, n_first - start))
            pieces.append(checkpoint(self._mlp, slab, use_reentrant=False) if recompute else self._mlp(slab))
        return torch.cat(pieces, dim=2)
