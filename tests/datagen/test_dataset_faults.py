"""Fault injection (issue 11): a generator SIGKILLed at seeded random points across sampling,
solving, writing and finalising, then resumed, ends with the file of an uninterrupted run.

The generator runs with ``--solver lu`` (no recycled state carried between samples), so an
interrupted and resumed run must reproduce the uninterrupted one exactly: fields, params and the
solver provenance except wall-clock seconds. The default test kills at 3 points; the slow one at 10.
"""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("petsc4py")

from datagen.dataset import open_dataset, validate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
JOB = os.path.join(HERE, "dataset_fault_job.py")
ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
N = 8
ARGS = ["darcy", "--n", str(N), "--resolution", "17", "--solver", "lu", "--no-progress"]
PHASES = ("sampling", "solving", "writing", "finalising")
# how many events of each phase one uninterrupted run has (sampling: features, then the solve loop;
# writing: the manifest, then one segment per sample)
EVENTS = {"sampling": 2 * N, "solving": N, "writing": N + 1, "finalising": N}


def run(phase, k, out, *extra):
    return subprocess.run(
        [sys.executable, JOB, phase, str(k), "--", *ARGS, "--out", str(out), *extra],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_same(a_path, b_path):
    with open_dataset(a_path, include_invalid=True) as a, open_dataset(b_path, include_invalid=True) as b:
        assert a.fields == b.fields and a.spec == b.spec and a.n_rows == b.n_rows
        for k in a.fields:
            np.testing.assert_array_equal(a.read(k), b.read(k), err_msg=k)
        for k in a.param_names:
            np.testing.assert_array_equal(a.params(k), b.params(k), err_msg=k)
        for k in a.solver_names:
            if k not in ("seconds", "setup_seconds", "rank"):  # wall clock; which process solved it
                np.testing.assert_array_equal(a.solver(k), b.solver(k), err_msg=k)
        np.testing.assert_array_equal(a.valid, b.valid)


def kill_points(n, seed=11, phases=PHASES):
    rng = np.random.default_rng(seed)
    return [(phases[j % len(phases)], int(rng.integers(1, EVENTS[phases[j % len(phases)]] + 1))) for j in range(n)]


def in_process(*args):
    """The CLI in this process (no interpreter start-up: only the killed runs need a subprocess)."""
    from datagen.cli import main

    return main([*map(str, args)])


def check_points(tmp_path, points):
    ref = tmp_path / "ref.h5"
    assert in_process(*ARGS, "--out", ref) == 0
    for j, (phase, k) in enumerate(points):
        out = tmp_path / f"cut{j}.h5"
        r = run(phase, k, out)
        assert r.returncode == -signal.SIGKILL, (phase, k, r.returncode, r.stderr)
        assert not out.exists(), (phase, k)  # nothing at the output path until it is complete
        assert in_process(*ARGS, "--out", out, "--resume") == 0, (phase, k)
        assert_same(ref, out)
        assert validate(out) == [], (phase, k)
        assert not os.path.exists(str(out) + ".partial") and not os.path.exists(str(out) + ".lock")


def test_sigkill_at_three_points_then_resume_gives_the_uninterrupted_file(tmp_path):
    check_points(tmp_path, kill_points(3, phases=("solving", "writing", "finalising")))


@pytest.mark.slow
def test_sigkill_at_ten_seeded_points_then_resume_gives_the_uninterrupted_file(tmp_path):
    check_points(tmp_path, kill_points(10))


@pytest.mark.mpi
@pytest.mark.slow
def test_a_two_rank_generator_run_resumed_by_fewer_ranks_gives_the_uninterrupted_file(tmp_path):
    """`mpiexec -n 3` cut short, resumed by 2 ranks; `mpiexec -n 2` cut short, resumed by one process."""
    import shutil

    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec not installed")
    pytest.importorskip("mpi4py")
    args = ["darcy", "--n", "9", "--resolution", "17", "--solver", "lu", "--no-progress"]
    cli = [sys.executable, "-m", "datagen.cli", *args]

    def go(out, *extra, ranks=0):
        cmd = (["mpiexec", "-n", str(ranks)] if ranks else []) + cli + ["--out", str(out), *extra]
        return subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)

    ref = tmp_path / "ref.h5"
    assert in_process(*args, "--out", ref) == 0
    for first, then, name in ((3, 2, "a.h5"), (2, 0, "b.h5")):
        out = tmp_path / name
        r = go(out, "--max-new", "1", ranks=first)
        assert r.returncode == 0 and not out.exists(), r.stderr
        if then:
            r = go(out, "--resume", ranks=then)
            assert r.returncode == 0, r.stdout + r.stderr
        else:
            assert in_process(*args, "--out", out, "--resume") == 0
        assert_same(ref, out)
        assert validate(out) == []
