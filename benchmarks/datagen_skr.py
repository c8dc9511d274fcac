"""Benchmark: Sorting Krylov Recycling against the solvers a user would otherwise pick, per PDE family.

For each family, in one process and on the same systems (same seed -> same samples), every method
runs the full generator (:func:`datagen.elliptic.generator.generate`: features, sorting, assembly,
solve, writing the HDF5 dataset) and reports:

- ``solve_s``: seconds per sample inside the solver (PC set-up included), ``e2e_s``: end to end per
  sample (sampling, features, sorting, assembly, solve, writing);
- ``its``: mean iterations per sample, ``max_res``: largest stored true relative residual;
- ``stalls``: samples the method did not bring to rtol (retried with LU; the LU time is included);
- ratios against PETSc GMRES(m) (same PC, rtol, sorted order and initial guess) and against the best
  alternative (PETSc LU with symbolic reuse, CG + GAMG where SPD).

Methods: ``gmres`` | ``skr-unsorted`` (GCRO-DR in sample order) | ``skr`` (sorted, SKR as published,
PC rebuilt per system) | ``skr-pcreuse`` (sorted, one PC for up to ``--pc-reuse`` neighbours) | ``lu``
| ``skr-lureuse`` / ``gmres-lureuse`` (sorted, the exact LU of one system preconditions its next
``--pc-reuse - 1`` neighbours) | ``lu`` (the default, pivoting package of the build) | ``lu-umfpack`` /
``lu-superlu`` / ``lu-mumps`` / ``lu-petsc`` (one LU package each, when the PETSc build has it) | ``cg-gamg``
| ``cg-gamg-reuse`` (GAMG interpolation kept) | ``auto`` (``--solver auto``: its trial of the candidates is
in its time) | plain SciPy scripts, what a Python user writes, timed the same way (sampling, assembly, solve,
HDF5 writing): ``scipy-splu`` (``splu`` per sample), ``scipy-pyamg-cg`` (pyamg smoothed aggregation + CG,
SPD families), ``scipy-gcrotmk`` (scipy's GCROT(m, k) with ILU from ``spilu``, sorted order, carrying its
recycled space ``CU`` from system to system); Darcy's plain scripts assemble with ``scipy.sparse.diags``
(:func:`benchmarks.darcy_scipy.plain_script`), the other families' use the toolkit's assembly.

Targets (issue 12), reported with their numbers: ``auto`` within 1.1x of the fastest method (whole run per
sample) on every case; ``auto`` at least 2x faster than the best plain SciPy script at Darcy 129^2 and
257^2; SKR faster in time than PETSc GMRES(m) and than scipy's gcrotmk on Darcy from 63^2 up.

Also: sorting gain against N (Darcy, SKR sorted vs unsorted), and the cost of the orderings up to
N = 10^5. Default run: a few minutes on 2 cores. ``--large`` adds Darcy 1024^2 and the 3D variants.

    OMP_NUM_THREADS=1 python benchmarks/datagen_skr.py --json benchmarks/results/datagen_skr.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import conditions  # noqa: E402  (benchmarks/conditions.py: records the load at the start)
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from datagen.dataset import open_dataset  # noqa: E402
from datagen.elliptic.cli import make_family  # noqa: E402
from datagen.elliptic.generator import GenerationConfig, auto_choice, generate  # noqa: E402
from datagen.grf import GaussianRandomField  # noqa: E402
from datagen.sorting import greedy_order, grouped_order, path_length  # noqa: E402
from datagen.spec import Spec  # noqa: E402

SPD = ("darcy", "darcy3d", "poisson", "heat")
METHODS = {
    "gmres": dict(solver="gmres", ordering="greedy"),
    "skr-unsorted": dict(solver="skr", ordering="none"),
    "skr": dict(solver="skr", ordering="greedy"),
    "skr-pcreuse": dict(solver="skr", ordering="greedy", pc_reuse="K"),
    "skr-lureuse": dict(solver="skr", ordering="greedy", pc="lu", pc_reuse="K"),
    "gmres-lureuse": dict(solver="gmres", ordering="greedy", pc="lu", pc_reuse="K"),
    "lu": dict(solver="lu", ordering="greedy"),
    "cg-gamg": dict(solver="cg-gamg", ordering="greedy"),
    "cg-gamg-reuse": dict(solver="cg-gamg", ordering="greedy", pc_reuse="K"),
    "lu-umfpack": dict(solver="lu", ordering="greedy", petsc_options="-skrlu_pc_factor_mat_solver_type umfpack"),
    "lu-superlu": dict(solver="lu", ordering="greedy", petsc_options="-skrlu_pc_factor_mat_solver_type superlu"),
    "lu-mumps": dict(solver="lu", ordering="greedy", petsc_options="-skrlu_pc_factor_mat_solver_type mumps"),
    "lu-petsc": dict(solver="lu", ordering="greedy", petsc_options="-skrlu_pc_factor_mat_solver_type petsc"),
    # pc None: auto is free to choose (an explicit PC would limit it to skr/gmres)
    "auto": dict(solver="auto", ordering="greedy", pc=None),
    "scipy-splu": dict(plain=True),
    "scipy-pyamg-cg": dict(plain=True),
    "scipy-gcrotmk": dict(plain=True),
}
ALTERNATIVES = ("lu", "cg-gamg", "cg-gamg-reuse")
PLAIN = tuple(m for m, v in METHODS.items() if v.get("plain"))
#: the LU package each lu-<package> row needs (PETSc.Sys.hasExternalPackage)
LU_ROWS = {"lu-umfpack": "umfpack", "lu-superlu": "superlu", "lu-mumps": "mumps", "lu-petsc": None}


def plain_scipy(method, fam, name, n, seed, rtol, restart, recycle, path):
    """One plain SciPy generator run (what a Python user writes): ``{"iterations", "max_res", "seconds"}``.

    Darcy with ``scipy-splu``/``scipy-pyamg-cg`` is :func:`darcy_scipy.plain_script` (its own
    ``scipy.sparse.diags`` assembly); otherwise samples, assembly and the family's time stepping come from
    the toolkit and only the linear solves are SciPy's. ``scipy-gcrotmk`` solves in the toolkit's sorted
    order (greedy on the same features), with ``spilu`` (ILU, no fill, no drop) as preconditioner and the
    recycled space ``CU`` carried from system to system; its true residual is checked against rtol.
    """
    import h5py
    import scipy.sparse.linalg as spla

    from datagen.elliptic.generator import compute_features
    from datagen.sorting import sort_order

    t0 = time.perf_counter()
    if name == "darcy" and method in ("scipy-splu", "scipy-pyamg-cg") and seed == 0:
        import darcy_scipy

        darcy_scipy.plain_script("splu-colamd" if method == "scipy-splu" else "pyamg-cg", n, fam.resolution, rtol, path)
        return {"iterations": None, "max_res": None, "seconds": time.perf_counter() - t0}
    order = sort_order(compute_features(fam, seed, n), "greedy") if method == "scipy-gcrotmk" else range(n)
    its, worst, cu, last = [0], [0.0], [None], [None]
    if method == "scipy-pyamg-cg":
        import pyamg

    def solve_with(A):
        if method == "scipy-splu":
            lu = spla.splu(A.tocsc(), permc_spec="COLAMD")
            return lambda b, x0: lu.solve(b)
        if method == "scipy-pyamg-cg":
            ml = pyamg.smoothed_aggregation_solver(A.tocsr(), symmetry="symmetric")
            return lambda b, x0: ml.solve(b, x0=x0, tol=rtol, accel="cg", maxiter=1000)
        ilu = spla.spilu(A.tocsc(), fill_factor=1.0, drop_tol=0.0)
        M = spla.LinearOperator(A.shape, ilu.solve)

        def matvec(v):
            its[0] += 1  # operator applications (~ iterations)
            return A @ v

        op = spla.LinearOperator(A.shape, matvec=matvec, dtype=np.float64)

        def gcrot(b, x0):
            # the previous solution along the sorted order, as the toolkit's initial guess
            x0 = x0 if x0 is not None else last[0]
            x, _ = spla.gcrotmk(
                op, b, x0=x0, rtol=rtol, atol=0.0, m=restart, k=recycle, M=M, CU=cu[0], discard_C=True, maxiter=10000
            )  # C = A U is recomputed for the new A
            last[0] = x
            return x

        if cu[0] is None:
            cu[0] = []  # gcrotmk fills this list in place and reuses it next time
        return gcrot

    with h5py.File(path, "w") as fh:
        out = {}
        for i in order:
            sample = fam.sample(seed, int(i))
            A = fam.operator(sample)
            solve = solve_with(A)

            def checked(b, x0, A=A, solve=solve):
                x = solve(b, x0)
                worst[0] = max(worst[0], float(np.linalg.norm(b - A @ x) / np.linalg.norm(b)))
                return x

            fields = {**sample.inputs, **fam.solve(sample, A, checked)}
            for k, v in fields.items():
                if k not in out:
                    out[k] = fh.create_dataset(k, (n,) + np.shape(v), dtype="f8")
                out[k][int(i)] = v
    return {
        "iterations": its[0] if method == "scipy-gcrotmk" else None,
        "max_res": worst[0],
        "seconds": time.perf_counter() - t0,
    }


def family_for(name: str, resolution: int):
    from datagen.cli import build_parser

    args = build_parser(families=(name,)).parse_args([name, "--resolution", str(resolution)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_family(args)


def run_family(name, resolution, n, cfg_kw, methods, workdir, log, lu_samples=None):
    fam = family_for(name, resolution)
    rows = {}
    failures = {}
    from petsc4py import PETSc

    for m in methods:
        if (m.startswith("cg") or m == "scipy-pyamg-cg") and name not in SPD:
            continue
        if m in LU_ROWS and LU_ROWS[m] and not PETSc.Sys.hasExternalPackage(LU_ROWS[m]):
            failures[m] = f"not in this PETSc build (no {LU_ROWS[m]}; see scripts/setup_env.sh)"
            continue
        if m in PLAIN:
            path = os.path.join(workdir, f"{name}_{resolution}_{m}.h5")
            try:
                p = plain_scipy(
                    m, fam, name, n, cfg_kw["seed"], cfg_kw["rtol"], cfg_kw["restart"], cfg_kw["recycle"], path
                )
            except ImportError as exc:
                failures[m] = f"{exc}; pip install pyamg"
                continue
            except (RuntimeError, ValueError, ArithmeticError) as exc:  # e.g. spilu: "Factor is exactly singular"
                failures[m] = f"{type(exc).__name__}: {exc}"
                log(f"  {name:11s} {resolution:5d} {m:14s} FAILED: {failures[m]}")
                continue
            finally:
                if os.path.exists(path):
                    os.remove(path)
            rows[m] = {
                "samples": n,
                "solve_s": None,
                "e2e_s": p["seconds"] / n,
                "its": p["iterations"] / n if p["iterations"] is not None else None,
                "max_res": p["max_res"],
                "stalls": None,
            }
            log(
                f"  {name:11s} {resolution:5d} {m:14s} e2e {rows[m]['e2e_s']:.4f} s"
                + (f"  its {rows[m]['its']:8.1f}" if rows[m]["its"] is not None else "")
                + (f"  max res {p['max_res']:.1e}" if p["max_res"] is not None else "")
            )
            continue
        # a direct solve costs the same for every sample: --lu-samples caps how many of the same
        # (first) samples it factors when one factorisation takes minutes (large 3D grids)
        n_method = min(n, lu_samples) if (m == "lu" and lu_samples) else n
        spec = dict(METHODS[m])
        if spec.get("pc_reuse") == "K":
            spec["pc_reuse"] = cfg_kw["pc_reuse"]
        else:
            spec["pc_reuse"] = 1
        spec.pop("plain", None)
        cfg = GenerationConfig(
            n_samples=n_method,
            seed=cfg_kw["seed"],
            pc=spec.pop("pc", cfg_kw["pc"]),
            rtol=cfg_kw["rtol"],
            restart=cfg_kw["restart"],
            recycle=cfg_kw["recycle"],
            max_it=cfg_kw["max_it"],
            **spec,
        )
        path = os.path.join(workdir, f"{name}_{resolution}_{m}.h5")
        try:
            s = generate(fam, path, cfg, overwrite=True, progress=False)
        except RuntimeError as exc:
            # e.g. a tolerance below what even the direct fallback reaches: the generator refuses
            # to store the sample; the benchmark records that instead of a time
            failures[m] = str(exc)
            log(f"  {name:11s} {resolution:5d} {m:14s} FAILED: {exc}")
            continue
        finally:
            if os.path.exists(path) and m != "auto":
                os.remove(path)
        its = np.array(s.iterations, dtype=float)
        rows[m] = {
            "samples": n_method,
            "solve_s": s.solve_seconds / n_method,
            "trial_s": s.trial_seconds,
            "e2e_s": s.total_seconds / n_method,
            "its": float(its.mean()),
            "its_after_first": float(its[1:].mean()) if n_method > 1 else float(its.mean()),
            "max_res": s.max_residual,
            "stalls": s.fallbacks,
            "sort_s": s.sort_seconds,
            "s_per_iteration": (s.solve_seconds / its.sum()) if its.sum() > 0 and m != "lu" else None,
        }
        if m == "auto":
            with open_dataset(path) as ds:
                rows[m]["auto"] = Spec.from_stored(ds).solver.get("auto")
            os.remove(path)
        log(
            f"  {name:11s} {resolution:5d} {m:14s} solve {rows[m]['solve_s']:.4f} s  e2e {rows[m]['e2e_s']:.4f} s  "
            f"its {rows[m]['its']:8.1f}  max res {s.max_residual:.1e}  stalls {s.fallbacks}"
            + (f"  chose {rows[m]['auto']['choice']} (trial {s.trial_seconds:.2f} s)" if m == "auto" else "")
        )
    if not rows:
        return {
            "family": name,
            "resolution": resolution,
            "rtol": cfg_kw["rtol"],
            "n": n,
            "methods": {},
            "failures": failures,
            "fastest": None,
            "best_alternative": None,
            "skr_iteration_cost_vs_gmres": None,
            "auto_solver": None,
            "auto_time_vs_fastest": None,
        }
    g = rows.get("gmres")
    alts = {m: rows[m]["solve_s"] for m in ALTERNATIVES if m in rows}
    best_alt = min(alts, key=alts.get) if alts else None
    # the fastest fixed method, whole run per sample (what a user waits for); auto and the plain scripts
    # are measured against it
    fixed = [m for m in rows if m != "auto" and m not in PLAIN]
    fastest = min(fixed, key=lambda m: rows[m]["e2e_s"]) if fixed else None
    for m, r in rows.items():
        if g and m not in PLAIN:
            r["time_ratio_vs_gmres"] = g["solve_s"] / r["solve_s"]
            r["its_ratio_vs_gmres"] = g["its"] / r["its"] if r["its"] > 0 else None
        if g:
            r["e2e_ratio_vs_gmres"] = g["e2e_s"] / r["e2e_s"]
        if best_alt and m not in PLAIN:
            r["time_ratio_vs_best_alternative"] = rows[best_alt]["solve_s"] / r["solve_s"]
    if g and "skr" in rows and rows["skr"]["s_per_iteration"] and g["s_per_iteration"]:
        iteration_cost = rows["skr"]["s_per_iteration"] / g["s_per_iteration"]
    else:
        iteration_cost = None
    if "auto" in rows:
        auto = rows["auto"]["auto"]["choice"] if rows["auto"].get("auto") else "?"
        auto_ratio = rows["auto"]["e2e_s"] / rows[fastest]["e2e_s"] if fastest else None
    else:
        # not run: the table's choice, compared where the benchmark has its row
        choice = auto_choice(fam, GenerationConfig(n_samples=n))
        auto_row = f"{choice.method}-lureuse" if choice.pc == "lu" else choice.method
        auto_ratio = rows[auto_row]["e2e_s"] / rows[fastest]["e2e_s"] if auto_row in rows and fastest else None
        auto = "table: " + choice.method + (f" (pc {choice.pc})" if choice.pc else "")
    plain = {m: rows[m]["e2e_s"] for m in PLAIN if m in rows}
    best_plain = min(plain, key=plain.get) if plain else None
    auto_vs_plain = plain[best_plain] / rows["auto"]["e2e_s"] if best_plain and "auto" in rows else None
    skr_vs = {
        other: rows[other]["e2e_s"] / rows["skr"]["e2e_s"]
        for other in ("gmres", "scipy-gcrotmk")
        if "skr" in rows and other in rows
    }
    return {
        "family": name,
        "resolution": resolution,
        "rtol": cfg_kw["rtol"],
        "unknowns": int(fam.operator(fam.sample(0, 0)).shape[0]),
        "n": n,
        "methods": rows,
        "failures": failures,
        "fastest": fastest,
        "best_alternative": best_alt,
        "skr_iteration_cost_vs_gmres": iteration_cost,
        "auto_solver": auto,
        "auto_time_vs_fastest": auto_ratio,
        "best_plain_scipy": best_plain,
        "auto_speedup_vs_best_plain_scipy": auto_vs_plain,
        "skr_speedup_vs": skr_vs,
    }


def targets(families: list) -> list:
    """Issue 12's targets, each ``{"target", "case", "value", "met"}`` (a case without the rows is left out)."""
    out = []
    for r in families:
        case = f"{r['family']} {r['resolution']} rtol {r['rtol']:g}"
        if r.get("auto_time_vs_fastest") is not None and "auto" in r["methods"]:
            v = r["auto_time_vs_fastest"]
            out.append({"target": "auto within 1.1x of the fastest method", "case": case, "value": v, "met": v <= 1.1})
        if r["family"] == "darcy" and r["resolution"] in (129, 257) and r.get("auto_speedup_vs_best_plain_scipy"):
            v = r["auto_speedup_vs_best_plain_scipy"]
            out.append(
                {"target": "auto >= 2x faster than the plain scipy script", "case": case, "value": v, "met": v >= 2.0}
            )
        if r["family"] == "darcy" and r["resolution"] >= 63:
            for other, v in r.get("skr_speedup_vs", {}).items():
                out.append({"target": f"skr faster than {other} (time)", "case": case, "value": v, "met": v > 1.0})
    return out


def sorting_gain(resolution, ns, cfg_kw, workdir, log):
    """SKR sorted vs unsorted on Darcy for growing N (closer neighbours as N grows)."""
    fam = family_for("darcy", resolution)
    out = []
    for n in ns:
        row = {"n": n}
        for ordering in ("none", "greedy"):
            cfg = GenerationConfig(
                n_samples=n,
                seed=cfg_kw["seed"],
                solver="skr",
                ordering=ordering,
                pc=cfg_kw["pc"],
                rtol=cfg_kw["rtol"],
                restart=cfg_kw["restart"],
                recycle=cfg_kw["recycle"],
            )
            path = os.path.join(workdir, f"gain_{n}_{ordering}.h5")
            s = generate(fam, path, cfg, overwrite=True, progress=False)
            os.remove(path)
            row[ordering] = {"its": float(np.mean(s.iterations)), "solve_s": s.solve_seconds / n}
        row["its_gain"] = row["none"]["its"] / row["greedy"]["its"]
        row["time_gain"] = row["none"]["solve_s"] / row["greedy"]["solve_s"]
        log(
            f"  sorting gain darcy {resolution} N={n:5d}: its unsorted {row['none']['its']:.1f} sorted "
            f"{row['greedy']['its']:.1f} (x{row['its_gain']:.2f}), time x{row['time_gain']:.2f}"
        )
        out.append(row)
    return out


def ordering_cost(ns, log):
    """Seconds of greedy (O(N^2)) and grouped orderings on 16x16 block features of Darcy GRFs."""
    grf = GaussianRandomField((16, 16), alpha=2.5, tau=7.0, boundary="neumann")
    out = []
    for n in ns:
        feats = grf.from_noise(np.random.default_rng(0).standard_normal((n,) + grf.coefficient_shape()))
        X = feats.reshape(n, -1) / 16.0
        row = {"n": n}
        if n <= 8000:
            t = time.perf_counter()
            o = greedy_order(X)
            row["greedy_s"] = time.perf_counter() - t
            row["greedy_path"] = path_length(X, o)
        t = time.perf_counter()
        o = grouped_order(X)
        row["grouped_s"] = time.perf_counter() - t
        row["grouped_path"] = path_length(X, o)
        row["random_path"] = path_length(X, np.arange(n))
        log(
            f"  ordering N={n:6d}: greedy {row.get('greedy_s', float('nan')):.2f} s, grouped {row['grouped_s']:.2f} s; "
            f"path length greedy {row.get('greedy_path', float('nan')):.1f} grouped {row['grouped_path']:.1f} "
            f"unsorted {row['random_path']:.1f}"
        )
        out.append(row)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="darcy,helmholtz,poisson,heat")
    ap.add_argument(
        "--resolution",
        type=int,
        action="append",
        default=None,
        help="grid points per axis (repeatable); default per family: darcy 256, helmholtz 129, poisson 129, heat 65",
    )
    ap.add_argument("--n", type=int, default=None, help="samples per family (default 16; 8 for helmholtz and >= 256^2)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--pc", default="ilu")
    ap.add_argument(
        "--rtol",
        default="1e-8",
        help="relative tolerance on the true residual; a comma list runs each case at each value (a tolerance sweep)",
    )
    ap.add_argument(
        "--lu-samples",
        type=int,
        default=None,
        help="factor only the first this many samples with the direct LU row (its time per "
        "sample does not depend on N; for grids where one factorisation takes minutes)",
    )
    ap.add_argument(
        "--gain-ns",
        default="8,32,128,512,2048",
        help="sample counts of the sorting-gain sweep (Darcy 65^2, SKR sorted vs unsorted)",
    )
    ap.add_argument("--restart", type=int, default=40)
    ap.add_argument("--recycle", type=int, default=20)
    ap.add_argument("--max-it", type=int, default=10000)
    ap.add_argument("--pc-reuse", type=int, default=8, help="systems per PC for the *-reuse methods")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--large",
        action="store_true",
        help="add darcy 1024^2, darcy3d and helmholtz3d 66^3 (their LU row factors one sample "
        "unless --lu-samples is given)",
    )
    ap.add_argument("--no-sweeps", action="store_true", help="skip the sorting-gain and ordering-cost sweeps")
    ap.add_argument("--json", default=None, help="write the record here")
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, flush=True)

    try:
        rtols = [float(v) for v in args.rtol.split(",") if v]
        gain_ns = [int(v) for v in args.gain_ns.split(",") if v]
    except ValueError as exc:
        ap.error(f"--rtol takes comma-separated floats and --gain-ns comma-separated integers: {exc}")
    if not rtols or any(not 0 < r < 1 for r in rtols):
        ap.error(f"--rtol values must lie in (0, 1), got {args.rtol!r}")
    if any(n < 2 for n in gain_ns):
        ap.error(f"--gain-ns values must be >= 2, got {args.gain_ns!r}")
    if args.lu_samples is not None and args.lu_samples < 1:
        ap.error(f"--lu-samples must be >= 1, got {args.lu_samples}")
    cfg_kw = dict(
        pc=args.pc,
        rtol=rtols[0],
        restart=args.restart,
        recycle=args.recycle,
        max_it=args.max_it,
        pc_reuse=args.pc_reuse,
        seed=args.seed,
    )
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}; allowed: {', '.join(METHODS)}")
    default_res = {"darcy": 256, "helmholtz": 129, "poisson": 129, "heat": 65, "darcy3d": 34, "helmholtz3d": 34}
    cases = []
    for fam in [f for f in args.families.split(",") if f]:
        for res in args.resolution or [default_res[fam]]:
            cases.append(
                (fam, res, args.n or (8 if fam.startswith("helmholtz") or res >= 256 else 16), args.lu_samples)
            )
    if args.large:
        # one LU factorisation takes minutes on these grids (234 s for helmholtz3d 64^3): one sample
        # gives its time per sample unless --lu-samples says otherwise
        cases += [
            (fam, res, args.n or 4, args.lu_samples or 1)
            for fam, res in (("darcy", 1024), ("darcy3d", 66), ("helmholtz3d", 66))
        ]
    record = {"benchmark": "datagen_skr", "settings": cfg_kw, "families": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        for (fam, res, n, lu_samples), rtol in ((case, rtol) for case in cases for rtol in rtols):
            log(f"{fam} at {res}^{3 if fam.endswith('3d') else 2}, N = {n}, rtol {rtol:g}")
            r = run_family(fam, res, n, {**cfg_kw, "rtol": rtol}, methods, work, log, lu_samples)
            record["families"].append(r)
            ratio = r["auto_time_vs_fastest"]
            log(
                f"  -> fastest {r['fastest']} (whole run); auto picks {r['auto_solver']} "
                f"({'not measured' if ratio is None else f'{ratio:.2f}x the fastest'}); "
                + (
                    f"auto {r['auto_speedup_vs_best_plain_scipy']:.2f}x faster than {r['best_plain_scipy']}; "
                    if r.get("auto_speedup_vs_best_plain_scipy")
                    else ""
                )
                + (
                    f"SKR iteration cost {r['skr_iteration_cost_vs_gmres']:.2f}x GMRES's"
                    if r["skr_iteration_cost_vs_gmres"]
                    else ""
                )
            )
        if not args.no_sweeps:
            log("sorting gain against N (darcy 65^2, SKR)")
            record["sorting_gain"] = sorting_gain(65, gain_ns, cfg_kw, work, log)
            log("ordering cost")
            record["ordering_cost"] = ordering_cost([1000, 4000, 100000], log)
    record["targets"] = targets(record["families"])
    for t in record["targets"]:
        log(f"target {t['target']:48s} {t['case']:28s} {t['value']:6.2f}  {'met' if t['met'] else 'MISSED'}")
    record["seconds"] = time.perf_counter() - t0
    log(f"total {record['seconds']:.1f} s")
    conditions.write_record(record, args.json, log=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
