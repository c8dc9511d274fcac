"""The generator's overhead parts, a baseline revision vs this checkout, in one process (issue 17, item 2).

Loads ``datagen/grf.py``, ``datagen/elliptic/assembly.py`` and ``datagen/dataset.py`` as they are at
``--baseline`` (a git revision; default the merge this work started from) next to this checkout's
modules, checks that both give the same bits, and times per sample, in interleaved rounds (CPU time,
``time.process_time``):

- ``grf``: one Darcy coefficient draw (the ``neumann`` GRF at ``s^2``: normal draws, DCT-I);
- ``assembly``: ``diffusion_system(a)``, the 5-point finite-volume matrix with its fixed pattern;
- ``handover``: ``PetscBackend.set_operator`` of that matrix (CG + GAMG, interpolation kept for 16 matrices,
  as ``--solver auto`` runs at 129^2), each version's backend with its own assembly's matrices;
- ``segments``: ``DatasetWriter.write`` of two ``s^2`` fields plus the segment flushes (one segment
  per ``--segment`` samples, as the generator's 2-second flushes make them at 129^2);
- ``merge``: ``finalize()``, the merge of the segments into the final file (samples arrive in a
  shuffled order, as the sorted solve order writes them).

The process runs with the allocator setting the CLI gives itself (:func:`datagen.allocator.ensure`).

    OMP_NUM_THREADS=1 python benchmarks/datagen_overhead_parts.py [--resolution 129 --n 200 --rounds 5]
        [--json benchmarks/results/datagen_overhead_parts.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import conditions  # noqa: I001  (benchmarks/conditions.py: records the load at the start)
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

BASELINE = "d8d0a7c"
MODULES = {
    "grf": "datagen/grf.py",
    "assembly": "datagen/elliptic/assembly.py",
    "dataset": "datagen/dataset.py",
    "backends": "datagen/elliptic/backends.py",
}


def load_revision(rev: str, key: str, folder: str):
    """The module ``MODULES[key]`` as it is at git revision ``rev``, imported under a private name."""
    try:
        text = subprocess.run(
            ["git", "-C", ROOT, "show", f"{rev}:{MODULES[key]}"], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(
            f"datagen_overhead_parts.py: error: cannot read {MODULES[key]} at --baseline {rev!r} "
            f"({getattr(exc, 'stderr', '') or exc}); pass a revision of this repository"
        ) from None
    path = os.path.join(folder, f"baseline_{key}.py")
    with open(path, "w") as fh:
        fh.write(text)
    package = os.path.dirname(MODULES[key]).replace("/", ".")  # relative imports resolve as in the tree
    name = f"{package}._baseline_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def writer_run(mod, folder: str, fields: dict, n: int, segment: int, order) -> dict:
    """CPU seconds of write+flush and of finalize for ``n`` samples written in ``order``."""
    s = next(iter(fields.values())).shape[-1]
    specs = {
        name: mod.FieldSpec(shape=(s, s), role="input" if name == "a" else "output", dtype="float64") for name in fields
    }
    grid = mod.Grid(
        coords={"x": np.linspace(0, 1, s), "y": np.linspace(0, 1, s)}, boundary={"x": "dirichlet", "y": "dirichlet"}
    )
    solver_names = ["iterations", "residual", "seconds", "order", "converged"]
    path = os.path.join(folder, f"w_{mod.__name__}.h5")
    w = mod.DatasetWriter(
        path,
        pde="darcy",
        spec={},
        n_samples=n,
        seed=0,
        fields=specs,
        grid=grid,
        solver=solver_names,
        flush_seconds=1e9,
        overwrite=True,
    )
    t_write = 0.0
    for k, i in enumerate(order):
        t0 = time.process_time()
        w.write(
            int(i),
            {name: f[k % len(f)] for name, f in fields.items()},
            solver={"iterations": 3, "residual": 1e-9, "seconds": 0.01, "order": k, "converged": True},
        )
        if (k + 1) % segment == 0:
            w.flush()
        t_write += time.process_time() - t0
    t0 = time.process_time()
    w.finalize()
    t_merge = time.process_time() - t0
    with mod.open_dataset(path) as ds:
        stored = {name: ds.read(name) for name in fields}
    os.remove(path)
    return {"segments": t_write / n, "merge": t_merge / n, "stored": stored}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default=BASELINE, help=f"git revision of the baseline (default {BASELINE})")
    p.add_argument("--resolution", type=int, default=129)
    p.add_argument("--n", type=int, default=200, help="samples per writer run")
    p.add_argument("--segment", type=int, default=50, help="samples per segment flush")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--label", default="")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.resolution < 3 or args.n < 1 or args.segment < 1 or args.rounds < 1:
        raise SystemExit(
            "datagen_overhead_parts.py: error: --resolution >= 3, --n, --segment and --rounds >= 1 "
            f"needed, got {args.resolution}, {args.n}, {args.segment}, {args.rounds}"
        )
    from datagen import allocator

    allocator.ensure()  # the CLI's allocator setting (re-executes this script once)
    import datagen.dataset as new_dataset
    import datagen.elliptic.assembly as new_assembly
    import datagen.elliptic.backends as new_backends
    import datagen.grf as new_grf

    folder = tempfile.mkdtemp(prefix="overhead_parts_")
    try:
        old = {k: load_revision(args.baseline, k, folder) for k in MODULES}
        new = {"grf": new_grf, "assembly": new_assembly, "dataset": new_dataset, "backends": new_backends}
        s = args.resolution
        grf = {
            v: m["grf"].GaussianRandomField((s, s), alpha=2.5, tau=7.0, boundary="neumann")
            for v, m in (("baseline", old), ("new", new))
        }
        a = np.exp(grf["new"].sample(0, [0])[0])
        fields = {"a": np.exp(grf["new"].sample(0, range(8))), "u": grf["new"].sample(1, range(8))}
        order = np.random.default_rng(0).permutation(args.n)
        # the same bits first
        same = {
            "grf": grf["baseline"].sample(0, [3]).tobytes() == grf["new"].sample(0, [3]).tobytes(),
            "assembly": (
                old["assembly"].diffusion_system(a)[0].data.tobytes()
                == new_assembly.diffusion_system(a)[0].data.tobytes()
            ),
        }
        times = {v: {k: [] for k in ("grf", "assembly", "handover", "segments", "merge")} for v in ("baseline", "new")}
        coefficients = [np.exp(c) for c in grf["new"].sample(0, range(16))]
        backend = {
            v: m["backends"].PetscBackend("cg-gamg", rtol=1e-8, pc_reuse=16, options_prefix="skrcg_")
            for v, m in (("baseline", old), ("new", new))
        }
        reps = 20
        stored = {}
        for rnd in range(args.rounds):
            pair = (("baseline", old), ("new", new))
            for v, m in pair if rnd % 2 == 0 else pair[::-1]:  # alternate which goes first
                t0 = time.process_time()
                for i in range(reps):
                    grf[v].sample(0, [i])
                times[v]["grf"].append((time.process_time() - t0) / reps)
                t0 = time.process_time()
                for _ in range(reps):
                    m["assembly"].diffusion_system(a)
                times[v]["assembly"].append((time.process_time() - t0) / reps)
                mats = [m["assembly"].diffusion_system(c)[0] for c in coefficients]
                t0 = time.process_time()
                for A in mats:
                    backend[v].set_operator(A)
                times[v]["handover"].append((time.process_time() - t0) / len(mats))
                r = writer_run(m["dataset"], folder, fields, args.n, args.segment, order)
                times[v]["segments"].append(r["segments"])
                times[v]["merge"].append(r["merge"])
                stored[v] = r["stored"]
        same["dataset"] = all(np.array_equal(stored["baseline"][k], stored["new"][k]) for k in fields)
        for b in backend.values():
            b.destroy()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    med = {v: {k: statistics.median(t) * 1e3 for k, t in parts.items()} for v, parts in times.items()}
    # the median of the per-round ratios (both versions of a round ran seconds apart, under one load)
    ratio = {k: statistics.median(b / n for b, n in zip(times["baseline"][k], times["new"][k])) for k in med["new"]}
    for k in med["new"]:
        print(
            f"{k:9s}: {med['baseline'][k]:.3f} -> {med['new'][k]:.3f} ms/sample (median per-round ratio "
            f"{ratio[k]:.2f}x); "
            f"rounds baseline {', '.join(f'{x * 1e3:.3f}' for x in times['baseline'][k])}, "
            f"new {', '.join(f'{x * 1e3:.3f}' for x in times['new'][k])}"
        )
    total = {v: sum(med[v].values()) for v in med}
    print(f"sum of the parts {total['baseline']:.3f} -> {total['new']:.3f} ms/sample; same bits: {same}")
    if not all(same.values()):
        print("datagen_overhead_parts.py: error: the new code does not reproduce the baseline's bits", file=sys.stderr)
    record = {
        "benchmark": "datagen_overhead_parts",
        "label": args.label,
        "baseline": args.baseline,
        "resolution": s,
        "n": args.n,
        "segment": args.segment,
        "rounds": args.rounds,
        "ms_per_sample": med,
        "ratio": ratio,
        "same_bits": same,
        "rounds_ms": {v: {k: [x * 1e3 for x in t] for k, t in parts.items()} for v, parts in times.items()},
    }
    conditions.write_record(record, args.json)
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
