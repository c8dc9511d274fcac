"""``neuralops-train fit`` samples/s of this version against an earlier commit, same machine, same run.

Issue 17 measured ``neuralops-train fit`` on ``darcy_fno`` (FNO-2D, batch 20) and ``ns_fno3d``
(FNO-3D, batch 10) at 4.5 and 0.45 samples/s and asked for 1.6x. This script answers that question
directly: it exports the baseline commit (``git archive``, default ``a3c242e``, the last commit before
the issue's work) next to the working tree, and in each version

1. writes its own small data set with its own generator (``python -m datagen.cli darcy`` at
   ``--res``; the timing does not depend on the values, only on the shapes),
2. runs its own ``python -m train.cli fit -c train/configs/<config>.yaml`` on it for
   ``1 + --extra-epochs`` epochs with one callback added through the CLI (``--trainer.callbacks+=``,
   a Lightning :class:`~lightning.pytorch.callbacks.Callback` written by this script into its work
   folder, the same for both versions) that records each training epoch's wall and process CPU time;
   the first epoch (warm-up) is dropped, the others are the timed epochs.

Each version runs as its user would: the baseline with the C library's default malloc (it had no
allocator setting; every variable of an allocator setting, ``conditions.ALLOCATOR_VARIABLES``, is
removed from both versions' environments), this version with its
default allocator setting (chosen by :mod:`datagen.allocator` at start-up; ``--allocator`` overrides
it). The runs are interleaved
(baseline, current, baseline, current, ...) over ``--rounds`` rounds, so load drift hits both.
Validation is off (``--trainer.limit_val_batches 0``): the figure is training samples per second.
Reported per version: seconds per epoch by the wall clock and by the process CPU time (user +
system, which includes page-fault handling in the kernel; the data loader runs in the process),
medians over the timed epochs of all rounds; samples/s = ``--n`` / epoch time; the ratio
current / baseline.

    OMP_NUM_THREADS=1 python benchmarks/training_baseline.py --config darcy_fno --res 85 --n 60 \\
        [--baseline a3c242e --extra-epochs 2 --rounds 2 --json benchmarks/results/training_baseline.json]

``--config ns_fno3d`` writes Navier-Stokes trajectories with each version's generator instead
(``--res`` is the stored grid, 64 in the FNO benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import conditions  # benchmarks/conditions.py: records the load at the start

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"darcy_fno": "steady", "ns_fno3d": "trajectory"}
TIMER = '''"""Epoch timer of benchmarks/training_baseline.py (written by it; the same for every version)."""
import json
import os
import time

from lightning.pytorch.callbacks import Callback


class EpochTimer(Callback):
    def on_train_epoch_start(self, trainer, module):
        self._t = (time.perf_counter(), time.process_time())

    def on_train_epoch_end(self, trainer, module):
        wall, cpu = time.perf_counter() - self._t[0], time.process_time() - self._t[1]
        with open(os.environ["NEURALOPS_EPOCH_TIMES"], "a") as fh:
            fh.write(json.dumps({"wall": wall, "cpu": cpu}) + "\\n")
'''


def export(rev: str, dest: str) -> None:
    """The tree of commit ``rev`` at ``dest`` (no .git: it is imported through PYTHONPATH only)."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(
            f"--baseline {rev!r}: git archive failed: {archive.stderr.decode().strip()} "
            "(give a commit of this repository)"
        )
    os.makedirs(dest, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, check=True)


def environment(tree: str, work: str, baseline: bool, allocator: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in conditions.ALLOCATOR_VARIABLES}
    env["PYTHONPATH"] = tree + os.pathsep + work  # the version's packages, then the epoch timer
    env.setdefault("OMP_NUM_THREADS", "1")
    if not baseline and allocator:
        env["NEURALOPS_ALLOCATOR"] = allocator
    return env


def run(cmd: list, tree: str, env: dict) -> None:
    """Run one process in ``tree``; its output on failure."""
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed in {tree}: {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def write_data(tree: str, env: dict, config: str, n: int, res: int, out: str) -> None:
    if CONFIGS[config] == "steady":
        cmd = [sys.executable, "-m", "datagen.cli", "darcy", "--n", str(n), "--resolution", str(res), "--out", out]
    else:  # the fno recipe's 50 frames, 0.01 apart (seconds, not hours): the shapes of the FNO data
        cmd = [
            sys.executable,
            "-m",
            "datagen.cli",
            "navier-stokes",
            "--recipe",
            "fno",
            "--n",
            str(n),
            "--resolution",
            str(res),
            "--store-resolution",
            str(res),
            "--dt",
            "1e-3",
            "--snapshot-interval",
            "0.01",
            "--n-snapshots",
            "50",
            "--out",
            out,
        ]
    run(cmd, tree, env)


def fit_command(tree: str, config: str, data: str, n: int, epochs: int, root: str) -> list:
    return [
        sys.executable,
        "-m",
        "train.cli",
        "fit",
        "-c",
        os.path.join(tree, "train", "configs", f"{config}.yaml"),
        "--data.init_args.path",
        data,
        f"--data.init_args.train=0:{n}",
        f"--data.init_args.val={n}:{n + 1}",
        f"--data.init_args.test={n + 1}:{n + 2}",
        "--trainer.max_epochs",
        str(epochs),
        "--trainer.limit_val_batches",
        "0",
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        root,
        "--checkpoint.dirpath",
        os.path.join(root, "ckpt"),
        "--trainer.callbacks+=epoch_timer.EpochTimer",
    ]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="darcy_fno")
    p.add_argument("--res", type=int, default=85, help="grid of the data (default 85)")
    p.add_argument("--n", type=int, default=60, help="training samples (default 60)")
    p.add_argument("--baseline", default="a3c242e", help="commit to compare with (default a3c242e)")
    p.add_argument("--extra-epochs", type=int, default=2, help="epochs timed (default 2)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    p.add_argument("--allocator", default=None, help="this version's NEURALOPS_ALLOCATOR (default: its default)")
    p.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one)")
    p.add_argument("--json", default=None, help="write the JSON record here")
    args = p.parse_args(argv)
    for name in ("res", "n", "extra_epochs", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    work = args.keep or tempfile.mkdtemp(prefix="neuralops_training_baseline_")
    versions = {"baseline": os.path.join(work, "baseline"), "current": ROOT}
    export(args.baseline, versions["baseline"])
    with open(os.path.join(work, "epoch_timer.py"), "w") as fh:
        fh.write(TIMER)
    envs = {v: environment(t, work, v == "baseline", args.allocator) for v, t in versions.items()}
    data = {}
    for v, tree in versions.items():
        data[v] = os.path.join(work, f"{v}.h5")
        if not os.path.exists(data[v]):
            write_data(tree, envs[v], args.config, args.n + 2, args.res, data[v])  # + a val and a test sample
        print(f"{v}: data written with its own generator ({data[v]})", flush=True)
    times = {v: {"wall": [], "cpu": []} for v in versions}
    for r in range(args.rounds):
        for v, tree in versions.items():
            root = os.path.join(work, f"runs_{v}_{r}")
            log = os.path.join(work, f"epochs_{v}_{r}.jsonl")
            run(
                fit_command(tree, args.config, data[v], args.n, 1 + args.extra_epochs, root),
                tree,
                {**envs[v], "NEURALOPS_EPOCH_TIMES": log},
            )
            with open(log) as fh:
                epochs = [json.loads(line) for line in fh][1:]  # the first epoch is the warm-up
            if len(epochs) != args.extra_epochs:
                raise SystemExit(f"{v}: {len(epochs)} timed epochs recorded, expected {args.extra_epochs}")
            for k in ("wall", "cpu"):
                times[v][k].extend(e[k] for e in epochs)
            print(
                f"round {r} {v:8s} s/epoch wall "
                + " ".join(f"{e['wall']:.2f}" for e in epochs)
                + " cpu "
                + " ".join(f"{e['cpu']:.2f}" for e in epochs),
                flush=True,
            )
    summary = {}
    for clock in ("wall", "cpu"):
        med = {v: statistics.median(times[v][clock]) for v in versions}
        summary[clock] = {
            "seconds_per_epoch": med,
            "samples_per_s": {v: args.n / med[v] for v in versions},
            "ratio_current_over_baseline": med["baseline"] / med["current"],
        }
        print(
            f"{clock:4s}: baseline {args.n / med['baseline']:.2f} samples/s, current "
            f"{args.n / med['current']:.2f} samples/s: {summary[clock]['ratio_current_over_baseline']:.2f}x "
            "(issue 17 target 1.6x)",
            flush=True,
        )
    record = {
        "benchmark": "neuralops-train fit samples/s, this version vs a baseline commit",
        "config": args.config,
        "resolution": args.res,
        "n_train": args.n,
        "baseline": args.baseline,
        "extra_epochs": args.extra_epochs,
        "rounds": args.rounds,
        "times": times,
        "summary": summary,
        "allocator_current": args.allocator or "default",
        "allocator_baseline": "C library default",
    }
    conditions.write_record(record, args.json)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
