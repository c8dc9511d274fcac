"""Evaluation: metrics of predictions against the truth, and the ``neuralops-eval`` command.

Core (no checkpoint needed, reused by spectral refinement for before/after columns)::

    from train.evaluate import evaluate
    from train.report import write_report
    result = evaluate(pred, true, grid, "fno_ns_nu1e-3_T50_N1000")    # pred, true: (N, T, X, Y)
    write_report("reports/run1", result, predictions=..., targets=...)

Command::

    neuralops-eval --ckpt CKPT [--data FILE [FILE ...]] --out DIR [--setting KEY] [--split test]

loads a Lightning checkpoint of :class:`train.module.NeuralOperatorModule`, predicts the test
windows of each dataset with the module's own protocol (direct trajectory prediction or
autoregressive rollout), de-normalises, and writes the report folder. Files may have another
resolution than the training data (zero-shot super-resolution, for the models that take it);
with several files, the top report tabulates and plots the error against resolution and each
file gets its own report folder. A run is put next to published numbers only when it matches
their protocol (viscosity, input and output frames, training-set size: :func:`match_setting`);
otherwise the report says why not.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

if __name__ == "__main__":  # `python -m train.evaluate`: the allocator is set before torch is imported
    from datagen.allocator import ensure

    ensure()

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
    t = grid.times if grid is not None else None
    if t is not None and len(t) >= n_steps:
        return [float(v) for v in np.asarray(t, dtype=np.float64)[len(t) - n_steps :]]
    return [float(i + 1) for i in range(n_steps)]


def _h1_unavailable(grid) -> Optional[str]:
    """Why relative H1 cannot be computed on this grid, or ``None`` when it can."""
    if grid is None or grid.sobolev_boundary() is not None:
        return None
    return (
        f"relative_h1 not computed: it needs 'periodic' or 'dirichlet' boundaries, the same on x and y; the "
        f"grid has {grid.boundaries}"
    )


def evaluate(
    predictions: Any,
    targets: Any,
    grid: Any = None,
    setting: Optional[str] = None,
    *,
    layout: Optional[str] = None,
    times: Optional[Sequence[float]] = None,
    band_edges: Sequence[float] = M.DEFAULT_BAND_EDGES,
    relative_h1: Any = "auto",
    chunk_size: int = 16,
    progress: Any = None,
) -> Dict[str, Any]:
    """Every metric of :mod:`train.metrics` for one set of test predictions.

    predictions, targets: tensors or arrays of physical (de-normalised) fields, only the predicted
        frames, in ``layout``: ``"trajectory"`` ``(N, T, X, Y)``, ``"trajectory_channels"``
        ``(N, T, C, X, Y)`` or ``"steady"`` ``(N, C, X, Y)``. Default: the setting's layout.
    grid: ``None``, a :class:`datagen.contract.Grid`, a :class:`datagen.dataset.Grid` or ``{"x": ...,
        "y": ...[, "t": ...]}`` (converted once by :func:`train.metrics.as_grid`); spatial
        spacing sets the DFT periods of the spectral metrics and the H1 norm's derivatives, ``t``
        labels the per-step curve.
    setting: a key of :data:`train.report.SETTINGS` (published comparison) or ``None``.
    relative_h1: ``True``, ``False``, or ``"auto"`` (computed when the grid's boundaries are both
        periodic or both Dirichlet, else ``None`` with a note in ``notes``).
    chunk_size: samples per chunk; memory stays bounded for large test sets.
    progress: ``None`` or a callable ``progress(done, total)`` called with the samples done.

    Returns a JSON-ready dict: ``metrics`` (scalars: means over test samples as each definition
    states; band metrics as ``{band: value}``), ``per_step`` / ``per_channel`` / ``per_sample``
    curves, ``spectrum`` (mean isotropic spectra of prediction and truth), ``definitions``, and the
    shapes, ``times``, ``band_edges`` and ``setting``.
    """
    if setting is not None:
        info = setting_info(setting)
        layout = layout or info["layout"]
    if layout is None:
        raise ValueError(
            "evaluate needs a layout ('trajectory' (N, T, X, Y), 'trajectory_channels' "
            "(N, T, C, X, Y) or 'steady' (N, C, X, Y)) when no setting is given"
        )
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
    grid = M.as_grid(grid)
    if grid is not None:
        grid.check_shape((nx, ny))  # validate the grid against the fields once, up front

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
        p = pred[start : start + chunk_size].double()
        t = true[start : start + chunk_size].double()
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
        if progress is not None:
            progress(min(start + chunk_size, n), n)

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
    used = [
        "relative_l2",
        "relative_l2_per_step",
        "relative_l2_per_channel",
        "relative_h1",
        "rmse",
        "nrmse",
        "max_error",
        "spectral_band_relative_error",
        "spectral_band_rmse",
        "energy_spectrum",
    ]
    return {
        "setting": setting,
        "layout": layout,
        "n_samples": n,
        "n_steps": n_t,
        "n_channels": n_c,
        "grid_shape": [nx, ny],
        "times": None if layout == "steady" else _times(grid, n_t, times),
        "band_edges": list(edges),
        "band_names": names,
        "metrics": metric_values,
        "per_step": {"relative_l2": steps.mean(0).tolist(), "nrmse": (nrmse_step / (n * n_c)).tolist()},
        "per_channel": {"relative_l2": channels.mean(0).tolist()},
        "per_sample": {"relative_l2": l2.tolist(), "relative_l2_per_step": steps.tolist()},
        "spectrum": {
            "shell": list(range(n_shells)),
            "prediction": (spec_pred / frames).tolist(),
            "truth": (spec_true / frames).tolist(),
        },
        "definitions": {k: M.METRIC_DEFINITIONS[k] for k in used},
        "notes": notes,
    }


# ------------------------------------------------------------------------------------------------
# neuralops-eval
# ------------------------------------------------------------------------------------------------
def _predicted_times(grid, io: Mapping[str, Any], n_steps: int) -> Optional[list]:
    """Times of the predicted frames ``start + t_in .. start + t_in + t_out - 1`` (protocol window)."""
    t = grid.times
    if t is None or io.get("layout") != "trajectory":
        return None
    first = int(io.get("start", 0)) + int(io.get("t_in", 0))
    t = np.asarray(t, dtype=np.float64)
    if first + n_steps > len(t):
        return None
    return [float(v) for v in t[first : first + n_steps]]


#: training epochs of the FNO paper's Navier-Stokes runs (Li et al. 2021, section 5: Adam, 500 epochs)
PUBLISHED_EPOCHS = 500
#: the published FNO Navier-Stokes protocols (Li et al. 2020): viscosity, input and output frames, training samples
FNO_NS_PROTOCOLS: Dict[str, Dict[str, float]] = {
    "fno_ns_nu1e-3_T50_N1000": {"viscosity": 1e-3, "t_in": 10, "t_out": 40, "n_train": 1000},
    "fno_ns_nu1e-4_T30_N10000": {"viscosity": 1e-4, "t_in": 10, "t_out": 20, "n_train": 10000},
    "fno_ns_nu1e-5_T20_N1000": {"viscosity": 1e-5, "t_in": 10, "t_out": 10, "n_train": 1000},
}
_PROTOCOL_LABELS = {
    "viscosity": "viscosity",
    "t_in": "input frames",
    "t_out": "predicted frames",
    "n_train": "training samples",
}


def _run_protocol(path: str, io: Optional[Mapping[str, Any]], n_train: Optional[int]) -> Dict[str, Any]:
    """What a run is, for matching against the published protocols: the data's PDE, whether it is
    FNO Navier-Stokes data (our ``fno`` recipe or an imported FNO ``.mat``), its viscosity, and
    the run's input/output frames and training-set size."""
    from datagen.dataset import DatasetError, open_dataset
    from datagen.spec import Spec

    io = dict(io or {})
    out: Dict[str, Any] = {
        "pde": None,
        "fno_data": False,
        "viscosity": None,
        "t_in": io.get("in_steps", io.get("t_in")),
        "t_out": io.get("out_steps", io.get("t_out")),
        "n_train": n_train if n_train is not None else io.get("n_train"),
    }
    try:
        ds = open_dataset(path)
    except DatasetError:
        return out
    try:
        spec = Spec.from_stored(ds.spec, pde=ds.pde)  # sectioned, or the flat form of earlier versions
        out["pde"] = ds.pde
        out["fno_data"] = ds.pde == "navier_stokes_2d" and (
            spec.get("recipe") == "fno" or spec.get("source") == "fno_mat"
        )
        out["viscosity"] = spec.get("viscosity")
    finally:
        ds.close()
    return out


def protocol_differences(setting: str, run: Mapping[str, Any]) -> List[str]:
    """How a run differs from a published protocol (``[]``: it matches; unknown values differ)."""
    want = FNO_NS_PROTOCOLS.get(setting)
    if want is None:
        return []
    diffs = []
    if not run.get("fno_data"):
        diffs.append(
            f"data: {run.get('pde') or 'unknown'} data that is not FNO Navier-Stokes data (recipe 'fno' or "
            "an imported FNO .mat)"
        )
    for key, value in want.items():
        have = run.get(key)
        same = have is not None and (
            abs(float(have) - value) <= 1e-9 * max(1.0, abs(value)) if key == "viscosity" else int(have) == int(value)
        )
        if not same:
            shown = "unknown" if have is None else (f"{float(have):g}" if key == "viscosity" else str(int(have)))
            diffs.append(f"{_PROTOCOL_LABELS[key]} {shown} (published: {value:g})")
    return diffs


def match_setting(
    path: str, io: Optional[Mapping[str, Any]] = None, n_train: Optional[int] = None
) -> Tuple[Optional[str], str]:
    """``(setting, reason)``: the published setting a run matches by viscosity, input length,
    output length and training-set size (on FNO Navier-Stokes data), or ``None`` and why not, so
    a report never puts a run next to numbers of another protocol."""
    run = _run_protocol(path, io, n_train)
    if not run["fno_data"]:
        return None, (
            f"no published comparison: the published tables are for FNO Navier-Stokes data and this is "
            f"{run['pde'] or 'an unreadable file'}"
            + ("" if run["pde"] != "navier_stokes_2d" else " from another recipe")
            + " (give --setting KEY to compare anyway; the report then lists the differences)"
        )
    candidates = []
    for key in FNO_NS_PROTOCOLS:
        diffs = protocol_differences(key, run)
        if not diffs:
            return key, (
                f"matches the published setting {key}: viscosity {run['viscosity']:g}, {run['t_in']} -> "
                f"{run['t_out']} frames, {run['n_train']} training samples"
            )
        candidates.append((len(diffs), key, diffs))
    _, key, diffs = min(candidates)
    return None, (
        f"no published comparison: no published setting has this protocol; the closest, {key}, differs in "
        f"{'; '.join(diffs)}"
    )


def infer_setting(path: str, io: Optional[dict] = None, n_train: Optional[int] = None) -> Optional[str]:
    """The published setting a run belongs to (:func:`match_setting`), or ``None``."""
    return match_setting(path, io, n_train)[0]


def build_parser() -> argparse.ArgumentParser:
    from .report import SETTINGS

    p = argparse.ArgumentParser(
        prog="neuralops-eval",
        description="Evaluate a neuralops Lightning checkpoint on data-contract files and write a report "
        "folder (metrics.json, report.md next to the published numbers of a matching protocol, PNG "
        "figures). Data at another resolution than the training data is evaluated as it is "
        "(zero-shot super-resolution, for models that take any grid: FNO, SFNO, MgNO where its "
        "multigrid allows); given several files, the report tabulates the error against resolution.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--ckpt", required=True, help="Lightning checkpoint of train.module.NeuralOperatorModule")
    p.add_argument(
        "--data",
        default=None,
        nargs="+",
        metavar="FILE",
        help="data-contract file(s) to evaluate on (all samples of each; any resolution the model takes); "
        "default: the checkpoint's own split",
    )
    p.add_argument("--out", required=True, help="report folder (created)")
    p.add_argument(
        "--setting",
        default=None,
        choices=sorted(SETTINGS),
        help="published setting to compare with (default: the one whose protocol the run matches, if any)",
    )
    p.add_argument(
        "--split", default="test", choices=("test", "val"), help="split of the checkpoint's data module to predict"
    )
    p.add_argument("--batch-size", type=int, default=None, help="evaluation batch size")
    p.add_argument("--device", default="cpu", help="torch device for the forward passes")
    p.add_argument("--sample", type=int, default=0, help="test sample shown in fields.png")
    p.add_argument("--channel", type=int, default=0, help="channel shown in fields.png")
    p.add_argument("--frames", type=int, default=4, help="time frames shown in fields.png")
    p.add_argument(
        "--figure-samples",
        type=int,
        default=4,
        help="steady data: test samples (rows) shown in fields.png from --sample on",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress (default: a line updated in place on a terminal, periodic lines in a log, "
        "every NEURALOPS_PROGRESS_INTERVAL seconds)",
    )
    return p


def _res(r: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in r)


class _Progress:
    """A progress bar (:func:`datagen.progress.progress_bar`: in place on a terminal, periodic lines
    in a log) created at the first ``bar(done, total)`` call, closed on exit; off when ``off``."""

    def __init__(self, desc: str, unit: str, off: bool):
        self.desc, self.unit, self.off, self.bar = desc, unit, off, None

    def __enter__(self):
        return None if self.off else self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from datagen.progress import progress_bar

            self.bar = progress_bar(total=total, desc=self.desc, unit=self.unit)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


def _evaluate_one(args, data: Optional[str], out_dir: str) -> Dict[str, Any]:
    """Predict one file (or the checkpoint's split), evaluate, write its report; return a summary row."""
    import os

    from .module import predict_split
    from .report import write_report

    name = os.path.basename(data) if data else f"the checkpoint's {args.split} split"
    t0 = time.perf_counter()
    with _Progress(f"neuralops-eval: predicting {name}", "batch", args.no_progress) as bar:
        pred = predict_split(
            args.ckpt, data=data, split=args.split, batch_size=args.batch_size, device=args.device, progress=bar
        )
    seconds_predict = time.perf_counter() - t0
    prediction, target, grid, io = pred["prediction"], pred["target"], pred["grid"], pred["io"]
    setting, why = args.setting, None
    run = _run_protocol(pred["path"], io, pred["n_train"])
    notes = []
    this_run = f"this run: {pred['n_train']} training samples, {pred['epochs']} epoch(s)"
    if setting is None:
        setting, why = match_setting(pred["path"], io, pred["n_train"])
        if setting is not None:
            why += f"; {this_run} (the paper trains {PUBLISHED_EPOCHS} epochs)"
        published_protocol = None
    elif setting not in FNO_NS_PROTOCOLS:
        # only the FNO Navier-Stokes protocols are known field by field: say that nothing was checked
        published_protocol = f"protocol not checked ({this_run})"
        why = (
            f"compared with {setting} as asked (--setting); neuralops-eval does not check this setting's "
            f"protocol ({setting_info(setting)['benchmark']}); {this_run}"
        )
        notes.append(f"the published numbers' protocol is not checked against this run ({this_run})")
    else:
        diffs = protocol_differences(setting, run)
        why = (
            f"compared with {setting} as asked (--setting), but the protocol differs: {'; '.join(diffs)}"
            if diffs
            else f"compared with {setting} as asked (--setting); the protocol matches; {this_run}"
        )
        published_protocol = f"another protocol: {'; '.join(diffs)}" if diffs else None
        if diffs:
            notes.append(f"the published numbers come from another protocol: {'; '.join(diffs)}")
    n, n_t, n_c = prediction.shape[:3]
    if not 0 <= args.sample < n or not 0 <= args.channel < n_c:
        raise ValueError(
            f"--sample {args.sample} / --channel {args.channel} out of range ({n} samples, {n_c} channels)"
        )
    t1 = time.perf_counter()
    with _Progress("neuralops-eval: metrics", "sample", args.no_progress) as bar:
        if io.get("layout") == "steady":  # (N, 1, C, X, Y) -> (N, C, X, Y): the report then says "steady"
            result = evaluate(prediction[:, 0], target[:, 0], grid, setting, layout="steady", progress=bar)
        else:
            result = evaluate(
                prediction,
                target,
                grid,
                setting,
                layout="trajectory_channels",
                times=_predicted_times(grid, io, n_t),
                progress=bar,
            )
    result["notes"] = list(result.get("notes", [])) + notes
    result["published_protocol"] = published_protocol  # report.md marks the published rows with it
    seconds_metrics = time.perf_counter() - t1
    idx = np.asarray(pred["indices"]).ravel()
    zero_shot = list(pred["resolution"]) != list(pred["train_resolution"])
    context = [
        f"checkpoint: `{os.path.abspath(args.ckpt)}` ({pred['model_name']}, {pred['epochs']} epoch(s), "
        f"{pred['global_step']} steps)",
        f"training data: `{io.get('train_path')}`, {pred['n_train']} samples, grid {_res(pred['train_resolution'])}"
        + (f"; {(io.get('splits') or {}).get('note')}" if (io.get("splits") or {}).get("note") else ""),
        f"evaluated data: `{os.path.abspath(pred['path'])}`, {args.split} split, {n} samples "
        f"(indices {int(idx.min()) if idx.size else 0}..{int(idx.max()) if idx.size else -1}), grid "
        f"{_res(pred['resolution'])}" + (" (another resolution than training: zero-shot)" if zero_shot else ""),
        f"published comparison: {why}",
    ]
    extra = {
        "ckpt": os.path.abspath(args.ckpt),
        "data": os.path.abspath(pred["path"]),
        "split": args.split,
        "model": pred["model_name"],
        "sample_indices": [int(i) for i in idx],
        "train_resolution": pred["train_resolution"],
        "resolution": pred["resolution"],
        "n_train": pred["n_train"],
        "epochs": pred["epochs"],
        "global_step": pred["global_step"],
        "setting_match": why,
        "data_io": {k: v for k, v in io.items() if k != "test_indices"},
        "seconds": {"predict": seconds_predict, "metrics": seconds_metrics},
        "device": args.device,
    }
    t2 = time.perf_counter()
    if not args.no_progress:
        print(f"neuralops-eval: writing {out_dir} (report.md, metrics.json, figures) ...", file=sys.stderr, flush=True)
    paths = write_report(
        out_dir,
        result,
        setting=setting,
        predictions=prediction,
        targets=target,
        sample=args.sample,
        channel=args.channel,
        n_frames=args.frames,
        inputs=pred.get("input"),
        input_labels=io.get("inputs"),
        n_samples=args.figure_samples,
        title=f"Evaluation of {pred['model_name']} ({os.path.basename(args.ckpt)})",
        extra=extra,
        context=context,
    )
    if not args.no_progress:
        print(f"neuralops-eval: report written in {time.perf_counter() - t2:.1f} s", file=sys.stderr, flush=True)
    m = result["metrics"]
    h1 = "n/a" if m["relative_h1"] is None else f"{m['relative_h1']:.4g}"
    print(
        f"neuralops-eval: {pred['model_name']} on {n} samples x {n_t} steps of {os.path.basename(pred['path'])} "
        f"({_res(pred['resolution'])}; trained on {_res(pred['train_resolution'])}): relative L2 "
        f"{m['relative_l2']:.4g}, relative H1 {h1}, nRMSE {m['nrmse']:.4g}"
    )
    if setting is None:
        print(f"neuralops-eval: {why}")
    elif args.setting is None:
        print(f"neuralops-eval: comparing with published setting {setting} ({why})")
    return {
        "data": os.path.abspath(pred["path"]),
        "resolution": list(pred["resolution"]),
        "n_samples": n,
        "relative_l2": m["relative_l2"],
        "relative_h1": m["relative_h1"],
        "nrmse": m["nrmse"],
        "report": os.path.abspath(paths["report_md"]),
        "train_resolution": list(pred["train_resolution"]),
        "model": pred["model_name"],
    }


def resolution_report(rows: Sequence[Mapping[str, Any]], out_dir: str, ckpt: str) -> Dict[str, str]:
    """Top-level report of an evaluation on several files: error against resolution (table and
    plot), one row per file, and links to each file's own report."""
    import json
    import os

    from . import plots
    from .report import _fmt, _table

    os.makedirs(out_dir, exist_ok=True)
    train_res = rows[0]["train_resolution"]
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["resolution"][0], rows[i]["data"]))
    table = [
        [
            _res(rows[i]["resolution"]) + (" (training grid)" if rows[i]["resolution"] == train_res else ""),
            str(rows[i]["n_samples"]),
            _fmt(rows[i]["relative_l2"]),
            _fmt(rows[i]["relative_h1"]),
            _fmt(rows[i]["nrmse"]),
            f"`{os.path.basename(rows[i]['data'])}`",
            f"[report]({os.path.relpath(rows[i]['report'], out_dir)})",
        ]
        for i in order
    ]
    figure = plots.plot_error_vs_resolution(
        [rows[i]["resolution"][0] for i in order],
        {
            "relative L2": [rows[i]["relative_l2"] for i in order],
            **(
                {"relative H1": [rows[i]["relative_h1"] for i in order]}
                if any(r["relative_h1"] is not None for r in rows)
                else {}
            ),
        },
        os.path.join(out_dir, "error_vs_resolution.png"),
        train_resolution=train_res[0],
        title=f"{rows[0]['model']} trained on {_res(train_res)}: error vs test resolution",
    )
    lines = [
        f"# Error against resolution: {rows[0]['model']} ({os.path.basename(ckpt)})",
        "",
        f"- checkpoint: `{os.path.abspath(ckpt)}`",
        f"- training grid: {_res(train_res)}",
        f"- test files: {len(rows)}; the model is applied unchanged at each grid (zero-shot super-resolution "
        "where the grid differs from the training grid)",
        "",
        *_table(["test grid", "samples", "relative_l2", "relative_h1", "nrmse", "file", "details"], table),
        "",
        f"![error vs resolution]({os.path.basename(figure)})",
        "",
    ]
    paths = {
        "report_md": os.path.join(out_dir, "report.md"),
        "metrics_json": os.path.join(out_dir, "metrics.json"),
        "error_vs_resolution": figure,
    }
    with open(paths["report_md"], "w") as f:
        f.write("\n".join(lines))
    with open(paths["metrics_json"], "w") as f:
        json.dump(
            {"ckpt": os.path.abspath(ckpt), "train_resolution": train_res, "rows": [rows[i] for i in order]},
            f,
            indent=1,
        )
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    import os

    from datagen.dataset import DatasetError

    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.ckpt):
        print(f"neuralops-eval: checkpoint {args.ckpt!r} does not exist", file=sys.stderr)
        return 2
    files = args.data or [None]
    for path in files:
        if path is not None and not os.path.exists(path):
            print(f"neuralops-eval: data file {path!r} does not exist", file=sys.stderr)
            return 2
    rows = []
    try:
        for k, path in enumerate(files):
            if len(files) == 1:
                out = args.out
            else:
                stem = os.path.splitext(os.path.basename(path))[0]
                out = os.path.join(args.out, f"{k:02d}_{stem}")
            rows.append(_evaluate_one(args, path, out))
    except (ValueError, KeyError, TypeError, DatasetError) as err:
        print(f"neuralops-eval: cannot evaluate {args.ckpt!r}: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    if len(rows) > 1:
        paths = resolution_report(rows, args.out, args.ckpt)
        print(
            "neuralops-eval: error vs resolution: "
            + ", ".join(f"{_res(r['resolution'])} {r['relative_l2']:.4g}" for r in rows)
        )
        print(f"report: {os.path.abspath(paths['report_md'])}")
    else:
        print(f"report: {rows[0]['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
