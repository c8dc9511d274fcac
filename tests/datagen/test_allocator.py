"""The allocator setting: chosen per NEURALOPS_ALLOCATOR, applied by one re-exec before the program runs,
reported in one line, and effective (glibc keeps freed memory: no page faults on re-allocation)."""

import os
import subprocess
import sys

import pytest

from datagen import allocator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLEAN = {
    k: v
    for k, v in os.environ.items()
    if k not in allocator.USER_VARIABLES and k not in (allocator.ENV_CHOICE, allocator.ENV_ACTIVE)
}
CLEAN.update(OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

# allocate, touch and free four 4 MiB blocks 6 times; print the minor page faults of the last 5 rounds
FAULTS = """
import resource, sys
from datagen.allocator import ensure
ensure()
import numpy as np
def once():
    blocks = [np.empty(2 ** 19) for _ in range(4)]
    for b in blocks:
        b.fill(1.0)
    del blocks
once()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    once()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run(code, **env):
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env={**CLEAN, **env}
    )
    return proc


def test_settings_and_their_variables(monkeypatch):
    assert allocator.environment_for("tuned") == ("tuned", allocator.TUNED)
    assert allocator.TUNED["MALLOC_MMAP_MAX_"] == "0" and int(allocator.TUNED["MALLOC_TRIM_THRESHOLD_"]) >= 2**34
    assert allocator.environment_for("system") == ("system", {})
    monkeypatch.delenv("MALLOC_CONF", raising=False)
    monkeypatch.setattr(allocator, "find_library", lambda name: None)
    applied, variables = allocator.environment_for("jemalloc")
    assert applied.startswith("tuned") and "not-installed" in applied and variables == allocator.TUNED
    monkeypatch.setattr(allocator, "find_library", lambda name: "/opt/libjemalloc.so.2")
    monkeypatch.setenv("LD_PRELOAD", "/opt/other.so")
    monkeypatch.setenv("MALLOC_CONF", "narenas:2")
    monkeypatch.setenv("LD_PRELOAD", "/opt/libjemalloc.so.2 /opt/other.so")  # already preloaded: once
    assert allocator.environment_for("jemalloc")[1] == {
        "LD_PRELOAD": "/opt/libjemalloc.so.2:/opt/other.so",
        "MALLOC_CONF": allocator.JEMALLOC_CONF + ",narenas:2",
    }
    with pytest.raises(ValueError, match="'bogus'.*allowed: auto, tuned, jemalloc, tcmalloc, system"):
        allocator.environment_for("bogus")


def test_auto_prefers_an_installed_tcmalloc_then_jemalloc_else_tuned(monkeypatch):
    installed = {}
    monkeypatch.setattr(allocator, "find_library", lambda name: installed.get(name))
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert allocator.environment_for("auto") == ("tuned", allocator.TUNED)
    installed["jemalloc"] = "/x/libjemalloc.so.2"
    assert allocator.environment_for("auto")[0] == "jemalloc"
    installed["tcmalloc"] = "/x/libtcmalloc_minimal.so.4"
    applied, variables = allocator.environment_for("auto")
    assert applied == "tcmalloc" and variables["LD_PRELOAD"] == "/x/libtcmalloc_minimal.so.4"


def test_request_precedence():
    assert allocator.requested({}) == allocator.DEFAULT
    assert allocator.requested({"NEURALOPS_ALLOCATOR": "system"}) == "system"
    # the user's own malloc variables are kept unless a setting is asked for explicitly
    assert allocator.requested({"MALLOC_ARENA_MAX": "2"}) is None
    assert allocator.requested({"MALLOC_ARENA_MAX": "2", "NEURALOPS_ALLOCATOR": "tuned"}) == "tuned"


def test_reexec_applies_tuned_once_and_stops_the_fault_storm():
    tuned = run(FAULTS, NEURALOPS_ALLOCATOR="tuned")
    system = run(FAULTS, NEURALOPS_ALLOCATOR="system")
    default = run(FAULTS)
    assert tuned.returncode == 0 and system.returncode == 0, tuned.stderr + system.stderr
    # one log line per program, naming the setting
    assert tuned.stderr.count("neuralops: allocator") == 1 and "allocator tuned (" in tuned.stderr, tuned.stderr
    assert "MALLOC_MMAP_MAX_=0" in tuned.stderr
    assert "allocator system" in system.stderr
    f_tuned, f_system = int(tuned.stdout.split()[-1]), int(system.stdout.split()[-1])
    # glibc unmaps or trims the blocks on free: 5 x 4096 pages faulted in again (fewer with huge pages);
    # the tuned setting keeps them in the heap
    assert f_system > 2000, f_system
    assert f_tuned < f_system / 10, (f_tuned, f_system)
    # the default (auto: whatever this machine has) avoids them too, and says what it chose
    assert default.returncode == 0, default.stderr
    assert f"allocator {allocator.environment_for('auto')[0]} (" in default.stderr
    assert int(default.stdout.split()[-1]) < f_system / 10


def test_user_variables_are_kept_and_bad_settings_fail_clearly():
    proc = run(
        "from datagen.allocator import ensure; ensure(); import os; print(os.environ['MALLOC_ARENA_MAX'])",
        MALLOC_ARENA_MAX="2",
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "2"
    assert "allocator user-environment (MALLOC_ARENA_MAX=2)" in proc.stderr
    proc = run("from datagen.allocator import ensure; ensure()", NEURALOPS_ALLOCATOR="fast")
    assert proc.returncode != 0 and "NEURALOPS_ALLOCATOR='fast'" in proc.stderr and "allowed" in proc.stderr


def test_module_prints_shell_assignments():
    proc = subprocess.run(
        [sys.executable, "-m", "datagen.allocator", "tuned"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=CLEAN,
        timeout=60,
    )
    words = dict(w.split("=", 1) for w in proc.stdout.split())
    assert words == {**allocator.TUNED, allocator.ENV_ACTIVE: "tuned"}


def test_console_entry_points_set_the_allocator_first():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        scripts = tomllib.load(fh)["project"]["scripts"]
    assert scripts["neuralops-datagen"] == "datagen.cli:main"
    assert {scripts[k] for k in ("neuralops-train", "neuralops-eval", "neuralops-data")} == {
        "train.entry:train",
        "train.entry:evaluate",
        "train.entry:data",
    }
    # a CLI run as a program re-executes itself with the setting (here: neuralops-data's parser)
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from train.entry import data; sys.exit(data())", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=CLEAN,
        timeout=120,
    )
    line = f"neuralops: allocator {allocator.environment_for('auto')[0]} ("
    assert proc.returncode == 0 and proc.stderr.count(line) == 1, proc.stderr
    # the entry module itself stays light: torch comes only with the program
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, train.entry; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=CLEAN,
        timeout=120,
    )
    assert proc.stdout.strip() == "False", proc.stderr
