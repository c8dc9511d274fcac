"""PNG figures (and a rollout animation) of an evaluation.

Matplotlib's object API with the Agg canvas (``matplotlib.figure.Figure``, never ``pyplot``): no
display needed, no global backend state touched, safe in workers and on clusters. The figure
builders (``*_figure``) take plain arrays and return the :class:`~matplotlib.figure.Figure`;
:func:`save_figure` writes it as a PNG at :data:`DPI`, so a figure of ``w x h`` inches becomes a
``round(w DPI) x round(h DPI)`` pixel image. The ``plot_*`` functions build, write and return the
path. Nothing here computes a metric beyond the norm ratio printed over an error panel (the
report's numbers come from :mod:`train.metrics`).

Figures:

* :func:`field_rows_figure`: one row per test sample (steady data) or per predicted time of one
  sample (trajectories), columns ``input | truth | prediction | error`` (one prediction and one
  error column per run when several runs are compared, e.g. before / after refinement). Truth
  and prediction share one colour scale per row (the truth's range; a diverging map centred at 0
  for a signed field), the error has its own symmetric scale ``+-`` the 99th percentile of
  ``|error|`` over the row, stated in its colour bar, so that a small error is visible instead of
  a uniform colour.
* :func:`animate_rollout`: truth | prediction | error over the predicted steps of one sample, as
  a GIF (matplotlib's ``PillowWriter``) and an MP4 (``FFMpegWriter``) where each writer exists.
* :func:`error_vs_time_figure`: per-step relative L2, mean over samples and its spread.
* :func:`energy_spectra_figure`: isotropic energy spectra of predictions and truth.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "field_rows_figure",
    "plot_field_rows",
    "report_field_figures",
    "animate_rollout",
    "error_vs_time_figure",
    "plot_error_vs_time",
    "energy_spectra_figure",
    "plot_energy_spectra",
    "plot_fields_over_time",
    "save_figure",
    "robust_error_scale",
    "plot_error_vs_resolution",
]

log = logging.getLogger(__name__)

DPI = 100
"""Resolution of the PNGs: fonts below are sized for viewing at 100 % (one PNG pixel per screen pixel)."""
_FONT = {"title": 11, "label": 10, "tick": 9, "suptitle": 12}
_PANEL = 2.6  # inches per field panel (260 px at DPI 100)
_ERROR_PERCENTILE = 99.0


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def _as_runs(predictions) -> Mapping[str, np.ndarray]:
    if isinstance(predictions, Mapping):
        return {str(k): _np(v) for k, v in predictions.items()}
    return {"prediction": _np(predictions)}


def _truth_and_runs(truth, predictions, layout: str):
    """The truth and the predictions as arrays, each of the 3-d ``layout``; a one-line error otherwise."""
    truth = _np(truth)
    runs = _as_runs(predictions)
    if truth.ndim != 3:
        raise ValueError(f"the truth has shape {truth.shape}; it must be {layout}")
    for label, pred in runs.items():
        if pred.shape != truth.shape:
            raise ValueError(f"prediction {label!r} has shape {pred.shape}, truth {truth.shape}; both must be {layout}")
    return truth, runs


def _frame_indices(n_steps: int, n_frames: int) -> np.ndarray:
    """``n_frames`` evenly spaced steps including the first and the last (fewer if there are fewer)."""
    n_frames = max(1, min(int(n_frames), n_steps))
    return np.unique(np.linspace(0, n_steps - 1, n_frames).round().astype(int))


def robust_error_scale(errors, percentile: float = _ERROR_PERCENTILE) -> float:
    """Half-width of the symmetric error colour scale: the ``percentile``-th percentile of
    ``|error|`` (a few outlier points saturate instead of washing out the rest); the maximum if
    that is 0; 1 for an exact prediction."""
    a = np.abs(np.concatenate([_np(e).ravel() for e in errors]))
    scale = float(np.percentile(a, percentile)) if a.size else 0.0
    if not scale > 0:
        scale = float(a.max()) if a.size else 0.0
    return scale if scale > 0 else 1.0


def _field_scale(truth: np.ndarray):
    """``(vmin, vmax, cmap)`` of a field: its range, diverging and centred at 0 when signed."""
    vmin, vmax = float(np.min(truth)), float(np.max(truth))
    if vmin < 0 < vmax and min(-vmin, vmax) > 1e-2 * max(-vmin, vmax):
        # signed field (vorticity): diverging map centred at zero; round-off below a one-signed
        # field (a Darcy solution at -1e-17) does not count as a sign
        vmax = max(-vmin, vmax)
        return -vmax, vmax, "RdBu_r"
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    return vmin, vmax, "viridis"  # one-signed field (Darcy pressure, coefficient): sequential map


def _show(ax, data: np.ndarray, **kw):
    im = ax.imshow(np.asarray(data).T, origin="lower", interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _colorbar(fig: Figure, im, axes, label: str, extend: str = "neither"):
    cb = fig.colorbar(im, ax=axes, shrink=0.85, pad=0.02, aspect=15, extend=extend)
    cb.set_label(label, fontsize=_FONT["tick"])
    cb.ax.tick_params(labelsize=_FONT["tick"] - 1)
    cb.formatter.set_powerlimits((-2, 3))
    cb.update_ticks()
    return cb


def _rel(err: np.ndarray, truth: np.ndarray) -> float:
    den = float(np.linalg.norm(truth))
    return float(np.linalg.norm(err)) / den if den > 0 else float("nan")


def field_rows_figure(
    targets,
    predictions,
    inputs=None,
    *,
    kind: str = "steady",
    row_labels: Optional[Sequence[str]] = None,
    input_labels: Optional[Sequence[str]] = None,
    field_label: str = "output",
    title: str = "",
) -> Figure:
    """Rows of ``input | truth | prediction | error`` panels.

    targets: ``(R, X, Y)``, one row per entry: test samples (``kind="steady"``) or predicted times
        of one sample (``kind="trajectory"``).
    predictions: ``(R, X, Y)``, or ``label -> (R, X, Y)`` for several runs (one prediction and one
        error column per run; the error scale of a row is shared by the runs).
    inputs: ``(R, C_in, X, Y)`` (steady: every input channel gets a column, each with its own
        scale) or, for trajectories, ``(X, Y)``: the last given frame, drawn in the first row only
        on the scale of the truth of that row. ``None``: no input column.
    row_labels: the text left of each row (e.g. ``"sample 3"``, ``"t = 12.5"``).
    input_labels: a title per input channel (default ``"input c"``).
    """
    if kind not in ("steady", "trajectory"):
        raise ValueError(f"kind must be 'steady' or 'trajectory', got {kind!r}")
    truth, runs = _truth_and_runs(targets, predictions, "(rows, X, Y)")
    n_rows = truth.shape[0]
    inp = None if inputs is None else _np(inputs)
    if inp is not None:
        if kind == "steady" and (inp.ndim != 4 or inp.shape[0] != n_rows or inp.shape[2:] != truth.shape[1:]):
            raise ValueError(
                f"steady inputs must be (rows={n_rows}, C_in, X, Y) on the truth's grid "
                f"{truth.shape[1:]}, got shape {inp.shape}"
            )
        if kind == "trajectory" and inp.shape != truth.shape[1:]:
            raise ValueError(f"the trajectory input must be one (X, Y) frame {truth.shape[1:]}, got shape {inp.shape}")
    n_in = 0 if inp is None else (inp.shape[1] if kind == "steady" else 1)
    if input_labels is None:
        input_labels = ["input"] if n_in == 1 else [f"input {c}" for c in range(n_in)]
    if len(input_labels) != n_in:
        raise ValueError(f"{len(input_labels)} input labels for {n_in} input channels")
    row_labels = list(row_labels) if row_labels is not None else [f"row {r}" for r in range(n_rows)]
    if len(row_labels) != n_rows:
        raise ValueError(f"{len(row_labels)} row labels for {n_rows} rows")

    many = len(runs) > 1
    n_cols = n_in + 1 + 2 * len(runs)
    n_bars = n_in + 1 + 1  # a bar per input, one shared by truth and predictions, one for errors
    fig = _figure((_PANEL * n_cols + 0.75 * n_bars + 0.6, _PANEL * n_rows + (0.9 if title else 0.5)))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r in range(n_rows):
        # the trajectory's input frame (first row) shares the field scale of that row
        vmin, vmax, cmap = _field_scale(
            truth[r] if kind == "steady" or inp is None or r > 0 else np.stack([truth[r], inp])
        )
        errors = {label: pred[r] - truth[r] for label, pred in runs.items()}
        emax = robust_error_scale(errors.values())
        c = 0
        for k in range(n_in):
            ax = axes[r, c]
            if kind == "steady":
                a = inp[r, k]
                amin, amax, acmap = _field_scale(a)
                im = _show(ax, a, cmap=acmap, vmin=amin, vmax=amax)
                _colorbar(fig, im, ax, input_labels[k])
                if r == 0:
                    ax.set_title(input_labels[k], fontsize=_FONT["title"])
            elif r == 0:
                im = _show(ax, inp, cmap=cmap, vmin=vmin, vmax=vmax)
                ax.set_title(input_labels[k], fontsize=_FONT["title"])
            else:
                ax.set_axis_off()
            c += 1
        im = _show(axes[r, c], truth[r], cmap=cmap, vmin=vmin, vmax=vmax)
        if r == 0:  # column titles once, on top
            axes[r, c].set_title("truth", fontsize=_FONT["title"])
        field_axes = [axes[r, c]]
        c += 1
        for label, pred in runs.items():
            _show(axes[r, c], pred[r], cmap=cmap, vmin=vmin, vmax=vmax)
            if r == 0:
                axes[r, c].set_title(label if many else "prediction", fontsize=_FONT["title"])
            field_axes.append(axes[r, c])
            c += 1
        if kind == "trajectory" and n_in and r == 0:
            field_axes.insert(0, axes[0, 0])
        # predictions outside the truth's range saturate: the colour bar says so with arrows
        low = any(float(p[r].min()) < vmin for p in runs.values())
        high = any(float(p[r].max()) > vmax for p in runs.values())
        extend = {(False, False): "neither", (True, False): "min", (False, True): "max"}.get((low, high), "both")
        _colorbar(fig, im, field_axes, field_label, extend=extend)
        err_axes = []
        for label, err in errors.items():
            eim = _show(axes[r, c], err, cmap="PuOr_r", vmin=-emax, vmax=emax)
            rel = _rel(err, truth[r])
            head = f"error ({label})\n" if many else "error, "  # run labels are long: own line
            axes[r, c].set_title(
                f"{head}rel. L2 {rel:.2g}" if r == 0 else f"rel. L2 {rel:.2g}", fontsize=_FONT["title"]
            )
            err_axes.append(axes[r, c])
            c += 1
        _colorbar(fig, eim, err_axes, f"pred - truth\n(scale: {_ERROR_PERCENTILE:g}th pct of |error|)", extend="both")
        axes[r, 0].set_ylabel(row_labels[r], fontsize=_FONT["label"])
        if kind == "trajectory" and n_in and r > 0:
            # the input column is empty below the first row: label the row at the truth panel
            axes[r, n_in].set_ylabel(row_labels[r], fontsize=_FONT["label"])
    if title:
        fig.suptitle(title, fontsize=_FONT["suptitle"])
    return fig


def plot_field_rows(targets, predictions, path: str, **kwargs) -> str:
    """:func:`field_rows_figure` written to ``path``; returns ``path``."""
    return save_figure(field_rows_figure(targets, predictions, **kwargs), path)


def plot_fields_over_time(
    predictions,
    target,
    path: str,
    times: Optional[Sequence[float]] = None,
    n_frames: int = 4,
    title: str = "",
    inputs=None,
) -> str:
    """Rows of one trajectory at ``n_frames`` evenly spaced predicted steps (first and last
    included): ``input | truth | prediction | error`` (see :func:`field_rows_figure`).

    predictions: ``(T, X, Y)`` of one sample and channel, or ``label -> (T, X, Y)``.
    target: ``(T, X, Y)``; inputs: the last given frame ``(X, Y)`` or ``None``.
    """
    truth, runs = _truth_and_runs(target, predictions, "(T, X, Y)")
    if times is not None and len(times) != truth.shape[0]:
        raise ValueError(f"{len(times)} times given for {truth.shape[0]} predicted steps")
    steps = _frame_indices(truth.shape[0], n_frames)
    rows = [f"t = {float(times[s]):.4g}" if times is not None else f"step {s + 1}" for s in steps]
    fig = field_rows_figure(
        truth[steps],
        {k: v[steps] for k, v in runs.items()},
        inputs=inputs,
        kind="trajectory",
        row_labels=rows,
        input_labels=["input (last given frame)"] if inputs is not None else None,
        field_label="field",
        title=title,
    )
    return save_figure(fig, path)


def report_field_figures(
    out_dir: str,
    predictions,
    targets,
    inputs=None,
    *,
    steady: bool,
    sample: int = 0,
    channel: int = 0,
    n_samples: int = 4,
    n_frames: int = 4,
    times: Optional[Sequence[float]] = None,
    input_labels: Optional[Sequence[str]] = None,
    animate: bool = True,
) -> Dict[str, str]:
    """The field figures of a report folder; returns ``{name: path}`` of the files written.

    predictions: ``(N, T, C, X, Y)`` (canonical evaluation layout, ``T = 1`` for steady data) or
    ``label -> (N, T, C, X, Y)``; targets: ``(N, T, C, X, Y)``; inputs: steady ``(N, C_in, X, Y)``,
    trajectories ``(N, T_in, C, X, Y)``, or ``None``.

    * steady: ``fields.png``, rows = samples ``sample .. sample + n_samples - 1`` (channel ``channel``);
    * trajectories: ``fields.png``, rows = ``n_frames`` predicted steps of sample ``sample`` (first,
      ..., last), the input column showing the last given frame; ``rollout.gif`` / ``rollout.mp4``
      (:func:`animate_rollout`, when ``animate`` and the writers exist).
    """
    preds = (
        {str(k): _np(v) for k, v in predictions.items()}
        if isinstance(predictions, Mapping)
        else {"prediction": _np(predictions)}
    )
    truth = _np(targets)
    n, n_t, n_c = truth.shape[:3]
    if not (0 <= sample < n and 0 <= channel < n_c):
        raise ValueError(f"sample {sample} / channel {channel} out of range for targets of shape {truth.shape}")
    inp = None if inputs is None else _np(inputs)
    out: Dict[str, str] = {}
    fields = os.path.join(out_dir, "fields.png")
    if steady:
        rows = list(range(sample, min(n, sample + max(1, int(n_samples)))))
        if inp is not None and (inp.ndim != 4 or inp.shape[0] != n):
            raise ValueError(f"steady inputs must be (N={n}, C_in, X, Y), got shape {inp.shape}")
        labels = None
        if inp is not None and input_labels is not None and len(input_labels) == inp.shape[1]:
            labels = [f"input: {name}" for name in input_labels]
        fig = field_rows_figure(
            truth[rows, 0, channel],
            {k: v[rows, 0, channel] for k, v in preds.items()},
            inputs=None if inp is None else inp[rows],
            kind="steady",
            row_labels=[f"test sample {i}" for i in rows],
            input_labels=labels,
            field_label=f"output channel {channel}",
        )
        out["fields"] = save_figure(fig, fields)
        return out
    if inp is not None and (inp.ndim != 5 or inp.shape[0] != n or inp.shape[2] != n_c):
        raise ValueError(f"trajectory inputs must be (N={n}, T_in, C={n_c}, X, Y), got shape {inp.shape}")
    sample_preds = {k: v[sample, :, channel] for k, v in preds.items()}
    out["fields"] = plot_fields_over_time(
        sample_preds if len(preds) > 1 else next(iter(sample_preds.values())),
        truth[sample, :, channel],
        fields,
        times=times,
        n_frames=n_frames,
        title=f"test sample {sample}, channel {channel}",
        inputs=None if inp is None else inp[sample, -1, channel],
    )
    if animate and n_t > 1:
        label, pred = next(reversed(sample_preds.items()))  # the last run (e.g. after refinement)
        written = animate_rollout(
            pred,
            truth[sample, :, channel],
            os.path.join(out_dir, "rollout"),
            times=times,
            title=f"sample {sample}{f' ({label})' if len(preds) > 1 else ''}",
        )
        out.update({f"rollout_{fmt}": path for fmt, path in written.items()})
    return out


def animate_rollout(
    prediction,
    target,
    path_stem: str,
    times: Optional[Sequence[float]] = None,
    fps: int = 4,
    title: str = "",
    formats: Sequence[str] = ("gif", "mp4"),
    dpi: int = DPI,
) -> Dict[str, str]:
    """Animation of a rollout: truth | prediction | error at every predicted step of one sample.

    prediction, target: ``(T, X, Y)``. The colour scales are fixed over the whole rollout (truth
    and prediction: the truth's range over all steps; error: ``+-`` the 99th percentile of
    ``|error|`` over all steps), so growth of the error is seen as growth. Writes
    ``path_stem + ".gif"`` (matplotlib's ``PillowWriter``) and ``path_stem + ".mp4"``
    (``FFMpegWriter``) for each of ``formats`` whose writer is available; a missing writer is
    skipped with a log line. Returns ``{format: path}`` of the files written.
    """
    from matplotlib import animation

    truth, pred = _np(target), _np(prediction)
    if truth.ndim != 3 or pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} must both be (T, X, Y)")
    writers = {"gif": ("pillow", animation.PillowWriter), "mp4": ("ffmpeg", animation.FFMpegWriter)}
    unknown = [f for f in formats if f not in writers]
    if unknown:
        raise ValueError(f"unknown animation format(s) {unknown}; choose from {sorted(writers)}")
    todo = []
    for fmt in formats:
        name, cls = writers[fmt]
        if animation.writers.is_available(name):
            todo.append((fmt, cls))
        else:
            log.warning(
                "rollout animation: matplotlib's %s writer is not available, no .%s written%s",
                name,
                fmt,
                " (install ffmpeg for MP4)" if fmt == "mp4" else "",
            )
    if not todo:
        return {}
    n_t = truth.shape[0]
    label = "step" if times is None else "t"
    times = list(range(1, n_t + 1)) if times is None else [float(t) for t in times]
    if len(times) != n_t:
        raise ValueError(f"{len(times)} times given for {n_t} predicted steps")
    err = pred - truth
    vmin, vmax, cmap = _field_scale(truth)
    emax = robust_error_scale([err])

    fig = _figure((3 * _PANEL + 2.0, _PANEL + 0.9))
    axes = fig.subplots(1, 3)
    ims = [
        _show(axes[0], truth[0], cmap=cmap, vmin=vmin, vmax=vmax),
        _show(axes[1], pred[0], cmap=cmap, vmin=vmin, vmax=vmax),
        _show(axes[2], err[0], cmap="PuOr_r", vmin=-emax, vmax=emax),
    ]
    for ax, name in zip(axes, ("truth", "prediction", "error")):
        ax.set_title(name, fontsize=_FONT["title"])
    _colorbar(fig, ims[1], list(axes[:2]), "field")
    _colorbar(fig, ims[2], axes[2], f"pred - truth\n(scale: {_ERROR_PERCENTILE:g}th pct of |error|)", extend="both")
    head = fig.suptitle("", fontsize=_FONT["suptitle"])

    def draw(k: int):
        for im, data in zip(ims, (truth[k], pred[k], err[k])):
            im.set_data(np.asarray(data).T)
        head.set_text(
            f"{title + ': ' if title else ''}{label} = {times[k]:.4g}  (rel. L2 {_rel(err[k], truth[k]):.2g})"
        )
        return ims

    anim = animation.FuncAnimation(fig, draw, frames=n_t, blit=False, repeat=False)
    os.makedirs(os.path.dirname(os.path.abspath(path_stem)) or ".", exist_ok=True)
    out = {}
    for fmt, cls in todo:
        path = f"{path_stem}.{fmt}"
        anim.save(path, writer=cls(fps=fps), dpi=dpi)
        out[fmt] = path
    return out


def error_vs_time_figure(
    curves: Mapping[str, Sequence[float]],
    times: Optional[Sequence[float]] = None,
    ylabel: str = "relative L2 error",
    title: str = "",
    reference: Optional[Mapping[str, float]] = None,
    spread: Optional[Mapping[str, Sequence[Sequence[float]]]] = None,
) -> Figure:
    """Error curves (one line per label) against the predicted time.

    curves: ``label -> (T,)``, e.g. the per-step relative L2 averaged over test samples.
    spread: optional ``label -> (N, T)`` per-sample values of the same curve: drawn as a shaded
        band, the 10th to 90th percentile over samples (the range, min to max, below 10 samples).
    reference: optional ``label -> value`` drawn as horizontal dashed lines (a published number).
    """
    if not curves:
        raise ValueError("error_vs_time_figure needs at least one curve")
    fig = _figure((7.0, 4.4))
    ax = fig.subplots()
    for label, values in curves.items():
        values = _np(values)
        t = np.arange(1, len(values) + 1) if times is None else np.asarray(times, dtype=float)
        if len(t) != len(values):
            raise ValueError(f"curve {label!r} has {len(values)} points but {len(t)} times")
        (line,) = ax.plot(t, values, marker="o" if len(values) <= 20 else None, ms=3, label=f"{label} (mean)")
        per_sample = None if spread is None else spread.get(label)
        if per_sample is not None:
            s = _np(per_sample)
            if s.ndim != 2 or s.shape[1] != len(values):
                raise ValueError(f"spread of {label!r} has shape {s.shape}; expected (samples, {len(values)})")
            if s.shape[0] >= 10:
                lo, hi, what = np.percentile(s, 10, axis=0), np.percentile(s, 90, axis=0), "10-90th pct"
            else:
                lo, hi, what = s.min(0), s.max(0), "min-max"
            if s.shape[0] > 1:
                ax.fill_between(
                    t, lo, hi, color=line.get_color(), alpha=0.2, lw=0, label=f"{label}: {what} of {s.shape[0]} samples"
                )
    styles = [(0, (5, 2)), (0, (1, 1)), (0, (3, 1, 1, 1)), (0, (8, 3)), (0, (2, 3))]
    for i, (label, value) in enumerate((reference or {}).items()):
        # reference numbers in the legend (not as in-plot text) so close values stay readable
        ax.axhline(
            float(value),
            ls=styles[i % len(styles)],
            lw=1,
            color=str(0.2 + 0.5 * i / max(1, len(reference))),
            label=f"{label}: {float(value):.4g}",
        )
    ax.set_xlabel("time" if times is not None else "predicted step", fontsize=_FONT["label"])
    ax.set_ylabel(ylabel, fontsize=_FONT["label"])
    ax.tick_params(labelsize=_FONT["tick"])
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=_FONT["tick"] - 1)
    if title:
        ax.set_title(title, fontsize=_FONT["title"])
    return fig


def plot_error_vs_time(
    curves: Mapping[str, Sequence[float]],
    path: str,
    times: Optional[Sequence[float]] = None,
    ylabel: str = "relative L2 error",
    title: str = "",
    reference: Optional[Mapping[str, float]] = None,
    spread: Optional[Mapping[str, Sequence[Sequence[float]]]] = None,
) -> str:
    """:func:`error_vs_time_figure` written to ``path``; returns ``path``."""
    return save_figure(error_vs_time_figure(curves, times, ylabel, title, reference, spread), path)


def energy_spectra_figure(
    spectra: Mapping[str, Sequence[float]], title: str = "", band_edges: Optional[Sequence[float]] = None
) -> Figure:
    """Log-log isotropic spectra ``E(s)`` against the shell ``s`` (shell 0, the mean, is left out).

    spectra: ``label -> (S,)``, e.g. ``{"truth": ..., "prediction": ...}``.
    band_edges: optional interior band edges drawn as vertical lines.
    """
    if not spectra:
        raise ValueError("energy_spectra_figure needs at least one spectrum")
    fig = _figure((7.0, 4.4))
    ax = fig.subplots()
    for label, values in spectra.items():
        values = _np(values)
        shells = np.arange(len(values))
        keep = (shells >= 1) & (values > 0)
        ax.loglog(
            shells[keep],
            values[keep],
            lw=2.0 if label == "truth" else 1.4,
            ls="-" if label == "truth" else "--",
            color="black" if label == "truth" else None,
            label=label,
        )
    edges = [float(e) for e in band_edges or () if np.isfinite(e) and e > 0]
    for i, edge in enumerate(edges):
        ax.axvline(edge, color="gray", lw=0.8, ls=":", label="band edges" if i == 0 else None)
    ax.set_xlabel("wavenumber shell |k| (units of the fundamental)", fontsize=_FONT["label"])
    ax.set_ylabel("E(|k|)", fontsize=_FONT["label"])
    ax.tick_params(labelsize=_FONT["tick"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=_FONT["tick"])
    if title:
        ax.set_title(title, fontsize=_FONT["title"])
    return fig


def plot_energy_spectra(
    spectra: Mapping[str, Sequence[float]], path: str, title: str = "", band_edges: Optional[Sequence[float]] = None
) -> str:
    """:func:`energy_spectra_figure` written to ``path``; returns ``path``."""
    return save_figure(energy_spectra_figure(spectra, title, band_edges), path)


def plot_error_vs_resolution(
    resolutions: Sequence[int],
    errors: Mapping[str, Sequence[Optional[float]]],
    path: str,
    train_resolution: Optional[int] = None,
    title: str = "",
) -> str:
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
    return save_figure(fig, path)


def _figure(size) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)  # attach the raster canvas explicitly: PNG output without pyplot
    return fig


def save_figure(fig: Figure, path: str) -> str:
    """Write ``fig`` as a PNG of exactly ``figsize * DPI`` pixels; returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path
