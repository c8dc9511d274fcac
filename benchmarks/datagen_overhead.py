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
Every size must reach ``AUTO_MIN_SAMPLES`` (24): below it ``auto`` takes its table and skips the trial,
whose fixed cost (other candidates' set-ups) would then land in the slope (the earlier default 20,80
did that).

The process runs with the allocator setting the CLI gives itself (:func:`datagen.allocator.ensure`,
re-executed once; ``NEURALOPS_ALLOCATOR`` chooses), so the figures are those of
``neuralops-datagen``. ``--baseline REV`` also runs the generator as it is at git revision ``REV``
(exported to a temporary folder) in separate processes, rounds interleaved with this checkout's, and
reports the per-round ratios.

    OMP_NUM_THREADS=1 python benchmarks/datagen_overhead.py [--family darcy --resolution 129 \\
        --sizes 30,130 --rounds 3] [--baseline d8d0a7c] [--json benchmarks/results/datagen_overhead_v5.json]
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
    return {
        "n": n,
        "cpu": cpu,
        "wall": wall,
        "solve": solve,
        "residual_check": timed.cpu["residual"],
        "solve_wall": summary.solve_seconds,
        "outside_cpu": cpu - solve,
        "features": summary.feature_seconds,
        "sort": summary.sort_seconds,
        "assembly": summary.setup_seconds,
        "write": summary.write_seconds,
        "method": summary.solver,
    }


def measure(args, sizes) -> dict:
    """``{n: [run, ...]}`` of this process's generator (warm-up first, sizes interleaved per round)."""
    folder = tempfile.mkdtemp(prefix="overhead_")
    try:
        one_run(args.family, args.resolution, 2, args.solver, folder)  # warm-up: imports, PETSc
        runs = {n: [] for n in sizes}
        for _ in range(args.rounds):
            for n in sizes:
                runs[n].append(one_run(args.family, args.resolution, n, args.solver, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return runs


def slope(runs: dict, sizes) -> dict:
    """Per-sample CPU outside the solve (slope), fixed cost (intercept) and the summary's split."""
    med = {
        n: {k: (statistics.median(r[k] for r in rs) if k != "method" else rs[0][k]) for k in rs[0]}
        for n, rs in runs.items()
    }
    lo, hi = med[sizes[0]], med[sizes[-1]]
    per_sample = (hi["outside_cpu"] - lo["outside_cpu"]) / (sizes[-1] - sizes[0])
    split = {
        k: (hi[k] - lo[k]) / (sizes[-1] - sizes[0])
        for k in ("features", "sort", "assembly", "write", "residual_check", "solve")
    }
    return {
        "per_sample_outside_ms": per_sample * 1e3,
        "fixed_outside_s": lo["outside_cpu"] - per_sample * sizes[0],
        "per_sample_split_ms": {k: v * 1e3 for k, v in split.items()},
        "method": hi["method"],
        "median": med,
    }


def export_revision(rev: str, folder: str) -> str:
    """``datagen/`` as it is at ``rev``, unpacked under ``folder`` (a plain export, no git worktree)."""
    try:
        tar = subprocess.run(["git", "-C", ROOT, "archive", rev, "datagen"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=tar, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(
            f"datagen_overhead.py: error: cannot export datagen/ at --baseline {rev!r} "
            f"({getattr(exc, 'stderr', b'') or exc}); pass a revision of this repository"
        ) from None
    return folder


def child_runs(args, sizes, tree: str) -> dict:
    """One round of :func:`measure` in a fresh process that imports ``datagen`` from ``tree``."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--family",
        args.family,
        "--resolution",
        str(args.resolution),
        "--sizes",
        ",".join(map(str, sizes)),
        "--solver",
        args.solver,
        "--rounds",
        "1",
        "--runs-json",
        out,
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, os.path.dirname(os.path.abspath(__file__))]))
    try:
        subprocess.run(cmd, check=True, env=env, cwd=tree, stdout=subprocess.DEVNULL)
        with open(out) as fh:
            return {int(n): rs for n, rs in json.load(fh).items()}
    finally:
        os.remove(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="darcy")
    p.add_argument("--resolution", type=int, default=129)
    p.add_argument(
        "--sizes", default="30,130", help="sample counts, comma-separated (at least two, each >= 24 for --solver auto)"
    )
    p.add_argument("--solver", default="auto")
    p.add_argument("--rounds", type=int, default=3, help="rounds (sizes interleaved); median reported")
    p.add_argument(
        "--baseline",
        default=None,
        help="git revision to compare with (its datagen/ in separate processes, rounds interleaved)",
    )
    p.add_argument("--json", default=None, help="also write the record here")
    p.add_argument("--label", default="", help="what this run measures (e.g. the commit), kept in the record")
    p.add_argument("--runs-json", default=None, help=argparse.SUPPRESS)  # a --baseline child's runs
    args = p.parse_args(argv)
    try:
        sizes = sorted({int(v) for v in args.sizes.split(",") if v})
    except ValueError:
        raise SystemExit(
            f"datagen_overhead.py: error: --sizes must be comma-separated integers, got {args.sizes!r}"
        ) from None
    if len(sizes) < 2 or sizes[0] < 1:
        raise SystemExit(f"datagen_overhead.py: error: --sizes needs two or more positive counts, got {args.sizes!r}")
    if args.rounds < 1:
        raise SystemExit(f"datagen_overhead.py: error: --rounds must be >= 1, got {args.rounds}")
    from datagen import allocator
    from datagen.elliptic.generator import AUTO_MIN_SAMPLES

    allocator.ensure()  # the CLI's allocator setting (re-executes this script once)
    if args.solver == "auto" and sizes[0] < AUTO_MIN_SAMPLES:
        print(
            f"datagen_overhead.py: warning: --sizes {sizes[0]} < {AUTO_MIN_SAMPLES}: auto skips its trial there, "
            "so the trial's fixed cost counts in the per-sample slope",
            file=sys.stderr,
        )
    if args.runs_json:
        with open(args.runs_json, "w") as fh:
            json.dump(measure(args, sizes), fh)
        return 0
    versions = {"new": ROOT}
    folder = tempfile.mkdtemp(prefix="overhead_base_")
    try:
        if args.baseline:
            versions = {"baseline": export_revision(args.baseline, folder), "new": ROOT}
            runs = {v: {n: [] for n in sizes} for v in versions}
            for rnd in range(args.rounds):
                names = list(versions) if rnd % 2 == 0 else list(versions)[::-1]  # alternate who goes first
                for v in names:
                    for n, rs in child_runs(args, sizes, versions[v]).items():
                        runs[v][n] += rs
        else:
            runs = {"new": measure(args, sizes)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result = {v: slope(r, sizes) for v, r in runs.items()}
    new = result["new"]
    per_sample = new["per_sample_outside_ms"]
    record = {
        "benchmark": "datagen_overhead",
        "label": args.label,
        "family": args.family,
        "resolution": args.resolution,
        "solver": args.solver,
        "method": new["method"],
        "sizes": sizes,
        "rounds": args.rounds,
        "baseline": args.baseline,
        "runs": {v: {str(n): rs for n, rs in r.items()} for v, r in runs.items()},
        "per_sample_outside_ms": per_sample,
        "fixed_outside_s": new["fixed_outside_s"],
        "per_sample_split_ms": new["per_sample_split_ms"],
        "target_ms": TARGET_MS,
        "meets_target": per_sample <= TARGET_MS,
    }
    if args.baseline:
        base = result["baseline"]
        # per round: the slope of that round's two sizes, baseline over new
        rounds = [
            slope({n: [runs[v][n][k]] for n in sizes}, sizes)["per_sample_outside_ms"]
            for k in range(args.rounds)
            for v in ("baseline", "new")
        ]
        pairs = [(rounds[2 * k], rounds[2 * k + 1]) for k in range(args.rounds)]
        record.update(
            baseline_per_sample_outside_ms=base["per_sample_outside_ms"],
            baseline_per_sample_split_ms=base["per_sample_split_ms"],
            round_slopes_ms=[{"baseline": b, "new": n} for b, n in pairs],
            ratio_median=statistics.median(b / n for b, n in pairs),
        )
    for v, r in result.items():
        for n in sizes:
            m = r["median"][n]
            print(
                f"{v:8s} n {n:4d}: cpu {m['cpu']:.3f} s, solve {m['solve']:.3f} s, outside {m['outside_cpu']:.3f} s "
                f"(wall: features {m['features']:.3f}, assembly {m['assembly']:.3f}, write {m['write']:.3f})"
            )
        print(
            f"{v}: {args.family} {args.resolution}^2 ({r['method']}): outside the solve "
            f"{r['per_sample_outside_ms']:.2f} ms/sample, fixed {r['fixed_outside_s']:.3f} s/run; per sample (wall, "
            "from the summaries; residual check and solve CPU): "
            + ", ".join(f"{k} {x:.2f} ms" for k, x in r["per_sample_split_ms"].items())
        )
    if args.baseline:
        print(
            "per-round slopes baseline -> new (ms/sample): "
            + ", ".join(f"{b:.2f} -> {n:.2f}" for b, n in pairs)
            + f"; median ratio {record['ratio_median']:.2f}x"
        )
    print(
        f"target {TARGET_MS} ms/sample outside the solve: {'met' if record['meets_target'] else 'MISSED'} "
        f"({per_sample:.2f} ms)"
    )
    conditions.write_record(record, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
