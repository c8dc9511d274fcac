"""Evaluation metrics: small pure functions of ``(prediction, target[, grid])``.

Tensor layout
-------------
Every metric takes predictions and targets in the *canonical evaluation layout*
``(N, T, C, X, Y)``: test samples, predicted time steps, channels, then the two spatial axes.
Only the frames that were *predicted* are passed (the FNO protocol's 10 input frames are not).
Steady problems use ``T = 1``; single-field trajectories use ``C = 1``.
:func:`to_canonical` converts the layouts the models produce.

Each function states its reduction: which axes are summed inside the norm and which are kept.
Functions that keep the sample axis return per-sample values so that a caller can average in
chunks, bootstrap, or look at the worst sample; the scalar that goes into a report is always the
plain mean over test samples (as in the FNO protocol; docs/published.md).

Wavenumbers (spectral metrics)
------------------------------
Spectra come from the 2-D DFT over ``(X, Y)`` of each frame. The integer mode numbers are
``kx = fftfreq(X) * X`` and ``ky = fftfreq(Y) * Y``; the wavenumber magnitude is
``|k| = sqrt(kx^2 + (ky * Lx / Ly)^2)`` in units of the x-axis fundamental ``2 pi / Lx`` (for a square
domain simply ``sqrt(kx^2 + ky^2)``, independent of the domain size). The DFT period of an axis
is ``L = n * h`` with ``h`` the grid spacing (:meth:`datagen.contract.Grid.periods`; the metrics take
a :class:`datagen.contract.Grid` or ``None``, and :func:`as_grid` converts other forms once). The
shell of a mode is ``round(|k|)`` (nearest integer, half up), so shell ``s`` holds
``s - 1/2 <= |k| < s + 1/2``. On non-periodic data (Darcy)
the DFT still defines these diagnostics, but the periodic extension's jump at the boundary
spreads energy over all shells: compare spectral numbers only between runs on the same data.

Energy is Parseval-normalised: for one frame ``u`` on an ``X x Y`` grid with DFT ``u_hat``,
``sum_k |u_hat_k|^2 / (X Y)^2 = mean_x u(x)^2``, so band energies add up to the mean square.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, Tuple

import torch

from datagen.contract import Grid

__all__ = [
    "DEFAULT_BAND_EDGES",
    "METRIC_DEFINITIONS",
    "to_canonical",
    "as_grid",
    "check_band_edges",
    "relative_l2_per_sample",
    "fno_relative_l2",
    "relative_l2_per_step",
    "relative_l2_per_channel",
    "relative_h1_per_sample",
    "rmse",
    "nrmse",
    "max_error",
    "wavenumber_magnitude",
    "wavenumber_shells",
    "band_energies",
    "spectral_band_rmse",
    "spectral_band_relative_error",
    "isotropic_energy_spectrum",
]

# Band edges on the wavenumber shell index: low = shells [0, 4), mid = [4, 12), high = [12, inf).
# Same cut-offs as PDEBench's Fourier-band errors (iLow = 4, iHigh = 12).
DEFAULT_BAND_EDGES: Tuple[float, ...] = (0.0, 4.0, 12.0, math.inf)
BAND_NAMES_3 = ("low", "mid", "high")

LAYOUTS = ("trajectory", "trajectory_channels", "steady")

# One definition string per metric; reports copy these verbatim next to the numbers.
METRIC_DEFINITIONS = {
    "relative_l2": (
        "FNO protocol (Li et al. 2020): for each test sample n, ||pred_n - true_n||_2 / ||true_n||_2 "
        "with the 2-norm taken over all predicted (t, c, x, y) values at once; the reported number "
        "is the mean over test samples. Computed on physical (de-normalised) fields."
    ),
    "relative_l2_per_step": (
        "Per-time-step relative L2: for sample n and predicted step t, ||pred_n(t) - true_n(t)||_2 / "
        "||true_n(t)||_2 over (c, x, y); the curve is the mean over test samples at each step."
    ),
    "relative_l2_per_channel": (
        "Per-channel relative L2: for sample n and channel c, ||pred_n,c - true_n,c||_2 / ||true_n,c||_2 "
        "over all predicted (t, x, y); mean over test samples for each channel."
    ),
    "relative_h1": (
        "Relative H1: for each test sample n, sqrt(sum_{t,c} ||pred - true||_{H1}^2 / sum_{t,c} ||true||_{H1}^2) "
        "with the H1 norm of neuralops.losses: ||u||_{H1}^2 = |Omega| sum_k (1 + |2 pi k / L|^2) |u_k|^2 on a "
        "periodic box (Fourier coefficients u_k), and the sine-series analogue with (1 + |pi k / L|^2) for "
        "homogeneous Dirichlet data; mean over test samples."
    ),
    "rmse": (
        "RMSE as in PDEBench: sqrt(mean_{x,y} (pred - true)^2) for each (sample, step, channel), "
        "then the mean over samples, steps and channels."
    ),
    "nrmse": (
        "nRMSE as in PDEBench: sqrt(mean_{x,y} (pred - true)^2) / sqrt(mean_{x,y} true^2) for each "
        "(sample, step, channel), then the mean over samples, steps and channels."
    ),
    "max_error": "Maximum absolute pointwise error max |pred - true| over every sample, step, channel and point.",
    "spectral_band_relative_error": (
        "Relative error per wavenumber band: for each test sample n and band B, "
        "sqrt(E_B(pred_n - true_n) / E_B(true_n)), where E_B sums the Parseval-normalised DFT energy "
        "|u_hat_k|^2 / (X Y)^2 over the modes whose shell round(|k|) lies in B and over all (t, c); "
        "mean over the test samples whose truth has energy in B (more than 1e-10 of its total; "
        "otherwise the band is empty and reported as null). "
        "Bands on the shell index: low [0, 4), mid [4, 12), high [12, inf) unless "
        "stated otherwise; |k| in units of the x-axis fundamental 2 pi / Lx."
    ),
    "spectral_band_rmse": (
        "Absolute error per wavenumber band: sqrt(E_B(pred - true)) for each (sample, step, channel), "
        "E_B as for spectral_band_relative_error (so the squares of the bands sum to the MSE over the grid); "
        "mean over samples, steps and channels."
    ),
    "energy_spectrum": (
        "Isotropic energy spectrum E(s) = 1/2 sum_{round(|k|) = s} |u_hat_k|^2 / (X Y)^2 of the predicted "
        "field itself (for vorticity data this is the enstrophy spectrum), so sum_s E(s) = mean_x u^2 / 2; "
        "averaged over samples, steps and channels."
    ),
}


# --------------------------------------------------------------------------------------------
# layout and grid helpers
# --------------------------------------------------------------------------------------------
def to_canonical(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Return ``x`` as ``(N, T, C, X, Y)`` (a view, no copy).

    layout ``"trajectory"``: ``(N, T, X, Y)`` (one field, e.g. vorticity; FNO-3D / SFNO output);
    ``"trajectory_channels"``: ``(N, T, C, X, Y)`` already canonical;
    ``"steady"``: ``(N, C, X, Y)`` (Darcy, Helmholtz), given ``T = 1``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; allowed: {', '.join(LAYOUTS)}")
    want = {"trajectory": 4, "trajectory_channels": 5, "steady": 4}[layout]
    if x.dim() != want:
        raise ValueError(f"layout {layout!r} needs a {want}-D tensor, got shape {tuple(x.shape)}")
    if layout == "trajectory":
        return x.unsqueeze(2)
    if layout == "steady":
        return x.unsqueeze(1)
    return x


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    if pred.dim() != 5:
        raise ValueError(
            f"metrics take the canonical (N, T, C, X, Y) layout, got shape {tuple(pred.shape)}; "
            "use train.metrics.to_canonical"
        )


def as_grid(grid: Any) -> Optional[Grid]:
    """The typed :class:`datagen.contract.Grid` of a caller's ``grid`` argument (the one conversion;
    the metrics take a ``Grid`` or ``None``).

    Accepts ``None``; a ``Grid``; a stored grid (``datagen.dataset.Grid``, coordinates and boundaries:
    the node convention is derived from the coordinates, :meth:`Grid.from_coordinates`); a mapping
    ``{"x": array, "y": array[, "t": array], ["boundary": {axis: bc}], ["includes_boundary": bool]}`` or
    ``{"coords": {...}, "boundary": {...}}`` (boundary default periodic; ``includes_boundary`` states the
    node convention: ``True`` both walls stored, ``False`` interior nodes of Dirichlet axes).
    """
    if grid is None or isinstance(grid, Grid):
        return grid
    if hasattr(grid, "coords") and hasattr(grid, "boundary"):
        return Grid.from_coordinates(grid.coords, grid.boundary)
    if not isinstance(grid, Mapping):
        raise TypeError(
            f"grid must be None, a datagen.contract.Grid, a datagen Grid or a mapping of coordinates, "
            f"got {type(grid).__name__}"
        )
    coords = dict(grid.get("coords") or {k: v for k, v in grid.items() if k not in ("boundary", "includes_boundary")})
    boundary = dict(grid.get("boundary") or {})
    walls = grid.get("includes_boundary")
    nodes = None
    if walls is not None:
        nodes = {
            ax: "nodes-with-walls"
            if walls
            else ("nodes-without-walls" if boundary.get(ax) == "dirichlet" else "nodes-without-far-wall")
            for ax in coords
            if ax != "t"
        }
    if not any(ax != "t" for ax in coords):
        raise ValueError(
            f"grid {dict(grid)} has no spatial coordinates; give 'x' and 'y' (or grid=None: periodic unit box)"
        )
    return Grid.from_coordinates(coords, boundary, nodes)


def _at(grid: Optional[Grid], shape: Tuple[int, int]) -> Optional[Grid]:
    """``grid`` checked against the fields' spatial ``shape``."""
    if grid is None:
        return None
    if not isinstance(grid, Grid):
        raise TypeError(
            f"the metrics take a datagen.contract.Grid or None, got {type(grid).__name__}; convert "
            "once with train.metrics.as_grid"
        )
    grid.check_shape(shape)
    return grid


def _periods(grid: Optional[Grid], shape: Tuple[int, int]) -> Tuple[float, float]:
    """DFT periods ``(Lx, Ly) = (X h_x, Y h_y)`` (:meth:`Grid.periods`); ``(1, 1)`` without a grid."""
    g = _at(grid, shape)
    return (1.0, 1.0) if g is None else g.periods()


# --------------------------------------------------------------------------------------------
# relative L2 family
# --------------------------------------------------------------------------------------------
def _relative_norm(diff_sq: torch.Tensor, true_sq: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.sqrt(diff_sq / true_sq.clamp_min(eps))


def relative_l2_per_sample(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    """``||pred_n - true_n||_2 / ||true_n||_2`` with the norm over all of ``(T, C, X, Y)``.

    Shapes: ``(N, T, C, X, Y)`` -> ``(N,)``. Reduction: sum of squares over every axis but the sample
    axis. Grid weights cancel in the ratio on a uniform grid, so none are applied.
    """
    _check_pair(pred, target)
    p = pred.double().reshape(pred.shape[0], -1)
    t = target.double().reshape(target.shape[0], -1)
    return _relative_norm((p - t).pow(2).sum(1), t.pow(2).sum(1), eps)


def fno_relative_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The FNO benchmark metric (docs/published.md): mean over test samples of
    :func:`relative_l2_per_sample`. Shapes: ``(N, T, C, X, Y)`` -> scalar."""
    return relative_l2_per_sample(pred, target).mean()


def relative_l2_per_step(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    """``||pred_n(t) - true_n(t)||_2 / ||true_n(t)||_2`` with the norm over ``(C, X, Y)``.

    Shapes: ``(N, T, C, X, Y)`` -> ``(N, T)``. The per-step curve of a report is ``.mean(0)``.
    Identity with the FNO metric (checked in the tests): with ``a_t = ||true_n(t)||^2``,
    ``relative_l2_per_sample^2 = sum_t r_t^2 a_t / sum_t a_t``.
    """
    _check_pair(pred, target)
    p = pred.double().flatten(2)
    t = target.double().flatten(2)
    return _relative_norm((p - t).pow(2).sum(2), t.pow(2).sum(2), eps)


def relative_l2_per_channel(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    """``||pred_{n,c} - true_{n,c}||_2 / ||true_{n,c}||_2`` with the norm over ``(T, X, Y)``.

    Shapes: ``(N, T, C, X, Y)`` -> ``(N, C)``.
    """
    _check_pair(pred, target)
    p = pred.double().transpose(1, 2).flatten(2)
    t = target.double().transpose(1, 2).flatten(2)
    return _relative_norm((p - t).pow(2).sum(2), t.pow(2).sum(2), eps)


def relative_h1_per_sample(pred: torch.Tensor, target: torch.Tensor, grid: Optional[Grid] = None) -> torch.Tensor:
    """Relative H1 error per sample with the toolkit's Sobolev norm (:mod:`neuralops.losses`).

    ``sqrt(sum_{t,c} ||pred - true||_{H1}^2 / sum_{t,c} ||true||_{H1}^2)`` for each sample, where
    ``||u||_{H1}^2 = |Omega| sum_k (1 + |2 pi k / L|^2) |u_k|^2`` on a periodic box and the sine-series
    analogue ``(1 + |pi k / L|^2)`` for homogeneous Dirichlet data (``neuralops.losses``).
    Shapes: ``(N, T, C, X, Y)`` -> ``(N,)``.

    grid: the fields' :class:`datagen.contract.Grid` (``None``: periodic unit box). The boundary
    condition (periodic or Dirichlet on every axis), the box side ``L`` of each axis and whether the
    nodes include the walls all come from the grid, never from the data.
    """
    _check_pair(pred, target)
    from neuralops.losses import relative_sobolev_error  # one Sobolev norm in the toolkit

    g = _at(grid, tuple(pred.shape[-2:]))
    if g is None:
        kind, box, walls = "periodic", (1.0, 1.0), False
    else:
        kind = g.sobolev_boundary()
        if kind is None:
            raise ValueError(
                f"relative_h1 needs 'periodic' or 'dirichlet' boundaries, the same on x and y; the "
                f"grid has {g.boundaries}: leave relative_h1 out (evaluate(..., relative_h1=False))"
            )
        box, walls = g.lengths(), g.includes_walls
    return relative_sobolev_error(
        pred.double(),
        target.double(),
        s=1.0,
        dim=2,
        box=box,
        boundary=kind,
        includes_boundary=walls,
        pool="all",
        reduction="none",
    )


# --------------------------------------------------------------------------------------------
# PDEBench-style pointwise errors
# --------------------------------------------------------------------------------------------
def rmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sqrt(mean_{x,y} (pred - true)^2)``. Shapes: ``(N, T, C, X, Y)`` -> ``(N, T, C)``."""
    _check_pair(pred, target)
    return (pred.double() - target.double()).pow(2).mean((-2, -1)).sqrt()


def nrmse(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    """``sqrt(mean_{x,y} (pred - true)^2) / sqrt(mean_{x,y} true^2)``.

    Shapes: ``(N, T, C, X, Y)`` -> ``(N, T, C)``.
    """
    _check_pair(pred, target)
    t = target.double()
    return _relative_norm((pred.double() - t).pow(2).mean((-2, -1)), t.pow(2).mean((-2, -1)), eps)


def max_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``max_{x,y} |pred - true|``. Shapes: ``(N, T, C, X, Y)`` -> ``(N, T, C)``."""
    _check_pair(pred, target)
    return (pred.double() - target.double()).abs().amax((-2, -1))


# --------------------------------------------------------------------------------------------
# spectral diagnostics
# --------------------------------------------------------------------------------------------
def wavenumber_magnitude(shape: Tuple[int, int], grid: Optional[Grid] = None) -> torch.Tensor:
    """``|k| = sqrt(kx^2 + (ky Lx / Ly)^2)`` on the full ``(X, Y)`` DFT grid (float64, ``(X, Y)``).

    ``kx``, ``ky`` are integer mode numbers in ``torch.fft.fftfreq`` order; the result is in units of
    the x-axis fundamental ``2 pi / Lx``.
    """
    nx, ny = shape
    lx, ly = _periods(grid, shape)
    kx = torch.fft.fftfreq(nx, d=1.0 / nx, dtype=torch.float64)
    ky = torch.fft.fftfreq(ny, d=1.0 / ny, dtype=torch.float64) * (lx / ly)
    return torch.sqrt(kx[:, None] ** 2 + ky[None, :] ** 2)


def wavenumber_shells(shape: Tuple[int, int], grid: Optional[Grid] = None) -> torch.Tensor:
    """Shell index ``floor(|k| + 1/2)`` of every DFT mode, ``(X, Y)`` int64."""
    return torch.floor(wavenumber_magnitude(shape, grid) + 0.5).long()


def _parseval_power(field: torch.Tensor) -> torch.Tensor:
    """``|u_hat_k|^2 / (X Y)^2`` of each frame: ``(..., X, Y)`` -> ``(..., X, Y)`` float64."""
    nx, ny = field.shape[-2:]
    u_hat = torch.fft.fft2(field.double())
    return (u_hat.real.square() + u_hat.imag.square()) / float(nx * ny) ** 2


def check_band_edges(edges: Sequence[float]) -> Tuple[float, ...]:
    """``edges`` as floats; raises unless increasing, at least two, and starting at or below 0."""
    edges = tuple(float(e) for e in edges)
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] > 0:
        raise ValueError(f"band edges must be increasing, at least two, and start at 0 or below; got {edges}")
    return edges


def band_energies(
    field: torch.Tensor, edges: Sequence[float] = DEFAULT_BAND_EDGES, grid: Optional[Grid] = None
) -> torch.Tensor:
    """Parseval-normalised energy of each frame in wavenumber bands.

    Band ``b`` holds the modes whose shell ``round(|k|)`` satisfies ``edges[b] <= shell < edges[b+1]``.
    With the last edge ``inf`` the bands partition all modes, and the energies sum to
    ``mean_{x,y} u^2`` (Parseval).
    Shapes: ``(..., X, Y)`` -> ``(..., n_bands)`` float64.
    """
    edges = check_band_edges(edges)
    shells = wavenumber_shells(tuple(field.shape[-2:]), grid).to(device=field.device, dtype=torch.float64)
    power = _parseval_power(field)
    out = []
    for lo, hi in zip(edges, edges[1:]):
        mask = ((shells >= lo) & (shells < hi)).to(power.dtype)
        out.append((power * mask).sum((-2, -1)))
    return torch.stack(out, dim=-1)


def spectral_band_rmse(
    pred: torch.Tensor, target: torch.Tensor, edges: Sequence[float] = DEFAULT_BAND_EDGES, grid: Optional[Grid] = None
) -> torch.Tensor:
    """``sqrt(E_B(pred - true))`` per band (see :func:`band_energies`).

    Shapes: ``(N, T, C, X, Y)`` -> ``(N, T, C, n_bands)``; the squares over the bands sum to
    ``mean_{x,y} (pred - true)^2`` when the bands cover every shell.
    """
    _check_pair(pred, target)
    return band_energies(pred.double() - target.double(), edges, grid).sqrt()


def spectral_band_relative_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    edges: Sequence[float] = DEFAULT_BAND_EDGES,
    grid: Optional[Grid] = None,
    empty_band_tol: float = 1e-10,
) -> torch.Tensor:
    """``sqrt(E_B(pred_n - true_n) / E_B(true_n))`` per sample and band, energies summed over ``(T, C)``.

    Shapes: ``(N, T, C, X, Y)`` -> ``(N, n_bands)``. A band whose truth energy is at most
    ``empty_band_tol`` times the sample's total truth energy gives ``nan``: such a band holds only
    round-off of the data (float32 leaves ~1e-14 of the energy everywhere), and a ratio against
    round-off would be a meaningless huge number.
    """
    _check_pair(pred, target)
    err = band_energies(pred.double() - target.double(), edges, grid).sum((1, 2))
    true = band_energies(target, edges, grid).sum((1, 2))
    floor = empty_band_tol * target.double().pow(2).mean((-2, -1)).sum((1, 2))[:, None]
    ratio = torch.sqrt(err / true.clamp_min(1e-300))
    return torch.where(true > floor, ratio, torch.full_like(ratio, float("nan")))


def isotropic_energy_spectrum(
    field: torch.Tensor, grid: Optional[Grid] = None, n_shells: Optional[int] = None
) -> torch.Tensor:
    """``E(s) = 1/2 sum_{round(|k|) = s} |u_hat_k|^2 / (X Y)^2`` for shells ``s = 0 .. n_shells-1``.

    Shapes: ``(..., X, Y)`` -> ``(..., n_shells)`` float64. Default ``n_shells`` covers every mode
    (the corner shell of the grid included), so ``sum_s E(s) = mean_{x,y} u^2 / 2`` exactly.
    """
    shape = tuple(field.shape[-2:])
    shells = wavenumber_shells(shape, grid)
    n_all = int(shells.max()) + 1
    n_shells = n_all if n_shells is None else int(n_shells)
    if n_shells < 1:
        raise ValueError(f"n_shells must be >= 1, got {n_shells}")
    power = 0.5 * _parseval_power(field)
    flat = power.reshape(-1, shape[0] * shape[1])
    index = shells.reshape(-1).clamp_max(n_all - 1)
    spectrum = torch.zeros(flat.shape[0], max(n_all, n_shells), dtype=torch.float64)
    spectrum.index_add_(1, index, flat)
    return spectrum[:, :n_shells].reshape(*field.shape[:-2], n_shells)
