"""Evaluation: metrics of predictions against the truth, and the ``neuralops-eval`` command.

Core (no checkpoint needed, reused by spectral refinement for before/after columns)::

    from train.evaluate import evaluate
    from train.report import write_report
    result = evaluate(pred, true, grid, "fno_ns_nu1e-3_T50_N1000")    # pred, true: (N, T, X, Y)
    write_report("reports/run1", result, predictions=..., targets=...)

Command::

    neuralops-eval --ckpt CKPT --data PATH --out DIR [--setting KEY] [--split test]

loads a Lightning checkpoint of :class:`train.module.NeuralOperatorModule`, predicts the test
windows of the dataset with the module's own protocol (direct trajectory prediction or
autoregressive rollout), de-normalises, and writes the report folder.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import torch

from . import metrics as M
from .report import setting_info

__all__ = ["evaluate", "main"]


def _band_names(edges: Sequence[float]) -> list:
    if len(edges) == 4:
        return list(M.BAND_NAMES_3)
    return [f"band{b}" for b in range(len(edges) - 1)]


def _times(grid: Any, n_steps: int, times: Optional[Sequence[float]]) -> list:
    """Times of the predicted steps: given, else the last ``n_steps`` entries of ``grid['t']``
    (the protocols predict the end of each trajectory), else step indices 1..T."""
    if times is not None:
        times = [float(t) for t in times]
        if len(times) != n_steps:
            raise ValueError(f"{len(times)} times given for {n_steps} predicted steps")
        return times
    coords = M.grid_coords(grid)
    t = coords.get("t") if coords else None
    if t is not None and len(t) >= n_steps:
        return [float(v) for v in np.asarray(t, dtype=np.float64)[len(t) - n_steps:]]
    return [float(i + 1) for i in range(n_steps)]


def _h1_unavailable(grid: Any) -> Optional[str]:
    """Why relative H1 cannot be computed on this grid, or ``None`` when it can."""
    try:
        M.boundary_kind(grid, None)
    except ValueError as err:
        return f"relative_h1 not computed: {err}"
    return None


def evaluate(predictions: Any, targets: Any, grid: Any = None, setting: Optional[str] = None, *,
             layout: Optional[str] = None, times: Optional[Sequence[float]] = None,
             band_edges: Sequence[float] = M.DEFAULT_BAND_EDGES, relative_h1: Any = "auto",
             chunk_size: int = 16) -> Dict[str, Any]:
    """Every metric of :mod:`train.metrics` for one set of test predictions.

    predictions, targets: tensors or arrays of physical (de-normalised) fields, only the predicted
        frames, in ``layout``: ``"trajectory"`` ``(N, T, X, Y)``, ``"trajectory_channels"``
        ``(N, T, C, X, Y)`` or ``"steady"`` ``(N, C, X, Y)``. Default: the setting's layout.
    grid: ``None``, a :class:`datagen.dataset.Grid` or ``{"x": ..., "y": ...[, "t": ...]}``; spatial
        spacing sets the DFT periods of the spectral metrics and the H1 norm's derivatives, ``t``
        labels the per-step curve.
    setting: a key of :data:`train.report.SETTINGS` (published comparison) or ``None``.
    relative_h1: ``True``, ``False``, or ``"auto"`` (computed when the grid's boundaries are both
        periodic or both Dirichlet, else ``None`` with a note in ``notes``).
    chunk_size: samples per chunk; memory stays bounded for large test sets.

    Returns a JSON-ready dict: ``metrics`` (scalars: means over test samples as each definition
    states; band metrics as ``{band: value}``), ``per_step`` / ``per_channel`` / ``per_sample``
    curves, ``spectrum`` (mean isotropic spectra of prediction and truth), ``definitions``, and the
    shapes, ``times``, ``band_edges`` and ``setting``.
    """
    if setting is not None:
        info = setting_info(setting)
        layout = layout or info["layout"]
    if layout is None:
        raise ValueError("evaluate needs a layout ('trajectory' (N, T, X, Y), 'trajectory_channels' "
                         "(N, T, C, X, Y) or 'steady' (N, C, X, Y)) when no setting is given")
    pred = M.to_canonical(torch.as_tensor(predictions), layout)
    true = M.to_canonical(torch.as_tensor(targets), layout)
    if pred.shape != true.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(true.shape)}")
    if not torch.isfinite(pred).all():
        raise ValueError("predictions contain nan or inf; a diverged model cannot be scored (check the rollout)")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    edges = M.check_band_edges(band_edges)
    n, n_t, n_c, nx, ny = pred.shape
    M.grid_lengths(grid, (nx, ny))  # validate the grid against the fields once, up front

    notes = []
    if relative_h1 == "auto":
        reason = _h1_unavailable(grid)
        do_h1 = reason is None
        if reason:
            notes.append(reason)
    elif relative_h1 in (True, False):
        do_h1 = bool(relative_h1)
    else:
        raise ValueError(f"relative_h1 must be True, False or 'auto', got {relative_h1!r}")

    n_shells = int(M.wavenumber_shells((nx, ny), grid).max()) + 1
    per_sample_l2, per_sample_h1, per_step, per_channel, band_rel = [], [], [], [], []
    rmse_sum = nrmse_sum = 0.0
    nrmse_step = torch.zeros(n_t, dtype=torch.float64)
    band_rmse_sum = torch.zeros(len(edges) - 1, dtype=torch.float64)
    max_err = 0.0
    spec_pred = torch.zeros(n_shells, dtype=torch.float64)
    spec_true = torch.zeros(n_shells, dtype=torch.float64)
    for start in range(0, n, chunk_size):
        p = pred[start:start + chunk_size].double()
        t = true[start:start + chunk_size].double()
        per_sample_l2.append(M.relative_l2_per_sample(p, t))
        per_step.append(M.relative_l2_per_step(p, t))
        per_channel.append(M.relative_l2_per_channel(p, t))
        if do_h1:
            per_sample_h1.append(M.relative_h1_per_sample(p, t, grid))
        rmse_sum += float(M.rmse(p, t).sum())
        nr = M.nrmse(p, t)
        nrmse_sum += float(nr.sum())
        nrmse_step += nr.sum((0, 2))
        max_err = max(max_err, float(M.max_error(p, t).max()))
        band_rel.append(M.spectral_band_relative_error(p, t, edges, grid))
        band_rmse_sum += M.spectral_band_rmse(p, t, edges, grid).sum((0, 1, 2))
        spec_pred += M.isotropic_energy_spectrum(p, grid, n_shells).sum((0, 1, 2))
        spec_true += M.isotropic_energy_spectrum(t, grid, n_shells).sum((0, 1, 2))

    l2 = torch.cat(per_sample_l2)
    steps = torch.cat(per_step)
    channels = torch.cat(per_channel)
    bands = torch.cat(band_rel)
    frames = n * n_t * n_c
    names = _band_names(edges)

    def band_mean(values: torch.Tensor) -> Dict[str, Optional[float]]:
        # bands where the truth has no energy are nan per sample; average over the others
        out = {}
        for b, name in enumerate(names):
            col = values[:, b]
            col = col[~torch.isnan(col)]
            out[name] = float(col.mean()) if col.numel() else None
        return out

    metric_values: Dict[str, Any] = {
        "relative_l2": float(l2.mean()),
        "relative_h1": float(torch.cat(per_sample_h1).mean()) if do_h1 else None,
        "rmse": rmse_sum / frames,
        "nrmse": nrmse_sum / frames,
        "max_error": max_err,
        "spectral_band_relative_error": band_mean(bands),
        "spectral_band_rmse": {name: float(v) / frames for name, v in zip(names, band_rmse_sum)},
    }
    used = ["relative_l2", "relative_l2_per_step", "relative_l2_per_channel", "relative_h1", "rmse", "nrmse",
            "max_error", "spectral_band_relative_error", "spectral_band_rmse", "energy_spectrum"]
    return {
        "setting": setting,
        "layout": layout,
        "n_samples": n, "n_steps": n_t, "n_channels": n_c, "grid_shape": [nx, ny],
        "times": None if layout == "steady" else _times(grid, n_t, times),
        "band_edges": list(edges), "band_names": names,
        "metrics": metric_values,
        "per_step": {"relative_l2": steps.mean(0).tolist(), "nrmse": (nrmse_step / (n * n_c)).tolist()},
        "per_channel": {"relative_l2": channels.mean(0).tolist()},
        "per_sample": {"relative_l2": l2.tolist(), "relative_l2_per_step": steps.tolist()},
        "spectrum": {"shell": list(range(n_shells)), "prediction": (spec_pred / frames).tolist(),
                     "truth": (spec_true / frames).tolist()},
        "definitions": {k: M.METRIC_DEFINITIONS[k] for k in used},
        "notes": notes,
    }


# ------------------------------------------------------------------------------------------------
# neuralops-eval
# ------------------------------------------------------------------------------------------------
def _predicted_times(grid: Mapping[str, Any], io: Mapping[str, Any], n_steps: int) -> Optional[list]:
    """Times of the predicted frames ``start + t_in .. start + t_in + t_out - 1`` (protocol window)."""
    t = (grid.get("coords") or {}).get("t")
    if t is None or io.get("layout") != "trajectory":
        return None
    first = int(io.get("start", 0)) + int(io.get("t_in", 0))
    t = np.asarray(t, dtype=np.float64)
    if first + n_steps > len(t):
        return None
    return [float(v) for v in t[first:first + n_steps]]


_FNO_NS_SETTINGS = {1e-3: "fno_ns_nu1e-3_T50_N1000", 1e-4: "fno_ns_nu1e-4_T30_N10000",
                    1e-5: "fno_ns_nu1e-5_T20_N1000"}


def infer_setting(path: str, io: Optional[dict] = None) -> Optional[str]:
    """The published setting a dataset belongs to, read from its spec: FNO Navier-Stokes data
    (our ``fno`` recipe, or an imported FNO ``.mat`` file) at viscosity 1e-3/1e-4/1e-5 evaluated
    with 10 input frames. ``None`` when the data is not one of the published settings, so a report
    never puts a run next to numbers of a different problem."""
    from datagen.dataset import DatasetError, open_dataset

    try:
        ds = open_dataset(path)
    except DatasetError:
        return None
    spec = ds.spec
    is_fno = spec.get("recipe") == "fno" or spec.get("source") == "fno_mat"
    if ds.pde != "navier_stokes_2d" or not is_fno:
        return None
    in_steps = (io or {}).get("in_steps", (io or {}).get("t_in"))
    if in_steps is not None and int(in_steps) != 10:
        return None
    nu = spec.get("viscosity")
    for value, key in _FNO_NS_SETTINGS.items():
        if nu is not None and abs(float(nu) - value) <= 1e-9:
            return key
    return None


def build_parser() -> argparse.ArgumentParser:
    from .report import SETTINGS

    p = argparse.ArgumentParser(
        prog="neuralops-eval",
        description="Evaluate a neuralops Lightning checkpoint on a data-contract file and write a report "
                    "folder (metrics.json, report.md next to the published numbers, PNG figures).")
    p.add_argument("--ckpt", required=True, help="Lightning checkpoint of train.module.NeuralOperatorModule")
    p.add_argument("--data", default=None,
                   help="data-contract file to evaluate on (all its samples); default: the checkpoint's own split")
    p.add_argument("--out", required=True, help="report folder (created)")
    p.add_argument("--setting", default=None, choices=sorted(SETTINGS),
                   help="benchmark setting whose published numbers go next to the run (default: none)")
    p.add_argument("--split", default="test", choices=("test", "val"),
                   help="split of the checkpoint's data module to predict (default: test)")
    p.add_argument("--batch-size", type=int, default=None, help="evaluation batch size")
    p.add_argument("--device", default="cpu", help="torch device for the forward passes (default: cpu)")
    p.add_argument("--sample", type=int, default=0, help="test sample shown in fields.png (default: 0)")
    p.add_argument("--channel", type=int, default=0, help="channel shown in fields.png (default: 0)")
    p.add_argument("--frames", type=int, default=4, help="time frames shown in fields.png (default: 4)")
    p.add_argument("--figure-samples", type=int, default=4,
                   help="steady data: test samples (rows) shown in fields.png from --sample on (default: 4)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    import os

    from .module import predict_split
    from .report import write_report

    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.ckpt):
        print(f"neuralops-eval: checkpoint {args.ckpt!r} does not exist", file=sys.stderr)
        return 2
    if args.data is not None and not os.path.exists(args.data):
        print(f"neuralops-eval: data file {args.data!r} does not exist", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        pred = predict_split(args.ckpt, data=args.data, split=args.split, batch_size=args.batch_size,
                             device=args.device)
    except (ValueError, KeyError, TypeError) as err:
        print(f"neuralops-eval: cannot predict with {args.ckpt!r}: {err}", file=sys.stderr)
        return 2
    seconds_predict = time.perf_counter() - t0
    if args.setting is None:
        args.setting = infer_setting(pred["path"], pred["io"])
        if args.setting is not None:
            print(f"neuralops-eval: comparing with published setting {args.setting} (from the dataset's spec; "
                  f"--setting overrides)")
    prediction, target, grid, io = pred["prediction"], pred["target"], dict(pred["grid"]), pred["io"]
    axes = (io.get("grid") or {}).values()
    if axes:  # the data module's node convention (Dirichlet walls included or not) for the H1 norm
        grid["includes_boundary"] = all(bool(a.get("includes_boundary")) for a in axes)
    n, n_t, n_c = prediction.shape[:3]
    if not 0 <= args.sample < n or not 0 <= args.channel < n_c:
        print(f"neuralops-eval: --sample {args.sample} / --channel {args.channel} out of range "
              f"({n} samples, {n_c} channels)", file=sys.stderr)
        return 2
    t1 = time.perf_counter()
    if io.get("layout") == "steady":  # (N, 1, C, X, Y) -> (N, C, X, Y): the report then says "steady"
        result = evaluate(prediction[:, 0], target[:, 0], grid, args.setting, layout="steady")
    else:
        result = evaluate(prediction, target, grid, args.setting, layout="trajectory_channels",
                          times=_predicted_times(grid, io, n_t))
    seconds_metrics = time.perf_counter() - t1
    extra = {"ckpt": os.path.abspath(args.ckpt), "data": os.path.abspath(pred["path"]), "split": args.split,
             "model": pred["model_name"], "sample_indices": [int(i) for i in np.asarray(pred["indices"]).ravel()],
             "data_io": {k: v for k, v in io.items() if k != "test_indices"},
             "seconds": {"predict": seconds_predict, "metrics": seconds_metrics}, "device": args.device}
    paths = write_report(args.out, result, setting=args.setting, predictions=prediction, targets=target,
                         sample=args.sample, channel=args.channel, n_frames=args.frames,
                         inputs=pred.get("input"), input_labels=io.get("inputs"), n_samples=args.figure_samples,
                         title=f"Evaluation of {pred['model_name']} ({os.path.basename(args.ckpt)})", extra=extra)
    m = result["metrics"]
    h1 = "n/a" if m["relative_h1"] is None else f"{m['relative_h1']:.4g}"
    print(f"neuralops-eval: {pred['model_name']} on {n} samples x {n_t} steps: relative L2 {m['relative_l2']:.4g}, "
          f"relative H1 {h1}, nRMSE {m['nrmse']:.4g}")
    print(f"report: {os.path.abspath(paths['report_md'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
