"""The GPU benchmark's stages, under one time budget (run through ``bash benchmarks/gpu.sh``).

    bash benchmarks/gpu.sh                       # on a machine with one NVIDIA GPU, 480 s in all
    bash benchmarks/gpu.sh --budget 300 --json benchmarks/results/gpu.json
    bash benchmarks/gpu.sh --dry-run             # every stage on the CPU at tiny sizes (the test)

Stages, in order (each checks the time left before every item and records what it skipped):

1. ``datagen``: Navier-Stokes generator throughput at 256^2 on the FNO problem (nu = 1e-3, dt = 1e-4),
   batch 1..256, float32 and float64 (:func:`benchmarks.datagen_ns.bench_config`: ours, a plain
   PyTorch version of the same scheme, and the FFT floor, timed interleaved), then the time of the
   full ``fno`` nu = 1e-3 set: 1200 trajectories (1000 train + 200 test) to T = 50 at dt = 1e-4
   (500,000 steps each), extrapolated from a timed run of the recipe's float32 step
   (:func:`benchmarks.datagen_ns.extrapolate`) at the batch sizes that fit, the fastest reported.
2. ``identity``: one short trajectory pair (FNO initial fields, the generator's
   :class:`datagen.navier_stokes.solver.NavierStokesSolver`) on the CPU and on CUDA, float64 and
   float32: the maximum relative difference of the stored snapshots (max |w_cpu - w_cuda| / max |w_cpu|).
3. ``models``: one training step (forward, ``mean(out^2)``, backward) of every registered model at
   its paper input (:func:`benchmarks.models.build_paper_case`), in float32 and under bfloat16
   autocast (``bf16-mixed``): samples per second (median of the timed steps,
   :func:`benchmarks.models.time_steps`) and peak memory (``torch.cuda.max_memory_allocated`` after
   a reset, absolute, and above the pre-step level, :func:`benchmarks.models.peak_memory`).
4. ``fidelity``: :mod:`benchmarks.fidelity` (generated NS data, every NS model trained with its
   recipe, neuraloperator's FNO when importable) at the largest preset whose estimated time fits
   what is left, with the rest of the budget as its hard deadline.

``--dry-run``: the same code on the CPU with tiny grids (32^2 generator, two models on 32^2 inputs,
the ``tiny`` fidelity preset), CPU compared with CPU in stage 2; the numbers mean nothing, the
record's layout is the real one. One JSON record (``--json``) and a table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import sys
import time
from typing import Dict, List, Optional

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

import datagen_ns  # noqa: E402  (benchmarks/datagen_ns.py)
import fidelity  # noqa: E402  (benchmarks/fidelity.py)
import models as models_bench  # noqa: E402  (benchmarks/models.py)

FULL_SET = dict(trajectories=1200, t_end=50.0, dt=1e-4)  # the fno recipe, nu = 1e-3
# rough wall-clock cost of each fidelity preset on one modern GPU (seconds), largest first
FIDELITY_COST = (("gpu-large", 300.0), ("gpu-medium", 120.0), ("quick", 45.0))


def log(msg: str) -> None:
    print(msg, flush=True)


class Budget:
    """Seconds left of a total budget, from construction."""

    def __init__(self, seconds: float):
        self.total, self.t0 = float(seconds), time.perf_counter()

    def left(self) -> float:
        return self.total - (time.perf_counter() - self.t0)

    def used(self) -> float:
        return time.perf_counter() - self.t0


@contextlib.contextmanager
def _datagen_grid(n: int):
    """Run :mod:`datagen_ns` at grid ``n`` (it reads its module constant ``N``; dry runs use 32)."""
    saved = datagen_ns.N
    datagen_ns.N = n
    try:
        yield
    finally:
        datagen_ns.N = saved


@contextlib.contextmanager
def _paper_inputs(overrides: Dict[str, dict]):
    """Temporarily smaller inputs for :func:`benchmarks.models.build_paper_case` (dry runs)."""
    saved = {k: models_bench.PAPER_INPUTS.get(k) for k in overrides}
    models_bench.PAPER_INPUTS.update(overrides)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                models_bench.PAPER_INPUTS.pop(k, None)
            else:
                models_bench.PAPER_INPUTS[k] = v


# ---------------------------------------------------------------------------------- stage 1
def stage_datagen(device: torch.device, budget: Budget, dry: bool) -> Dict:
    n = 32 if dry else datagen_ns.N
    batches = (1, 2) if dry else (1, 8, 32, 64, 128, 256)
    dtypes = (torch.float32, torch.float64)
    steps, rounds = (2, 1) if dry else (20, 3)
    out: Dict = {"n": n, "viscosity": datagen_ns.VISCOSITY, "dt": datagen_ns.DT, "rows": [], "skipped": []}
    with _datagen_grid(n):
        for dtype in dtypes:
            for b in batches:
                name = f"batch {b} {str(dtype).replace('torch.', '')}"
                if budget.left() < 30:
                    out["skipped"].append(f"{name}: budget")
                    continue
                try:
                    r = datagen_ns.bench_config(b, dtype, device, steps, rounds, None)
                except RuntimeError as exc:  # out of memory at the largest batches
                    out["skipped"].append(f"{name}: {type(exc).__name__}: {str(exc)[:120]}")
                    continue
                ours = r["methods"]["ours"]
                out["rows"].append(
                    {
                        "batch": b,
                        "dtype": r["dtype"],
                        "seconds_per_step": ours["seconds_per_step"],
                        "mpoint_steps_per_s": ours["mpoint_steps_per_s"],
                        "ours_over_fft_floor": r["ratios"]["ours_over_fft_floor"],
                        "speedup_vs_plain": r["ratios"].get("ours_speedup_vs_plain"),
                        "max_rel_diff_plain_vs_ours": r["methods"]["plain"]["max_rel_diff_vs_ours"],
                    }
                )
                log(
                    f"  datagen {n}^2 {name:>16}: {ours['mpoint_steps_per_s']:9.1f} M point-steps/s "
                    f"({ours['seconds_per_step'] * 1e3:.3f} ms/step)"
                )
        total_steps = round(FULL_SET["t_end"] / FULL_SET["dt"])
        extra = []
        for b in (2, 4) if dry else (200, 400, 600, 1200):
            if budget.left() < 40:
                out["skipped"].append(f"extrapolation batch {b}: budget")
                continue
            try:
                e = datagen_ns.extrapolate(device, b, 2 if dry else 100)
            except RuntimeError as exc:
                out["skipped"].append(f"extrapolation batch {b}: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            batches_needed = math.ceil(FULL_SET["trajectories"] / b)
            e["extrapolated_minutes_full_set"] = e["seconds_per_step"] * total_steps * batches_needed / 60.0
            extra.append(e)
            log(
                f"  fno set extrapolation, batch {b}: {e['seconds_per_step'] * 1e3:.2f} ms/step -> "
                f"{e['extrapolated_minutes_full_set']:.1f} min for {FULL_SET['trajectories']} x T=50"
            )
        out["extrapolation"] = {
            "set": dict(FULL_SET, steps_per_trajectory=total_steps, dtype="float32", resolution=n),
            "runs": extra,
        }
        if extra:
            best = min(extra, key=lambda e: e["extrapolated_minutes_full_set"])
            out["extrapolation"]["best_batch"] = best["batch"]
            out["extrapolation"]["minutes"] = best["extrapolated_minutes_full_set"]
    return out


# ---------------------------------------------------------------------------------- stage 2
def stage_identity(device: torch.device, budget: Budget, dry: bool) -> Dict:
    from datagen.navier_stokes.initial import fno_grf
    from datagen.navier_stokes.solver import NavierStokesSolver

    n, batch = (32, 2) if dry else (256, 2)
    times = [0.001, 0.002] if dry else [0.01, 0.02, 0.03, 0.04, 0.05]
    w0 = fno_grf(n, 0, range(batch))
    out: Dict = {
        "n": n,
        "batch": batch,
        "snapshot_times": times,
        "dt": 1e-4,
        "rows": [],
        "skipped": [],
        "compared": f"cpu vs {device}",
    }
    for dtype in (torch.float64, torch.float32):
        if budget.left() < 20:
            out["skipped"].append(f"{dtype}: budget")
            continue
        runs = []
        for dev in ("cpu", device):
            solver = NavierStokesSolver(
                n,
                1e-3,
                forcing={"type": "fno", "amplitude": 0.1, "wavenumber": 1},
                stepper="fno",
                dt=1e-4,
                device=dev,
                dtype=dtype,
            )
            runs.append(solver.run(w0, times).vorticity().double())
        ref = runs[0]
        diff = float((runs[1] - ref).abs().max() / ref.abs().max())
        row = {"dtype": str(dtype).replace("torch.", ""), "steps": round(times[-1] / 1e-4), "max_rel_diff": diff}
        out["rows"].append(row)
        log(f"  identity {row['dtype']}: {row['steps']} steps at {n}^2, max |cpu - {device}| / max |cpu| = {diff:.2e}")
    return out


# ---------------------------------------------------------------------------------- stage 3
def _autocast_call(call, device: torch.device, precision: str):
    if precision == "fp32":
        return call

    def wrapped(m, v):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            out = call(m, v)
        return out.float()

    return wrapped


def stage_models(
    device: torch.device, budget: Budget, dry: bool, batch: int, repeats: int, names: Optional[List[str]]
) -> Dict:
    names = names or (["fno2d", "fno3d"] if dry else models_bench.models.available())
    small = (
        {"fno2d": dict(grid=32, kind="field"), "fno3d": dict(grid=32, kind="trajectory", t_in=10, t_out=8)}
        if dry
        else {}
    )
    out: Dict = {"batch": batch, "repeats": repeats, "rows": [], "skipped": []}
    with _paper_inputs(small):
        for name in names:
            for precision in ("fp32", "bf16-mixed"):
                if budget.left() < 30:
                    out["skipped"].append(f"{name} {precision}: budget")
                    continue
                row = {"model": name, "precision": precision}
                try:
                    torch.manual_seed(0)
                    model, x, call, shape = models_bench.build_paper_case(name, batch, device)
                    step = models_bench.make_step(model, x, _autocast_call(call, device, precision))
                    (seconds,) = models_bench.time_steps([step], repeats, device)
                    above = models_bench.peak_memory(step, device)
                    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
                    row.update(
                        params=models_bench.n_params(model),
                        input=shape,
                        seconds_per_step=seconds,
                        samples_per_s=batch / seconds,
                        peak_bytes_above_start=above,
                        max_memory_allocated=peak,
                    )
                    del model, x, step
                except Exception as exc:  # noqa: BLE001 -- one failing model must not hide the others
                    row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                out["rows"].append(row)
                if "error" in row:
                    log(f"  {name:<9} {precision:<10} failed: {row['error']}")
                else:
                    mem = row["max_memory_allocated"] or row["peak_bytes_above_start"]
                    mem_s = "n/a" if mem is None else f"{mem / 2**20:9.1f} MiB"
                    log(f"  {name:<9} {precision:<10} {row['samples_per_s']:9.1f} samples/s  peak {mem_s}")
    return out


# ---------------------------------------------------------------------------------- stage 4
def stage_fidelity(device: torch.device, budget: Budget, dry: bool, workdir: str) -> Dict:
    if dry:
        preset = "tiny"
    else:
        fits = [name for name, cost in FIDELITY_COST if cost <= budget.left() - 15]
        if not fits:
            return {"skipped": f"{budget.left():.0f} s left, the smallest preset needs {FIDELITY_COST[-1][1]:.0f} s"}
        preset = fits[0]
    log(f"  fidelity preset {preset!r} with {budget.left():.0f} s left")
    args = [
        "--preset",
        preset,
        "--device",
        str(device),
        "--deadline",
        str(time.time() + budget.left() - 5),
        "--workdir",
        workdir,
    ]
    return fidelity.run(fidelity.parse_args(args))


# ---------------------------------------------------------------------------------- table
def table(record: Dict) -> str:
    lines = [
        f"GPU benchmark on {record['machine']['device_name']} ({record['date']}), "
        f"{record['seconds_used']:.0f} of {record['budget_s']:.0f} s"
        + ("  [DRY RUN: CPU, tiny sizes]" if record["dry_run"] else "")
    ]
    st = {}
    for name, stage in record["stages"].items():  # a failed stage holds only its error: say so, once
        if isinstance(stage, dict) and "error" in stage and len(stage) <= 2:
            lines.append(f"{name}: failed ({stage['error']})")
        else:
            st[name] = stage
    d = st.get("datagen")
    if d:
        lines.append(f"Navier-Stokes generator, {d['n']}^2, nu {d['viscosity']:g}, dt {d['dt']:g} (ours):")
        lines.append("  batch  dtype     M point-steps/s   ms/step   ours/fft-floor")
        for r in d["rows"]:
            lines.append(
                f"  {r['batch']:5d}  {r['dtype']:8s} {r['mpoint_steps_per_s']:15.1f} "
                f"{r['seconds_per_step'] * 1e3:9.3f} {r['ours_over_fft_floor']:12.2f}"
            )
        ex = d.get("extrapolation", {})
        if "minutes" in ex:
            lines.append(
                f"  full fno nu=1e-3 set ({FULL_SET['trajectories']} x T=50, dt 1e-4, float32): "
                f"{ex['minutes']:.1f} min extrapolated (batch {ex['best_batch']})"
            )
    i = st.get("identity")
    if i:
        for r in i["rows"]:
            lines.append(
                f"CPU vs {i['compared'].split()[-1]} trajectory ({i['n']}^2, {r['steps']} steps, "
                f"{r['dtype']}): max relative difference {r['max_rel_diff']:.2e}"
            )
    m = st.get("models")
    if m:
        lines.append(f"Training step, batch {m['batch']} (samples/s, peak MiB):")
        by = {}
        for r in m["rows"]:
            by.setdefault(r["model"], {})[r["precision"]] = r
        lines.append(f"  {'model':<10} {'fp32 samp/s':>12} {'fp32 MiB':>10} {'bf16 samp/s':>12} {'bf16 MiB':>10}")
        for name, rows in by.items():
            cells = []
            for p in ("fp32", "bf16-mixed"):
                r = rows.get(p, {})
                if "samples_per_s" in r:
                    mem = r["max_memory_allocated"] or r["peak_bytes_above_start"]
                    cells += [f"{r['samples_per_s']:12.1f}", "n/a".rjust(10) if mem is None else f"{mem / 2**20:10.0f}"]
                else:
                    cells += ["failed".rjust(12) if "error" in r else "-".rjust(12), "-".rjust(10)]
            lines.append(f"  {name:<10} " + " ".join(cells))
    f = st.get("fidelity")
    if f:
        if "skipped" in f and "rows" not in f:
            lines.append(f"Fidelity: skipped ({f['skipped']})")
        else:
            lines.append(fidelity.table(f))
    for name, s in st.items():
        if name != "fidelity" and isinstance(s, dict) and isinstance(s.get("skipped"), list) and s["skipped"]:
            lines.append(f"  {name}: skipped {', '.join(s['skipped'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes (checks the script, not the GPU)")
    ap.add_argument("--budget", type=float, default=480.0, help="total seconds for all stages (default 480)")
    ap.add_argument(
        "--stages",
        default="datagen,identity,models,fidelity",
        help="comma-separated subset of datagen,identity,models,fidelity",
    )
    ap.add_argument("--model-batch", type=int, default=None, help="training-step batch (default 8; dry run 1)")
    ap.add_argument("--models", default=None, help="comma-separated registered models (default: all)")
    ap.add_argument("--json", default=None, help="record path (default benchmarks/results/gpu[_dry_run].json)")
    ap.add_argument("--workdir", default=None, help="scratch folder for the fidelity data (default: a temp dir)")
    args = ap.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = sorted(set(stages) - {"datagen", "identity", "models", "fidelity"})
    if bad:
        ap.error(f"unknown stage(s) {', '.join(bad)}; allowed: datagen, identity, models, fidelity")
    if args.budget <= 0:
        ap.error(f"--budget must be a positive number of seconds, got {args.budget}")
    if args.dry_run:
        device = torch.device("cpu")
    else:
        if not torch.cuda.is_available():
            log(
                f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False): install a "
                "CUDA build (pip install --force-reinstall torch) or use --dry-run"
            )
            return 1
        device = torch.device("cuda")
    budget = Budget(args.budget)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    log(
        f"device: {device} ({name}); torch {torch.__version__}; budget {args.budget:.0f} s"
        + ("; DRY RUN" if args.dry_run else "")
    )
    record = {
        "benchmark": "gpu",
        "dry_run": args.dry_run,
        "budget_s": args.budget,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "device": str(device),
            "device_name": name,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
        },
        "stages": {},
    }
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        for stage in stages:
            log(f"[{budget.used():6.1f} s] stage {stage}")
            t_stage = budget.used()
            try:
                if stage == "datagen":
                    res = stage_datagen(device, budget, args.dry_run)
                elif stage == "identity":
                    res = stage_identity(device, budget, args.dry_run)
                elif stage == "models":
                    names = [n.strip() for n in args.models.split(",")] if args.models else None
                    res = stage_models(
                        device,
                        budget,
                        args.dry_run,
                        args.model_batch or (1 if args.dry_run else 8),
                        1 if args.dry_run else 5,
                        names,
                    )
                else:
                    res = stage_fidelity(device, budget, args.dry_run, workdir)
            except Exception as exc:  # noqa: BLE001 -- record and go on to the next stage
                res = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"  stage {stage} failed: {res['error']}")
            res["seconds"] = budget.used() - t_stage
            record["stages"][stage] = res
    record["seconds_used"] = budget.used()
    import conditions  # benchmarks/conditions.py (this folder is on sys.path): machine, load, allocator, versions

    path = args.json or os.path.join(ROOT, "benchmarks", "results", "gpu_dry_run.json" if args.dry_run else "gpu.json")
    # the record first: a table that cannot be printed loses nothing
    conditions.write_record(record, path, default=str, log=log)
    log(table(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
