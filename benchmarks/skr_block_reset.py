"""What the recycled-space resets at block boundaries cost SKR (``GenerationConfig.block``).

With ``block = B`` the generator resets the backend (recycled space, previous solution, PC) at every
``B``-th position of the sorted order, which makes resumed and MPI-split runs bit-identical to an
uninterrupted one. The price: the first solve of each block starts like GMRES(m) from a zero guess
instead of from its neighbour's recycled space and solution. This script runs the real generator
(``datagen.elliptic.generator.generate``, ``--solver skr``) on the same Darcy samples for each block
size (``0`` = never reset, the baseline) and reports, per resolution and block size, iterations per
sample and solve seconds per sample (the median over ``--repeats`` rounds; block sizes are
interleaved inside each round so a loaded machine's slow moments fall on all alike), and the ratios
to the baseline.

    OMP_NUM_THREADS=1 python benchmarks/skr_block_reset.py --resolutions 65,129 --n 64 \\
        --blocks 0,8,16,32,64 --json benchmarks/results/skr_block_reset.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import conditions  # noqa: E402  (benchmarks/conditions.py: records the load at the start)
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _ints(text: str, name: str, low: int) -> list:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(
            f"skr_block_reset.py: error: --{name} must be comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < low:
        raise SystemExit(f"skr_block_reset.py: error: --{name} needs integers >= {low}, got {text!r}")
    return values


def run_once(resolution: int, n: int, block: int, rtol: float, seed: int, workdir: str) -> dict:
    from datagen.elliptic.darcy import Darcy
    from datagen.elliptic.generator import GenerationConfig, generate

    cfg = GenerationConfig(n_samples=n, seed=seed, solver="skr", rtol=rtol, block=block, ordering="greedy")
    path = os.path.join(workdir, f"d{resolution}_b{block}.h5")
    t0 = time.perf_counter()
    summary = generate(Darcy(resolution), path, cfg, progress=False, overwrite=True)
    wall = time.perf_counter() - t0
    os.remove(path)
    its = np.asarray(summary.iterations, dtype=float)
    return {
        "iterations_per_sample": float(its.mean()),
        "solve_seconds_per_sample": summary.solve_seconds / n,
        "total_seconds_per_sample": wall / n,
        "max_residual": summary.max_residual,
        "invalid": len(summary.invalid),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolutions", default="65,129", help="Darcy grid sizes (points per axis)")
    p.add_argument("--n", type=int, default=64, help="samples per run")
    p.add_argument("--blocks", default="0,8,16,32,64", help="block sizes; 0 = no resets (baseline)")
    p.add_argument("--rtol", type=float, default=1e-8)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the record here")
    args = p.parse_args(argv)
    resolutions = _ints(args.resolutions, "resolutions", 5)
    blocks = _ints(args.blocks, "blocks", 0)
    if 0 not in blocks:
        blocks = [0] + blocks
    if args.n < 1 or args.repeats < 1:
        raise SystemExit("skr_block_reset.py: error: --n and --repeats must be >= 1")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for res in resolutions:
            rounds = {b: [] for b in blocks}
            for r in range(args.repeats):
                for b in blocks[r % len(blocks) :] + blocks[: r % len(blocks)]:
                    rounds[b].append(run_once(res, args.n, b, args.rtol, args.seed, workdir))
            base = None
            for b in blocks:
                rec = {"resolution": res, "block": b, "n": args.n, "rtol": args.rtol}
                for key in (
                    "iterations_per_sample",
                    "solve_seconds_per_sample",
                    "total_seconds_per_sample",
                    "max_residual",
                ):
                    rec[key] = float(np.median([x[key] for x in rounds[b]]))
                rec["invalid"] = max(x["invalid"] for x in rounds[b])
                if b == 0:
                    base = rec
                rows.append(rec)
            for rec in rows:
                if rec["resolution"] == res:
                    rec["iterations_ratio"] = rec["iterations_per_sample"] / base["iterations_per_sample"]
                    rec["solve_seconds_ratio"] = rec["solve_seconds_per_sample"] / base["solve_seconds_per_sample"]
    record = {
        "benchmark": "skr_block_reset",
        "family": "darcy",
        "solver": "skr",
        "repeats": args.repeats,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
    }
    print(json.dumps(record, indent=1))
    conditions.write_record(record, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
