"""Benchmark: spectral refinement of SFNO on the nu = 1e-3 ``spectral-refiner`` and ``fno`` recipes.

For each recipe, in one process:

1. generate a small dataset with the toolkit's Navier-Stokes generator (``datagen.navier_stokes``),
   computed directly on the stored grid (default 64^2, with a CPU-sized step) instead of the
   recipe's 256^2 / dt = 1e-4 -- stated in the JSON record;
2. train a small SFNO briefly (plain PyTorch loop, Adam + one-cycle as in the paper, relative L2);
3. on every test trajectory: predict, then refine the widened output layer with
   * ``pcg-newton``: the toolkit's default (Gauss-Newton linearisation, Jacobi-preconditioned CG on
     each convex subproblem),
   * ``adam-full``: Adam on the full (non-convex) objective, the paper's procedure,
   and report relative L2 against the generator's ground truth and the H^-1 residual, before and
   after, the residual of the ground truth itself (the floor set by the time derivative taken from
   the snapshots), and the refinement time per trajectory.

Numbers from a loaded 2-core CPU machine are what they are: compare the methods with each other
(same process, same trajectories), not with GPU timings.

    python benchmarks/refine.py                       # both recipes, CPU-sized defaults
    python benchmarks/refine.py --recipes spectral-refiner --steps 80 --json data/bench_refine.json
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
from datagen.navier_stokes.recipes import recipe
from datagen.navier_stokes.spectral import physics_from_spec
from neuralops.models import get
from train.refine.refine import RefineConfig, SpectralRefiner

# CPU-sized versions of the recipes: solver grid = stored grid, larger steps, shorter windows.
RECIPE_OVERRIDES = {
    # 50 snapshots every 0.2 over (30, 40]: 10 in -> 40 out (the paper's window length)
    "spectral-refiner": {"dt": 5e-3, "n_snapshots": 50},
    # one snapshot per unit time over (0, 50]: 10 in -> 40 out (the FNO protocol)
    "fno": {"dt": 1e-3},
}


def relative_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return (pred - true).flatten(1).norm(dim=1) / true.flatten(1).norm(dim=1)


def make_data(name: str, args) -> str:
    overrides = dict(RECIPE_OVERRIDES[name], resolution=args.resolution, store_resolution=args.resolution)
    spec = recipe(name, overrides)
    path = os.path.join(args.out, f"ns_{name}_{args.resolution}.h5")
    t0 = time.perf_counter()
    if os.path.exists(path):
        # an earlier run's file: reuse it when it holds this recipe with these settings (a newer
        # generator version may write a slightly different spec for the same data)
        with open_dataset(path) as ds:
            old = ds.spec
            same = (old.get("recipe") == name and len(ds) >= args.n_train + args.n_test
                    and all(old.get(k) == v for k, v in overrides.items()))
        if same:
            print(f"[{name}] data: reusing {path}", flush=True)
            return path
    generate(spec, path, args.n_train + args.n_test, seed=args.seed, batch_size=args.n_train + args.n_test,
             resume=True, progress=False, log=None)
    print(f"[{name}] data: {path} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return path


def train_sfno(train: torch.Tensor, t_in: int, t_out: int, args):
    torch.manual_seed(args.seed)
    config = dict(modes_x=12, modes_y=12, modes_t=5, width=args.width, latent_steps=10, out_steps=t_out)
    model = get("sfno", **config)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr / 25)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(train))
        total = 0.0
        for i in range(0, len(train), args.batch_size):
            batch = train[perm[i:i + args.batch_size]]
            loss = relative_l2(model(batch[:, :t_in], t_out), batch[:, t_in:t_in + t_out]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        print(f"    epoch {epoch}: train relative L2 {total / steps_per_epoch:.4f}", flush=True)
    return model, config, time.perf_counter() - t0


def run_recipe(name: str, args) -> dict:
    path = make_data(name, args)
    ds = open_dataset(path)
    physics = physics_from_spec(ds.spec, ds.grid)
    data = torch.as_tensor(ds.read("vorticity")).to(torch.float32)
    t_in, t_out = 10, 40
    train, test = data[:args.n_train], data[args.n_train:args.n_train + args.n_test]
    cache = os.path.join(args.out, f"sfno_{name}_{args.resolution}_w{args.width}_e{args.epochs}_"
                                   f"n{args.n_train}_lr{args.lr:g}_s{args.seed}.pt")
    if os.path.exists(cache):  # the same training run, kept from an earlier invocation
        saved = torch.load(cache)
        config, train_seconds = saved["config"], saved["train_seconds"]
        model = get("sfno", **config)
        model.load_state_dict(saved["state_dict"])
    else:
        model, config, train_seconds = train_sfno(train, t_in, t_out, args)
        torch.save({"config": config, "train_seconds": train_seconds, "state_dict": model.state_dict()}, cache)
    x = test[:, :t_in].double()
    truth = test[:, t_in:t_in + t_out].double()
    record = {"recipe": name, "spec": ds.spec, "n_train": args.n_train, "n_test": len(test),
              "sfno_config": config, "sfno_parameters": sum(p.numel() for p in model.parameters()),
              "epochs": args.epochs, "train_seconds": train_seconds,
              "snapshot_interval": physics.dt, "methods": {}}
    methods = {
        "pcg-newton": RefineConfig(steps=args.steps, optimizer="cg", linearization="newton",
                                   relinearize_every=args.relinearize_every),
        "adam-full": RefineConfig(steps=args.steps, optimizer="adam", linearization="none", lr=args.adam_lr),
    }
    for label, cfg in methods.items():
        if label not in args.methods:
            continue
        m = get("sfno", **config)
        m.load_state_dict(model.state_dict())
        m = m.double()
        refiner = SpectralRefiner(m, physics, cfg)
        modes = refiner.prepare(x.shape[-1], t_out)
        if "residual_truth" not in record:
            # the floor: the ground truth's own residual (time derivative from its snapshots)
            with torch.no_grad():
                floor = refiner.residual_sq(refiner.trajectory(x, truth), t_out).mean(dim=1).sqrt()
            record["residual_truth"] = floor.tolist()
        out = refiner.refine(x, x, t_out)
        err_after = relative_l2(out["prediction"], truth)
        r = {"config": cfg.__dict__ | {"modes": list(modes)},
             "residual_before": out["residual_before"].tolist(),
             "residual_after": out["residual_after"].tolist(),
             "relative_l2_after": err_after.tolist(),
             "seconds_per_trajectory": out["seconds"].tolist()}
        record["methods"][label] = r
    # the error before refinement (same for every method: the trained model, unwidened)
    with torch.no_grad():
        m0 = get("sfno", **config)
        m0.load_state_dict(model.state_dict())
        err_before = relative_l2(m0.double()(x, t_out), truth)
    record["relative_l2_before"] = err_before.tolist()
    ds.close()
    return record


def summarise(record: dict) -> None:
    mean = lambda v: float(np.mean(v))
    e0 = mean(record["relative_l2_before"])
    print(f"[{record['recipe']}] snapshot interval {record['snapshot_interval']}, "
          f"{record['n_test']} test trajectories; residual of the ground truth {mean(record['residual_truth']):.3e}")
    for label, r in record["methods"].items():
        r0, r1, e1 = mean(r["residual_before"]), mean(r["residual_after"]), mean(r["relative_l2_after"])
        r["summary"] = {"relative_l2_before": e0, "relative_l2_after": e1, "error_ratio": e0 / e1,
                        "residual_before": r0, "residual_after": r1, "residual_ratio": r0 / r1,
                        "seconds_per_trajectory": mean(r["seconds_per_trajectory"])}
        print(f"    {label:11s} relative L2 {e0:.4f} -> {e1:.4f} ({e0 / e1:.2f}x)   "
              f"H^-1 residual {r0:.3e} -> {r1:.3e} ({r0 / r1:.1f}x)   "
              f"{r['summary']['seconds_per_trajectory']:.1f} s per trajectory")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipes", nargs="+", default=["spectral-refiner", "fno"], choices=list(RECIPE_OVERRIDES))
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--n-train", type=int, default=32)
    p.add_argument("--n-test", type=int, default=4)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--width", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-2, help="peak one-cycle learning rate (paper: 1e-2)")
    p.add_argument("--steps", type=int, default=40, help="refinement steps per trajectory")
    p.add_argument("--relinearize-every", type=int, default=20)
    p.add_argument("--adam-lr", type=float, default=1e-4)
    p.add_argument("--methods", nargs="+", default=["pcg-newton", "adam-full"],
                   choices=["pcg-newton", "adam-full"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="data/bench_refine")
    p.add_argument("--json", default=None, help="JSON record (default: <out>/refine.json)")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    records = []
    for name in args.recipes:
        rec = run_recipe(name, args)
        summarise(rec)
        records.append(rec)
    out = args.json or os.path.join(args.out, "refine.json")
    with open(out, "w") as f:
        json.dump({"benchmark": "spectral refinement of SFNO", "machine": platform.platform(),
                   "threads": torch.get_num_threads(), "device": "cpu",
                   "note": "CPU-sized data and a briefly trained SFNO; loaded shared machine",
                   "args": vars(args), "recipes": records, "conditions": __import__("conditions").conditions()}, f, indent=1)
    print(f"JSON record: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
