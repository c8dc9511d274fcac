"""Spectral operators of the 2D incompressible Navier-Stokes equations on a periodic box.

The vorticity form on the periodic box ``[0, L)^2`` (unit torus ``L = 1`` for the FNO benchmark)::

    w_t + u . grad w = nu Lap w - alpha w + f,      u = (d psi / dy, -d psi / dx),   -Lap psi = w,

with viscosity ``nu``, optional linear drag ``alpha`` and a fixed forcing ``f``. ``x`` is the first
grid axis and ``y`` the second (``w[..., i, j] = w(x_i, y_j)``, ``x_i = i L / n``), as in the FNO
generator.

Everything here is a pure function of a field (physical ``w`` of shape ``(..., n, n)``) or its
spectrum (``w_hat = torch.fft.rfft2(w)`` of shape ``(..., n, n // 2 + 1)``, unnormalised) and a
:class:`SpectralGrid`; any number of leading dimensions (batch, time, ...) is allowed, and the
functions work on any device and in float32 or float64 (the grid carries device and dtype: build it
with the field's, or use ``grid.to(...)``). These are the generator's own physics: the data
generator (:mod:`datagen.navier_stokes.solver`) and the Spectral-Refiner residual
(``train.refine``) both use them.

Conventions (the FNO benchmark generator's):

* integer wavenumbers ``0, 1, ..., n/2 - 1, -n/2, ..., -1`` on the full axis ``x`` and
  ``0, 1, ..., n/2 - 1, -n/2`` on the half axis ``y`` of ``rfft2``: the Nyquist wavenumber is taken
  as ``-n/2`` on both axes (the FNO generator's choice; it decides the sign of an odd derivative of
  the Nyquist mode, so it matters for agreeing with that generator to round-off);
* angular wavenumbers ``k = 2 pi m / L``; ``|k|^2`` is the symbol of ``-Lap``;
* the 2/3 rule: a mode is kept when ``|m_x| <= (2/3) floor(n/2)`` and ``|m_y| <= (2/3) floor(n/2)``
  (a square mask); the nonlinear term is multiplied by it after the product is formed in physical
  space, exactly as in the FNO generator (the state itself is not truncated);
* the stream function and the velocity have zero mean (the ``k = 0`` mode of ``psi`` is set to 0).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Optional, Sequence, Tuple

import torch

__all__ = [
    "SpectralGrid",
    "AdvectionBuffers",
    "to_spectral",
    "to_physical",
    "stream_function_hat",
    "stream_function",
    "velocity_hat",
    "velocity",
    "gradient_hat",
    "laplacian_hat",
    "laplacian",
    "advection_product_chunk",
    "advection_hat",
    "advection",
    "fno_forcing",
    "kolmogorov_forcing",
    "forcing_field",
    "FORCINGS",
    "kinetic_energy",
    "enstrophy",
    "energy_spectrum",
    "max_velocity",
    "cfl_number",
    "NavierStokesPhysics",
    "physics_from_spec",
]

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _check_real_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in _COMPLEX:
        raise ValueError(f"SpectralGrid: dtype must be torch.float32 or torch.float64, got {dtype}")
    return dtype


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` with its index made explicit (``"cuda"`` -> ``cuda:<current>``), as tensors report it,
    so that a grid built for ``"cuda"`` matches the tensors it allocates (``cuda:0 != cuda``)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type != "cpu" and device.index is None:
        module = getattr(torch, device.type, None)
        if module is not None and hasattr(module, "current_device"):
            device = torch.device(device.type, module.current_device())
    return device


class SpectralGrid:
    """Wavenumbers, ``|k|^2`` and the 2/3 dealiasing mask of an ``n x n`` periodic grid on ``[0, L)^2``.

    Args:
        n: points per axis (even, >= 4).
        box: side length ``L`` (> 0); 1 for the FNO benchmark, ``2 pi`` for McWilliams/Kolmogorov flows.
        dtype: real dtype of the fields, ``torch.float32`` or ``torch.float64``; spectra use the
            matching complex dtype.
        device: where the tensors live.

    Attributes (shapes broadcast against a spectrum ``(..., n, n // 2 + 1)``):
        ``mx`` ``(n, 1)``, ``my`` ``(1, n//2 + 1)``: integer wavenumbers (FNO layout, real dtype);
        ``kx``, ``ky``: angular wavenumbers ``2 pi m / L``; ``k2``: ``|k|^2`` ``(n, n//2 + 1)``;
        ``inv_k2``: ``1 / |k|^2`` with 0 at ``k = 0`` (inverse of ``-Lap`` on zero-mean fields);
        ``dealias``: boolean 2/3-rule mask ``(n, n//2 + 1)``; ``x``: coordinates ``(n,)``, ``i L / n``;
        ``dx``: grid spacing ``L / n``.
    """

    def __init__(
        self, n: int, box: float = 1.0, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ):
        if isinstance(n, bool) or not isinstance(n, int) or n < 4 or n % 2:
            raise ValueError(f"SpectralGrid: n must be an even integer >= 4, got {n!r}")
        box = float(box)
        if not (math.isfinite(box) and box > 0):
            raise ValueError(f"SpectralGrid: box length must be a positive number, got {box!r}")
        self.n, self.box = n, box
        self.dtype = _check_real_dtype(dtype)
        self.complex_dtype = _COMPLEX[dtype]
        self.device = resolve_device(device)
        self.dx = box / n
        k_max = n // 2
        full = torch.cat([torch.arange(0, k_max), torch.arange(-k_max, 0)]).to(torch.float64)
        half = full[: k_max + 1].clone()
        half[k_max] = -k_max  # FNO layout: Nyquist is -n/2
        mx, my = full[:, None], half[None, :]
        scale = 2.0 * math.pi / box
        kx, ky = scale * mx, scale * my
        k2 = kx**2 + ky**2
        inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, 1.0), 0.0)
        limit = (2.0 / 3.0) * k_max
        dealias = (mx.abs() <= limit) & (my.abs() <= limit)
        # built in float64 on the host, then cast: float32 grids get correctly rounded wavenumbers
        put = dict(device=self.device, dtype=self.dtype)
        self.mx, self.my = mx.to(**put), my.to(**put)
        self.kx, self.ky = kx.to(**put), ky.to(**put)
        self.k2, self.inv_k2 = k2.to(**put), inv_k2.to(**put)
        self.dealias = dealias.to(self.device)
        self.x = (torch.arange(n, dtype=torch.float64) * (box / n)).to(**put)

    # ------------------------------------------------------------------ helpers
    @property
    def spectral_shape(self) -> Tuple[int, int]:
        """Shape of one ``rfft2`` spectrum: ``(n, n // 2 + 1)``."""
        return (self.n, self.n // 2 + 1)

    @property
    def area(self) -> float:
        """``|Omega| = L^2``."""
        return self.box**2

    def coordinates(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(X, Y)``, each ``(n, n)``, ``X[i, j] = x_i``, ``Y[i, j] = y_j`` (``indexing='ij'``)."""
        return torch.meshgrid(self.x, self.x, indexing="ij")

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "SpectralGrid":
        """The same grid on another device and/or real dtype (self when nothing changes)."""
        device = resolve_device(device) if device is not None else self.device
        dtype = dtype if dtype is not None else self.dtype
        if device == self.device and dtype == self.dtype:
            return self
        return SpectralGrid(self.n, self.box, dtype=dtype, device=device)

    def like(self, field: torch.Tensor) -> "SpectralGrid":
        """This grid on ``field``'s device and real dtype (complex fields give their real dtype)."""
        dtype = field.real.dtype if field.is_complex() else field.dtype
        return self.to(field.device, dtype)

    def check(self, field: torch.Tensor, spectral: bool, where: str) -> None:
        """Raise a clear ``ValueError`` unless ``field`` has this grid's trailing shape."""
        want = self.spectral_shape if spectral else (self.n, self.n)
        if field.ndim < 2 or tuple(field.shape[-2:]) != want:
            kind = "spectrum (..., n, n//2+1)" if spectral else "field (..., n, n)"
            raise ValueError(
                f"{where}: expected a {kind} with trailing shape {want} for n={self.n}, got shape {tuple(field.shape)}"
            )

    def __repr__(self) -> str:
        return f"SpectralGrid(n={self.n}, box={self.box:g}, dtype={self.dtype}, device={self.device})"


# ---------------------------------------------------------------------- transforms
def to_spectral(w: torch.Tensor) -> torch.Tensor:
    """``rfft2`` over the last two axes (unnormalised): ``(..., n, n) -> (..., n, n//2 + 1)``."""
    return torch.fft.rfft2(w)


def to_physical(w_hat: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """Inverse of :func:`to_spectral`: ``(..., n, n//2 + 1) -> (..., n, n)``."""
    return torch.fft.irfft2(w_hat, s=(grid.n, grid.n))


# ---------------------------------------------------------------------- linear operators
def stream_function_hat(w_hat: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """``psi_hat = w_hat / |k|^2``: the zero-mean solution of ``-Lap psi = w``."""
    return w_hat * grid.inv_k2


def stream_function(w: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """Stream function ``psi`` ``(..., n, n)`` of a vorticity ``w`` ``(..., n, n)``."""
    return to_physical(stream_function_hat(to_spectral(w), grid), grid)


def velocity_hat(w_hat: torch.Tensor, grid: SpectralGrid) -> Tuple[torch.Tensor, torch.Tensor]:
    """Spectra of ``u = d psi / dy`` and ``v = -d psi / dx`` (divergence-free, curl = ``w``)."""
    psi_hat = stream_function_hat(w_hat, grid)
    return (1j * grid.ky) * psi_hat, (-1j * grid.kx) * psi_hat


def velocity(w: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """Velocity ``(..., 2, n, n)`` (components ``u``, ``v``) of a vorticity ``w`` ``(..., n, n)``."""
    u_hat, v_hat = velocity_hat(to_spectral(w), grid)
    return to_physical(torch.stack([u_hat, v_hat], dim=-3), grid)


def gradient_hat(a_hat: torch.Tensor, grid: SpectralGrid) -> Tuple[torch.Tensor, torch.Tensor]:
    """Spectra of ``(da/dx, da/dy)``: ``(i k_x a_hat, i k_y a_hat)``."""
    return (1j * grid.kx) * a_hat, (1j * grid.ky) * a_hat


def laplacian_hat(a_hat: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """Spectrum of ``Lap a``: ``-|k|^2 a_hat``."""
    return -grid.k2 * a_hat


def laplacian(a: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """``Lap a`` ``(..., n, n)`` of a periodic field ``a`` ``(..., n, n)``."""
    return to_physical(laplacian_hat(to_spectral(a), grid), grid)


# ---------------------------------------------------------------------- nonlinear term
class AdvectionBuffers:
    """Preallocated work arrays for :func:`advection_hat` on spectra of shape ``(*batch_shape, n, n//2+1)``.

    One step of a pseudo-spectral solver at ``256^2`` with batch 32 would otherwise allocate (and free)
    about 60 MB of temporaries; with glibc's allocator those are fresh ``mmap`` s each time and half of
    the CPU time goes to page faults (measured on a 2-core CPU: benchmarks/datagen_ns.py). Reusing these
    buffers removes that.

    On the CPU the batch is processed in chunks of ``chunk`` samples whose work arrays fit in the
    cache (about 2 MiB of spectra per chunk: one sample at ``256^2``), one inverse transform call per
    field: measured on this project's 2-core machines, one ``irfft2`` over a whole batch of 32 x 4
    fields at ``256^2`` took 2-3x longer than the same transforms in cache-sized chunks. A time
    stepper's update runs on each chunk while it is in the cache (``epilogue`` of
    :func:`advection_hat`). On GPUs the whole batch is one chunk and the four inverse transforms
    (``u``, ``v``, ``w_x``, ``w_y``) are one batched call. Each sample is transformed the same way
    whatever the batch size.

    ``multipliers`` ``(4, 1, n, n//2+1)`` complex: ``i k_y / |k|^2``, ``-i k_x / |k|^2``, ``i k_x``,
    ``i k_y``, so that ``multipliers * w_hat`` are the spectra of ``u, v, w_x, w_y`` in one pass;
    ``spectra`` ``(4, chunk, n, n//2+1)``, ``fields`` ``(4, chunk, n, n)``, ``product`` ``(chunk, n, n)``
    are the per-chunk work arrays, ``out`` ``(*batch_shape, n, n//2+1)`` the result.
    """

    CPU_CHUNK_BYTES = 2 * 2**20

    def __init__(self, grid: SpectralGrid, batch_shape: Sequence[int], chunk: Optional[int] = None):
        self.grid, self.batch_shape = grid, tuple(int(b) for b in batch_shape)
        n, m = grid.spectral_shape
        self.flat = int(math.prod(self.batch_shape))
        cplx = dict(dtype=grid.complex_dtype, device=grid.device)
        real = dict(dtype=grid.dtype, device=grid.device)
        if chunk is None:
            if grid.device.type == "cpu":
                per_sample = 4 * n * m * torch.empty((), **cplx).element_size()
                chunk = max(1, self.CPU_CHUNK_BYTES // per_sample)
            else:
                chunk = self.flat
        self.chunk = max(1, min(int(chunk), max(self.flat, 1)))
        self.multipliers = torch.stack(
            [
                1j * grid.ky * grid.inv_k2,
                -1j * grid.kx * grid.inv_k2,
                1j * grid.kx + 0 * grid.ky,
                1j * grid.ky + 0 * grid.kx,
            ]
        ).to(**cplx)
        self.multipliers = self.multipliers.unsqueeze(1)  # (4, 1, n, m): field, sample
        self.dealias = grid.dealias.to(grid.dtype)
        # field-major layout: each of the four fields of a chunk is one contiguous (chunk, ...) block
        self.spectra = torch.empty((4, self.chunk, n, m), **cplx)
        self.fields = torch.empty((4, self.chunk, n, n), **real)
        self.product = torch.empty((self.chunk, n, n), **real)
        self.out = torch.empty(self.batch_shape + (n, m), **cplx)
        # CPU: one inverse transform call per field (measured: a (1, 4, 256, 129) irfft2 call ran up to
        # 3x slower than four (1, 256, 129) calls once other FFT shapes had been used in the process);
        # GPU: one call for all four fields of the batch (fewer launches)
        self.split_fields = grid.device.type == "cpu"

    def matches(self, w_hat: torch.Tensor) -> bool:
        return (
            tuple(w_hat.shape[:-2]) == self.batch_shape
            and w_hat.device == self.grid.device
            and w_hat.dtype == self.grid.complex_dtype
        )


def advection_product_chunk(
    w4: torch.Tensor,
    multipliers: torch.Tensor,
    spectra: torch.Tensor,
    fields: torch.Tensor,
    spectra_j: Sequence[torch.Tensor],
    fields_j: Sequence[torch.Tensor],
    product: torch.Tensor,
    adv: torch.Tensor,
    split_fields: bool,
) -> None:
    """The in-place kernel of the product ``u . grad w`` for one chunk of ``c`` samples (no mask).

    ``w4`` ``(1, c, n, n//2+1)``: the chunk's vorticity spectra; ``multipliers`` ``(4, 1, n, n//2+1)``
    (:class:`AdvectionBuffers`); work arrays ``spectra`` ``(4, c, n, n//2+1)``, ``fields`` ``(4, c, n, n)``
    with their per-field views ``spectra_j``, ``fields_j`` (``unbind(0)``), ``product`` ``(c, n, n)``;
    result ``adv`` ``(c, n, n//2+1)`` ``= rfft2(u w_x + v w_y)``. ``split_fields``: one inverse transform
    per field (CPU) or one for all four (GPU). :func:`advection_hat` (with buffers) and the ``fno`` time
    stepper both run this, the stepper on views it builds once per state tensor.
    """
    n = fields.shape[-1]
    torch.mul(w4, multipliers, out=spectra)
    if split_fields:
        for sj, fj in zip(spectra_j, fields_j):
            torch.fft.irfft2(sj, s=(n, n), out=fj)
    else:
        torch.fft.irfft2(spectra, s=(n, n), out=fields)
    torch.mul(fields_j[0], fields_j[2], out=product)
    product.addcmul_(fields_j[1], fields_j[3])
    torch.fft.rfft2(product, out=adv)


def advection_hat(
    w_hat: torch.Tensor,
    grid: SpectralGrid,
    buffers: Optional[AdvectionBuffers] = None,
    dealias: bool = True,
    epilogue: Optional[Callable[[int, int, torch.Tensor], None]] = None,
) -> torch.Tensor:
    """Dealiased spectrum of the nonlinear term ``u . grad w = u w_x + v w_y``.

    ``u, v, w_x, w_y`` are evaluated on the grid by spectral differentiation, multiplied in physical
    space, transformed back and multiplied by the 2/3-rule mask (the FNO generator's procedure).

    Args:
        w_hat: vorticity spectrum ``(..., n, n//2 + 1)``.
        grid: the grid (same device and dtype as ``w_hat``).
        buffers: optional :class:`AdvectionBuffers` for ``w_hat.shape[:-2]``; when given, the result
            is written into ``buffers.out`` (and returned), which the next call overwrites.
        dealias: apply the 2/3-rule mask (default). ``False`` returns the raw product's spectrum, for
            time steppers that fold the mask into their own coefficients (one pass less per step).
        epilogue: with ``buffers`` only: ``f(start, stop, adv)`` called after each chunk with the
            chunk's (unmasked when ``dealias=False``) term ``adv`` ``(stop - start, n, n//2+1)`` for the
            flattened samples ``start:stop``, while they are still in the cache; a time stepper
            updates those samples there. It must not touch other samples.
    Returns:
        ``(..., n, n//2 + 1)`` complex.
    """
    if buffers is not None and buffers.matches(w_hat):
        b = buffers
        w_flat = w_hat.reshape((b.flat,) + w_hat.shape[-2:])
        out_flat = b.out.view((b.flat,) + w_hat.shape[-2:])
        for start in range(0, b.flat, b.chunk):
            stop = min(start + b.chunk, b.flat)
            c = stop - start
            spectra, fields = b.spectra[:, :c], b.fields[:, :c]
            adv = out_flat[start:stop]
            advection_product_chunk(
                w_flat[start:stop].unsqueeze(0),
                b.multipliers,
                spectra,
                fields,
                spectra.unbind(0),
                fields.unbind(0),
                b.product[:c],
                adv,
                b.split_fields,
            )
            if dealias:
                adv.mul_(b.dealias)
            if epilogue is not None:
                epilogue(start, stop, adv)
        return b.out
    grid.check(w_hat, spectral=True, where="advection_hat")
    u_hat, v_hat = velocity_hat(w_hat, grid)
    wx_hat, wy_hat = gradient_hat(w_hat, grid)
    u, v, wx, wy = to_physical(torch.stack([u_hat, v_hat, wx_hat, wy_hat], dim=-3), grid).unbind(-3)
    product_hat = to_spectral(u * wx + v * wy)
    return product_hat * grid.dealias if dealias else product_hat


def advection(w: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """Dealiased ``u . grad w`` ``(..., n, n)`` of a vorticity ``w`` ``(..., n, n)``."""
    return to_physical(advection_hat(to_spectral(w), grid), grid)


# ---------------------------------------------------------------------- forcing
def fno_forcing(grid: SpectralGrid, amplitude: float = 0.1, wavenumber: int = 1) -> torch.Tensor:
    """The FNO benchmark forcing ``a (sin(2 pi m (x + y) / L) + cos(2 pi m (x + y) / L))`` ``(n, n)``.

    With the defaults (``a = 0.1``, ``m = 1``) on the unit torus: ``0.1 (sin 2pi(x+y) + cos 2pi(x+y))``.
    """
    X, Y = grid.coordinates()
    phase = (2.0 * math.pi * wavenumber / grid.box) * (X + Y)
    return amplitude * (torch.sin(phase) + torch.cos(phase))


def kolmogorov_forcing(grid: SpectralGrid, wavenumber: int = 4, amplitude: float = 1.0) -> torch.Tensor:
    """Vorticity forcing of the Kolmogorov body force ``F = (a sin(k y), 0)``: ``curl F = -a k cos(k y)``.

    ``k = 2 pi m / L`` with integer ``m`` (``wavenumber``); on ``(0, 2 pi)^2`` with ``m = 4``, ``a = 1``
    this is the common ``-4 cos(4 y)`` (Kolmogorov flow, e.g. with drag 0.1 and Re 1000). ``(n, n)``.
    """
    _, Y = grid.coordinates()
    k = 2.0 * math.pi * wavenumber / grid.box
    return -amplitude * k * torch.cos(k * Y)


FORCINGS = ("none", "fno", "kolmogorov")


def forcing_field(spec: Optional[Mapping], grid: SpectralGrid) -> Optional[torch.Tensor]:
    """Forcing ``(n, n)`` from a JSON spec, or ``None`` for no forcing.

    ``spec``: ``None`` / ``{"type": "none"}``; ``{"type": "fno", "amplitude": 0.1, "wavenumber": 1}``;
    ``{"type": "kolmogorov", "amplitude": 1.0, "wavenumber": 4}`` (missing keys take these defaults).
    """
    if spec is None:
        return None
    kind = spec.get("type", "none")
    if kind == "none":
        return None
    params = {k: v for k, v in spec.items() if k != "type"}
    allowed = {"amplitude", "wavenumber"}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"forcing: unknown parameter(s) {sorted(unknown)} for {kind!r}; allowed: {sorted(allowed)}")
    if kind == "fno":
        return fno_forcing(grid, **params)
    if kind == "kolmogorov":
        return kolmogorov_forcing(grid, **params)
    raise ValueError(f"forcing: unknown type {kind!r}; allowed: {', '.join(FORCINGS)}")


# ---------------------------------------------------------------------- diagnostics
def _parseval_sum(a_hat: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """``sum over all n x n modes of |a_hat|^2`` from a half spectrum (Hermitian symmetry)."""
    p = a_hat.real**2 + a_hat.imag**2
    # columns 1 .. n/2 - 1 stand for two modes each; column 0 and the Nyquist column for one
    return 2.0 * p.sum(dim=(-2, -1)) - p[..., 0].sum(-1) - p[..., -1].sum(-1)


def kinetic_energy(w_hat: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """Mean kinetic energy ``E = (1 / (2 |Omega|)) int |u|^2 dx`` ``(...)`` of a vorticity spectrum.

    By Parseval ``E = (1 / (2 n^4)) sum_k |w_hat_k|^2 / |k|^2`` (unnormalised ``rfft2``).
    """
    return 0.5 * _parseval_sum(w_hat * grid.inv_k2.sqrt(), grid) / grid.n**4


def enstrophy(w_hat: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """Mean enstrophy ``Z = (1 / (2 |Omega|)) int w^2 dx`` ``(...)``: ``(1 / (2 n^4)) sum |w_hat|^2``."""
    return 0.5 * _parseval_sum(w_hat, grid) / grid.n**4


def energy_spectrum(w_hat: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """Shell-summed kinetic energy ``E(m)`` ``(..., n//2 + 1)`` over integer shells ``round(|m|) = m``.

    ``sum_m E(m)`` is :func:`kinetic_energy` up to the corner modes with ``|m| > n/2`` (left out).
    """
    p = (w_hat.real**2 + w_hat.imag**2) * grid.inv_k2
    weight = torch.full(grid.spectral_shape, 2.0, dtype=grid.dtype, device=grid.device)
    weight[:, 0] = 1.0
    weight[:, -1] = 1.0
    shell = torch.sqrt(grid.mx**2 + grid.my**2).round().long().expand(grid.spectral_shape)
    kmax = grid.n // 2
    keep = shell <= kmax
    flat = (p * weight * 0.5 / grid.n**4)[..., keep]
    out = torch.zeros(flat.shape[:-1] + (kmax + 1,), dtype=grid.dtype, device=grid.device)
    return out.index_add_(-1, shell[keep], flat)


def max_velocity(w_hat: torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    """``max_x (|u| + |v|)`` ``(...)``: the speed entering the 2D CFL number."""
    u_hat, v_hat = velocity_hat(w_hat, grid)
    uv = to_physical(torch.stack([u_hat, v_hat], dim=-3), grid).abs()
    return (uv[..., 0, :, :] + uv[..., 1, :, :]).amax(dim=(-2, -1))


def cfl_number(w_hat: torch.Tensor, grid: SpectralGrid, dt) -> torch.Tensor:
    """``dt max(|u| + |v|) / dx`` ``(...)``."""
    return max_velocity(w_hat, grid) * dt / grid.dx


# ---------------------------------------------------------------------- dataset physics
# The typed physics record lives in :mod:`datagen.navier_stokes.physics`; re-exported here for the
# callers that import it from this module.
from .physics import NavierStokesPhysics, physics_from_spec  # noqa: E402,F401
