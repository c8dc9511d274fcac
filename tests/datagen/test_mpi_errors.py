"""An error on MPI ranks ends the whole job with a message instead of leaving ranks waiting."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.mpi
def test_two_rank_run_onto_an_existing_file_exits_with_a_message(tmp_path):
    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec not installed")
    pytest.importorskip("petsc4py")
    out = tmp_path / "d.h5"
    cmd = [
        sys.executable,
        "-m",
        "datagen.cli",
        "darcy",
        "--n",
        "4",
        "--resolution",
        "17",
        "--out",
        str(out),
        "--no-progress",
    ]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    before = out.read_bytes()
    second = subprocess.run(["mpiexec", "-n", "2", *cmd], capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode != 0
    assert "exists" in second.stderr and "--overwrite" in second.stderr
    assert out.read_bytes() == before  # the finished dataset is untouched
