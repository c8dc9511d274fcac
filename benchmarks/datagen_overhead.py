"""Per-sample overhead of the elliptic generator outside the linear solves (issue 17 target: <= 2 ms at 129^2).

Runs the real generator (``datagen.elliptic.generator.generate``, ``--solver auto``) in one process on
``--sizes`` sample counts (a warm-up run first, so imports and PETSc start-up are not counted) and
splits each run's CPU time (``time.process_time``) into

- ``solve``: CPU seconds inside the backend's ``solve`` calls less its true-residual check (the KSPSolve
  with the PC set-up it triggers, and the Vec wrapping of b and x), measured by wrapping the backend
  class the generator uses (wall-clock ``summary.solve_seconds`` would count the waits of a loaded
  machine);
- ``outside``: everything else: drawing the samples and their features, sorting, assembly and
  handing the matrix to PETSc, the true-residual check, writing, the merge of the per-rank files.

The per-sample overhead is the slope of ``outside`` over the sample count between the smallest and
the largest size (the fixed per-run costs, file creation and finalisation, cancel), and the fixed cost
is the intercept. The summary's own split (features, assembly, write) is reported per sample too.

    OMP_NUM_THREADS=1 python benchmarks/datagen_overhead.py [--family darcy --resolution 129 \\
        --sizes 20,80 --rounds 2] [--json benchmarks/results/datagen_overhead.json]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import conditions  # noqa: I001  (benchmarks/conditions.py: records the load at the start)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

TARGET_MS = 2.0


def timed_backend_class():
    """A :class:`PetscBackend` that adds up the CPU seconds of its solves and of their residual checks."""
    from datagen.elliptic.backends import PetscBackend

    class TimedBackend(PetscBackend):
        cpu = {"solve": 0.0, "residual": 0.0}

        def solve(self, b, x0=None):
            t0 = time.process_time()
            try:
                return super().solve(b, x0)
            finally:
                TimedBackend.cpu["solve"] += time.process_time() - t0

        def true_residual(self, bv, xv):
            t0 = time.process_time()
            try:
                return super().true_residual(bv, xv)
            finally:
                TimedBackend.cpu["residual"] += time.process_time() - t0

    return TimedBackend


def one_run(family_name: str, s: int, n: int, solver: str, folder: str) -> dict:
    import datagen.elliptic.generator as G
    from datagen.elliptic.cli import build_family

    family = build_family(family_name, s, {})
    path = os.path.join(folder, f"{family_name}_{s}_{n}.h5")
    timed, original = timed_backend_class(), G.PetscBackend
    G.PetscBackend = timed
    try:
        t0, w0 = time.process_time(), time.perf_counter()
        summary = G.generate(family, path, G.GenerationConfig(n_samples=n, seed=0, solver=solver), progress=False)
        cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    finally:
        G.PetscBackend = original
    os.remove(path)
    solve = timed.cpu["solve"] - timed.cpu["residual"]
    return {"n": n, "cpu": cpu, "wall": wall, "solve": solve, "residual_check": timed.cpu["residual"],
            "solve_wall": summary.solve_seconds, "outside_cpu": cpu - solve,
            "features": summary.feature_seconds, "sort": summary.sort_seconds, "assembly": summary.setup_seconds,
            "write": summary.write_seconds, "method": summary.solver}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="darcy")
    p.add_argument("--resolution", type=int, default=129)
    p.add_argument("--sizes", default="20,80", help="sample counts, comma-separated (at least two)")
    p.add_argument("--solver", default="auto")
    p.add_argument("--rounds", type=int, default=2, help="rounds (sizes interleaved); median reported")
    p.add_argument("--json", default=None, help="also write the record here")
    p.add_argument("--label", default="", help="what this run measures (e.g. the commit), kept in the record")
    args = p.parse_args(argv)
    try:
        sizes = sorted({int(v) for v in args.sizes.split(",") if v})
    except ValueError:
        raise SystemExit(f"datagen_overhead.py: error: --sizes must be comma-separated integers, "
                         f"got {args.sizes!r}") from None
    if len(sizes) < 2 or sizes[0] < 1:
        raise SystemExit(f"datagen_overhead.py: error: --sizes needs two or more positive counts, got {args.sizes!r}")
    folder = tempfile.mkdtemp(prefix="overhead_")
    try:
        one_run(args.family, args.resolution, 2, args.solver, folder)        # warm-up: imports, PETSc
        runs = {n: [] for n in sizes}
        for _ in range(args.rounds):
            for n in sizes:
                runs[n].append(one_run(args.family, args.resolution, n, args.solver, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    med = {n: {k: (statistics.median(r[k] for r in rs) if k != "method" else rs[0][k]) for k in rs[0]}
           for n, rs in runs.items()}
    lo, hi = med[sizes[0]], med[sizes[-1]]
    per_sample = (hi["outside_cpu"] - lo["outside_cpu"]) / (sizes[-1] - sizes[0])
    fixed = lo["outside_cpu"] - per_sample * sizes[0]
    split = {k: (hi[k] - lo[k]) / (sizes[-1] - sizes[0])
             for k in ("features", "sort", "assembly", "write", "residual_check", "solve")}
    record = {"benchmark": "datagen_overhead", "label": args.label, "family": args.family,
              "resolution": args.resolution,
              "solver": args.solver, "method": hi["method"], "sizes": sizes, "rounds": args.rounds,
              "runs": {str(n): rs for n, rs in runs.items()}, "per_sample_outside_ms": per_sample * 1e3,
              "fixed_outside_s": fixed, "per_sample_split_ms": {k: v * 1e3 for k, v in split.items()},
              "target_ms": TARGET_MS, "meets_target": per_sample * 1e3 <= TARGET_MS}
    for n in sizes:
        m = med[n]
        print(f"n {n:4d}: cpu {m['cpu']:.3f} s, solve {m['solve']:.3f} s, outside {m['outside_cpu']:.3f} s "
              f"(wall: features {m['features']:.3f}, assembly {m['assembly']:.3f}, write {m['write']:.3f})")
    print(f"{args.family} {args.resolution}^2 ({hi['method']}): outside the solve {per_sample * 1e3:.2f} ms/sample "
          f"(target {TARGET_MS} ms: {'met' if record['meets_target'] else 'MISSED'}), fixed {fixed:.3f} s/run; "
          "per sample (wall, from the summaries; residual check and solve CPU): "
          + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in split.items()))
    conditions.write_record(record, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
