"""Throughput of the batched pseudo-spectral Navier-Stokes solver against what users would write or pick.

    OMP_NUM_THREADS=1 python benchmarks/datagen_ns.py --json benchmarks/results/datagen_ns.json
    python benchmarks/datagen_ns.py --quick                              # batch 8, float32 only
    python benchmarks/datagen_ns.py --device cuda --batches 1,8,32,256   # on a GPU
    python benchmarks/datagen_ns.py --device cuda --extrapolate          # + the fno nu=1e-3 training-set time
    python benchmarks/datagen_ns.py --torch-cfd-path /tmp/benchdeps      # torch-cfd installed there

Measured, at 256^2 on the FNO benchmark problem (nu = 1e-3, FNO forcing, dt = 1e-4, FNO GRF initial
vorticity), in grid-point-steps per second (batch x n^2 x steps / s):

* ``ours``: :class:`datagen.navier_stokes.steppers.EulerCrankNicolson` (the FNO scheme; preallocated
  buffers, one batched inverse FFT for u, v, w_x, w_y, forcing transformed once);
* ``plain``: a straightforward PyTorch implementation of the same scheme written here (the FNO
  generator's algorithm with ``torch.fft.rfft2``: four ``irfft2`` calls, fresh temporaries each step);
* ``torch-cfd``: torch-cfd 0.2.6 ``NavierStokes2DSpectral`` with its IMEX Crank-Nicolson stepper
  (``IMEXStepper(order=1.5)``: the same scheme) and, for reference, its RK2-Crank-Nicolson
  (``order=2``, two nonlinear evaluations per step); an optional benchmark-only dependency, imported
  from the environment or from ``--torch-cfd-path`` (``pip install --no-deps --target DIR
  torch-cfd==0.2.6 einops``); skipped with a message when absent;
* ``fft-floor``: only the real FFTs one step needs (four inverse ``irfft2`` and one ``rfft2`` per
  sample, preallocated), i.e. the cost of any pseudo-spectral step of this scheme; timed both as one
  call over the whole batch and in the cache-sized chunks ours uses, and the faster is the floor.

All methods start from the same initial conditions; after the timed steps their states are compared
with ours (max relative difference: they agree to round-off, which checks that the same problem is
timed). Methods are timed interleaved, round after round, and the median per-step time is reported,
so load changes on a shared machine hit all of them alike: read the ratios.

``--extrapolate`` (CUDA): times a short run of the full ``fno`` recipe step (float32, batch
``--extrapolate-batch``) and extrapolates to the whole nu = 1e-3 training set: 1000 trajectories to
T = 50 at dt = 1e-4 (500,000 steps each), target < 30 minutes on one H100.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import conditions  # benchmarks/conditions.py: records the load at the start
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from datagen.navier_stokes import spectral as S  # noqa: E402
from datagen.navier_stokes.initial import fno_grf  # noqa: E402
from datagen.navier_stokes.steppers import make_stepper  # noqa: E402

N, VISCOSITY, DT = 256, 1e-3, 1e-4


def log(msg: str) -> None:
    print(msg, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------- baselines
class PlainFNOScheme:
    """The FNO scheme as one would write it directly (the FNO generator's algorithm, modern torch.fft)."""

    def __init__(self, n: int, viscosity: float, dt: float, forcing: torch.Tensor):
        device, dtype = forcing.device, forcing.dtype
        k_max = n // 2
        k = torch.cat([torch.arange(0, k_max), torch.arange(-k_max, 0)]).to(device=device, dtype=dtype)
        self.k_y = k.repeat(n, 1)[:, : k_max + 1]
        self.k_x = k[:, None].repeat(1, n)[:, : k_max + 1]
        self.lap = 4 * math.pi**2 * (self.k_x**2 + self.k_y**2)
        self.lap[0, 0] = 1.0
        self.dealias = ((self.k_x.abs() <= 2 / 3 * k_max) & (self.k_y.abs() <= 2 / 3 * k_max)).to(dtype)
        self.f_h = torch.fft.rfft2(forcing)
        self.n, self.viscosity, self.dt = n, viscosity, dt

    def step(self, w_h: torch.Tensor) -> torch.Tensor:
        n, dt, nu = self.n, self.dt, self.viscosity
        psi_h = w_h / self.lap
        u = torch.fft.irfft2(2j * math.pi * self.k_y * psi_h, s=(n, n))
        v = torch.fft.irfft2(-2j * math.pi * self.k_x * psi_h, s=(n, n))
        w_x = torch.fft.irfft2(2j * math.pi * self.k_x * w_h, s=(n, n))
        w_y = torch.fft.irfft2(2j * math.pi * self.k_y * w_h, s=(n, n))
        F_h = torch.fft.rfft2(u * w_x + v * w_y) * self.dealias
        return (-dt * F_h + dt * self.f_h + (1.0 - 0.5 * dt * nu * self.lap) * w_h) / (1.0 + 0.5 * dt * nu * self.lap)


class FFTFloor:
    """Only the transforms of one step: 4 inverse real FFTs and 1 forward per sample.

    ``chunk=None``: one inverse call over the whole batch's four fields and one forward call, on
    batch-sized arrays. ``chunk=c``: per chunk of ``c`` samples, one inverse call per field and one
    forward call, on chunk-sized work arrays reused from chunk to chunk (only the forward transform's
    output is batch-sized): the least memory traffic any implementation can have, and the way ours
    transforms on the CPU. The benchmark reports the faster of the two as the floor.
    """

    def __init__(self, batch: int, n: int, dtype: torch.dtype, device: torch.device, chunk: Optional[int] = None):
        cplx = torch.complex64 if dtype == torch.float32 else torch.complex128
        work = chunk or batch
        self.spec = torch.randn(4, work, n, n // 2 + 1, dtype=cplx, device=device)
        self.phys = torch.empty(4, work, n, n, dtype=dtype, device=device)
        self.prod = torch.randn(work, n, n, dtype=dtype, device=device)
        self.out = torch.empty(batch, n, n // 2 + 1, dtype=cplx, device=device)
        self.n, self.batch, self.chunk, self.split = n, batch, work, chunk is not None

    def step(self, _w=None):
        n, c = self.n, self.chunk
        for a in range(0, self.batch, c):
            k = min(c, self.batch - a)
            if self.split:
                for j in range(4):
                    torch.fft.irfft2(self.spec[j, :k], s=(n, n), out=self.phys[j, :k])
            else:
                torch.fft.irfft2(self.spec, s=(n, n), out=self.phys)
            torch.fft.rfft2(self.prod[:k], out=self.out[a : a + k])
        return _w


def load_torch_cfd(path: Optional[str]):
    for p in [path, os.environ.get("TORCH_CFD_PATH"), "/tmp/benchdeps"]:
        if p and os.path.isdir(p) and p not in sys.path:
            sys.path.append(p)
    try:
        import torch_cfd  # noqa: F401
        from torch_cfd import forcings, grids
        from torch_cfd import spectral as tcs

        return grids, forcings, tcs
    except Exception as exc:  # absent or broken optional dependency
        log(
            f"torch-cfd not available ({type(exc).__name__}: {exc}); its rows are skipped. "
            f"Install: pip install --no-deps --target /tmp/benchdeps torch-cfd==0.2.6 einops"
        )
        return None


def torch_cfd_stepper(mods, n: int, order: float, device: torch.device, dtype: torch.dtype):
    grids, forcings, tcs = mods
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # its meshes and buffers follow the default dtype
    try:
        grid = grids.Grid((n, n), domain=((0, 1), (0, 1)), device=device)
        forcing = forcings.SinCosForcing(grid=grid, scale=0.1, diam=1.0, wave_number=1, vorticity=True)
        eq = tcs.NavierStokes2DSpectral(
            viscosity=VISCOSITY, grid=grid, smooth=True, forcing_fn=forcing, step_fn=tcs.IMEXStepper(order=order)
        ).to(device)
    finally:
        torch.set_default_dtype(prev)

    def step(w_hat):
        # it re-evaluates the forcing on its mesh at every stage, in the default dtype: keep the run's
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.no_grad():
                return eq.step_fn(w_hat, DT, eq, 0.0)
        finally:
            torch.set_default_dtype(prev)

    return step


# ---------------------------------------------------------------------------------- timing
def bench_config(
    batch: int,
    dtype: torch.dtype,
    device: torch.device,
    steps: int,
    rounds: int,
    cfd,
    clock: Callable[[], float] = time.perf_counter,
) -> Dict:
    n = N
    w0 = torch.from_numpy(fno_grf(n, 0, range(batch))).to(device=device, dtype=dtype)
    grid = S.SpectralGrid(n, dtype=dtype, device=device)
    forcing64 = S.fno_forcing(S.SpectralGrid(n, dtype=torch.float64, device=device))
    ours = make_stepper("fno", grid, VISCOSITY, (batch,), forcing=forcing64)
    ours.set_dt(DT)
    plain = PlainFNOScheme(n, VISCOSITY, DT, forcing64.to(dtype))
    floor_one = FFTFloor(batch, n, dtype, device)
    floor_chunked = FFTFloor(batch, n, dtype, device, chunk=ours.buffers.chunk)
    methods: Dict[str, Callable] = {
        "ours": ours.step,
        "plain": plain.step,
        "fft-floor one call": floor_one.step,
        "fft-floor chunked": floor_chunked.step,
    }
    if cfd is not None:
        methods["torch-cfd imex-cn"] = torch_cfd_stepper(cfd, n, 1.5, device, dtype)
        methods["torch-cfd rk2-cn"] = torch_cfd_stepper(cfd, n, 2, device, dtype)
    in_place = {"ours", "fft-floor one call", "fft-floor chunked"}
    states = {name: torch.fft.rfft2(w0) for name in methods}
    times: Dict[str, List[float]] = {name: [] for name in methods}
    for name, fn in methods.items():  # warm-up (plans, caches) and one step of each
        s = fn(states[name])
        if name not in in_place:
            states[name] = s
    n_steps = {name: 1 for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            sync(device)
            t0 = clock()
            state = states[name]
            for _ in range(steps):
                out = fn(state)
                if name not in in_place:
                    state = out
            sync(device)
            times[name].append((clock() - t0) / steps)
            states[name] = state
            n_steps[name] += steps
    ref = torch.fft.irfft2(states["ours"], s=(n, n))
    scale = float(ref.abs().max())
    res = {
        "batch": batch,
        "dtype": str(dtype).replace("torch.", ""),
        "device": str(device),
        "n": n,
        "steps_per_round": steps,
        "rounds": rounds,
        "methods": {},
    }
    for name in methods:
        t = statistics.median(times[name])
        entry = {"seconds_per_step": t, "mpoint_steps_per_s": batch * n * n / t / 1e6}
        if not name.startswith("fft-floor"):
            other = torch.fft.irfft2(states[name], s=(n, n))
            entry["max_rel_diff_vs_ours"] = float((other - ref).abs().max()) / scale
            entry["steps_compared"] = n_steps[name]
        res["methods"][name] = entry
    t_ours = res["methods"]["ours"]["seconds_per_step"]
    floor = min(res["methods"][k]["seconds_per_step"] for k in ("fft-floor one call", "fft-floor chunked"))
    res["fft_floor_seconds_per_step"] = floor
    res["cpu_chunk_samples"] = ours.buffers.chunk
    res["ratios"] = {
        f"ours_speedup_vs_{k}": v["seconds_per_step"] / t_ours
        for k, v in res["methods"].items()
        if k != "ours" and not k.startswith("fft-floor")
    }
    res["ratios"]["ours_over_fft_floor"] = t_ours / floor
    return res


def extrapolate(device: torch.device, batch: int, steps: int) -> Dict:
    """Time the fno recipe's step (float32, 256^2) and extrapolate to 1000 trajectories x 500,000 steps."""
    n = N
    grid = S.SpectralGrid(n, dtype=torch.float32, device=device)
    forcing64 = S.fno_forcing(S.SpectralGrid(n, dtype=torch.float64, device=device))
    st = make_stepper("fno", grid, VISCOSITY, (batch,), forcing=forcing64)
    st.set_dt(DT)
    w0 = torch.from_numpy(fno_grf(n, 0, range(min(batch, 64)))).to(device=device, dtype=torch.float32)
    w = torch.fft.rfft2(w0.repeat(math.ceil(batch / w0.shape[0]), 1, 1)[:batch])
    for _ in range(20):
        st.step(w)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        st.step(w)
    sync(device)
    per_step = (time.perf_counter() - t0) / steps
    total_steps = round(50.0 / DT)
    n_batches = math.ceil(1000 / batch)
    seconds = per_step * total_steps * n_batches
    out = {
        "batch": batch,
        "seconds_per_step": per_step,
        "timed_steps": steps,
        "mpoint_steps_per_s": batch * n * n / per_step / 1e6,
        "extrapolated_minutes_1000x_T50": seconds / 60.0,
        "target_minutes": 30.0,
        "finite": bool(torch.isfinite(torch.view_as_real(w)).all()),
    }
    if device.type == "cuda":
        out["max_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--steps", type=int, default=0, help="steps per round (default: by batch)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="batch 8, float32, 2 rounds")
    ap.add_argument("--torch-cfd-path", default=None)
    ap.add_argument("--no-torch-cfd", action="store_true")
    ap.add_argument("--extrapolate", action="store_true", help="time the fno nu=1e-3 training set (GPU)")
    ap.add_argument("--extrapolate-batch", type=int, default=500)
    ap.add_argument("--extrapolate-steps", type=int, default=200)
    ap.add_argument(
        "--clock",
        choices=("auto", "wall", "cpu"),
        default="auto",
        help="what times a round: wall clock, or this process's CPU time (time.process_time; with one "
        "torch thread other jobs on a shared machine disturb it far less); auto: cpu on the CPU with "
        "one thread, else wall",
    )
    ap.add_argument("--json", default=None, help="write the record here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.quick:
        args.batches, args.dtypes, args.rounds = "8", "float32", 2
    batches = [int(b) for b in args.batches.split(",") if b]
    dtypes = [{"float32": torch.float32, "float64": torch.float64}[d] for d in args.dtypes.split(",") if d]
    cfd = None if args.no_torch_cfd else load_torch_cfd(args.torch_cfd_path)
    clock_name = args.clock
    if clock_name == "auto":
        clock_name = "cpu" if device.type == "cpu" and torch.get_num_threads() == 1 else "wall"
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    record = {
        "clock": clock_name,
        "benchmark": "datagen_ns",
        "problem": f"FNO Navier-Stokes, {N}^2, nu={VISCOSITY}, dt={DT}",
        "unit": "grid-point-steps per second (batch * n^2 * steps / s), median over rounds",
        "device": {"type": device.type, "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "results": [],
    }
    for dtype in dtypes:
        for b in batches:
            steps = args.steps or (max(4, 128 // b) if device.type == "cpu" else 50)
            log(f"batch {b:4d} {str(dtype):14s} ({steps} steps x {args.rounds} rounds per method)...")
            r = bench_config(b, dtype, device, steps, args.rounds, cfd, clock)
            record["results"].append(r)
            cols = "  ".join(f"{k} {v['mpoint_steps_per_s']:7.2f}" for k, v in r["methods"].items())
            log(f"  M point-steps/s: {cols}")
            log("  " + "  ".join(f"{k} {v:.2f}" for k, v in r["ratios"].items()))
            log(f"  (fft floor: faster of one call and chunks of {r['cpu_chunk_samples']} samples)")
            diffs = "  ".join(
                f"{k} {v['max_rel_diff_vs_ours']:.1e}"
                for k, v in r["methods"].items()
                if "max_rel_diff_vs_ours" in v and k != "ours"
            )
            log(f"  max relative difference of the final state vs ours: {diffs}")
    if args.extrapolate:
        log(f"extrapolating the fno nu=1e-3 training set (batch {args.extrapolate_batch}, float32)...")
        e = extrapolate(device, args.extrapolate_batch, args.extrapolate_steps)
        record["extrapolation"] = e
        log(
            f"  {e['seconds_per_step'] * 1e3:.2f} ms/step for {e['batch']} trajectories -> "
            f"{e['extrapolated_minutes_1000x_T50']:.1f} min for 1000 x T=50 (target < 30)"
        )
    conditions.write_record(record, args.json, log=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
