"""Benchmark: band-limited vs full-band spectral refinement of SFNO on ``spectral-refiner`` data.

In one process, on the same trajectories:

1. generate a small nu = 1e-3 dataset with the toolkit's generator (``datagen.navier_stokes``),
   computed directly on the stored grid (default 64^2; ``--solver-resolution 128`` solves on 128^2
   and stores bilinearly as the recipe does; the recipe's own scheme, the FNO explicit/Crank-Nicolson
   step at dt = 1e-3, warm-up to t = 30, snapshots every 0.2) instead of 256^2 -- stated in the
   JSON record. On data solved on the stored grid the modes above n/3 carry no energy (the 2/3 rule
   never feeds them), so the high band's relative error is n/a there;
2. train a small SFNO briefly (plain PyTorch loop, Adam + one-cycle as in the paper, relative L2);
3. on every test trajectory: predict, then refine the widened output layer with
   * ``band-limited``: this toolkit's earlier refinement -- residual and widened modes on the 2/3
     band (``n/3`` per sign), H^-1 weight ``(1 + 4 pi^2 |k|^2)^-1``;
   * ``full-band``: the paper's -- only the advection product de-aliased, modes up to ``n/2`` per
     sign (the whole grid), H^-1 weight ``(0.1 + 4 pi^2 |k|^2)^-1`` (torch-cfd's alpha);
   both with the toolkit's Gauss-Newton + Jacobi-preconditioned CG (``--optimizer adam`` for the
   paper's Adam on the full objective), and report relative L2 (FNO protocol) against the
   generator's ground truth, the relative error per Fourier band (low < n/6, mid n/6..n/3,
   high > n/3: outside the 2/3 band), the H^-1 residual (each method's own, and the full-band one
   for all), the ground truth's own residual, and seconds per trajectory.

Numbers from a loaded 2-core CPU machine are what they are: compare the methods with each other
(same process, same trajectories), not with GPU timings.

    python benchmarks/refine.py                               # spectral-refiner, CPU-sized
    python benchmarks/refine.py --steps 80 --json data/bench_refine.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import numpy as np
import torch

from datagen.dataset import open_dataset
from datagen.navier_stokes.generator import generate
from datagen.navier_stokes.physics import physics_from_dataset
from datagen.navier_stokes.recipes import recipe
from datagen.navier_stokes.resample import resample
from datagen.spec import Spec
from neuralops.models import get
from train.metrics import spectral_band_relative_error
from train.refine.cli import refinement_band_edges
from train.refine.refine import RefineConfig, SpectralRefiner, synchronize

# CPU-sized versions of the recipes: solver grid = stored grid, shorter windows.
RECIPE_OVERRIDES = {
    # 50 snapshots every 0.2 over (30, 40]: 10 in -> 40 out (the paper's window length)
    "spectral-refiner": {"dt": 1e-3, "n_snapshots": 50},
    # one snapshot per unit time over (0, 50]: 10 in -> 40 out (the FNO protocol); the ground
    # truth's own residual there is too large to refine on (refine --truth-check)
    "fno": {"dt": 1e-3},
}
METHODS = ("band-limited", "full-band")


def relative_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return (pred - true).flatten(1).norm(dim=1) / true.flatten(1).norm(dim=1)


def make_data(name: str, args) -> str:
    """Generate (or reuse) the run's trajectories; stored at ``--resolution``, or at
    ``--super-resolution`` (= the solver grid) when that is given (the ``--resolution`` data are then
    derived with the recipe's own resampling, which is what the generator stores)."""
    store = args.super_resolution or args.resolution
    overrides = dict(
        RECIPE_OVERRIDES[name], resolution=args.solver_resolution or args.resolution, store_resolution=store
    )
    if args.t_start is not None:
        overrides["t_start"] = args.t_start
    if args.dt is not None:
        overrides["dt"] = args.dt
    spec = recipe(name, overrides)
    path = os.path.join(args.out, f"ns_{name}_{overrides['resolution']}_{store}_{args.dtype}.h5")
    t0 = time.perf_counter()
    if os.path.exists(path):
        # an earlier run's file: reuse it when it holds this recipe with these settings (a newer
        # generator version may write a slightly different spec for the same data)
        with open_dataset(path) as ds:
            old = Spec.from_stored(ds.spec, pde=ds.pde)  # sectioned, or the flat form of earlier versions
            same = (
                old.get("recipe") == name
                and len(ds) >= args.n_train + args.n_test
                and old.get("stepper") == spec["stepper"]
                and old.get("resample") == spec["resample"]
                and old.get("compute_dtype", "float64") == args.dtype
                and all(old.get(k) == v for k, v in overrides.items())
            )
        if same:
            print(f"[{name}] data: reusing {path}", flush=True)
            return path
    generate(
        spec,
        path,
        args.n_train + args.n_test,
        seed=args.seed,
        batch_size=args.n_train + args.n_test,
        device=args.device,
        dtype=args.dtype,
        overwrite=True,
        progress=False,
        log=None,
    )
    print(f"[{name}] data: {path} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return path


def train_sfno(train: torch.Tensor, t_in: int, t_out: int, args):
    torch.manual_seed(args.seed)
    config = dict(modes_x=12, modes_y=12, modes_t=5, width=args.width, latent_steps=10, out_steps=t_out)
    model = get("sfno", **config).to(train.device)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr / 25)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(train), device=train.device)
        total = 0.0
        for i in range(0, len(train), args.batch_size):
            batch = train[perm[i : i + args.batch_size]]
            loss = relative_l2(model(batch[:, :t_in], t_out), batch[:, t_in : t_in + t_out]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        print(f"    epoch {epoch}: train relative L2 {total / steps_per_epoch:.4f}", flush=True)
    synchronize(train.device)
    return model, config, time.perf_counter() - t0


def _bands(pred: torch.Tensor, truth: torch.Tensor) -> dict:
    """Relative error per band ``(low, mid, high)`` per sample: ``sqrt(E_B(pred - true) / E_B(true))``."""
    edges = refinement_band_edges(truth.shape[-1])
    e = spectral_band_relative_error(pred[:, :, None], truth[:, :, None], edges)
    return {name: e[:, b].tolist() for b, name in enumerate(("low", "mid", "high"))}


def run_recipe(name: str, args, save=lambda record: None) -> dict:
    device = torch.device(args.device)
    path = make_data(name, args)
    ds = open_dataset(path)
    physics = physics_from_dataset(ds)
    stored = torch.as_tensor(ds.read("vorticity"))
    stored_spec = Spec.from_stored(ds.spec, pde=ds.pde)
    if args.super_resolution:
        # the --resolution data exactly as the recipe stores them: resampled from the solver grid
        # (= the stored super-resolution grid) with the recipe's method, in the compute dtype
        fine = stored.to(torch.float32)
        data = resample(stored.to(getattr(torch, args.dtype)), args.resolution, stored_spec.get("resample")).to(
            torch.float32
        )
    else:
        fine, data = None, stored.to(torch.float32)
    t_in, t_out = 10, 40
    train, test = data[: args.n_train], data[args.n_train : args.n_train + args.n_test]
    cache = os.path.join(
        args.out,
        f"sfno_{name}_{stored_spec.get('stepper')}_t{stored_spec.get('t_start'):g}_"
        f"{stored_spec.get('resolution')}_{args.resolution}_{args.dtype}_"
        f"w{args.width}_e{args.epochs}_n{args.n_train}_lr{args.lr:g}_s{args.seed}.pt",
    )
    if os.path.exists(cache):  # the same training run, kept from an earlier invocation
        saved = torch.load(cache)
        config, train_seconds = saved["config"], saved["train_seconds"]
        model = get("sfno", **config)
        model.load_state_dict(saved["state_dict"])
    else:
        model, config, train_seconds = train_sfno(train.to(device), t_in, t_out, args)
        torch.save(
            {
                "config": config,
                "train_seconds": train_seconds,
                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            },
            cache,
        )
    model = model.to(device)
    record = {
        "recipe": name,
        "spec": ds.spec,
        "device": str(device),
        "compute_dtype": args.dtype,
        "n_train": args.n_train,
        "n_test": len(test),
        "sfno_config": config,
        "sfno_parameters": sum(p.numel() for p in model.parameters()),
        "epochs": args.epochs,
        "train_seconds": train_seconds,
        "snapshot_interval": physics.dt,
    }
    record.update(refine_at(test, model, config, physics, t_in, t_out, args, device))
    if fine is not None:
        save(record)  # the record so far, in case the larger grid does not finish
        fine_test = fine[args.n_train : args.n_train + min(args.n_test, args.super_n_test)]
        print(
            f"[{name}] at {args.super_resolution}^2 (trained at {args.resolution}^2), {len(fine_test)} trajectories",
            flush=True,
        )
        record["super_resolution"] = {
            "resolution": args.super_resolution,
            "n_test": len(fine_test),
            **refine_at(fine_test, model, config, physics, t_in, t_out, args, device),
        }
    ds.close()
    return record


def refine_at(
    test: torch.Tensor, model, config: dict, physics, t_in: int, t_out: int, args, device: torch.device
) -> dict:
    """Predict and refine (each method) the trajectories ``test`` (B, T, n, n) at their own grid."""
    x = test[:, :t_in].double().to(device)
    truth = test[:, t_in : t_in + t_out].double().to(device)
    common = {
        "steps": args.steps,
        "optimizer": args.optimizer,
        "linearization": "newton" if args.optimizer == "cg" else "none",
        "relinearize_every": args.relinearize_every,
        "lr": args.adam_lr,
    }
    methods = {
        "band-limited": RefineConfig(band="dealiased", h_minus1_alpha=1.0, **common),
        "full-band": RefineConfig(band="full", h_minus1_alpha=0.1, **common),
    }

    def fresh():
        m = get("sfno", **config)
        m.load_state_dict(model.state_dict())
        return m.double().to(device)

    # one yardstick for every prediction: the full-band residual with alpha = 0.1
    judge = SpectralRefiner(fresh(), physics, RefineConfig(band="full", h_minus1_alpha=0.1))
    judge.prepare(x.shape[-1], t_out)

    def full_band_residual(pred):
        with torch.no_grad():
            return judge.residual_sq(judge.trajectory(x, pred), t_out).mean(dim=1).sqrt().tolist()

    record = {"grid": x.shape[-1], "residual_truth": full_band_residual(truth)}
    with torch.no_grad():
        synchronize(device)
        t0 = time.perf_counter()
        before = fresh()(x, t_out)
        synchronize(device)
        record["prediction_seconds_per_trajectory"] = (time.perf_counter() - t0) / len(x)
    record["relative_l2_before"] = relative_l2(before, truth).tolist()
    record["bands_before"] = _bands(before, truth)
    record["residual_full_band_before"] = full_band_residual(before)
    record["methods"] = {}
    for label, cfg in methods.items():
        if label not in args.methods:
            continue
        refiner = SpectralRefiner(fresh(), physics, cfg)
        modes = refiner.prepare(x.shape[-1], t_out)
        with torch.no_grad():
            own_truth = refiner.residual_sq(refiner.trajectory(x, truth), t_out).mean(dim=1).sqrt()
        out = refiner.refine(x, x, t_out)
        pred = out["prediction"]
        record["methods"][label] = {
            "config": cfg.__dict__ | {"modes": list(modes)},
            "residual_before": out["residual_before"].tolist(),
            "residual_after": out["residual_after"].tolist(),
            "residual_truth_own_norm": own_truth.tolist(),
            "residual_full_band_after": full_band_residual(pred),
            "relative_l2_after": relative_l2(pred, truth).tolist(),
            "bands_after": _bands(pred, truth),
            "seconds_per_trajectory": out["seconds"].tolist(),
        }
        print(f"    {label} at {x.shape[-1]}^2: done ({float(out['seconds'].mean()):.2f} s per trajectory)", flush=True)
    return record


def summarise(record: dict, label: str = "") -> None:
    mean = lambda v: float(np.mean(v))

    def band_mean(v):  # n/a (None) where the truth has no energy in the band (nan per sample)
        v = np.asarray(v, dtype=float)
        return float(v[~np.isnan(v)].mean()) if np.any(~np.isnan(v)) else None

    fmt = lambda a, b: "n/a" if a is None or b is None else f"{a:.4f}->{b:.4f}"
    e0 = mean(record["relative_l2_before"])
    b0 = {k: band_mean(v) for k, v in record["bands_before"].items()}
    print(
        f"[{record['recipe']}]{label} grid {record['grid']}^2, snapshot interval {record['snapshot_interval']}, "
        f"{record['n_test']} test trajectories; full-band residual of the ground truth "
        f"{mean(record['residual_truth']):.3e}, "
        f"of the trained SFNO {mean(record['residual_full_band_before']):.3e}"
    )
    print(
        f"    {'method':13s} {'rel. L2':>17s} {'low':>17s} {'mid':>17s} {'high':>17s} "
        f"{'own residual':>21s} {'full-band res.':>10s} {'s/traj':>7s}"
    )
    for label, r in record["methods"].items():
        e1 = mean(r["relative_l2_after"])
        b1 = {k: band_mean(v) for k, v in r["bands_after"].items()}
        r0, r1 = mean(r["residual_before"]), mean(r["residual_after"])
        r["summary"] = {
            "relative_l2_before": e0,
            "relative_l2_after": e1,
            "error_ratio": e0 / e1,
            "bands_before": b0,
            "bands_after": b1,
            "residual_before": r0,
            "residual_after": r1,
            "residual_ratio": r0 / r1,
            "residual_full_band_after": mean(r["residual_full_band_after"]),
            "seconds_per_trajectory": mean(r["seconds_per_trajectory"]),
        }
        bands = " ".join(fmt(b0[k], b1[k]).rjust(17) for k in ("low", "mid", "high"))
        print(
            f"    {label:13s} {f'{e0:.4f}->{e1:.4f}':>17s} {bands} "
            f"{f'{r0:.2e}->{r1:.2e}':>21s} {r['summary']['residual_full_band_after']:10.2e} "
            f"{r['summary']['seconds_per_trajectory']:7.1f}"
        )
        print(f"    {'':13s} error {e0 / e1:.2f}x lower, own residual {r0 / r1:.1f}x lower")
    if "super_resolution" in record:
        summarise(
            {
                "recipe": record["recipe"],
                "snapshot_interval": record["snapshot_interval"],
                **record["super_resolution"],
            },
            label=" (super-resolution)",
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipes", nargs="+", default=["spectral-refiner"], choices=list(RECIPE_OVERRIDES))
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument(
        "--solver-resolution",
        type=int,
        default=None,
        help="solver grid (default: --resolution; larger: stored by the recipe's resampling)",
    )
    p.add_argument("--dt", type=float, default=None, help="solver step (default 1e-3, the recipe's)")
    p.add_argument("--t-start", type=float, default=None, help="first stored time (default: the recipe's)")
    p.add_argument("--n-train", type=int, default=32)
    p.add_argument("--n-test", type=int, default=4)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--width", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-2, help="peak one-cycle learning rate (paper: 1e-2)")
    p.add_argument("--steps", type=int, default=40, help="refinement steps per trajectory")
    p.add_argument("--relinearize-every", type=int, default=20)
    p.add_argument(
        "--optimizer",
        choices=("cg", "adam"),
        default="cg",
        help="cg: Gauss-Newton + preconditioned CG (default); adam: the paper's Adam on the full objective",
    )
    p.add_argument("--adam-lr", type=float, default=1e-4)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda: generation, training and refinement")
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float64",
        help="the generator's compute dtype (default float64)",
    )
    p.add_argument(
        "--super-resolution",
        type=int,
        default=None,
        help="also refine at this grid (= the solver grid, stored as is), with the model trained "
        "at --resolution on the recipe's resampling of the same trajectories",
    )
    p.add_argument("--super-n-test", type=int, default=4, help="trajectories refined at --super-resolution")
    p.add_argument("--out", default="data/bench_refine")
    p.add_argument("--json", default=None, help="JSON record (default: <out>/refine.json)")
    args = p.parse_args(argv)
    if args.super_resolution is not None:
        solver = args.solver_resolution or args.resolution
        if args.super_resolution != solver or args.super_resolution <= args.resolution:
            p.error(
                f"--super-resolution {args.super_resolution} must equal the solver grid "
                f"(--solver-resolution, {solver}) and exceed --resolution ({args.resolution})"
            )
    os.makedirs(args.out, exist_ok=True)
    out = args.json or os.path.join(args.out, "refine.json")
    records = []

    def save(partial=None):
        with open(out, "w") as f:
            json.dump(
                {
                    "benchmark": "spectral refinement of SFNO",
                    "machine": platform.platform(),
                    "threads": torch.get_num_threads(),
                    "device": args.device,
                    "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
                    "note": "small data and a briefly trained SFNO"
                    + ("; loaded shared machine" if args.device == "cpu" else ""),
                    "args": vars(args),
                    "recipes": records + ([partial] if partial else []),
                    "conditions": __import__("conditions").conditions(),
                },
                f,
                indent=1,
            )

    for name in args.recipes:
        rec = run_recipe(name, args, save)
        summarise(rec)
        records.append(rec)
        save()
    print(f"JSON record: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
