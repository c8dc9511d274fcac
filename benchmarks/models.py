"""Forward+backward cost of every registered model at its paper configuration, and our FNO against
neuraloperator's FNO of the same configuration, in one process.

    OMP_NUM_THREADS=1 python benchmarks/models.py                      # CPU, all models
    python benchmarks/models.py --device cuda --batch 8 --repeats 10   # on a GPU
    python benchmarks/models.py --models fno2d,fno3d --json out.json
    python benchmarks/models.py --neuralop-path DIR                    # neuraloperator installed in DIR

Measured per model: seconds per sample of one training step (forward, ``mean(out^2)``,
backward; median over ``--repeats`` after one warm-up) and peak memory of that step:
CUDA: ``torch.cuda.max_memory_allocated`` above the pre-step level; CPU: peak bytes of tensors
allocated during the step (activations, temporaries, gradients), tracked per tensor by
``torch.distributed._tools.mem_tracker.MemTracker`` -- exact and independent of the allocator
(resident-set size would mostly measure glibc's caching). Parameters/inputs are not included.

neuraloperator is an optional benchmark-only dependency. It is imported from the environment or
from ``--neuralop-path`` / ``$NEURALOP_PATH`` (a ``pip install --no-deps --target DIR`` folder:
neuraloperator, tensorly, tensorly-torch, opt-einsum, requests, urllib3, idna,
charset-normalizer, certifi); when absent the comparison is skipped with a message. Its FNO is
configured as ours: the same Fourier modes (its ``n_modes`` counts both signs and
``n // 2 + 1`` real-FFT frequencies, so our ``modes=8`` is its ``(16, 16, 15)``), width 20, 4
layers, linear lifting, projection to 128, linear skips, ReLU, no channel MLP, no normalisation,
no padding; ours is run with the same choices (``norm="none"``, no time padding).
The two are timed interleaved (A, B, A, B, ...) so that load changes hit both equally; the
ratios are what to read on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import conditions  # benchmarks/conditions.py: records the load at the start
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from neuralops import models  # noqa: E402

# Paper inputs: grid size, input kind, output frames. "trajectory" models take (B, T_in, X, Y)
# and t_out; "field" models take (B, C_in, X, Y) with C_in read from the model.
PAPER_INPUTS: Dict[str, dict] = {
    "fno2d": dict(grid=64, kind="field"),  # NS 64^2, 10 frames -> 1
    "fno3d": dict(grid=64, kind="trajectory", t_in=10, t_out=40),  # NS 64^2, 10 -> 40 frames
    "sfno": dict(grid=64, kind="trajectory", t_in=10, t_out=40),  # NS 64^2, 10 -> 40 frames
    "mgno": dict(grid=256, kind="field"),  # Darcy 256^2
    "mgno_ns": dict(grid=64, kind="field"),  # NS 64^2 (LayerNorms bound to it), 1 -> 1 frame
    "mgno_ts": dict(grid=64, kind="field"),  # NS 64^2, frames -> next frame
    "sinenet": dict(grid=128, kind="field"),  # incompressible NS 128^2
    "unet": dict(grid=128, kind="field"),  # incompressible NS 128^2
    "unet_mod": dict(grid=128, kind="field"),  # PDEArena Unetmod-64, NS 128^2
}


def input_channels(model: nn.Module) -> int:
    """The model's ``in_channels`` attribute, else the input channels of its first conv/linear."""
    for attr in ("in_channels", "in_steps"):
        value = getattr(model, attr, None)
        if isinstance(value, int):
            return value
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return module.in_channels
        if isinstance(module, nn.Linear):
            return module.in_features
    raise ValueError(f"cannot tell the input channels of {type(model).__name__}")


def make_step(model: nn.Module, x: torch.Tensor, call: Callable) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        out = call(model, x)
        out.square().mean().backward()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(steps: List[Callable[[], None]], repeats: int, device: torch.device) -> List[float]:
    """Median seconds of each step; one warm-up each, then ``repeats`` rounds, interleaved."""
    for step in steps:
        step()
    sync(device)
    samples: List[List[float]] = [[] for _ in steps]
    for _ in range(repeats):
        for i, step in enumerate(steps):
            sync(device)
            t0 = time.perf_counter()
            step()
            sync(device)
            samples[i].append(time.perf_counter() - t0)
    return [statistics.median(s) for s in samples]


def peak_memory(step: Callable[[], None], device: torch.device) -> Optional[int]:
    """Peak bytes allocated by one step above the level before it (see the module docstring)."""
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        sync(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except Exception:  # noqa: BLE001 -- optional private tool; report "n/a"
        return None
    tracker = MemTracker()
    with tracker:
        step()
    snapshot = tracker.get_tracker_snapshot("peak")
    return int(sum(dev.get("Total", 0) for dev in snapshot.values()))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


def build_paper_case(name: str, batch: int, device: torch.device):
    spec = PAPER_INPUTS.get(name, dict(grid=64, kind="field"))
    model = models.get(name).to(device)
    n = spec["grid"]
    if spec["kind"] == "trajectory":
        x = torch.randn(batch, spec["t_in"], n, n, device=device)
        t_out = spec["t_out"]
        call = lambda m, v: m(v, t_out)  # noqa: E731
        shape = f"({batch}, {spec['t_in']}, {n}, {n}) -> T_out={t_out}"
    else:
        c = input_channels(model)
        x = torch.randn(batch, c, n, n, device=device)
        call = lambda m, v: m(v)  # noqa: E731
        shape = f"({batch}, {c}, {n}, {n})"
    return model, x, call, shape


def bench_registered(names: List[str], batch: int, repeats: int, device: torch.device) -> List[dict]:
    rows = []
    for name in names:
        row = dict(model=name)
        try:
            model, x, call, shape = build_paper_case(name, batch, device)
            step = make_step(model, x, call)
            (seconds,) = time_steps([step], repeats, device)
            row.update(
                params=n_params(model),
                input=shape,
                seconds_per_sample=seconds / batch,
                peak_bytes=peak_memory(step, device),
            )
        except Exception as err:  # noqa: BLE001 -- one broken model must not hide the others
            row.update(error=f"{type(err).__name__}: {err}")
        rows.append(row)
        print(format_row(row), flush=True)
        del row
    return rows


def format_row(row: dict) -> str:
    if "error" in row:
        return f"  {row['model']:<10} skipped: {row['error']}"
    mem = "n/a" if row["peak_bytes"] is None else f"{row['peak_bytes'] / 2**20:9.1f} MiB"
    return (
        f"  {row['model']:<10} {row['params']:>12,d} params  {row['input']:<32} "
        f"{row['seconds_per_sample'] * 1e3:9.1f} ms/sample  peak {mem}"
    )


# ------------------------------------------------------------------------------------------------
# ours vs neuraloperator
# ------------------------------------------------------------------------------------------------
def import_neuralop(path: Optional[str]):
    """``neuralop.models.FNO`` or ``(None, reason)``."""
    candidates = [p for p in (path, os.environ.get("NEURALOP_PATH")) if p]
    for p in candidates:
        if os.path.isdir(p) and p not in sys.path:
            sys.path.append(p)
    try:
        import neuralop  # noqa: F401
        from neuralop.models import FNO
    except Exception as err:  # noqa: BLE001
        return None, (
            f"neuraloperator not importable ({type(err).__name__}: {err}); install it "
            f"with 'pip install --no-deps --target DIR neuraloperator tensorly "
            f"tensorly-torch opt-einsum requests urllib3 idna charset-normalizer certifi' "
            f"and pass --neuralop-path DIR"
        )
    return FNO, getattr(neuralop, "__version__", "unknown")


def comparison_cases(
    batch: int, device: torch.device, FNO
) -> List[Tuple[str, nn.Module, nn.Module, torch.Tensor, Callable, Callable]]:
    common = dict(
        out_channels=1,
        hidden_channels=20,
        n_layers=4,
        lifting_channel_ratio=0,
        projection_channel_ratio=128 / 20,
        positional_embedding="grid",
        non_linearity=torch.nn.functional.relu,
        norm=None,
        use_channel_mlp=False,
        fno_skip="linear",
        domain_padding=None,
    )
    cases = []
    # FNO-3D: (B, 10, 64, 64) repeated over 40 output times (theirs gets the repeated tensor)
    ours3 = models.get("fno3d", norm="none", time_padding=0).to(device)
    theirs3 = FNO(n_modes=(16, 16, 15), in_channels=10, **common).to(device)
    x3 = torch.randn(batch, 10, 64, 64, device=device)
    cases.append(
        ("fno3d", ours3, theirs3, x3, lambda m, v: m(v, 40), lambda m, v: m(v.unsqueeze(-1).expand(*v.shape, 40)))
    )
    # FNO-2D: (B, 10, 64, 64) -> (B, 1, 64, 64)
    ours2 = models.get("fno2d", norm="none").to(device)
    theirs2 = FNO(n_modes=(16, 15), in_channels=10, **common).to(device)
    x2 = torch.randn(batch, 10, 64, 64, device=device)
    cases.append(("fno2d", ours2, theirs2, x2, lambda m, v: m(v), lambda m, v: m(v)))
    return cases


def bench_comparison(batch: int, repeats: int, device: torch.device, FNO) -> List[dict]:
    rows = []
    for name, ours, theirs, x, call_ours, call_theirs in comparison_cases(batch, device, FNO):
        step_ours = make_step(ours, x, call_ours)
        step_theirs = make_step(theirs, x, call_theirs)
        t_ours, t_theirs = time_steps([step_ours, step_theirs], repeats, device)
        m_ours, m_theirs = peak_memory(step_ours, device), peak_memory(step_theirs, device)
        row = dict(
            model=name,
            params_ours=n_params(ours),
            params_neuralop=n_params(theirs),
            seconds_per_sample_ours=t_ours / batch,
            seconds_per_sample_neuralop=t_theirs / batch,
            time_ratio_ours_over_neuralop=t_ours / t_theirs,
            peak_bytes_ours=m_ours,
            peak_bytes_neuralop=m_theirs,
            memory_ratio_ours_over_neuralop=(m_ours / m_theirs) if m_ours and m_theirs else None,
        )
        rows.append(row)
        mem = (
            "n/a"
            if row["memory_ratio_ours_over_neuralop"] is None
            else f"{m_ours / 2**20:.1f} vs {m_theirs / 2**20:.1f} MiB "
            f"(ratio {row['memory_ratio_ours_over_neuralop']:.2f})"
        )
        print(
            f"  {name:<6} ours {t_ours / batch * 1e3:8.1f} ms/sample, neuraloperator "
            f"{t_theirs / batch * 1e3:8.1f} ms/sample: time ratio ours/theirs "
            f"{row['time_ratio_ours_over_neuralop']:.2f}; peak memory {mem}; params "
            f"{row['params_ours']:,d} vs {row['params_neuralop']:,d}",
            flush=True,
        )
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    parser.add_argument("--batch", type=int, default=2, help="samples per step (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per model (default 3)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's, i.e. OMP_NUM_THREADS)"
    )
    parser.add_argument("--models", default=None, help="comma-separated registered names (default: all registered)")
    parser.add_argument("--no-compare", action="store_true", help="skip the neuraloperator comparison")
    parser.add_argument("--neuralop-path", default=None, help="folder holding neuraloperator (pip --target)")
    parser.add_argument("--json", default=None, help="also write the JSON record to this path")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1:
        parser.error(f"--batch and --repeats must be >= 1, got {args.batch}, {args.repeats}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    if args.threads:
        torch.set_num_threads(args.threads)
    names = (
        models.available() if args.models is None else [n.strip().lower() for n in args.models.split(",") if n.strip()]
    )
    unknown = [n for n in names if n not in models.available()]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; registered: {', '.join(models.available())}")
    torch.manual_seed(0)

    machine = dict(
        platform=platform.platform(),
        python=platform.python_version(),
        torch=torch.__version__,
        device=str(device),
        threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    )
    print(
        f"neuralops model benchmark on {machine['device']} ({machine['gpu'] or platform.processor() or 'cpu'}), "
        f"torch {machine['torch']}, {machine['threads']} thread(s), batch {args.batch}, "
        f"{args.repeats} repeats",
        flush=True,
    )
    print("registered models at their paper configurations (training step: forward + backward):")
    record = dict(
        benchmark="neuralops.models",
        machine=machine,
        batch=args.batch,
        repeats=args.repeats,
        models=bench_registered(names, args.batch, args.repeats, device),
    )

    comparison = dict(skipped=None, rows=[])
    if args.no_compare:
        comparison["skipped"] = "--no-compare"
    else:
        FNO, info = import_neuralop(args.neuralop_path)
        if FNO is None:
            comparison["skipped"] = info
            print(f"FNO vs neuraloperator: skipped: {info}")
        else:
            comparison["neuralop_version"] = info
            print(f"our FNO vs neuraloperator {info} FNO (same configuration, interleaved timing):")
            comparison["rows"] = bench_comparison(args.batch, args.repeats, device, FNO)
    record["fno_vs_neuraloperator"] = comparison
    print(json.dumps(record, indent=2))
    conditions.write_record(record, args.json, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
