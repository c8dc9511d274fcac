"""benchmarks/skr_block_reset.py runs the real generator and writes a consistent record."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("petsc4py")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_block_reset_benchmark_records_every_block_size(tmp_path):
    out = tmp_path / "blocks.json"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "skr_block_reset.py"),
            "--resolutions",
            "17",
            "--n",
            "6",
            "--blocks",
            "2,3",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["block"] for r in rows] == [0, 2, 3]  # the no-reset baseline is always measured
    assert rows[0]["iterations_ratio"] == 1.0
    for r in rows:
        assert r["max_residual"] <= 1e-8 and r["invalid"] == 0 and r["iterations_per_sample"] > 0


def test_block_reset_benchmark_rejects_bad_blocks():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "skr_block_reset.py"), "--blocks", "x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode != 0 and "--blocks must be comma-separated integers" in proc.stderr
