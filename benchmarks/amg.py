"""CG + GAMG on the SPD families: PETSc's defaults vs the tuned defaults vs a reused hierarchy, one process.

Every variant solves the same real systems of the generator: the samples of ``--n`` drawn by the family,
in the generator's sorted order (greedy over the sorting features), each assembled by the family and
solved through ``family.solve`` with :class:`datagen.elliptic.backends.PetscBackend` (``cg-gamg``), the
operator handed over as the generator does (once per sample; once for the whole run for poisson's
fixed matrix). Variants, interleaved inside each round so that a loaded machine's slow moments fall on
all alike:

``petsc``         PETSc's GAMG defaults (``gamg_defaults=False``), hierarchy rebuilt for every matrix
``tuned``         the backend's defaults (:data:`datagen.elliptic.backends.GAMG_DEFAULTS`), rebuilt per matrix
``petsc-reuseK``  PETSc's defaults, interpolation kept for K matrices (``pc_reuse = K``:
                  ``-pc_gamg_reuse_interpolation``, only the Galerkin products and smoothers are redone),
                  K the first of ``--reuse`` (0 = the whole run)
``tuned-reuseK``  the tuned defaults with that reuse, for every K of ``--reuse``
``tuned-pcK``     the whole tuned hierarchy (interpolation, coarse operators, smoothers) kept for K matrices
                  (``PCSetReusePreconditioner``; first K): only the fine operator is new. Not offered by the
                  generator: with PETSc's Chebyshev smoothers it is not even positive definite (stale
                  eigenvalue bounds; CG diverged in trials), and with SOR it needs more iterations
``tuned-reuseK-prev``  as ``tuned-reuseK`` (first K) with the previous sample's solution as initial guess
                  (the generator's default ``--initial-guess previous``); all other variants start from
                  zero (heat steps start from the previous state in every variant, as the family does)

Cost per linear system (set-up included: ``set_operator`` + ``KSPSolve``, which sets the PC up), in
matvec-equivalents (ME) of the fine operator, two ways:
- ``me_time``: CPU seconds (``time.process_time``, which a loaded machine inflates less than wall time)
  divided by the CPU seconds of one ``MatMult`` with the fine matrix (best of repeated timings);
- ``me_flops``: PETSc's flop counter divided by ``2 nnz(A)``, the flops of one matvec (load-independent;
  it does not see the set-up's graph, aggregation and symbolic work, which cost time but few flops).
Reference: a textbook AMG-PCG needs about 130 ME from a zero guess to 1e-8 (issue 17); its target is
at most 1.5x that for Darcy 257^2. Every solution's true residual ``||b - A x|| / ||b||`` is recomputed
with SciPy (independently of PETSc) and must meet ``--rtol``.

    OMP_NUM_THREADS=1 python benchmarks/amg.py [--families darcy,poisson,heat --resolutions 129,257 \\
        --n 16 --reuse 8 --rounds 2] [--json benchmarks/results/amg.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import conditions  # noqa: I001  (benchmarks/conditions.py: records the load at the start)
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

FAMILIES = ("darcy", "darcy-piecewise", "poisson", "heat")
FLOOR_ME = 130.0  # textbook AMG-PCG, zero guess, rtol 1e-8 (issue 17)


def make_family(name: str, s: int):
    from datagen.elliptic.darcy import Darcy
    from datagen.elliptic.heat import Heat
    from datagen.elliptic.poisson import Poisson

    if name == "darcy":
        return Darcy(s)
    if name == "darcy-piecewise":
        return Darcy(s, coefficient="piecewise")
    if name == "poisson":
        return Poisson(s)
    if name == "heat":
        return Heat(s)
    raise SystemExit(f"amg.py: error: unknown family {name!r}; allowed: {', '.join(FAMILIES)}")


def problems(family, n: int, seed: int = 0):
    """``[(sample, matrix)]`` in the generator's sorted order (assembled once, outside the timings)."""
    from datagen.elliptic.generator import compute_features
    from datagen.sorting import sort_order

    drawn: dict = {}
    features = compute_features(family, seed, n, keep=drawn)
    order = sort_order(features, "greedy")
    out, last = [], None
    for i in order:
        sample = drawn.get(int(i)) or family.sample(seed, int(i))
        matrix = family.operator(sample)
        out.append((sample, matrix if matrix is not last else last))
        last = matrix
    return out


def matvec_seconds(mat, repeats: int = 5, k: int = 50) -> float:
    """Best CPU seconds of one ``MatMult`` with ``mat``."""
    x, y = mat.createVecRight(), mat.createVecLeft()
    x.set(1.0)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(k):
            mat.mult(x, y)
        best = min(best, (time.process_time() - t0) / k)
    x.destroy()
    y.destroy()
    return best


def variants(reuses: list) -> list:
    """``[(name, tuned, pc_reuse, initial_guess, whole_pc)]`` for the ``--reuse`` values (0: the whole run)."""
    out = [
        ("petsc", False, 1, "zero", False),
        ("tuned", True, 1, "zero", False),
        (f"petsc-reuse{reuses[0]}", False, reuses[0], "zero", False),
    ]
    out += [(f"tuned-reuse{k}", True, k, "zero", False) for k in reuses]
    out.append((f"tuned-pc{reuses[0]}", True, reuses[0], "zero", True))
    return out + [(f"tuned-reuse{reuses[0]}-prev", True, reuses[0], "previous", False)]


def run_variant(family, probs, tuned: bool, reuse: int, guess: str, rtol: float, whole_pc: bool = False) -> dict:
    """Solve every problem once with one variant; CPU seconds, flops, iterations per linear system."""
    from petsc4py import PETSc

    from datagen.elliptic.backends import PetscBackend
    from datagen.elliptic.generator import relative_residual

    k = reuse or len(probs) + 1
    backend = PetscBackend(
        "cg-gamg", rtol=rtol, gamg_defaults=tuned, pc_reuse=1 if whole_pc else k, initial_guess=guess
    )
    cpu = flops = 0.0
    its, residuals, systems, failures, built = [], [], 0, 0, 0
    last = None
    try:
        for sample, matrix in probs:
            f0, t0 = PETSc.Log.getFlops(), time.process_time()
            if matrix is not last:
                backend.set_operator(matrix)
                if whole_pc:  # PCSetUp skipped for all but every k-th matrix
                    backend._ksp.getPC().setReusePreconditioner(built % k != 0)
                    built += 1
                last = matrix
            cpu += time.process_time() - t0
            flops += PETSc.Log.getFlops() - f0

            def linear_solve(b, x0, matrix=matrix):
                nonlocal cpu, flops, systems, failures
                f1, t1 = PETSc.Log.getFlops(), time.process_time()
                x, st = backend.solve(b, x0)
                cpu += time.process_time() - t1
                flops += PETSc.Log.getFlops() - f1
                systems += 1
                its.append(st.iterations)
                residuals.append(relative_residual(matrix, b, x))  # SciPy, independent of PETSc
                failures += int(not st.converged)
                return x

            family.solve(sample, matrix, linear_solve)
    finally:
        backend.destroy()
    nnz = probs[0][1].nnz
    return {
        "systems": systems,
        "cpu_per_system": cpu / systems,
        "flops_per_system": flops / systems,
        "me_flops": flops / systems / (2.0 * nnz),
        "iterations_mean": float(np.mean(its)),
        "iterations_max": int(max(its)),
        "max_true_residual": float(max(residuals)),
        "not_converged": failures,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default="darcy,poisson,heat", help=f"comma-separated, of: {', '.join(FAMILIES)}")
    p.add_argument("--resolutions", default="129,257", help="grid points per axis, comma-separated")
    p.add_argument("--n", type=int, default=16, help="samples per run")
    p.add_argument(
        "--reuse",
        default="16,0",
        help="matrices per GAMG interpolation in the reuse variants, comma-separated (0: the whole run)",
    )
    p.add_argument("--rounds", type=int, default=2, help="rounds (variants interleaved in each); median reported")
    p.add_argument("--rtol", type=float, default=1e-8)
    p.add_argument("--json", default=None, help="also write the record here")
    args = p.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    try:
        resolutions = [int(r) for r in args.resolutions.split(",") if r]
        reuses = [int(r) for r in args.reuse.split(",") if r]
    except ValueError:
        raise SystemExit(
            f"amg.py: error: --resolutions and --reuse must be comma-separated integers, "
            f"got {args.resolutions!r}, {args.reuse!r}"
        ) from None
    if args.n < 2 or args.rounds < 1 or not reuses or any(k == 1 or k < 0 for k in reuses):
        raise SystemExit(
            f"amg.py: error: --n must be >= 2, --rounds >= 1, every --reuse 0 or >= 2; got --n {args.n}, "
            f"--rounds {args.rounds}, --reuse {args.reuse}"
        )
    specs = variants(reuses)

    from datagen.elliptic.backends import GAMG_DEFAULTS, PetscBackend

    record = {
        "benchmark": "amg",
        "n": args.n,
        "reuse": args.reuse,
        "rounds": args.rounds,
        "rtol": args.rtol,
        "tuned_defaults": " ".join(f"-skrcg_{k} {v}" for k, v in GAMG_DEFAULTS),
        "timing": "CPU seconds (process_time) per linear system, set-up included; median over rounds",
        "floor_me": FLOOR_ME,
        "results": [],
    }
    for fam_name in families:
        for s in resolutions:
            family = make_family(fam_name, s)
            probs = problems(family, args.n)
            probe = PetscBackend("cg-gamg", rtol=args.rtol, gamg_defaults=False)
            probe.set_operator(probs[0][1])
            runs = {spec[0]: [] for spec in specs}
            mv = []
            for _ in range(args.rounds):
                for name, tuned, k, guess, whole_pc in specs:
                    mv.append(matvec_seconds(probe.mat))
                    runs[name].append(run_variant(family, probs, tuned, k, guess, args.rtol, whole_pc))
            probe.destroy()
            matvec = min(mv)
            base = None
            for v, rs in runs.items():
                row = {
                    "family": fam_name,
                    "resolution": s,
                    "unknowns": int(probs[0][1].shape[0]),
                    "variant": v,
                    "matvec_cpu_seconds": matvec,
                    **rs[0],
                    "cpu_per_system": statistics.median(r["cpu_per_system"] for r in rs),
                    "max_true_residual": max(r["max_true_residual"] for r in rs),
                    "not_converged": sum(r["not_converged"] for r in rs),
                }
                row["me_time"] = row["cpu_per_system"] / matvec
                if base is None:
                    base = row
                row["speedup_vs_first"] = base["cpu_per_system"] / row["cpu_per_system"]
                row["me_time_vs_floor"] = row["me_time"] / FLOOR_ME
                row["me_flops_vs_floor"] = row["me_flops"] / FLOOR_ME
                record["results"].append(row)
                ok = "ok" if row["max_true_residual"] <= args.rtol else "ABOVE RTOL"
                print(
                    f"{fam_name:15s} {s:4d} {v:17s} its {row['iterations_mean']:5.1f} "
                    f"cpu/system {row['cpu_per_system'] * 1e3:8.2f} ms  x{row['speedup_vs_first']:4.2f}  "
                    f"ME time {row['me_time']:6.1f} ({row['me_time_vs_floor']:.2f}x floor)  "
                    f"ME flops {row['me_flops']:6.1f} ({row['me_flops_vs_floor']:.2f}x)  "
                    f"true res {row['max_true_residual']:.1e} {ok}",
                    flush=True,
                )
    conditions.write_record(record, args.json)
    bad = [r for r in record["results"] if r["max_true_residual"] > args.rtol]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
