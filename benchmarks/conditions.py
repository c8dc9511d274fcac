"""The conditions a benchmark ran under, recorded with every result (one helper for all scripts).

Every JSON record in ``benchmarks/results/`` carries ``record["conditions"]`` from :func:`conditions`:

- ``machine``: CPU model, logical cores, cores this process may use (affinity), architecture, OS,
  total memory;
- ``load_before`` / ``load_after``: the 1/5/15-minute load averages when this module was imported
  (the script's start; or the time given to :func:`mark_start`) and when the record was made: a load
  above the usable core count means other jobs shared the machine and absolute times are inflated;
- ``threads``: ``OMP_NUM_THREADS`` and, when torch is loaded, its intra-op thread count;
- ``allocator``: the allocator setting of the process (:mod:`datagen.allocator`: the guard variable
  and the malloc variables / ``LD_PRELOAD`` in effect);
- ``versions``: Python, NumPy, SciPy, torch, petsc4py, PETSc, h5py (from package metadata, without
  importing anything heavy) and the git commit of the checkout;
- ``started`` / ``finished`` (UTC) and ``wall_seconds``.

Use: ``import conditions`` at the top of the script (it records the load there), then
``record["conditions"] = conditions.conditions()`` right before writing the record. From outside
``benchmarks/``: ``sys.path`` must contain this folder (the scripts run from it do).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("numpy", "scipy", "torch", "petsc4py", "petsc", "h5py", "lightning", "mpi4py")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from datagen import allocator as _allocator  # noqa: E402  (light: os, sys, ctypes)

#: every variable an allocator setting consists of (:mod:`datagen.allocator`): the choice, the guard,
#: then the malloc variables themselves
ALLOCATOR_VARIABLES = (_allocator.ENV_CHOICE, _allocator.ENV_ACTIVE) + _allocator.USER_VARIABLES


def _load() -> list:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return []


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_START = {"load": _load(), "time": _now(), "clock": time.perf_counter()}
# seconds between the interpreter's start and this import: a late import cannot tell the load at the start
try:
    _LATE = time.time() - os.stat(f"/proc/{os.getpid()}").st_ctime > 5.0
except OSError:
    _LATE = False


def mark_start() -> None:
    """Record the start (load average and time) now instead of at import."""
    global _LATE
    _START.update(load=_load(), time=_now(), clock=time.perf_counter())
    _LATE = False


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "arch": platform.machine(),
        "os": platform.platform(),
        "memory_gib": mem,
    }


def versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            out["neuralops_commit"] = commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def allocator() -> dict:
    """The allocator setting of this process (see :mod:`datagen.allocator`)."""
    env = {k: os.environ[k] for k in ALLOCATOR_VARIABLES if os.environ.get(k)}
    active = os.environ.get("NEURALOPS_ALLOCATOR_ACTIVE")
    if active:
        setting = active
    elif any(k in env for k in ALLOCATOR_VARIABLES[2:]):
        setting = "user-environment"
    else:
        setting = "system"
    return {"setting": setting, "environment": env}


def threads() -> dict:
    out = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch_threads"] = torch.get_num_threads()
    return out


def conditions(**extra) -> dict:
    """The record's ``conditions`` entry (``extra`` keys are added, e.g. a device description)."""
    out = {
        "machine": machine(),
        "load_before": None if _LATE else _START["load"],
        "load_after": _load(),
        "threads": threads(),
        "allocator": allocator(),
        "versions": versions(),
        "started": None if _LATE else _START["time"],
        "finished": _now(),
        "wall_seconds": None if _LATE else round(time.perf_counter() - _START["clock"], 2),
        **extra,
    }
    if _LATE:
        out["note"] = "recorded at the end only: load_after's 5- and 15-minute averages cover the run"
    return out


def write_record(record: dict, path=None, indent: int = 1, default=None, log=print) -> dict:
    """Attach :func:`conditions` to ``record``, report their one-line summary with ``log`` and, when
    ``path`` is given, write the record there as JSON (folders created; ``default`` as in
    :func:`json.dump`, for values JSON has no form for). Returns the record."""
    import json

    record["conditions"] = conditions()
    log(summary(record["conditions"]))
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as fh:
            json.dump(record, fh, indent=indent, default=default)
            fh.write("\n")
        log(f"wrote {path}")
    return record


def summary(cond: dict) -> str:
    """One line for a report: CPU, cores, load before/after, allocator."""
    m = cond["machine"]
    before = cond["load_before"][0] if cond["load_before"] else "?"
    after = cond["load_after"][0] if cond["load_after"] else "?"
    return (
        f"{m['cpu']}, {m['usable_cores']}/{m['cores']} cores, load {before} -> {after}, "
        f"allocator {cond['allocator']['setting']}"
    )


if __name__ == "__main__":
    import json

    print(json.dumps(conditions(), indent=1))
