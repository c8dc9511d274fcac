"""Signals and environment errors end a generator run in one line (issue 11, item 12/13):
SIGTERM/SIGINT flush finished samples and say how to resume; a read-only output, a full disk or a
missing input file give one line on stderr, not a traceback; ``neuralops-data info | head`` never
raises BrokenPipeError."""

import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from datagen.dataset import open_dataset, validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")


def datagen(*args, wait=True, timeout=300, **kw):
    cmd = [sys.executable, "-m", "datagen.cli", *map(str, args)]
    if wait:
        return subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw)
    return subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_line(stderr: str) -> str:
    # the allocator note (datagen.allocator) is the one line a program prints before it starts work
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("neuralops: allocator")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def same_dataset(a_path, b_path, skip=("seconds", "setup_seconds", "rank")):
    with open_dataset(a_path, include_invalid=True) as a, open_dataset(b_path, include_invalid=True) as b:
        assert a.fields == b.fields and a.spec == b.spec and a.solver_names == b.solver_names
        for k in a.fields:
            np.testing.assert_array_equal(a.read(k), b.read(k), err_msg=k)
        for k in a.param_names:
            np.testing.assert_array_equal(a.params(k), b.params(k), err_msg=k)
        for k in a.solver_names:
            if k not in skip:
                np.testing.assert_array_equal(a.solver(k), b.solver(k), err_msg=k)
        np.testing.assert_array_equal(a.valid, b.valid)


DARCY = ["darcy", "--n", "300", "--resolution", "33", "--solver", "lu", "--no-progress"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_flushes_finished_samples_and_resume_gives_the_same_file(tmp_path, sig, capsys):
    pytest.importorskip("petsc4py")
    cut = tmp_path / "cut.h5"
    # The signal is a real one (the kernel delivers it, Python's handler runs), sent by the process to
    # itself at its 40th linear solve: a few samples solved, most of them still in the writer's buffer,
    # at the same point however loaded the machine is (a timer from outside raced the run).
    script = (
        "import os, sys\n"
        "from datagen.elliptic import backends\n"
        "real, count = backends.PetscBackend.solve, [0]\n"
        "def solve(*a, **k):\n"
        "    count[0] += 1\n"
        f"    if count[0] == 40: os.kill(os.getpid(), {int(sig)})\n"
        "    return real(*a, **k)\n"
        "backends.PetscBackend.solve = solve\n"
        "from datagen.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *DARCY, "--out", str(cut)],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    err = proc.stderr
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    line = one_line(err)
    assert f"interrupted by {signal.Signals(sig).name}" in line and "--resume" in line, line
    m = re.search(r"(\d+) finished samples are saved in", line)
    saved = int(m.group(1)) if m else 0
    assert 0 < saved < 300, line  # finished samples were flushed, the run was really cut
    assert not cut.exists() and not (tmp_path / "cut.h5.lock").exists()
    from datagen.cli import main  # the rest in this process: no second interpreter start-up

    assert main([*DARCY, "--out", str(cut), "--resume"]) == 0
    assert f"{saved} already written" in capsys.readouterr().out
    full = tmp_path / "full.h5"
    assert main([*DARCY, "--out", str(full)]) == 0
    same_dataset(full, cut)
    assert validate(cut) == []


def _readonly_dir(tmp_path):
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        return d
    if os.path.isdir("/sys/fs") and not os.access("/sys/fs", os.W_OK) or _cannot_create("/sys/fs"):
        return "/sys/fs"  # root ignores permissions; sysfs refuses new files
    pytest.skip("no read-only folder available")


def _cannot_create(folder):
    try:
        fd = os.open(os.path.join(folder, "neuralops-probe"), os.O_CREAT | os.O_WRONLY)
    except OSError:
        return True
    os.close(fd)
    os.remove(os.path.join(folder, "neuralops-probe"))
    return False


def test_environment_errors_end_in_one_line(tmp_path, capsys):
    pytest.importorskip("torch")
    from datagen.cli import main
    from train.data_cli import main as data_main

    # in this process: an uncaught exception (a traceback) would fail the test just the same
    ns = [
        "navier-stokes",
        "--n",
        "2",
        "--resolution",
        "16",
        "--store-resolution",
        "16",
        "--dt",
        "1e-2",
        "--t-end",
        "0.02",
        "--snapshot-interval",
        "0.01",
        "--no-progress",
    ]

    def error_line(argv):
        capsys.readouterr()
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse-style exit with the message (what a shell shows)
            rc, err = exc.code, str(exc.code)
        else:
            err = capsys.readouterr().err
        assert rc != 0
        return one_line(err)

    line = error_line(ns + ["--out", os.path.join(_readonly_dir(tmp_path), "x.h5")])
    assert "x.h5" in line and ("Permission denied" in line or "Read-only" in line), line
    line = error_line(ns + ["--out", str(tmp_path / "y.h5"), "--initial", str(tmp_path / "missing.npy")])
    assert "missing.npy" in line
    # neuralops-data: a missing file, a folder; once as a real process
    for bad in (tmp_path / "nothing.h5", tmp_path):
        assert data_main(["info", str(bad)]) == 1 and str(bad) in one_line(capsys.readouterr().err)
    r = subprocess.run(
        [sys.executable, "-m", "train.data_cli", "validate", str(tmp_path / "nothing.h5")],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "nothing.h5" in r.stderr and "Traceback" not in r.stderr


def test_a_full_disk_ends_in_one_line(tmp_path):
    pytest.importorskip("petsc4py")
    small = tmp_path / "small"
    small.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(small)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a small tmpfs here")
    try:
        r = datagen(
            "darcy", "--n", "60", "--resolution", "33", "--solver", "lu", "--no-progress", "--out", small / "d.h5"
        )
        assert r.returncode != 0
        line = one_line(r.stderr)
        assert "no space left" in line.lower(), line
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_info_into_a_closed_pipe_is_not_an_error(tmp_path):
    from test_dataset import write_toy

    path = tmp_path / "toy.h5"
    write_toy(path)
    env = dict(ENV, PYTHONUNBUFFERED="1")
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "train.data_cli", "info", str(path)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        proc.stdout.close()  # the reader is gone before the first line (like `| head -n 0`)
        err = proc.stderr.read().decode()
        proc.wait(timeout=120)
        assert proc.returncode == 0 and "BrokenPipe" not in err and "Traceback" not in err, err
    if shutil.which("head"):
        r = subprocess.run(
            f"set -o pipefail; {sys.executable} -m train.data_cli info {path} | head -n 2",
            shell=True,
            executable="/bin/bash",
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0 and "BrokenPipe" not in r.stderr and r.stdout.startswith("dataset"), r.stderr
