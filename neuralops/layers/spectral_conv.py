"""N-dimensional spectral convolution (the Fourier layer of FNO / SFNO).

For an input ``v`` of shape ``(B, C_in, n_1, ..., n_d)`` (``d`` = 1, 2 or 3) the layer computes::

    (K v)^_o(k) = sum_i R_{i o}(k) v^_i(k) [+ b_o(k)]   for |k_j| < m_j (j < d),  0 <= k_d < m_d
    (K v)^_o(k) = 0                                      otherwise
    K v         = irfftn((K v)^, s = output sizes)

where ``v^ = rfftn(v)`` over the last ``d`` axes with ``norm="forward"``: ``v^(k)`` is the Fourier
coefficient of ``v`` seen as a function on the unit torus (``fft / N``), so the same weights act on
the same function at every resolution, and evaluating ``irfftn`` with ``norm="forward"`` on a
different output size is exact band-limited (spectral) resampling of the filtered function.

Modes: ``modes[j]`` frequencies per sign on the full-FFT axes ``j < d`` (frequencies ``0..m-1`` and
``-m..-1``), and ``modes[d-1]`` non-negative frequencies on the last (real-FFT) axis. The kept set is
the union of ``2**(d-1)`` corner blocks of the half spectrum; each corner has its own complex weight
block ``R`` of shape ``(C_in, C_out, *modes)``.

Storage: the weights are one real parameter ``weight`` of shape
``(2**(d-1), C_in, C_out, *modes, 2)`` (real, imaginary). Counting real numbers this way gives the
published parameter counts (the FNO and SFNO papers count a complex weight as two parameters).
The optional Fourier-space bias ``bias`` (SFNO's output layer) has shape ``(2**(d-1), C_out, *modes, 2)``
and enters as ``bias_scale * b_o(k)`` (torch-cfd's SFNO: ``bias_scale = delta = 0.1``).

Normalisation (``norm``): ``"forward"`` (default, above) makes the layer act on functions: the
same weights give the same function at every resolution and input/output length. ``"backward"``
is ``torch.fft``'s default and the convention of the published FNO/SFNO code: ``v^`` is the
unnormalised DFT (``N_in`` times the forward-normalised coefficient, ``N_in`` = product of the
transformed input sizes) and the inverse divides by ``N_out``. Then the weight part of the output
is ``N_in / N_out`` times the forward-normalised one (1 when the grid is unchanged) and the bias part
is ``1 / N_out`` times it, so a backward-normalised bias acts more weakly on finer grids.

Implementation (why it is cheap): only the kept modes are ever transformed. The forward
transform is separable -- a real FFT along the last axis truncated to its kept frequencies (with a
hand-written adjoint: autograd's own would zero-pad to the full complex spectrum and run a complex
FFT), then complex FFTs along the other axes, each on the lines that survive the previous
truncations. The kept spectrum is stored compactly (per axis: non-negative block, then negative
block), the corner weights are merged into the same compact layout, and the channel mixing is
one batched matmul over the modes. The inverse re-inserts each axis's zero band just before its
inverse FFT, and ``irfft`` zero-pads the last axis. No full-size spectrum, zero-padded weight or
per-corner scatter is created.

Lengths with a prime factor above 5 (FNO's Darcy grids: 85 + 9 padding = 94 = 2 x 47, 211 + 9 =
220, 421 + 9 = 430; a prime grid such as 211) take pocketFFT's generic-radix path, slow for a large
factor. There the
last axis's truncated real DFT and its inverse are one real matmul each with a cached cos/sin
matrix (``n x 2 m`` and ``2 m x n``: the same sums, evaluated as BLAS products; their autograd is
the transposed matmul, the exact adjoint). Measured by ``benchmarks/fno_cpu_paths.py`` (record
``benchmarks/results/fno_cpu_paths.json``; one core of a quiet AMD EPYC, float32, batch 20, 32
channels, 13 kept frequencies): on a 94-point axis the truncated transform took 39.0 ms by rfft and
7.7 ms as a matmul, the inverse 42.2 and 14.6 ms; a whole FNO-2D training step (width 32, 12 modes,
9 cells of padding) was 1.61x faster at 85^2 (94 points) and 1.26x at 129^2 (138 = 2 x 3 x 23),
1.03x at 211^2 (220 = 4 x 5 x 11, where the inverse matmul is already slower than the FFT), and
unchanged at 141^2 (150 is 5-smooth and keeps the FFT, :func:`dft_by_matmul`). The two
evaluations agree to float round-off (about 3e-7 relative in float32).

Any resolution works: on a grid too small for ``m`` modes per sign the layer keeps the modes that
exist (``min(m, ceil(n/2))`` non-negative and ``min(m, floor(n/2))`` negative frequencies, using the
corresponding low-frequency part of the weights), so nothing ever overlaps or aliases. When the
output grid differs from the input grid the kept modes are those both grids hold, without the
Nyquist frequency of the smaller (even) grid.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn

__all__ = ["SpectralConv", "dft_by_matmul"]


def _as_modes(modes, dim: int) -> Tuple[int, ...]:
    if isinstance(modes, int):
        modes = (modes,) * dim
    modes = tuple(int(m) for m in modes)
    if len(modes) != dim:
        raise ValueError(f"modes {modes} has {len(modes)} entries; a {dim}-d spectral convolution needs {dim}")
    if any(m < 1 for m in modes):
        raise ValueError(f"modes must be positive integers, got {modes}")
    return modes


class SpectralConv(nn.Module):
    """Fourier layer ``(B, C_in, *grid_in) -> (B, C_out, *grid_out)`` over the last ``dim`` axes.

    Args:
        in_channels, out_channels: channel counts.
        modes: an int (same on every axis) or ``dim`` ints: frequencies kept per sign on the first
            ``dim - 1`` axes and non-negative frequencies on the last (real-FFT) axis.
        dim: number of transformed axes, 1, 2 or 3 (defaults to ``len(modes)``).
        bias: add a learned Fourier-space bias ``b_o(k)`` on the kept modes (SFNO output layer).
        init_scale: weights start uniform in ``[0, init_scale)`` (real and imaginary part);
            ``None`` -> ``1 / (C_in * C_out)`` as in the FNO paper's code.
        norm: ``"forward"`` (default) or ``"backward"`` FFT normalisation (module docstring).
        bias_scale: factor on the bias in Fourier space (torch-cfd's ``delta``).

    ``forward(v, out_shape=None)``: ``out_shape`` (``dim`` ints) evaluates the result on another
    grid (spectral resampling: exact for the band-limited filtered function); default = input grid.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes,
        dim: Optional[int] = None,
        bias: bool = False,
        init_scale: Optional[float] = None,
        norm: str = "forward",
        bias_scale: float = 1.0,
    ):
        super().__init__()
        if norm not in ("forward", "backward"):
            raise ValueError(f"norm must be 'forward' or 'backward', got {norm!r}")
        self.norm = norm
        self.bias_scale = float(bias_scale)
        if dim is None:
            if isinstance(modes, int):
                raise ValueError("pass dim (1, 2 or 3) when modes is a single int")
            dim = len(tuple(modes))
        if dim not in (1, 2, 3):
            raise ValueError(f"dim must be 1, 2 or 3, got {dim}")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channel counts must be positive, got in={in_channels}, out={out_channels}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.dim = int(dim)
        self.modes = _as_modes(modes, self.dim)
        self.n_corners = 2 ** (self.dim - 1)
        scale = 1.0 / (in_channels * out_channels) if init_scale is None else float(init_scale)
        self.weight = nn.Parameter(scale * torch.rand(self.n_corners, in_channels, out_channels, *self.modes, 2))
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.n_corners, out_channels, *self.modes, 2))
        else:
            self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, modes={self.modes}, "
            f"bias={self.bias is not None}, norm={self.norm!r}, bias_scale={self.bias_scale}"
        )

    # ------------------------------------------------------------------------------------------
    def _kept(self, n_in: Sequence[int], n_out: Sequence[int]):
        """Kept frequencies: ``(pos, neg, p_last)``.

        On full-FFT axis ``j``: ``pos[j]`` non-negative frequencies ``0..pos-1`` and ``neg[j]``
        negative ones ``-neg..-1``; both must exist on the input and the output grid, and when the
        sizes differ the Nyquist frequency of the smaller (even) grid is dropped: there it is a
        cosine only and has no unique counterpart on the other grid. Last (real-FFT) axis:
        ``p_last`` frequencies ``0..p_last-1``.
        """
        pos, neg = [], []
        for j in range(self.dim - 1):
            m, n = self.modes[j], min(n_in[j], n_out[j])
            pos.append(min(m, (n + 1) // 2))
            neg.append(min(m, n // 2 if n_in[j] == n_out[j] else (n - 1) // 2))
        n = min(n_in[-1], n_out[-1])
        p_last = min(self.modes[-1], n // 2 + 1 if n_in[-1] == n_out[-1] else (n + 1) // 2)
        return pos, neg, p_last

    def _compact(self, param: torch.Tensor, lead: int, pos, neg, p_last) -> torch.Tensor:
        """Corner blocks of ``param`` (``(corners, *lead_dims, *modes)`` complex) merged into one
        compact tensor ``(*lead_dims, pos_0 + neg_0, ..., p_last)`` laid out like the compact
        spectrum: on each full-FFT axis the non-negative block, then the negative block (whose
        weights are the last ``neg`` entries of a corner's block, frequencies ``-neg..-1``)."""
        d = self.dim
        t = param.reshape((2,) * (d - 1) + tuple(param.shape[1:]))
        for j in range(d - 1):
            axis = (d - 2 - j) + lead + j  # the spatial axis j once the sign axis j is selected
            m = self.modes[j]
            t = torch.cat(
                [t.select(0, 0).narrow(axis, 0, pos[j]), t.select(0, 1).narrow(axis, m - neg[j], neg[j])], dim=axis
            )
        return t.narrow(-1, 0, p_last)

    def forward(self, v: torch.Tensor, out_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        # Mixed precision: there are no half/bfloat16 FFT kernels for arbitrary sizes, and spectra
        # lose too much in 8 mantissa bits, so the FFTs and the mode products run in float32 with
        # autocast off; the float32 result re-enters the autocast region of the caller.
        if v.dtype in (torch.float16, torch.bfloat16) or torch.is_autocast_enabled(v.device.type):
            with torch.autocast(device_type=v.device.type, enabled=False):
                return self._spectral(v.float(), out_shape)
        return self._spectral(v, out_shape)

    def _spectral(self, v: torch.Tensor, out_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        d = self.dim
        if v.dim() < d + 2 or v.shape[-d - 1] != self.in_channels:
            raise ValueError(
                f"SpectralConv expected input (B, {self.in_channels}, <{d} grid axes>), got shape {tuple(v.shape)}"
            )
        n_in = tuple(v.shape[-d:])
        n_out = n_in if out_shape is None else tuple(int(n) for n in out_shape)
        if len(n_out) != d or any(n < 1 for n in n_out):
            raise ValueError(f"out_shape must be {d} positive ints, got {out_shape}")
        pos, neg, p_last = self._kept(n_in, n_out)
        # Pruned forward transform: real FFT along the last axis truncated to the kept
        # frequencies, then complex FFTs along the other axes, each on the lines that survive the
        # previous truncations and truncated in turn. Same numbers as slicing rfftn's corners,
        # without computing (or back-propagating through) the discarded spectrum.
        h = _truncated_rfft(v, p_last)
        for j in reversed(range(d - 1)):
            axis = j - d
            h = torch.fft.fft(h, dim=axis, norm="forward")
            h = torch.cat([h.narrow(axis, 0, pos[j]), h.narrow(axis, n_in[j] - neg[j], neg[j])], dim=axis)
        if self.norm == "backward":  # unnormalised DFT coefficients
            h = h * math.prod(n_in)
        weight = self._compact(torch.view_as_complex(self.weight), 2, pos, neg, p_last)
        y = _mode_matmul(h, weight, d)
        if self.bias is not None:
            y = y + self.bias_scale * self._compact(torch.view_as_complex(self.bias), 1, pos, neg, p_last)
        if self.norm == "backward":  # the inverse DFT divides by the output size
            y = y / math.prod(n_out)
        # Pruned inverse: re-insert the zero band of each full-FFT axis, inverse FFT it, and let
        # irfft zero-pad the last axis to n_out // 2 + 1 frequencies.
        for j in range(d - 1):
            axis = j - d
            gap = n_out[j] - pos[j] - neg[j]
            zeros = y.new_zeros(y.shape[:axis] + (gap,) + (y.shape[axis + 1 :] if axis + 1 < 0 else ()))
            y = torch.cat([y.narrow(axis, 0, pos[j]), zeros, y.narrow(axis, pos[j], neg[j])], dim=axis)
            y = torch.fft.ifft(y, dim=axis, norm="forward")
        return _truncated_irfft(y, n_out[-1])

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def widened(self, modes) -> "SpectralConv":
        """A copy with at least as many modes on every axis: the current weights (and bias) sit
        in the low modes of each corner, the new modes are zero, so on any grid that holds the old
        modes the output is unchanged (up to FFT round-off)."""
        new_modes = _as_modes(modes, self.dim)
        if any(n < o for n, o in zip(new_modes, self.modes)):
            raise ValueError(f"widened modes {new_modes} must be >= the current modes {self.modes} on every axis")
        new = SpectralConv(
            self.in_channels,
            self.out_channels,
            new_modes,
            dim=self.dim,
            bias=self.bias is not None,
            norm=self.norm,
            bias_scale=self.bias_scale,
        )
        new = new.to(device=self.weight.device, dtype=self.weight.dtype)
        new.weight.zero_()
        for c in range(self.n_corners):
            # corner c: bit (d-2-j) set <=> negative frequencies on full-FFT axis j
            signs = [(c >> (self.dim - 2 - j)) & 1 for j in range(self.dim - 1)]
            dst = [
                slice(0, m_old) if s == 0 else slice(m_new - m_old, m_new)
                for s, m_old, m_new in zip(signs, self.modes[:-1], new_modes[:-1])
            ]
            dst.append(slice(0, self.modes[-1]))
            new.weight[(c, slice(None), slice(None)) + tuple(dst)] = self.weight[c]
            if self.bias is not None:
                new.bias[(c, slice(None)) + tuple(dst)] = self.bias[c]
        new.train(self.training)
        return new


def _mode_matmul(h: torch.Tensor, weight: torch.Tensor, d: int) -> torch.Tensor:
    """``y[..., o, k] = sum_i h[..., i, k] weight[i, o, k]`` for every kept mode ``k``.

    One batched matmul over the modes with both operands made contiguous mode-major first:
    ``einsum`` hands strided operands to ``bmm``, which on CPU then copies every per-mode matrix
    separately (3-4x slower for FNO sizes)."""
    modes = h.shape[-d:]
    lead = h.shape[: -d - 1]
    c_in, c_out = weight.shape[0], weight.shape[1]
    n_modes = math.prod(modes)
    h_k = h.reshape(-1, c_in, n_modes).permute(2, 0, 1).contiguous()  # (K, B, C_in)
    w_k = weight.reshape(c_in, c_out, n_modes).permute(2, 0, 1).contiguous()  # (K, C_in, C_out)
    y_k = torch.bmm(h_k, w_k)  # (K, B, C_out)
    return y_k.permute(1, 2, 0).reshape(*lead, c_out, *modes)


class _TruncatedRFFT(torch.autograd.Function):
    """``rfft(v, dim=-1, norm="forward")[..., :keep]`` with a cheap exact adjoint.

    Autograd's own backward of rfft zero-pads to the full complex spectrum and runs a complex
    FFT; the adjoint of ``v -> (1/n) sum_x v(x) e^{-2 pi i k x/n}`` (k < keep) is
    ``g -> (1/n) Re sum_k g_k e^{2 pi i k x/n}``, which is one real inverse FFT of ``g`` with the
    interior frequencies halved (``irfft`` counts them twice; it ignores the imaginary parts of
    the zero and Nyquist frequencies, as the real part requires).
    """

    @staticmethod
    def forward(ctx, v: torch.Tensor, keep: int) -> torch.Tensor:
        n = v.shape[-1]
        ctx.n, ctx.keep = n, keep
        return torch.fft.rfft(v, dim=-1, norm="forward").narrow(-1, 0, keep)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        n, keep = ctx.n, ctx.keep
        halve = torch.full((keep,), 0.5, dtype=grad.real.dtype, device=grad.device)
        halve[0] = 1.0
        if n % 2 == 0 and keep == n // 2 + 1:
            halve[-1] = 1.0
        return torch.fft.irfft(grad * halve, n=n, dim=-1, norm="backward"), None


@functools.lru_cache(maxsize=None)
def _largest_prime_factor(n: int) -> int:
    largest, p = 1, 2
    while p * p <= n:
        while n % p == 0:
            largest, n = p, n // p
        p += 1
    return max(largest, n)


def dft_by_matmul(n: int) -> bool:
    """Whether the last axis of length ``n`` is transformed by a matmul instead of pocketFFT: when
    ``n`` has a prime factor above 5 (module docstring). The rule depends on ``n`` only, so a model
    computes the same numbers on every call and after every restart."""
    return _largest_prime_factor(int(n)) > 5


@functools.lru_cache(maxsize=64)
def _dft_matrices(n: int, keep: int, dtype: torch.dtype, device: torch.device):
    """``(F, G)`` for the last axis: ``v @ F`` is ``rfft(v, norm="forward")[..., :keep]`` with real and
    imaginary parts interleaved (``n x 2 keep``); ``view_as_real(y).flatten(-2) @ G`` is
    ``irfft(y, n, norm="forward")`` for ``keep`` given frequencies (``2 keep x n``: interior
    frequencies count twice, the zero and Nyquist frequencies once; their imaginary parts meet
    ``sin = 0`` on the grid, as irfft ignores them). Built in float64, then cast."""
    with torch.inference_mode(False):  # cached: never an inference tensor that training could not use
        return _build_dft_matrices(n, keep, dtype, device)


def _build_dft_matrices(n: int, keep: int, dtype: torch.dtype, device: torch.device):
    x = torch.arange(n, dtype=torch.float64, device=device)
    k = torch.arange(keep, dtype=torch.float64, device=device)
    angle = 2.0 * math.pi * torch.outer(x, k) / n  # (n, keep)
    forward = torch.stack([torch.cos(angle), -torch.sin(angle)], dim=-1).reshape(n, 2 * keep) / n
    weight = torch.full((keep,), 2.0, dtype=torch.float64, device=device)
    weight[0] = 1.0
    if n % 2 == 0 and keep == n // 2 + 1:
        weight[-1] = 1.0
    inverse = torch.stack([torch.cos(angle.T) * weight[:, None], -torch.sin(angle.T) * weight[:, None]], dim=1).reshape(
        2 * keep, n
    )
    return forward.to(dtype).contiguous(), inverse.to(dtype).contiguous()


def _truncated_rfft(v: torch.Tensor, keep: int) -> torch.Tensor:
    n = v.shape[-1]
    if dft_by_matmul(n):
        forward, _ = _dft_matrices(n, keep, v.dtype, v.device)
        return torch.view_as_complex((v @ forward).unflatten(-1, (keep, 2)))
    return _TruncatedRFFT.apply(v, keep)


def _truncated_irfft(y: torch.Tensor, n: int) -> torch.Tensor:
    """``irfft(y, n, dim=-1, norm="forward")`` for a half spectrum ``y`` of ``keep <= n // 2 + 1``
    frequencies (the others zero)."""
    if dft_by_matmul(n):
        _, inverse = _dft_matrices(n, y.shape[-1], y.real.dtype, y.device)
        return torch.view_as_real(y).flatten(-2) @ inverse
    return torch.fft.irfft(y, n=n, dim=-1, norm="forward")
