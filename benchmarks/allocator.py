"""Training-step throughput under each allocator setting (datagen/allocator.py), one subprocess per run.

glibc reads its malloc variables when a process starts, so every (case, setting) pair runs in a fresh
child process started with that setting's environment; settings alternate within each round so that
load drift on a shared machine hits all of them. Each child builds the model, runs ``--warmup`` steps,
then times ``--steps`` training steps (forward, relative-L2 loss, backward, Adam) and reports:

- samples per second (median over the timed steps),
- minor page faults per step (``getrusage(RUSAGE_SELF).ru_minflt`` over the timed steps),
- the share of the process CPU time spent in the kernel (``ru_stime / (ru_utime + ru_stime)``),
- the peak resident size (``ru_maxrss``).

Cases (float32, channels first, random data of the right shapes):

``fno2d_darcy``  the ``darcy_fno`` config: FNO-2D, 12 modes, width 32, padding 9, GELU, no norm,
                 batch 20, at ``--darcy-res`` (default 129, the ``neuralops-datagen darcy`` default).
``fno3d_small``  ``ns_fno3d`` at a smaller batch: FNO-3D with the paper's defaults (8 modes, width 20,
                 BatchNorm), 10 frames in, ``--fno3d-t-out`` frames out (default 40) on ``--fno3d-res``^2
                 (default 64, the config's grid), batch ``--fno3d-batch`` (default 2; the config's is 10).

    OMP_NUM_THREADS=1 python benchmarks/allocator.py [--settings tuned,system] [--rounds 2] \\
        [--json benchmarks/results/allocator.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import conditions  # benchmarks/conditions.py: records the load at the start

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from datagen import allocator  # noqa: E402

CASES = ("fno2d_darcy", "fno3d_small")


def build_case(case: str, args):
    """``(model, x, y, batch)`` of a case (imports torch only in the child)."""
    import torch

    from neuralops import models

    torch.manual_seed(0)
    if case == "fno2d_darcy":
        model = models.get(
            "fno2d", in_channels=1, out_channels=1, modes=12, width=32, padding=9, norm="none", activation="gelu"
        )
        b, s = args.darcy_batch, args.darcy_res
        x, y = torch.randn(b, 1, s, s), torch.randn(b, 1, s, s)
    elif case == "fno3d_small":
        model = models.get("fno3d", in_steps=10, out_steps=args.fno3d_t_out)
        b, s = args.fno3d_batch, args.fno3d_res
        x, y = torch.randn(b, 10, s, s), torch.randn(b, args.fno3d_t_out, s, s)
    else:
        raise ValueError(f"unknown case {case!r}; allowed: {', '.join(CASES)}")
    return model, x, y, b


def child(args) -> int:
    import torch

    model, x, y, batch = build_case(args.child, args)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step():
        out = model(x)
        loss = ((out - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    print(
        json.dumps(
            {
                "case": args.child,
                "batch": batch,
                "step_seconds": times,
                "samples_per_s": batch / statistics.median(times),
                "minor_faults_per_step": (r1.ru_minflt - r0.ru_minflt) / args.steps,
                "kernel_cpu_share": system / max(user + system, 1e-12),
                "max_rss_mib": r1.ru_maxrss / 1024.0,
                "torch_threads": torch.get_num_threads(),
                "allocator_env": {k: os.environ[k] for k in allocator.USER_VARIABLES if os.environ.get(k)},
            }
        )
    )
    return 0


def clean_environment() -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in allocator.USER_VARIABLES and k not in (allocator.ENV_CHOICE, allocator.ENV_ACTIVE)
    }
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_child(case: str, setting: str, args) -> dict:
    applied, variables = allocator.environment_for(setting)
    env = {**clean_environment(), **variables, allocator.ENV_ACTIVE: applied}
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        case,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--darcy-res",
        str(args.darcy_res),
        "--darcy-batch",
        str(args.darcy_batch),
        "--fno3d-res",
        str(args.fno3d_res),
        "--fno3d-batch",
        str(args.fno3d_batch),
        "--fno3d-t-out",
        str(args.fno3d_t_out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{case} under {setting} failed:\n{proc.stdout}\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["setting"], out["applied"] = setting, applied
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--settings",
        default="tuned,system",
        help=f"comma-separated, from {', '.join(allocator.SETTINGS)} (default tuned,system)",
    )
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    p.add_argument("--rounds", type=int, default=2, help="child runs per (case, setting), interleaved")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per child")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--darcy-res", type=int, default=129)
    p.add_argument("--darcy-batch", type=int, default=20)
    p.add_argument("--fno3d-res", type=int, default=64)
    p.add_argument("--fno3d-batch", type=int, default=2)
    p.add_argument("--fno3d-t-out", type=int, default=40)
    p.add_argument("--json", default=None, help="write the record here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("rounds", "steps", "darcy_res", "darcy_batch", "fno3d_res", "fno3d_batch", "fno3d_t_out"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.child:
        return child(args)
    settings = [s for s in args.settings.split(",") if s]
    cases = [c for c in args.cases.split(",") if c]
    for s in settings:
        if s not in allocator.SETTINGS:
            p.error(f"unknown setting {s!r} in --settings; allowed: {', '.join(allocator.SETTINGS)}")
    for c in cases:
        if c not in CASES:
            p.error(f"unknown case {c!r} in --cases; allowed: {', '.join(CASES)}")

    record = {
        "benchmark": "allocator",
        "args": {k: v for k, v in vars(args).items() if k != "child"},
        "settings": {s: dict(zip(("applied", "variables"), allocator.environment_for(s))) for s in settings},
        "cases": {},
    }
    for case in cases:
        runs = {s: [] for s in settings}
        for r in range(args.rounds):
            order = settings if r % 2 == 0 else settings[::-1]
            for s in order:
                out = run_child(case, s, args)
                runs[s].append(out)
                print(
                    f"{case:12s} {s:9s} round {r}: {out['samples_per_s']:7.2f} samples/s, "
                    f"{out['minor_faults_per_step']:10.0f} minor faults/step, "
                    f"kernel {100 * out['kernel_cpu_share']:4.1f}% "
                    f"of CPU, max RSS {out['max_rss_mib']:7.0f} MiB",
                    flush=True,
                )
        summary = {}
        for s, outs in runs.items():
            summary[s] = {
                "samples_per_s_median": statistics.median(o["samples_per_s"] for o in outs),
                "samples_per_s_best": max(o["samples_per_s"] for o in outs),
                "minor_faults_per_step": statistics.median(o["minor_faults_per_step"] for o in outs),
                "kernel_cpu_share": statistics.median(o["kernel_cpu_share"] for o in outs),
                "max_rss_mib": max(o["max_rss_mib"] for o in outs),
                "runs": outs,
            }
        base = summary.get("system")
        if base is not None:
            for v in summary.values():
                v["speed_vs_system"] = v["samples_per_s_median"] / base["samples_per_s_median"]
                v["rss_vs_system"] = v["max_rss_mib"] / base["max_rss_mib"]
        record["cases"][case] = summary
        for s, v in summary.items():
            extra = (
                f", {v['speed_vs_system']:.2f}x system's samples/s at {v['rss_vs_system']:.2f}x its RSS"
                if base is not None
                else ""
            )
            print(f"{case:12s} {s:9s} median {v['samples_per_s_median']:7.2f} samples/s{extra}")
    conditions.write_record(record, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
