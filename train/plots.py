"""PNG figures of an evaluation: fields over time, error vs time, energy spectra.

Matplotlib's object API with the Agg canvas (``matplotlib.figure.Figure``, never ``pyplot``): no
display needed, no global backend state touched, safe in workers and on clusters. Each function draws one figure from plain arrays, writes it to ``path`` and returns
``path``; nothing here computes a metric (the numbers come from :mod:`train.metrics`).
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_fields_over_time", "plot_error_vs_time", "plot_energy_spectra", "plot_error_vs_resolution"]

def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def _as_runs(predictions) -> Mapping[str, np.ndarray]:
    if isinstance(predictions, Mapping):
        return {str(k): _np(v) for k, v in predictions.items()}
    return {"prediction": _np(predictions)}


def _frame_indices(n_steps: int, n_frames: int) -> np.ndarray:
    n_frames = max(1, min(int(n_frames), n_steps))
    return np.unique(np.linspace(0, n_steps - 1, n_frames).round().astype(int))


def plot_fields_over_time(predictions, target, path: str, times: Optional[Sequence[float]] = None,
                          n_frames: int = 4, title: str = "") -> str:
    """Panels of truth, prediction and error at ``n_frames`` evenly spaced predicted steps.

    predictions: ``(T, X, Y)`` array/tensor of one sample and channel, or a mapping
        ``label -> (T, X, Y)`` (e.g. before / after refinement): one prediction row and one error
        row per label.
    target: ``(T, X, Y)``. Rows share one colour scale for fields (the truth's range) and one
        symmetric scale for errors, so panels can be compared by eye.
    """
    truth = _np(target)
    runs = _as_runs(predictions)
    for label, pred in runs.items():
        if pred.shape != truth.shape or truth.ndim != 3:
            raise ValueError(f"prediction {label!r} has shape {pred.shape}, truth {truth.shape}; both must be (T, X, Y)")
    steps = _frame_indices(truth.shape[0], n_frames)
    label_times = times is not None or truth.shape[0] > 1   # a steady field (one frame) has no time
    times = np.arange(truth.shape[0]) if times is None else np.asarray(times, dtype=float)
    if len(times) != truth.shape[0]:
        raise ValueError(f"{len(times)} times given for {truth.shape[0]} predicted steps")

    vmin, vmax = float(truth.min()), float(truth.max())
    if vmin < 0 < vmax:  # signed field (vorticity): diverging map centred at zero
        vmax = max(-vmin, vmax)
        vmin, field_cmap = -vmax, "RdBu_r"
    else:                # one-signed field (Darcy pressure): sequential map
        field_cmap = "viridis"
    emax = max(float(np.abs(p - truth).max()) for p in runs.values()) or 1.0
    rows = [("truth", truth, "field")]
    for label, pred in runs.items():
        rows.append((label, pred, "field"))
        rows.append((f"error ({label})", pred - truth, "error"))

    fig = _figure((2.4 * len(steps) + 1.2, 2.3 * len(rows)))
    axes = fig.subplots(len(rows), len(steps), squeeze=False)
    for r, (label, data, kind) in enumerate(rows):
        for c, s in enumerate(steps):
            ax = axes[r, c]
            if kind == "field":
                im = ax.imshow(data[s].T, origin="lower", cmap=field_cmap, vmin=vmin, vmax=vmax)
            else:
                im = ax.imshow(data[s].T, origin="lower", cmap="PuOr", vmin=-emax, vmax=emax)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and label_times:
                ax.set_title(f"t = {times[s]:.4g}", fontsize=10)
            if c == 0:
                ax.set_ylabel(label, fontsize=10)
        # one colour bar per row: rows of fields and errors interleave, so shared bars would overlap
        fig.colorbar(im, ax=list(axes[r, :]), shrink=0.9, pad=0.01,
                     label="field" if kind == "field" else "pred - truth")
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_error_vs_time(curves: Mapping[str, Sequence[float]], path: str, times: Optional[Sequence[float]] = None,
                       ylabel: str = "relative L2 error", title: str = "",
                       reference: Optional[Mapping[str, float]] = None) -> str:
    """Error curves (one line per label) against the predicted time.

    curves: ``label -> (T,)``, e.g. the per-step relative L2 averaged over test samples.
    reference: optional ``label -> value`` drawn as horizontal dashed lines (a published number).
    """
    if not curves:
        raise ValueError("plot_error_vs_time needs at least one curve")
    fig = _figure((6.0, 4.0))
    ax = fig.subplots()
    for label, values in curves.items():
        values = _np(values)
        t = np.arange(len(values)) if times is None else np.asarray(times, dtype=float)
        if len(t) != len(values):
            raise ValueError(f"curve {label!r} has {len(values)} points but {len(t)} times")
        ax.plot(t, values, marker="o" if len(values) <= 20 else None, ms=3, label=label)
    styles = [(0, (5, 2)), (0, (1, 1)), (0, (3, 1, 1, 1)), (0, (8, 3)), (0, (2, 3))]
    for i, (label, value) in enumerate((reference or {}).items()):
        # reference numbers in the legend (not as in-plot text) so close values stay readable
        ax.axhline(float(value), ls=styles[i % len(styles)], lw=1, color=str(0.2 + 0.5 * i / max(1, len(reference))),
                   label=f"{label}: {float(value):.4g}")
    ax.set_xlabel("time" if times is not None else "predicted step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=11)
    return _save(fig, path)


def plot_energy_spectra(spectra: Mapping[str, Sequence[float]], path: str, title: str = "",
                        band_edges: Optional[Sequence[float]] = None) -> str:
    """Log-log isotropic spectra ``E(s)`` against the shell ``s`` (shell 0, the mean, is left out).

    spectra: ``label -> (S,)``, e.g. ``{"truth": ..., "prediction": ...}``.
    band_edges: optional interior band edges drawn as vertical lines.
    """
    if not spectra:
        raise ValueError("plot_energy_spectra needs at least one spectrum")
    fig = _figure((6.0, 4.0))
    ax = fig.subplots()
    for label, values in spectra.items():
        values = _np(values)
        shells = np.arange(len(values))
        keep = (shells >= 1) & (values > 0)
        ax.loglog(shells[keep], values[keep], lw=1.8 if label == "truth" else 1.2,
                  ls="-" if label == "truth" else "--", color="black" if label == "truth" else None, label=label)
    for edge in band_edges or ():
        if np.isfinite(edge) and edge > 0:
            ax.axvline(float(edge), color="gray", lw=0.8, ls=":")
    ax.set_xlabel("wavenumber shell |k| (units of the fundamental)")
    ax.set_ylabel("E(|k|)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title, fontsize=11)
    return _save(fig, path)


def plot_error_vs_resolution(resolutions: Sequence[int], errors: Mapping[str, Sequence[Optional[float]]], path: str,
                             train_resolution: Optional[int] = None, title: str = "") -> str:
    """Error against the test grid's resolution (zero-shot super-resolution, the FNO paper's table).

    resolutions: ``(R,)`` grid sizes (points per axis); errors: ``metric -> (R,)`` (``None`` where
    not computed); train_resolution: drawn as a vertical dotted line.
    """
    res = np.asarray(resolutions, dtype=float)
    if res.size == 0 or not errors:
        raise ValueError("plot_error_vs_resolution needs at least one resolution and one metric")
    order = np.argsort(res)
    fig = _figure((6.0, 4.0))
    ax = fig.subplots()
    for label, values in errors.items():
        v = np.array([np.nan if x is None else float(x) for x in values], dtype=float)
        if v.size != res.size:
            raise ValueError(f"metric {label!r} has {v.size} values for {res.size} resolutions")
        ax.plot(res[order], v[order], marker="o", ms=5, label=label)
    if train_resolution:
        ax.axvline(float(train_resolution), color="gray", ls=":", lw=1, label=f"training grid {train_resolution}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(res[order])
    ax.set_xticklabels([f"{int(r)}" for r in res[order]])
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("test grid (points per axis)")
    ax.set_ylabel("error (mean over test samples)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title, fontsize=11)
    return _save(fig, path)


def _figure(size) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)  # attach the raster canvas explicitly: PNG output without pyplot
    return fig


def _save(fig: Figure, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    return path
