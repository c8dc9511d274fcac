"""``neuralops-train refine``: spectral refinement of a trained SFNO on a Navier-Stokes dataset.

::

    neuralops-train refine --ckpt runs/sfno/last.ckpt --data data/ns_refiner_test.h5 \\
        --steps 60 --out reports/sfno_refined [--indices 0:20] [--eval-resolution 128]

For each selected trajectory: the first ``T_in`` snapshots (from the checkpoint's window, or
``--t-in``) go into the SFNO, the next ``T_out`` are predicted, and the output layer is refined
(:class:`train.refine.refine.SpectralRefiner`). Writes into ``--out``:

* ``refined.h5`` (data contract): ``prediction_before`` / ``prediction_after`` ``(N, T_out, X, Y)``,
  per-sample ``residual_before`` / ``residual_after`` / ``relative_l2_before`` / ``relative_l2_after``
  and refinement ``seconds``; the spec holds the checkpoint, the data and the whole configuration;
* the evaluation report (``train.report.write_report``) with "before refinement" and "after
  refinement" columns: every metric of :func:`train.evaluate.evaluate` plus ``residual_h_minus1``.

With ``--eval-resolution M`` (zero-shot super-resolution) the inputs are spectrally interpolated to
``M x M``, the model is evaluated and refined there (modes up to ``M // 3``) and the residual is
measured there; errors against the ground truth are taken on the data grid after spectral
restriction of the prediction.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
import torch

from datagen.navier_stokes import spectral

from datagen.navier_stokes.resample import fourier_resample

from .refine import OPTIMIZERS, Physics, RefineConfig, SpectralRefiner, check_sfno
from .residual import LINEARIZATIONS
from .time_derivative import TIME_DERIVATIVES

__all__ = ["RESIDUAL_DEFINITION", "refine_arrays", "build_parser", "main"]

RESIDUAL_DEFINITION = (
    "Navier-Stokes residual R = w_t + u.grad w - nu Lap w (+ alpha w with drag) - f of the predicted trajectory (time "
    "derivative by finite differences on the snapshot grid, the last input frames in front; "
    "pseudo-spectral in space with the generator's operators, on the 2/3-rule dealiased band), "
    "per sample sqrt(mean over predicted snapshots of ||R(t)||_{H^-1}^2) with ||u||_{H^-1}^2 = "
    "sum_k (1 + 4 pi^2 |k|^2)^-1 |u_k|^2 on the unit torus (|k / L|^2 on a box of side L); mean over samples")


def refine_arrays(refiner: SpectralRefiner, inputs: torch.Tensor, targets: Optional[torch.Tensor],
                  t_out: int, batch_size: int = 1, eval_resolution: Optional[int] = None,
                  device: str = "cpu", use_targets_in_loss: bool = False,
                  log: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Refine on every trajectory of ``inputs`` (physical ``(N, T_in, X, X)``).

    Returns ``before`` / ``after`` predictions on the data grid ``(N, T_out, X, X)`` (float64,
    CPU), ``residual_before`` / ``residual_after`` ``(N,)`` (on the refinement grid), ``seconds``
    ``(N,)`` (refinement only, per trajectory), ``history`` (objective values per refinement),
    ``residual_truth`` ``(N,)``: the ground truth's own residual (the floor of what refinement can
    reach with this time discretisation), when ``targets`` are given.
    """
    n_data = inputs.shape[-1]
    n = eval_resolution or n_data
    if n < n_data:
        raise ValueError(f"eval_resolution={n} is coarser than the data grid ({n_data}); use >= {n_data}")
    # refine in double precision when the residual is: the latent is computed once, and CG's
    # curvature probes (gradient differences) need more than float32's 7 digits
    refiner.model.to(device=device, dtype=getattr(torch, refiner.config.residual_dtype))
    refiner.prepare(n, t_out)
    param_dtype = next(refiner.model.parameters()).dtype
    before, after, res_b, res_a, res_t, secs, hist = [], [], [], [], [], [], []
    for start in range(0, inputs.shape[0], batch_size):
        phys = fourier_resample(inputs[start:start + batch_size].to(torch.float64), n)
        phys = phys.to(device=device, dtype=param_dtype)
        x = refiner.encode(phys)
        tgt = None
        if use_targets_in_loss and targets is not None:
            tgt = fourier_resample(targets[start:start + batch_size].to(torch.float64), n).to(device)
        out = refiner.refine(x, phys, t_out, target=tgt)
        if targets is not None:
            # the floor: the ground truth's own residual with the same discretisation
            truth = fourier_resample(targets[start:start + batch_size].to(torch.float64), n)
            with torch.no_grad():
                z = refiner.trajectory(phys, truth.to(device=device, dtype=phys.dtype))
                res_t.append(refiner.residual_sq(z, t_out).mean(dim=1).sqrt().cpu())
        before.append(fourier_resample(out["prediction_before"].detach().double().cpu(), n_data))
        after.append(fourier_resample(out["prediction"].detach().double().cpu(), n_data))
        res_b.append(out["residual_before"].cpu())
        res_a.append(out["residual_after"].cpu())
        secs.append(out["seconds"])
        hist.extend(out["history"])
        if log:
            log(f"trajectories {start}..{start + phys.shape[0] - 1}: residual "
                f"{float(res_b[-1].mean()):.3e} -> {float(res_a[-1].mean()):.3e} "
                f"({float(secs[-1].mean()):.2f} s per trajectory)")
    return {"before": torch.cat(before), "after": torch.cat(after),
            "residual_before": torch.cat(res_b), "residual_after": torch.cat(res_a),
            "residual_truth": torch.cat(res_t) if res_t else None,
            "seconds": torch.cat(secs), "history": hist, "resolution": n}


# --------------------------------------------------------------------------------------------
# checkpoint and data
# --------------------------------------------------------------------------------------------
def load_sfno_checkpoint(path: str, map_location: str = "cpu"):
    """``(model, info)`` from a Lightning checkpoint of :class:`train.module.NeuralOperatorModule`.

    ``info``: ``encode`` / ``decode`` (the module's normalisation, physical <-> model variables),
    ``t_in`` / ``t_out`` (the window it was trained on, when recorded), ``model_name``.
    Raises ``TypeError`` when the checkpoint's model is not an SFNO.
    """
    from train.module import load_for_refinement

    model, info = load_for_refinement(path, map_location=map_location)
    check_sfno(model, where=f"the model in checkpoint {path!r} ({info.get('model_name', '?')})")
    return model, info


def physics_from_dataset(ds) -> Physics:
    """Viscosity, snapshot spacing, box and forcing of a Navier-Stokes dataset (data contract)."""
    if ds.pde not in ("navier_stokes_2d", "navier_stokes"):
        raise ValueError(f"refinement needs a Navier-Stokes dataset, {ds.path!r} holds pde={ds.pde!r}")
    return spectral.physics_from_spec(ds.spec, ds.grid)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="neuralops-train refine",
        description="Spectral refinement of a trained SFNO against the H^-1 Navier-Stokes residual.")
    p.add_argument("--ckpt", required=True, help="Lightning checkpoint of an SFNO (neuralops-train fit)")
    p.add_argument("--data", required=True, help="Navier-Stokes dataset (neuralops-datagen navier-stokes)")
    p.add_argument("--out", required=True, help="output folder (refined.h5 and the report)")
    p.add_argument("--steps", type=int, default=60, help="optimiser steps per trajectory (default 60)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="cg",
                   help="cg: conjugate gradients on each convex subproblem (default); adam; sgd")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate for adam/sgd")
    p.add_argument("--linearization", choices=LINEARIZATIONS, default="newton",
                   help="newton (Gauss-Newton, default) / picard: convex subproblems; none: full objective")
    p.add_argument("--relinearize-every", type=int, default=20, help="steps per convex subproblem")
    p.add_argument("--preconditioner", choices=("jacobi", "none"), default="jacobi",
                   help="for cg: Jacobi (diagonal) preconditioning (default) or none")
    p.add_argument("--data-weight", type=float, default=0.0,
                   help="weight of the relative data term (needs the ground truth; default 0: residual only)")
    p.add_argument("--modes", type=int, nargs=3, metavar=("MX", "MY", "MT"), default=None,
                   help="modes of the widened output layer (default: dealiasing limit, all temporal)")
    p.add_argument("--time-derivative", choices=TIME_DERIVATIVES, default="fd")
    p.add_argument("--fd-order", type=int, default=6, help="order of the finite-difference time derivative")
    p.add_argument("--context", type=int, default=None,
                   help="input frames in front of the prediction for the time stencils (default: fd-order)")
    p.add_argument("--per", choices=("trajectory", "batch"), default="trajectory")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--indices", default=None,
                   help="trajectories to refine: 'a:b' or 'i,j,k' (default: the checkpoint's test split, else all)")
    p.add_argument("--t-in", type=int, default=None, help="input frames (default: the checkpoint's)")
    p.add_argument("--t-out", type=int, default=None, help="predicted frames (default: the checkpoint's)")
    p.add_argument("--start", type=int, default=None, help="first input frame (default: the checkpoint's)")
    p.add_argument("--eval-resolution", type=int, default=None,
                   help="refine on a finer M x M grid (zero-shot super-resolution)")
    p.add_argument("--residual-dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--device", default="cpu")
    p.add_argument("--setting", default=None, help="published-comparison setting key for the report")
    return p


def _parse_indices(text: Optional[str], n: int, default: Optional[Sequence[int]]) -> np.ndarray:
    if text is None:
        idx = np.arange(n) if default is None else np.asarray(default, dtype=np.int64)
    elif ":" in text:
        a, b = text.split(":")
        idx = np.arange(int(a or 0), int(b) if b else n)
    else:
        idx = np.array([int(v) for v in text.split(",") if v.strip()])
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"--indices {text!r} selects nothing or goes outside 0..{n - 1}")
    return idx


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"neuralops-train refine: error: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from datagen.dataset import DatasetWriter, FieldSpec, Grid, open_dataset

    from ..evaluate import evaluate
    from ..report import write_report

    if args.eval_resolution is not None and args.eval_resolution < 1:
        raise ValueError(f"--eval-resolution must be positive, got {args.eval_resolution}")
    ds = open_dataset(args.data, include_invalid=True)  # indices are file rows (checkpoint test split)
    physics = physics_from_dataset(ds)
    model, info = load_sfno_checkpoint(args.ckpt, map_location=args.device)
    t_in = args.t_in or info.get("t_in")
    t_out = args.t_out or info.get("t_out")
    if not t_in or not t_out:
        raise ValueError("the checkpoint records no window; pass --t-in and --t-out")
    field = "vorticity"
    if field not in ds.fields:
        raise ValueError(f"{args.data!r} has no field {field!r} (fields: {', '.join(ds.fields)})")
    n_t = ds.field_shape(field)[0]
    io = info.get("data_io") or {}
    start = args.start if args.start is not None else int(io.get("start", 0) or 0)
    if start + t_in + t_out > n_t:
        raise ValueError(f"window start + t_in + t_out = {start} + {t_in} + {t_out} exceeds the {n_t} "
                         f"snapshots of {args.data!r}")
    # the checkpoint's test split when --data is its test file, else every trajectory
    same_file = io.get("test_path") and os.path.abspath(io["test_path"]) == os.path.abspath(args.data)
    idx = _parse_indices(args.indices, len(ds), info.get("test_indices") if same_file else None)
    traj = torch.as_tensor(ds.read(field, idx)).to(torch.float64)[:, start:start + t_in + t_out]
    inputs, targets = traj[:, :t_in], traj[:, t_in:]

    config = RefineConfig(
        steps=args.steps, optimizer=args.optimizer, lr=args.lr, linearization=args.linearization,
        relinearize_every=args.relinearize_every, data_weight=args.data_weight,
        modes=tuple(args.modes) if args.modes else (None, None, None),
        time_method=args.time_derivative, fd_order=args.fd_order, context=args.context, per=args.per,
        residual_dtype=args.residual_dtype, preconditioner=args.preconditioner)
    refiner = SpectralRefiner(model, physics, config, encode=info["encode"], decode=info["decode"])
    t0 = time.perf_counter()
    result = refine_arrays(refiner, inputs, targets, t_out, batch_size=args.batch_size,
                           eval_resolution=args.eval_resolution, device=args.device,
                           use_targets_in_loss=args.data_weight > 0, log=print)
    wall = time.perf_counter() - t0

    os.makedirs(args.out, exist_ok=True)
    t_coords = np.asarray(ds.grid.coords["t"])[start + t_in:start + t_in + t_out]
    grid = {"x": np.asarray(ds.grid.coords["x"]), "y": np.asarray(ds.grid.coords["y"]), "t": t_coords}
    runs = {}
    for label, key in (("before refinement", "before"), ("after refinement", "after")):
        r = evaluate(result[key], targets, grid, setting=args.setting, layout="trajectory")
        res = result[f"residual_{key}"]
        r["metrics"]["residual_h_minus1"] = float(res.mean())
        r["per_sample"]["residual_h_minus1"] = res.tolist()
        r.setdefault("definitions", {})["residual_h_minus1"] = RESIDUAL_DEFINITION
        runs[label] = r
    rel = {k: torch.as_tensor(runs[f"{k} refinement"]["per_sample"]["relative_l2"]) for k in ("before", "after")}
    spec = {"ckpt": os.path.abspath(args.ckpt), "data": os.path.abspath(args.data),
            "indices": idx.tolist(), "start": start, "t_in": t_in, "t_out": t_out,
            "resolution": result["resolution"], "config": asdict(config),
            "physics": {"viscosity": physics.viscosity, "dt": physics.dt, "box": physics.box}}
    n_s, n_x = len(idx), targets.shape[-1]
    fields = {"prediction_before": FieldSpec(shape=(t_out, n_x, n_x), role="output"),
              "prediction_after": FieldSpec(shape=(t_out, n_x, n_x), role="output")}
    with DatasetWriter(os.path.join(args.out, "refined.h5"), pde=ds.pde, spec=spec, n_samples=n_s,
                       seed=int(ds.seed) if ds.seed is not None else 0, fields=fields,
                       grid=Grid(coords=grid, boundary=dict(ds.grid.boundary)),
                       params=["source_index", "residual_before", "residual_after",
                               "relative_l2_before", "relative_l2_after"],
                       solver=["seconds", "converged"], overwrite=True) as writer:
        for j in range(n_s):
            writer.write(j, {"prediction_before": result["before"][j].float().numpy(),
                             "prediction_after": result["after"][j].float().numpy()},
                         params={"source_index": int(idx[j]),
                                 "residual_before": float(result["residual_before"][j]),
                                 "residual_after": float(result["residual_after"][j]),
                                 "relative_l2_before": float(rel["before"][j]),
                                 "relative_l2_after": float(rel["after"][j])},
                         solver={"seconds": float(result["seconds"][j]), "converged": True})
    extra = {"refinement": spec, "seconds_per_trajectory": float(result["seconds"].mean()),
             "residual_h_minus1_ground_truth": float(result["residual_truth"].mean()),
             "wall_seconds": wall, "residual_definition": RESIDUAL_DEFINITION}
    paths = write_report(args.out, runs, setting=args.setting,
                         predictions={"before refinement": result["before"][:, :, None],
                                      "after refinement": result["after"][:, :, None]},
                         targets=targets[:, :, None], title="Spectral refinement report", extra=extra)
    mb, ma = (runs[f"{k} refinement"]["metrics"] for k in ("before", "after"))
    print(f"relative L2 {mb['relative_l2']:.4g} -> {ma['relative_l2']:.4g}; "
          f"H^-1 residual {mb['residual_h_minus1']:.4g} -> {ma['residual_h_minus1']:.4g} "
          f"(ground truth: {extra['residual_h_minus1_ground_truth']:.4g}); "
          f"{extra['seconds_per_trajectory']:.2f} s per trajectory")
    print(f"report: {paths['report_md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
