"""The memory-allocator setting of the neuralops programs, applied before the interpreter starts.

Why: glibc's malloc serves each block above its mmap threshold with a fresh ``mmap`` and unmaps it on
``free``, and trims the top of its heap back to the OS; PyTorch frees and re-allocates every large
activation each training step, so every step faults all of its pages in again (freshly zeroed by the
kernel). On the 2-core machine ``neuralops-train fit`` spent about 42% of its CPU time in page faults
(3.3 million minor faults per FNO-3D step). Keeping freed memory in the process removes the storm.

Settings, chosen with the environment variable ``NEURALOPS_ALLOCATOR``:

``auto``      (default) the first installed of ``tcmalloc``, ``jemalloc``, else ``tuned``: measured by
              ``benchmarks/allocator.py`` (FNO-2D Darcy training steps, batch 20 at 129^2, loaded 2-core
              machine), all three remove the faults and run 2.1-2.3x the system setting's samples/s;
              tcmalloc and jemalloc do it at 0.87-0.90x the system setting's peak RSS, ``tuned`` at 1.21x.
              FNO-3D at the ns_fno3d config (batch 10, one round): tuned 2.3x at 1.68x the RSS,
              tcmalloc 5.5x at 0.84x.
``tuned``     glibc malloc with ``MALLOC_MMAP_MAX_=0`` (no block is served by its own
              mmap: large blocks come from the heap and are reused) and ``MALLOC_TRIM_THRESHOLD_``
              = 64 GiB (the heap is not trimmed after every step). Freed memory stays in the process:
              the resident size is the high-water mark of the heap (see ``benchmarks/allocator.py``
              for the measured speed and RSS cost).
``jemalloc``  jemalloc through ``LD_PRELOAD`` (Debian ``libjemalloc2``) when installed, else ``tuned``;
              with ``MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1`` (its default decay purges freed
              pages and faults them in again just like glibc's defaults).
``tcmalloc``  tcmalloc through ``LD_PRELOAD`` (Debian ``libtcmalloc-minimal4``) when installed, else ``tuned``.
``system``    malloc as the system configures it (nothing set).

glibc reads these variables only when a process starts, so a program's entry point calls
:func:`ensure`, which (once, guarded by ``NEURALOPS_ALLOCATOR_ACTIVE``) re-executes the same command
line with the variables set. Child processes inherit the setting. A user who sets any of the malloc
variables (or ``LD_PRELOAD``/``GLIBC_TUNABLES``) without ``NEURALOPS_ALLOCATOR`` keeps them untouched.
``python -m datagen.allocator [setting]`` prints the ``NAME=value`` assignments (for Makefiles).
"""

from __future__ import annotations

import ctypes.util
import os
import sys

SETTINGS = ("auto", "tuned", "jemalloc", "tcmalloc", "system")
DEFAULT = "auto"
AUTO_ORDER = ("tcmalloc", "jemalloc")  # preferred when installed (less RSS than tuned, as fast)
ENV_CHOICE = "NEURALOPS_ALLOCATOR"
ENV_ACTIVE = "NEURALOPS_ALLOCATOR_ACTIVE"
# 64 GiB: larger than any heap this toolkit builds, so the heap top is never given back mid-run
TRIM_THRESHOLD = 64 * 2**30
TUNED = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
USER_VARIABLES = (
    "MALLOC_MMAP_MAX_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_ARENA_MAX",
    "GLIBC_TUNABLES",
    "LD_PRELOAD",
    "MALLOC_CONF",
    "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD",
)
LIBRARIES = {"jemalloc": ("libjemalloc.so.2", "jemalloc"), "tcmalloc": ("libtcmalloc_minimal.so.4", "tcmalloc_minimal")}
_SEARCH_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")


def find_library(setting: str) -> str | None:
    """Path of the shared library of ``jemalloc``/``tcmalloc``, or None when it is not installed."""
    if not sys.platform.startswith("linux"):  # LD_PRELOAD is the Linux loader's
        return None
    filename, short = LIBRARIES[setting]
    for d in _SEARCH_DIRS:
        path = os.path.join(d, filename)
        if os.path.exists(path):
            return path
    found = ctypes.util.find_library(short)
    if found and os.path.isabs(found) and os.path.exists(found):
        return found
    return found if found else None


def check_setting(setting: str) -> str:
    if setting not in SETTINGS:
        raise ValueError(f"{ENV_CHOICE}={setting!r} is not a known allocator setting; allowed: {', '.join(SETTINGS)}")
    return setting


def environment_for(setting: str) -> tuple[str, dict]:
    """``(applied, variables)``: what ``setting`` becomes on this machine and the variables it sets.

    ``jemalloc``/``tcmalloc`` fall back to ``tuned`` (``applied`` says so) when the library is missing.
    """
    check_setting(setting)
    if setting == "auto":
        setting = next((s for s in AUTO_ORDER if find_library(s) is not None), "tuned")
    if setting == "system":
        return "system", {}
    if setting in LIBRARIES:
        lib = find_library(setting)
        if lib is not None:
            preload = [p for p in os.environ.get("LD_PRELOAD", "").replace(" ", ":").split(":") if p and p != lib]
            variables = {"LD_PRELOAD": ":".join([lib] + preload)}
            if setting == "tcmalloc":
                # no "large alloc" report on stderr for every allocation above 1 GiB
                variables["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"] = str(2**40)
            if setting == "jemalloc":
                # jemalloc's defaults purge freed pages after a decay time (large blocks at once): the same
                # fault storm as glibc's (measured); keep them, as ``tuned`` does. The user's MALLOC_CONF
                # comes last and wins.
                user = os.environ.get("MALLOC_CONF", "")
                variables["MALLOC_CONF"] = JEMALLOC_CONF + (
                    f",{user}" if user and user != JEMALLOC_CONF and not user.startswith(JEMALLOC_CONF + ",") else ""
                )
            return setting, variables
        return f"tuned({setting}-not-installed)", dict(TUNED)
    return "tuned", dict(TUNED)


def requested(environ=None) -> str | None:
    """The setting asked for: ``NEURALOPS_ALLOCATOR``, None when the user set malloc variables themselves
    (they are kept), else :data:`DEFAULT`."""
    environ = os.environ if environ is None else environ
    choice = environ.get(ENV_CHOICE, "").strip()
    if choice:
        return check_setting(choice)
    if any(environ.get(v) for v in USER_VARIABLES):
        return None
    return DEFAULT


def describe(environ=None) -> str:
    """One line for a run log: the allocator setting of this process and how to change it."""
    environ = os.environ if environ is None else environ
    active = environ.get(ENV_ACTIVE)
    shown = [f"{k}={environ[k]}" for k in USER_VARIABLES if environ.get(k)]
    what = active if active else "as inherited"
    return (
        f"neuralops: allocator {what}"
        + (f" ({' '.join(shown)})" if shown else " (system malloc defaults)")
        + f"; set {ENV_CHOICE}={'|'.join(SETTINGS)} to change"
    )


def _restore(previous: dict, active: str) -> None:
    """Put back the variables of a setting that was not applied, and say so in the guard."""
    os.environ[ENV_ACTIVE] = active
    for k, v in previous.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def ensure(log=None) -> None:
    """Give this program the requested allocator setting: if it is not in effect yet, re-execute the
    same command line once with the variables set (never again: ``NEURALOPS_ALLOCATOR_ACTIVE`` guards
    it). Then write :func:`describe`'s line to ``log`` (default stderr). Call it first in a program's
    entry point, before heavy imports, and only when the process is the program (not from a library)."""
    log = sys.stderr if log is None else log
    if not os.environ.get(ENV_ACTIVE):
        try:
            setting = requested()
        except ValueError as err:
            raise SystemExit(f"error: {err}") from err
        if setting is None:
            os.environ[ENV_ACTIVE] = "user-environment"
        else:
            applied, variables = environment_for(setting)
            changed = {k: v for k, v in variables.items() if os.environ.get(k) != v}
            previous = {k: os.environ.get(k) for k in changed}
            os.environ[ENV_ACTIVE] = applied
            os.environ.update(variables)
            argv = getattr(sys, "orig_argv", None)
            # a program read from stdin cannot be started again
            rerunnable = bool(argv) and sys.argv[:1] != ["-"] and "-" not in argv[1:2]
            if changed and os.name == "posix" and sys.executable and rerunnable:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except (AttributeError, ValueError, OSError):
                        pass
                try:
                    os.execv(sys.executable, [sys.executable] + list(argv[1:]))
                except OSError as err:  # keep running with the system allocator
                    _restore(previous, f"system(re-exec-failed:{err.errno})")
            elif changed:  # not re-executed: this process keeps its malloc
                _restore(previous, "system(not-re-executed)")
    print(describe(), file=log, flush=True)


def shell_assignments(setting: str | None = None) -> str:
    """``NAME=value`` words (space-separated) that give a command the setting, the guard included."""
    setting = requested() if setting is None else check_setting(setting)
    if setting is None:
        return f"{ENV_ACTIVE}=user-environment"
    applied, variables = environment_for(setting)
    words = [f"{k}={v}" for k, v in variables.items()] + [f"{ENV_ACTIVE}={applied}"]
    return " ".join(words)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m datagen.allocator", description="Print the environment assignments of an allocator setting."
    )
    parser.add_argument(
        "setting",
        nargs="?",
        default=None,
        help=f"one of {', '.join(SETTINGS)} (default: ${ENV_CHOICE}, else {DEFAULT})",
    )
    args = parser.parse_args(argv)
    try:
        print(shell_assignments(args.setting))
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
