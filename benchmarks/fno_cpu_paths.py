"""The two CPU-path choices inside FNO, each timed against its alternative in one process.

1. ``dft``: :class:`neuralops.layers.SpectralConv` evaluates the last axis's truncated real DFT and
   its inverse as matmuls when the length has a prime factor above 5
   (:func:`neuralops.layers.spectral_conv.dft_by_matmul`), else with pocketFFT. Timed: the bare
   transforms (``rfft`` + truncation vs ``v @ F``; ``irfft`` vs ``[Re, Im] @ G``) at FNO-2D Darcy's
   padded grids, and a whole FNO-2D training step (``darcy_fno``'s model: width 32, 12 modes, 9 cells
   of padding, batch 20) with the rule as it is and with the FFT forced, at each ``--grids`` size.
2. ``slab``: :class:`neuralops.layers.PointwiseMLP` cuts FNO's projection into slabs of at most
   ``chunk_elements`` hidden values (recomputed in backward). Timed: FNO-3D's training step at the
   ``ns_fno3d`` configuration and batch (10, 64^2 x 40) with each of ``--slab-bounds``.

Every alternative is timed in the same rounds, interleaved, by the process CPU time (one thread),
the median over ``--rounds`` after one warm-up each.

    OMP_NUM_THREADS=1 python benchmarks/fno_cpu_paths.py [--grids 85,129,141,211 --rounds 3 \\
        --slab-bounds 22,24,26,none --json benchmarks/results/fno_cpu_paths.json]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from contextlib import nullcontext
from unittest import mock

import conditions  # benchmarks/conditions.py: records the load at the start
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from neuralops import models  # noqa: E402
from neuralops.layers import PointwiseMLP, spectral_conv  # noqa: E402


def timed_rounds(cases: dict, rounds: int) -> dict:
    """Median CPU seconds of each ``name -> callable``, one warm-up each, the cases interleaved."""
    for f in cases.values():
        f()
    times = {k: [] for k in cases}
    for _ in range(rounds):
        for k, f in cases.items():
            t0 = time.process_time()
            f()
            times[k].append(time.process_time() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def transform_cases(n: int, keep: int, batch: int = 20, channels: int = 32):
    v = torch.randn(batch, channels, n, n)
    y = torch.randn(batch, channels, n, keep, dtype=torch.complex64)
    forward, inverse = spectral_conv._dft_matrices(n, keep, torch.float32, torch.device("cpu"))
    return {
        "rfft": lambda: torch.fft.rfft(v, dim=-1, norm="forward")[..., :keep],
        "rfft_matmul": lambda: v @ forward,
        "irfft": lambda: torch.fft.irfft(y, n=n, dim=-1, norm="forward"),
        "irfft_matmul": lambda: torch.view_as_real(y).flatten(-2) @ inverse,
    }


def fno2d_step(res: int, batch: int, force_fft: bool):
    torch.manual_seed(0)
    model = models.get(
        "fno2d", in_channels=1, out_channels=1, modes=12, width=32, padding=9, norm="none", activation="gelu"
    )
    x = torch.randn(batch, 1, res, res)

    def step():
        with mock.patch.object(spectral_conv, "dft_by_matmul", lambda n: False) if force_fft else nullcontext():
            model.zero_grad(set_to_none=True)
            model(x).square().mean().backward()

    return step


def fno3d_step(batch: int, bound):
    torch.manual_seed(0)
    model = models.get("fno3d")
    for m in model.modules():
        if isinstance(m, PointwiseMLP):
            m.chunk_elements = bound
    x = torch.randn(batch, 10, 64, 64)

    def step():
        model.zero_grad(set_to_none=True)
        model(x, 40).square().mean().backward()

    return step


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grids", default="85,129,141,211", help="FNO-2D Darcy grids (padded by 9)")
    p.add_argument("--batch", type=int, default=20, help="FNO-2D batch (darcy_fno's 20)")
    p.add_argument("--slab-bounds", default="22,24,26,none", help="log2 of the slab bounds, or none")
    p.add_argument("--slab-batch", type=int, default=10, help="FNO-3D batch (ns_fno3d's 10)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--skip", choices=("dft", "slab"), action="append", default=[], help="leave a part out")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    try:
        args.grids = [int(g) for g in args.grids.split(",")]
        args.slab_bounds = [None if b == "none" else 2 ** int(b) for b in args.slab_bounds.split(",")]
    except ValueError:
        p.error(
            f"--grids and --slab-bounds take comma-separated integers (or none), got {args.grids!r} / "
            f"{args.slab_bounds!r}"
        )
    if min(args.grids) < 8 or args.rounds < 1 or args.batch < 1 or args.slab_batch < 1:
        p.error("--grids must be >= 8 and --rounds, --batch, --slab-batch >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    record = {"benchmark": "fno_cpu_paths", "args": vars(args) | {"slab_bounds": [str(b) for b in args.slab_bounds]}}
    if "dft" not in args.skip:
        rows = []
        for res in args.grids:
            n, keep = res + 9, 13
            t = timed_rounds(transform_cases(n, keep), args.rounds)
            s = timed_rounds(
                {"fft": fno2d_step(res, args.batch, True), "rule": fno2d_step(res, args.batch, False)}, args.rounds
            )
            row = {
                "grid": res,
                "padded": n,
                "by_matmul": spectral_conv.dft_by_matmul(n),
                "transform_ms": {k: v * 1e3 for k, v in t.items()},
                "step_ms_per_sample": {k: v / args.batch * 1e3 for k, v in s.items()},
                "step_speedup": s["fft"] / s["rule"],
            }
            rows.append(row)
            print(
                f"FNO-2D {res}^2 (+9 = {n}, matmul: {row['by_matmul']}): rfft {t['rfft'] * 1e3:.1f} / matmul "
                f"{t['rfft_matmul'] * 1e3:.1f} ms, irfft {t['irfft'] * 1e3:.1f} / matmul "
                f"{t['irfft_matmul'] * 1e3:.1f} ms; training step {row['step_ms_per_sample']['fft']:.1f} -> "
                f"{row['step_ms_per_sample']['rule']:.1f} ms/sample ({row['step_speedup']:.2f}x)",
                flush=True,
            )
        record["dft"] = rows
    if "slab" not in args.skip:
        cases = {str(b if b is None else int(math.log2(b))): fno3d_step(args.slab_batch, b) for b in args.slab_bounds}
        t = timed_rounds(cases, args.rounds)
        record["slab"] = {
            "batch": args.slab_batch,
            "seconds_per_sample": {k: v / args.slab_batch for k, v in t.items()},
        }
        print(
            "FNO-3D batch",
            args.slab_batch,
            "CPU s/sample by slab bound (log2): " + ", ".join(f"{k}: {v / args.slab_batch:.3f}" for k, v in t.items()),
            flush=True,
        )
    conditions.write_record(record, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
