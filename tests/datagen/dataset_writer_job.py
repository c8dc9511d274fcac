"""A tiny generator used by the data-contract tests (run as a subprocess so it can be killed).

usage: python dataset_writer_job.py OUT N SLEEP [--resume] [--overwrite] [--seed S] [--mpi]
           [--stop-after K] [--die-in-finalize C] [--merge-batch-bytes B]
Sample i is a deterministic function of (seed, i), as in every real generator.

--mpi               each rank of mpi4py's COMM_WORLD writes its contiguous piece of the order
--stop-after K      each rank writes K new samples, then closes the writer without finalizing
--die-in-finalize C the process dies (os._exit, like a SIGKILL) at the C-th time finalize deletes
                    merged source files, i.e. in the middle of the merge
"""

import argparse
import os
import time

import numpy as np

import datagen.dataset as D
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
    ap.add_argument("--mpi", action="store_true")
    ap.add_argument("--stop-after", type=int, default=None)
    ap.add_argument("--die-in-finalize", type=int, default=None)
    ap.add_argument("--merge-batch-bytes", type=int, default=None)
    args = ap.parse_args()
    comm = None
    if args.mpi:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    if args.merge_batch_bytes is not None:
        DatasetWriter.MERGE_BATCH_BYTES = args.merge_batch_bytes
    if args.die_in_finalize is not None:
        real, calls = D._remove_files, [0]

        def dying_remove(paths):
            if any(os.path.basename(p).startswith(("seg-", "old-", "shard-")) for p in paths):
                calls[0] += 1
                if calls[0] >= args.die_in_finalize:
                    os._exit(9)
            real(paths)

        D._remove_files = dying_remove
    x = np.linspace(0, 1, 8)
    spec = {"family": "toy", "n": 8, "seed": args.seed, "rtol": 1e-8}
    with DatasetWriter(
        args.out,
        pde="toy",
        spec=spec,
        n_samples=args.n,
        seed=args.seed,
        fields={"a": FieldSpec((8, 8), "input"), "u": FieldSpec((8, 8), "output", "float64")},
        grid=Grid({"x": x, "y": x}, {"x": "dirichlet", "y": "dirichlet"}),
        params=["k"],
        resume=args.resume,
        overwrite=args.overwrite,
        comm=comm,
        flush_every=1,
        flush_seconds=0.0,
    ) as w:
        order = np.random.default_rng(0).permutation(args.n)  # a "sorted" solve order
        mine = np.array_split(order, size)[rank]
        new = 0
        for i in mine:
            if w.is_written(i):
                continue
            if args.stop_after is not None and new >= args.stop_after:
                w.close()
                return
            pos = int(np.flatnonzero(order == i)[0])
            fields, params = make_sample(args.seed, int(i))
            w.write(
                int(i),
                fields,
                params=params,
                solver={
                    "iterations": int(i) % 7 + 1,
                    "residual": 1e-9,
                    "seconds": time.time() % 1,
                    "order": pos,
                    "converged": True,
                },
            )
            new += 1
            print(f"wrote {i}", flush=True)
            time.sleep(args.sleep)
        if args.stop_after is not None:
            w.close()
            return


if __name__ == "__main__":
    main()
