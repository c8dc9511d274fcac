"""A tiny generator used by the data-contract tests (run as a subprocess so it can be killed).

usage: python dataset_writer_job.py OUT N SLEEP [--resume] [--overwrite] [--seed S]
Sample i is a deterministic function of (seed, i), as in every real generator.
"""
import argparse
import time

import numpy as np

from datagen.dataset import DatasetWriter, FieldSpec, Grid
from datagen.seeding import sample_rng


def make_sample(seed, i, n=8):
    rng = sample_rng(seed, i)
    a = rng.standard_normal((n, n))
    u = np.cumsum(a, axis=0) / n
    return {"a": a, "u": u}, {"k": float(rng.uniform())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("n", type=int)
    ap.add_argument("sleep", type=float)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    x = np.linspace(0, 1, 8)
    spec = {"family": "toy", "n": 8, "seed": args.seed, "rtol": 1e-8}
    with DatasetWriter(args.out, pde="toy", spec=spec, n_samples=args.n, seed=args.seed,
                       fields={"a": FieldSpec((8, 8), "input"), "u": FieldSpec((8, 8), "output", "float64")},
                       grid=Grid({"x": x, "y": x}, {"x": "dirichlet", "y": "dirichlet"}),
                       params=["k"], resume=args.resume, overwrite=args.overwrite,
                       flush_every=1, flush_seconds=0.0) as w:
        order = np.random.default_rng(0).permutation(args.n)  # a "sorted" solve order
        for pos, i in enumerate(order):
            if w.is_written(i):
                continue
            fields, params = make_sample(args.seed, int(i))
            w.write(int(i), fields, params=params,
                    solver={"iterations": int(i) % 7 + 1, "residual": 1e-9, "seconds": time.time() % 1,
                            "order": pos, "converged": True})
            print(f"wrote {i}", flush=True)
            time.sleep(args.sleep)


if __name__ == "__main__":
    main()
