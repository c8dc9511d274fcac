"""How much the Navier-Stokes compute precision changes a stored trajectory, and what it costs.

Generates the same ``fno``-recipe trajectories (same seed, so the same initial vorticity) twice with
:func:`datagen.navier_stokes.generator.generate`, once computing in float32 (the CLI default, as the
FNO data were made) and once in float64, both stored in float64 so that storage rounding does not hide
the difference, reads the files back and reports per snapshot time ``t``:

- ``rel_l2``: ``||w32(t) - w64(t)||_2 / ||w64(t)||_2`` per trajectory (mean and max over trajectories),
- ``max_abs``: ``max |w32 - w64|`` relative to ``max |w64|``,

next to the float32 unit roundoff (6e-8, the storage rounding of the default ``store_dtype`` float32),
and the generation wall time of each precision (ratio = float64 / float32).

    OMP_NUM_THREADS=1 python benchmarks/ns_dtype.py [--resolution 64 --dt 1e-3 --t-end 10 --n 4] \\
        [--json benchmarks/results/ns_dtype.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import conditions  # benchmarks/conditions.py: records the load at the start

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from datagen.dataset import open_dataset  # noqa: E402
from datagen.navier_stokes.generator import generate  # noqa: E402
from datagen.navier_stokes.recipes import recipe  # noqa: E402

FLOAT32_ROUNDOFF = float(np.finfo(np.float32).eps) / 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--viscosity", type=float, default=1e-3)
    p.add_argument("--resolution", type=int, default=64, help="solver grid (default 64)")
    p.add_argument("--store-resolution", type=int, default=None, help="stored grid (default: the solver grid)")
    p.add_argument("--dt", type=float, default=1e-3, help="time step (default 1e-3)")
    p.add_argument("--t-end", type=float, default=10.0, help="last snapshot time (default 10)")
    p.add_argument("--snapshot-interval", type=float, default=1.0)
    p.add_argument("--n", type=int, default=4, help="trajectories (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the record here")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error(f"--n must be a positive integer, got {args.n}")
    overrides = {
        "viscosity": args.viscosity,
        "resolution": args.resolution,
        "store_resolution": args.store_resolution or args.resolution,
        "dt": args.dt,
        "t_end": args.t_end,
        "snapshot_interval": args.snapshot_interval,
        "store_dtype": "float64",
    }
    try:
        spec = recipe("fno", overrides)
    except ValueError as err:
        p.error(str(err))
    fields, seconds = {}, {}
    with tempfile.TemporaryDirectory() as work:
        for dtype in ("float32", "float64"):
            path = os.path.join(work, f"{dtype}.h5")
            t0 = time.perf_counter()
            generate(spec, path, args.n, seed=args.seed, dtype=dtype, batch_size=args.n, progress=False, log=None)
            seconds[dtype] = time.perf_counter() - t0
            with open_dataset(path) as ds:
                fields[dtype] = np.stack([ds.read("vorticity", i) for i in range(args.n)])  # (n, T, m, m)
                times = np.asarray(ds.grid.coords["t"], dtype=np.float64)
    w32, w64 = fields["float32"], fields["float64"]
    diff = (w32 - w64).reshape(args.n, len(times), -1)
    ref = w64.reshape(args.n, len(times), -1)
    rel = np.linalg.norm(diff, axis=2) / np.linalg.norm(ref, axis=2)  # (n, T)
    max_abs = np.abs(diff).max(axis=(0, 2)) / np.abs(ref).max(axis=(0, 2))
    rows = [
        {
            "t": float(t),
            "rel_l2_mean": float(rel[:, k].mean()),
            "rel_l2_max": float(rel[:, k].max()),
            "max_abs_rel": float(max_abs[k]),
        }
        for k, t in enumerate(times)
    ]
    record = {
        "benchmark": "ns_dtype",
        "problem": f"fno recipe, nu={args.viscosity}, {args.resolution}^2, "
        f"dt={args.dt}, t=1..{args.t_end}, {args.n} trajectories",
        "args": vars(args),
        "float32_unit_roundoff": FLOAT32_ROUNDOFF,
        "snapshots": rows,
        "seconds": seconds,
        "float64_over_float32_time": seconds["float64"] / seconds["float32"],
    }
    print(f"{'t':>6} {'rel L2 mean':>12} {'rel L2 max':>12} {'max|diff|/max|w|':>17}")
    for r in rows:
        print(f"{r['t']:6.2f} {r['rel_l2_mean']:12.2e} {r['rel_l2_max']:12.2e} {r['max_abs_rel']:17.2e}")
    print(
        f"float32 unit roundoff {FLOAT32_ROUNDOFF:.1e}; generation seconds float32 {seconds['float32']:.1f}, "
        f"float64 {seconds['float64']:.1f} ({record['float64_over_float32_time']:.2f}x)"
    )
    conditions.write_record(record, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
