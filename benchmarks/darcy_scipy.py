"""Whole-run Darcy generation: ``neuralops-datagen darcy --solver auto`` against plain SciPy scripts.

Each method is one fresh process that makes the same ``--n`` Darcy samples at ``--resolution``
(lognormal coefficient from the same GRF samples, f = 1, u = 0 on the boundary, 5-point
harmonic-mean finite volumes, relative residual <= ``--rtol``) and writes ``a`` and ``u`` to an
HDF5 file: what a Python user would otherwise write. The whole process is timed from the outside
(interpreter start, imports, sampling, assembly, solve, writing), so the figure is what a user
waits for; seconds per sample = wall / n. Methods, interleaved round by round:

``cli``            ``python -m datagen.cli darcy --solver auto`` (the toolkit, with its allocator)
``splu-colamd``    plain script: assemble with ``scipy.sparse.diags``, ``splu(permc_spec="COLAMD")``
``splu-mmd``       same, ``permc_spec="MMD_AT_PLUS_A"`` (minimum degree on A^T + A: suits SPD)
``pyamg-cg``       same assembly, pyamg smoothed aggregation as a CG preconditioner (if pyamg is
                   installed; skipped otherwise)

The plain scripts' ``u`` is checked against the toolkit's file (same samples, same scheme: agreement
to the solver tolerance), so every method solves the same problems.

    OMP_NUM_THREADS=1 python benchmarks/darcy_scipy.py [--n 100 --resolution 129 --rounds 2] \\
        [--json benchmarks/results/darcy_scipy.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import conditions  # benchmarks/conditions.py: records the load at the start

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("cli", "splu-colamd", "splu-mmd", "pyamg-cg")


def plain_script(method: str, n: int, s: int, rtol: float, out: str) -> None:
    """The plain SciPy generator (what the timing covers, apart from the interpreter start)."""
    import h5py
    import numpy as np
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    sys.path.insert(0, ROOT)
    from datagen.grf import GaussianRandomField  # the same coefficient samples as the toolkit's

    grf = GaussianRandomField((s, s), alpha=2.5, tau=7.0, boundary="neumann")
    h, m = 1.0 / (s - 1), s - 2
    b = np.ones(m * m)
    if method == "pyamg-cg":
        import pyamg
    with h5py.File(out, "w") as fh:
        da = fh.create_dataset("a", (n, s, s), dtype="f8")
        du = fh.create_dataset("u", (n, s, s), dtype="f8")
        for i in range(n):
            a = np.exp(grf.sample(0, [i])[0])
            fx = 2 * a[:-1, :] * a[1:, :] / (a[:-1, :] + a[1:, :]) / h**2  # faces normal to axis 0
            fy = 2 * a[:, :-1] * a[:, 1:] / (a[:, :-1] + a[:, 1:]) / h**2  # faces normal to axis 1
            west, east = fx[:-1, 1:-1], fx[1:, 1:-1]
            south, north = fy[1:-1, :-1], fy[1:-1, 1:]
            diag = (west + east + south + north).ravel()
            off_m = -east[:-1, :].ravel()
            off_1 = np.concatenate([-north[:, :-1], np.zeros((m, 1))], axis=1).ravel()[:-1]
            A = sp.diags([diag, off_1, off_1, off_m, off_m], [0, 1, -1, m, -m], format="csc")
            if method.startswith("splu"):
                x = spla.splu(A, permc_spec="COLAMD" if method == "splu-colamd" else "MMD_AT_PLUS_A").solve(b)
            else:
                ml = pyamg.smoothed_aggregation_solver(A.tocsr(), symmetry="symmetric")
                x = ml.solve(b, tol=rtol, accel="cg", maxiter=500)
            u = np.zeros((s, s))
            u[1:-1, 1:-1] = x.reshape(m, m)
            da[i], du[i] = a, u


def run_method(method: str, args, work: str) -> dict:
    out = os.path.join(work, f"{method}.h5")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.setdefault("OMP_NUM_THREADS", "1")
    if method == "cli":
        cmd = [
            sys.executable,
            "-m",
            "datagen.cli",
            "darcy",
            "--n",
            str(args.n),
            "--resolution",
            str(args.resolution),
            "--solver",
            "auto",
            "--rtol",
            str(args.rtol),
            "--out",
            out,
            "--overwrite",
            "--no-progress",
        ]
    else:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            method,
            "--n",
            str(args.n),
            "--resolution",
            str(args.resolution),
            "--rtol",
            str(args.rtol),
            "--out",
            out,
        ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed ({' '.join(cmd)}):\n{proc.stdout}\n{proc.stderr}")
    res = {"wall_seconds": wall, "seconds_per_sample": wall / args.n}
    if method == "cli":
        res["summary"] = proc.stdout.strip().splitlines()[-3:]
        res["allocator_line"] = next((ln for ln in proc.stderr.splitlines() if "neuralops: allocator" in ln), None)
    return res


def compare(work: str, method: str, n: int) -> float:
    """Largest relative difference of ``u`` between ``method``'s file and the toolkit's."""
    import h5py
    import numpy as np

    sys.path.insert(0, ROOT)
    from datagen.dataset import open_dataset

    with open_dataset(os.path.join(work, "cli.h5")) as ds, h5py.File(os.path.join(work, f"{method}.h5")) as fh:
        worst = 0.0
        for i in range(n):
            ref = ds.read("u", i)
            if not np.array_equal(ds.read("a", i), fh["a"][i]):
                raise RuntimeError(f"{method}: sample {i}'s coefficient differs from the toolkit's")
            worst = max(worst, float(np.abs(fh["u"][i] - ref).max() / np.abs(ref).max()))
    return worst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100, help="samples per run (default 100)")
    p.add_argument("--resolution", type=int, default=129, help="grid points per axis (default 129)")
    p.add_argument("--rtol", type=float, default=1e-8)
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated from {', '.join(METHODS)}")
    p.add_argument("--json", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("n", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.resolution < 5:
        p.error(f"--resolution must be >= 5, got {args.resolution}")
    if args.child:
        plain_script(args.child, args.n, args.resolution, args.rtol, args.out)
        return 0
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            p.error(f"unknown method {m!r}; allowed: {', '.join(METHODS)}")
    if "cli" not in methods:
        methods.insert(0, "cli")  # the reference for the agreement check
    skipped = {}
    if "pyamg-cg" in methods:
        try:
            import pyamg  # noqa: F401
        except ImportError as err:
            skipped["pyamg-cg"] = f"pyamg not installed ({err}); pip install pyamg"
            methods.remove("pyamg-cg")
            print(f"pyamg-cg skipped: {skipped['pyamg-cg']}")
    runs = {m: [] for m in methods}
    agreement = {}
    with tempfile.TemporaryDirectory() as work:
        for r in range(args.rounds):
            for m in methods if r % 2 == 0 else methods[::-1]:
                res = run_method(m, args, work)
                runs[m].append(res)
                print(
                    f"round {r} {m:12s} {res['wall_seconds']:7.2f} s ({res['seconds_per_sample']:.4f} s/sample)",
                    flush=True,
                )
            for m in methods:
                if m != "cli":
                    agreement[m] = max(agreement.get(m, 0.0), compare(work, m, args.n))
    summary = {
        m: {
            "seconds_per_sample_median": statistics.median(x["seconds_per_sample"] for x in v),
            "seconds_per_sample_best": min(x["seconds_per_sample"] for x in v),
            "runs": v,
        }
        for m, v in runs.items()
    }
    best_plain = min((v["seconds_per_sample_median"], m) for m, v in summary.items() if m != "cli")
    cli = summary["cli"]["seconds_per_sample_median"]
    record = {
        "benchmark": "darcy_scipy",
        "args": {k: v for k, v in vars(args).items() if k not in ("child", "out")},
        "methods": summary,
        "skipped": skipped,
        "max_rel_diff_u_vs_cli": agreement,
        "best_plain": best_plain[1],
        "cli_speedup_vs_best_plain": best_plain[0] / cli,
        "cli_speedup_vs": {m: v["seconds_per_sample_median"] / cli for m, v in summary.items() if m != "cli"},
    }
    for m, v in summary.items():
        extra = (
            ""
            if m == "cli"
            else (f"  (cli {v['seconds_per_sample_median'] / cli:.2f}x faster; u agrees to {agreement[m]:.1e})")
        )
        print(f"{m:12s} median {v['seconds_per_sample_median']:.4f} s/sample{extra}")
    print(f"cli vs the best plain script ({best_plain[1]}): {record['cli_speedup_vs_best_plain']:.2f}x")
    conditions.write_record(record, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
