"""Bringing a periodic field from the solver's ``n x n`` grid to the stored ``m x m`` grid.

Two ways, chosen per recipe (``resample`` in the spec):

``subsample``  keep every ``n / m``-th point, ``w[..., ::r, ::r]`` (``m`` must divide ``n``). The
               values are exact point values of the fine solution, but modes above ``m / 2`` alias
               onto the coarse grid. This is what the FNO benchmark's files are: its generator
               solves on 256^2 and the 64^2 data are the fine grid taken with stride 4 (the
               ``sub``-sampling the FNO scripts use throughout), so it is the ``fno`` default.
``spectral``   Fourier truncation: keep the modes ``|m_x|, |m_y| < m / 2`` of the fine spectrum
               (the coarse Nyquist modes are dropped, so the result is real and exactly band-limited)
               and transform on the coarse grid. Alias-free; the coarse field is the L2 projection of
               the fine one onto the coarse trigonometric space.
``bilinear``   bilinear interpolation with PyTorch's ``interpolate(mode="bilinear",
               align_corners=False)`` (no anti-aliasing): coarse point ``i`` takes the fine field at
               the position ``s_i = (i + 1/2) n / m - 1/2`` (in fine grid points), linearly
               interpolated. For ``n = r m`` with ``r`` even this is the mean of the 2 x 2 fine points
               ``r i + r/2 - 1``, ``r i + r/2`` (256 -> 64: points ``4i + 1`` and ``4i + 2``); for odd
               ``r`` it is the fine point ``r i + (r - 1)/2``. This is how torch-cfd's generators
               (Spectral-Refiner, Cao et al. 2025) bring 256^2 to 64^2. The coarse points sit at
               ``x_i = (i + 1/2) L / m - L / (2 n)``, shifted from ``i L / m`` by
               :func:`grid_offset`; the dataset's grid records these coordinates.
"""

from __future__ import annotations

import torch

__all__ = [
    "RESAMPLE_METHODS",
    "subsample",
    "spectral_truncation",
    "bilinear",
    "fourier_resample",
    "resample",
    "check_resample",
    "grid_offset",
]

RESAMPLE_METHODS = ("subsample", "spectral", "bilinear")


def check_resample(method: str, n: int, m: int) -> None:
    """Raise a clear ``ValueError`` unless ``method`` can bring ``n x n`` to ``m x m``."""
    if method not in RESAMPLE_METHODS:
        raise ValueError(f"unknown resampling {method!r}; allowed: {', '.join(RESAMPLE_METHODS)}")
    if m < 2 or m > n:
        raise ValueError(f"stored resolution must be between 2 and the solver resolution {n}, got {m}")
    if method == "subsample" and n % m:
        raise ValueError(
            f"subsampling needs the stored resolution to divide the solver resolution: "
            f"{m} does not divide {n} (use resample 'spectral')"
        )
    if method == "spectral" and m % 2:
        raise ValueError(f"spectral truncation needs an even stored resolution, got {m}")


def grid_offset(method: str, n: int, m: int, box: float = 1.0) -> float:
    """First coordinate of the stored grid: ``0`` except for ``bilinear`` with ``m < n``, where
    the coarse points sit at ``(i + 1/2) L / m - L / (2 n)``."""
    if method == "bilinear" and m != n:
        return 0.5 * box / m - 0.5 * box / n
    return 0.0


def bilinear(w: torch.Tensor, m: int) -> torch.Tensor:
    """``w`` ``(..., n, n)`` on ``m x m`` by bilinear interpolation (``align_corners=False``, no
    anti-aliasing; module docstring)."""
    import torch.nn.functional as F

    n = w.shape[-1]
    check_resample("bilinear", n, m)
    if m == n:
        return w.contiguous()
    lead = w.shape[:-2]
    out = F.interpolate(w.reshape((-1, 1, n, n)), size=(m, m), mode="bilinear", align_corners=False)
    return out.reshape(lead + (m, m))


def subsample(w: torch.Tensor, m: int) -> torch.Tensor:
    """``w[..., ::r, ::r]`` with ``r = n / m`` (contiguous copy)."""
    n = w.shape[-1]
    check_resample("subsample", n, m)
    r = n // m
    return w[..., ::r, ::r].contiguous()


def _band_limited(w_hat: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The ``m x m`` field of the modes ``|m_x|, |m_y| < min(n, m) / 2`` of the ``rfft2`` spectrum
    ``(..., n, n//2+1)`` of an ``n x n`` field (Nyquist lines dropped, so the result is real)."""
    h = min(n, m) // 2
    out = torch.zeros(w_hat.shape[:-2] + (m, m // 2 + 1), dtype=w_hat.dtype, device=w_hat.device)
    out[..., :h, :h] = w_hat[..., :h, :h]  # m_x = 0 .. h-1
    if h > 1:
        out[..., m - h + 1 :, :h] = w_hat[..., n - h + 1 :, :h]  # m_x = -(h-1) .. -1
    # unnormalised transforms: a mode's coefficient scales with the number of points
    return torch.fft.irfft2(out * ((m / n) ** 2), s=(m, m))


def spectral_truncation(w_hat: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Coarse ``m x m`` field from the fine ``rfft2`` spectrum ``(..., n, n//2+1)`` of an ``n x n`` field."""
    check_resample("spectral", n, m)
    return _band_limited(w_hat, n, m)


def fourier_resample(w: torch.Tensor, m: int) -> torch.Tensor:
    """Periodic square fields ``(..., n, n)`` on an ``m x m`` grid, finer or coarser, by Fourier
    zero-padding or truncation (band-limited interpolation)."""
    n = w.shape[-1]
    if w.shape[-2] != n or m < 2:
        raise ValueError(
            f"fourier_resample needs square fields and a target of at least 2 points, got shape {tuple(w.shape)} -> {m}"
        )
    if m == n:
        return w
    return _band_limited(torch.fft.rfft2(w), n, m)


def resample(w: torch.Tensor, m: int, method: str, w_hat: torch.Tensor | None = None) -> torch.Tensor:
    """``w`` ``(..., n, n)`` on the ``m x m`` grid by ``method``; pass ``w_hat = rfft2(w)`` if at hand."""
    n = w.shape[-1]
    check_resample(method, n, m)
    if m == n:
        return w
    if method == "subsample":
        return subsample(w, m)
    if method == "bilinear":
        return bilinear(w, m)
    return spectral_truncation(torch.fft.rfft2(w) if w_hat is None else w_hat, n, m)
