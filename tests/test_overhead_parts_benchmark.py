"""benchmarks/datagen_overhead_parts.py runs end to end on a tiny grid: the baseline revision's GRF,
assembly, backend and writer load next to this checkout's, both store the same bits, and the record
carries its conditions. benchmarks/datagen_overhead.py compares a baseline revision's whole generator
with this checkout's in interleaved processes."""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_overhead_parts_benchmark_compares_the_same_bits(tmp_path):
    if subprocess.run(["git", "-C", ROOT, "cat-file", "-e", "d8d0a7c"], capture_output=True).returncode:
        pytest.skip("the baseline revision is not in this checkout's history")
    out = tmp_path / "parts.json"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "datagen_overhead_parts.py"),
            "--resolution",
            "17",
            "--n",
            "12",
            "--segment",
            "5",
            "--rounds",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(out.read_text())
    assert record["same_bits"] == {"grf": True, "assembly": True, "dataset": True}
    for version in ("baseline", "new"):
        assert set(record["ms_per_sample"][version]) == {"grf", "assembly", "handover", "segments", "merge"}
        assert all(len(r) == 2 for r in record["rounds_ms"][version].values())
    assert record["conditions"]["load_before"] and record["conditions"]["machine"]["cpu"]


def test_overhead_parts_benchmark_rejects_a_bad_revision(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "datagen_overhead_parts.py"),
            "--baseline",
            "no-such-revision",
            "--resolution",
            "9",
            "--n",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode != 0 and "--baseline 'no-such-revision'" in proc.stderr


def test_overhead_benchmark_compares_a_baseline_in_interleaved_processes(tmp_path):
    if subprocess.run(["git", "-C", ROOT, "cat-file", "-e", "d8d0a7c"], capture_output=True).returncode:
        pytest.skip("the baseline revision is not in this checkout's history")
    out = tmp_path / "overhead.json"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "datagen_overhead.py"),
            "--resolution",
            "17",
            "--sizes",
            "24,28",
            "--rounds",
            "1",
            "--baseline",
            "d8d0a7c",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(out.read_text())
    assert set(record["runs"]) == {"baseline", "new"}
    for version in ("baseline", "new"):
        assert sorted(record["runs"][version]) == ["24", "28"]
        for rs in record["runs"][version].values():
            assert len(rs) == 1 and rs[0]["solve"] > 0 and rs[0]["cpu"] >= rs[0]["solve"]
    # slopes between two tiny sizes are noise here (either sign): only their presence is checked
    assert len(record["round_slopes_ms"]) == 1 and math.isfinite(record["ratio_median"])
    # measured under the CLI's allocator setting (datagen.allocator.ensure re-executes the script)
    assert "NEURALOPS_ALLOCATOR_ACTIVE" in record["conditions"]["allocator"]["environment"]
