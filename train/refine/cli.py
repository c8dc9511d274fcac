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
``M x M``, the model is evaluated and refined there (modes up to ``M // 2``) and the residual is
measured there; errors against the ground truth are taken on the data grid after spectral
restriction of the prediction.

Before refining, the ground truth's own residual (same discretisation) is compared with the model's
(``--truth-check``, ``--truth-fraction``): on snapshots too coarse for the time derivative (the FNO
files, 1.0 apart) refinement would pull the prediction away from the truth, and the command refuses
with the numbers. The report names the residual's band and H^-1 norm (``--band``,
``--h-minus1-alpha``) and gives the error per Fourier band (low < n/6, mid, high > n/3).
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

from datagen.navier_stokes.physics import NS_PDE_NAMES
from datagen.navier_stokes.physics import physics_from_dataset as _physics_from_dataset
from datagen.navier_stokes.resample import fourier_resample
from datagen.spec import NS_FAMILY, build_spec

from .refine import OPTIMIZERS, Physics, RefineConfig, SpectralRefiner, check_sfno
from .residual import BANDS, LINEARIZATIONS, h_minus1_definition
from .time_derivative import TIME_DERIVATIVES

__all__ = [
    "RESIDUAL_DEFINITION",
    "TRUTH_CHECKS",
    "residual_definition",
    "refinement_band_edges",
    "check_truth_residual",
    "TruthResidualError",
    "refine_arrays",
    "build_parser",
    "main",
]

TRUTH_CHECKS = ("refuse", "warn", "off")


def residual_definition(band: str = "full", alpha: float = 0.1) -> str:
    """The reported residual in words: which band, which H^-1 norm (the report names the norm)."""
    where = (
        "on every mode of the grid, only the advection product u.grad w de-aliased by the 2/3 rule"
        if band == "full"
        else "restricted to the 2/3-rule dealiased band"
    )
    return (
        "Navier-Stokes residual R = w_t + u.grad w - nu Lap w (+ drag w) - f of the predicted trajectory "
        "(time derivative by finite differences on the snapshot grid, the last input frames in front; "
        f"pseudo-spectral in space with the generator's operators, {where}), per sample "
        "sqrt(mean over predicted snapshots of ||R(t)||_{H^-1}^2) with "
        + h_minus1_definition(alpha)
        + "; mean over samples"
    )


RESIDUAL_DEFINITION = residual_definition()


def refinement_band_edges(n: int):
    """Fourier bands of the report for an ``n x n`` grid, by shell ``round(|k|)``: low ``< n/6``,
    mid ``n/6 .. n/3``, high ``> n/3`` (beyond the 2/3 rule's cut: mostly modes a band-limited
    refinement cannot change; the square 2/3 band's corners reach ``sqrt(2) n/3``)."""
    return (0.0, n / 6.0, n / 3.0, float("inf"))


class TruthResidualError(ValueError):
    """The ground truth's own residual is too large a fraction of the model's to refine on."""


def check_truth_residual(
    truth: torch.Tensor,
    model: torch.Tensor,
    dt: float,
    fraction: float,
    mode: str = "refuse",
    log: Optional[Callable[[str], None]] = None,
) -> float:
    """Compare the ground truth's own residual (per-sample values, with the same discretisation)
    with the model's before refinement; return their ratio of means. ``mode="refuse"`` raises
    :class:`TruthResidualError` when the ratio exceeds ``fraction``, ``"warn"`` logs it."""
    rt, rm = float(truth.mean()), float(model.mean())
    ratio = rt / rm if rm > 0 else float("inf")
    if mode == "off" or ratio <= fraction:
        return ratio
    msg = (
        f"the ground truth's own H^-1 residual on this snapshot spacing (dt = {dt:g}) is {rt:.3g}, "
        f"{ratio:.3g} of the model's residual {rm:.3g} (allowed: {fraction:g}): the time derivative "
        f"taken from these snapshots is too coarse for the residual to tell the truth from the "
        f"prediction, and refining would pull the prediction away from the truth. Refine on data with "
        f"finer snapshots and an SFNO trained on them, e.g. 'neuralops-datagen navier-stokes --recipe "
        f"spectral-refiner' (spacing 0.2), or pass --truth-check warn to refine anyway"
    )
    if mode == "refuse":
        raise TruthResidualError(msg)
    if log:
        log("warning: " + msg)
    return ratio


def refine_arrays(
    refiner: SpectralRefiner,
    inputs: torch.Tensor,
    targets: Optional[torch.Tensor],
    t_out: int,
    batch_size: int = 1,
    eval_resolution: Optional[int] = None,
    device: str = "cpu",
    use_targets_in_loss: bool = False,
    log: Optional[Callable[[str], None]] = None,
    truth_check: str = "refuse",
    truth_fraction: float = 0.1,
) -> Dict[str, Any]:
    """Refine on every trajectory of ``inputs`` (physical ``(N, T_in, X, X)``).

    Returns ``before`` / ``after`` predictions on the data grid ``(N, T_out, X, X)`` (float64,
    CPU), ``residual_before`` / ``residual_after`` ``(N,)`` (on the refinement grid), ``seconds``
    ``(N,)`` (refinement only, per trajectory), ``history`` (objective values per refinement),
    ``residual_truth`` ``(N,)``: the ground truth's own residual (the floor of what refinement can
    reach with this time discretisation), when ``targets`` are given; ``truth_ratio``: its mean over
    the model's mean residual before refinement.

    Before anything is refined, with ``targets`` and ``truth_check`` ``"refuse"`` (default) or
    ``"warn"``: when the ground truth's own residual is more than ``truth_fraction`` of the model's,
    :func:`check_truth_residual` refuses (``TruthResidualError``) or warns.
    """
    if truth_check not in TRUTH_CHECKS:
        raise ValueError(f"truth_check must be one of {', '.join(TRUTH_CHECKS)}, got {truth_check!r}")
    if not (truth_fraction > 0):
        raise ValueError(f"truth_fraction must be > 0, got {truth_fraction!r}")
    n_data = inputs.shape[-1]
    n = eval_resolution or n_data
    if n < n_data:
        raise ValueError(f"eval_resolution={n} is coarser than the data grid ({n_data}); use >= {n_data}")
    # refine in double precision when the residual is: the latent is computed once, and CG's
    # curvature probes (gradient differences) need more than float32's 7 digits
    refiner.model.to(device=device, dtype=getattr(torch, refiner.config.residual_dtype))
    refiner.prepare(n, t_out)
    param_dtype = next(refiner.model.parameters()).dtype
    res_t: list = []
    ratio = None
    if targets is not None:
        # the ground truth's own residual with the same discretisation (the floor refinement can
        # reach), and the model's before refinement: checked before anything is refined
        res_m = []
        for start in range(0, inputs.shape[0], batch_size):
            phys = fourier_resample(inputs[start : start + batch_size].to(torch.float64), n)
            phys = phys.to(device=device, dtype=param_dtype)
            truth = fourier_resample(targets[start : start + batch_size].to(torch.float64), n)
            with torch.no_grad():
                z = refiner.trajectory(phys, truth.to(device=device, dtype=phys.dtype))
                res_t.append(refiner.residual_sq(z, t_out).mean(dim=1).sqrt().cpu())
                res_m.append(refiner.evaluate(refiner.encode(phys), phys, t_out)[1].cpu())
        ratio = check_truth_residual(
            torch.cat(res_t), torch.cat(res_m), refiner.physics.dt, truth_fraction, truth_check, log
        )
    before, after, res_b, res_a, secs, hist = [], [], [], [], [], []
    for start in range(0, inputs.shape[0], batch_size):
        phys = fourier_resample(inputs[start : start + batch_size].to(torch.float64), n)
        phys = phys.to(device=device, dtype=param_dtype)
        x = refiner.encode(phys)
        tgt = None
        if use_targets_in_loss and targets is not None:
            tgt = fourier_resample(targets[start : start + batch_size].to(torch.float64), n).to(device)
        out = refiner.refine(x, phys, t_out, target=tgt)
        before.append(fourier_resample(out["prediction_before"].detach().double().cpu(), n_data))
        after.append(fourier_resample(out["prediction"].detach().double().cpu(), n_data))
        res_b.append(out["residual_before"].cpu())
        res_a.append(out["residual_after"].cpu())
        secs.append(out["seconds"])
        hist.extend(out["history"])
        if log:
            done, total = start + phys.shape[0], inputs.shape[0]
            eta = float(torch.cat(secs).mean()) * (total - done)  # progress with an ETA, one line per batch
            log(
                f"trajectories {start}..{done - 1} of {total}: residual "
                f"{float(res_b[-1].mean()):.3e} -> {float(res_a[-1].mean()):.3e} "
                f"({float(secs[-1].mean()):.2f} s per trajectory; ETA {eta:.0f} s)"
            )
    return {
        "before": torch.cat(before),
        "after": torch.cat(after),
        "residual_before": torch.cat(res_b),
        "residual_after": torch.cat(res_a),
        "residual_truth": torch.cat(res_t) if res_t else None,
        "truth_ratio": ratio,
        "seconds": torch.cat(secs),
        "history": hist,
        "resolution": n,
    }


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
    """Viscosity, snapshot spacing, box, drag and forcing of a Navier-Stokes dataset, whatever wrote
    it (:func:`datagen.navier_stokes.physics.physics_from_dataset`)."""
    if ds.pde not in NS_PDE_NAMES:
        raise ValueError(f"refinement needs a Navier-Stokes dataset, {ds.path!r} holds pde={ds.pde!r}")
    return _physics_from_dataset(ds)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="neuralops-train refine",
        description="Spectral refinement of a trained SFNO against the H^-1 Navier-Stokes residual.",
    )
    p.add_argument("--ckpt", required=True, help="Lightning checkpoint of an SFNO (neuralops-train fit)")
    p.add_argument("--data", required=True, help="Navier-Stokes dataset (neuralops-datagen navier-stokes)")
    p.add_argument("--out", required=True, help="output folder (refined.h5 and the report)")
    p.add_argument("--steps", type=int, default=60, help="optimiser steps per trajectory (default 60)")
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="cg",
        help="cg: conjugate gradients on each convex subproblem (default); adam; sgd",
    )
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate for adam/sgd")
    p.add_argument(
        "--linearization",
        choices=LINEARIZATIONS,
        default="newton",
        help="newton (Gauss-Newton, default) / picard: convex subproblems; none: full objective",
    )
    p.add_argument("--relinearize-every", type=int, default=20, help="steps per convex subproblem")
    p.add_argument(
        "--preconditioner",
        choices=("jacobi", "none"),
        default="jacobi",
        help="for cg: Jacobi (diagonal) preconditioning (default) or none",
    )
    p.add_argument(
        "--data-weight",
        type=float,
        default=0.0,
        help="weight of the relative data term (needs the ground truth; default 0: residual only)",
    )
    p.add_argument(
        "--modes",
        type=int,
        nargs=3,
        metavar=("MX", "MY", "MT"),
        default=None,
        help="modes of the widened output layer (default: the band's limit -- n/2 per sign for "
        "--band full, n/3 for dealiased -- and every temporal mode)",
    )
    p.add_argument(
        "--band",
        choices=BANDS,
        default="full",
        help="full (default, the paper's): residual on every mode, only u.grad w de-aliased, "
        "modes up to n/2; dealiased: residual and modes on the 2/3 band (earlier behaviour)",
    )
    p.add_argument(
        "--h-minus1-alpha",
        type=float,
        default=0.1,
        help="alpha of the H^-1 weight (alpha + 4 pi^2 |k|^2)^-1 (default 0.1 as torch-cfd; "
        "1 is the toolkit's sobolev_norm)",
    )
    p.add_argument(
        "--truth-check",
        choices=TRUTH_CHECKS,
        default="refuse",
        help="before refining, compare the ground truth's own residual with the model's: refuse "
        "(default) or warn when it exceeds --truth-fraction of it; off: skip",
    )
    p.add_argument(
        "--truth-fraction",
        type=float,
        default=0.1,
        help="largest allowed ratio of the ground truth's residual to the model's (default 0.1)",
    )
    p.add_argument("--time-derivative", choices=TIME_DERIVATIVES, default="fd")
    p.add_argument("--fd-order", type=int, default=6, help="order of the finite-difference time derivative")
    p.add_argument(
        "--context",
        type=int,
        default=None,
        help="input frames in front of the prediction for the time stencils (default: fd-order)",
    )
    p.add_argument("--per", choices=("trajectory", "batch"), default="trajectory")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument(
        "--indices",
        default=None,
        help="trajectories to refine: 'a:b' or 'i,j,k' (default: the checkpoint's test split, else all)",
    )
    p.add_argument("--t-in", type=int, default=None, help="input frames (default: the checkpoint's)")
    p.add_argument("--t-out", type=int, default=None, help="predicted frames (default: the checkpoint's)")
    p.add_argument("--start", type=int, default=None, help="first input frame (default: the checkpoint's)")
    p.add_argument(
        "--eval-resolution", type=int, default=None, help="refine on a finer M x M grid (zero-shot super-resolution)"
    )
    p.add_argument("--residual-dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--device", default="cpu")
    p.add_argument("--setting", default=None, help="published-comparison setting key for the report")
    from datagen.help_format import show_defaults

    return show_defaults(p)  # every option's default in --help


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


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    from datagen.dataset import DatasetError

    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, TypeError, FileNotFoundError, KeyError, DatasetError) as err:
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
        raise ValueError(
            f"window start + t_in + t_out = {start} + {t_in} + {t_out} exceeds the {n_t} snapshots of {args.data!r}"
        )
    # the checkpoint's test split when --data is its test file, else every trajectory
    same_file = io.get("test_path") and os.path.abspath(io["test_path"]) == os.path.abspath(args.data)
    idx = _parse_indices(args.indices, len(ds), info.get("test_indices") if same_file else None)
    traj = torch.as_tensor(ds.read(field, idx)).to(torch.float64)[:, start : start + t_in + t_out]
    inputs, targets = traj[:, :t_in], traj[:, t_in:]

    config = RefineConfig(
        steps=args.steps,
        optimizer=args.optimizer,
        lr=args.lr,
        linearization=args.linearization,
        relinearize_every=args.relinearize_every,
        data_weight=args.data_weight,
        modes=tuple(args.modes) if args.modes else (None, None, None),
        time_method=args.time_derivative,
        fd_order=args.fd_order,
        context=args.context,
        per=args.per,
        residual_dtype=args.residual_dtype,
        preconditioner=args.preconditioner,
        band=args.band,
        h_minus1_alpha=args.h_minus1_alpha,
    )
    refiner = SpectralRefiner(model, physics, config, encode=info["encode"], decode=info["decode"])
    t0 = time.perf_counter()
    result = refine_arrays(
        refiner,
        inputs,
        targets,
        t_out,
        batch_size=args.batch_size,
        eval_resolution=args.eval_resolution,
        device=args.device,
        use_targets_in_loss=args.data_weight > 0,
        log=lambda m: print(m, flush=True),
        truth_check=args.truth_check,
        truth_fraction=args.truth_fraction,
    )
    wall = time.perf_counter() - t0

    os.makedirs(args.out, exist_ok=True)
    t_coords = np.asarray(ds.grid.coords["t"])[start + t_in : start + t_in + t_out]
    grid = {"x": np.asarray(ds.grid.coords["x"]), "y": np.asarray(ds.grid.coords["y"]), "t": t_coords}
    runs = {}
    definition = residual_definition(config.band, config.h_minus1_alpha)
    edges = refinement_band_edges(targets.shape[-1])
    for label, key in (("before refinement", "before"), ("after refinement", "after")):
        r = evaluate(result[key], targets, grid, setting=args.setting, layout="trajectory", band_edges=edges)
        res = result[f"residual_{key}"]
        r["metrics"]["residual_h_minus1"] = float(res.mean())
        if key == "after":  # refinement time (the row reads n/a before refinement)
            r["metrics"]["seconds_per_trajectory"] = float(result["seconds"].mean())
        r["per_sample"]["residual_h_minus1"] = res.tolist()
        r.setdefault("definitions", {})["residual_h_minus1"] = definition
        r["definitions"]["bands"] = (
            f"Fourier bands by shell round(|k|) on the {targets.shape[-1]}^2 data grid: "
            f"low < n/6, mid n/6..n/3, high > n/3 (beyond the 2/3 rule's cut; the "
            f"square 2/3 band's corners reach sqrt(2) n/3)"
        )
        runs[label] = r
    rel = {k: torch.as_tensor(runs[f"{k} refinement"]["per_sample"]["relative_l2"]) for k in ("before", "after")}
    refinement = {
        "ckpt": os.path.abspath(args.ckpt),
        "data": os.path.abspath(args.data),
        "indices": idx.tolist(),
        "start": start,
        "t_in": t_in,
        "t_out": t_out,
        "resolution": result["resolution"],
        "config": asdict(config),
        "physics": physics.describe(),
        "residual_norm": definition,
    }
    # the data's physics in the generator's form (physics, sampling.snapshot_interval) and the refinement
    # record (solver.refinement): refined files are read like any other (datagen.spec)
    spec = build_spec(NS_FAMILY, {**physics.to_spec(), "refinement": refinement})
    n_s, n_x = len(idx), targets.shape[-1]
    fields = {
        "prediction_before": FieldSpec(shape=(t_out, n_x, n_x), role="output"),
        "prediction_after": FieldSpec(shape=(t_out, n_x, n_x), role="output"),
    }
    with DatasetWriter(
        os.path.join(args.out, "refined.h5"),
        pde=ds.pde,
        spec=spec,
        n_samples=n_s,
        seed=int(ds.seed) if ds.seed is not None else 0,
        fields=fields,
        grid=Grid(coords=grid, boundary=dict(ds.grid.boundary)),
        params=["source_index", "residual_before", "residual_after", "relative_l2_before", "relative_l2_after"],
        solver=["seconds", "converged"],
        overwrite=True,
    ) as writer:
        for j in range(n_s):
            writer.write(
                j,
                {
                    "prediction_before": result["before"][j].float().numpy(),
                    "prediction_after": result["after"][j].float().numpy(),
                },
                params={
                    "source_index": int(idx[j]),
                    "residual_before": float(result["residual_before"][j]),
                    "residual_after": float(result["residual_after"][j]),
                    "relative_l2_before": float(rel["before"][j]),
                    "relative_l2_after": float(rel["after"][j]),
                },
                solver={"seconds": float(result["seconds"][j]), "converged": True},
            )
    extra = {
        "refinement": refinement,
        "seconds_per_trajectory": float(result["seconds"].mean()),
        "residual_h_minus1_ground_truth": float(result["residual_truth"].mean()),
        "ground_truth_to_model_residual": result["truth_ratio"],
        "wall_seconds": wall,
        "residual_definition": definition,
    }
    paths = write_report(
        args.out,
        runs,
        setting=args.setting,
        predictions={
            "before refinement": result["before"][:, :, None],
            "after refinement": result["after"][:, :, None],
        },
        targets=targets[:, :, None],
        title="Spectral refinement report",
        extra=extra,
    )
    mb, ma = (runs[f"{k} refinement"]["metrics"] for k in ("before", "after"))
    print(
        f"relative L2 {mb['relative_l2']:.4g} -> {ma['relative_l2']:.4g}; "
        f"H^-1 residual {mb['residual_h_minus1']:.4g} -> {ma['residual_h_minus1']:.4g} "
        f"(ground truth: {extra['residual_h_minus1_ground_truth']:.4g}); "
        f"{extra['seconds_per_trajectory']:.2f} s per trajectory"
    )
    bb, ba = mb["spectral_band_relative_error"], ma["spectral_band_relative_error"]
    print(
        "relative error per band: " + ", ".join(f"{name} {_fmt(bb.get(name))} -> {_fmt(ba.get(name))}" for name in bb)
    )
    print(f"residual norm: {definition}")
    print(f"report: {paths['report_md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
