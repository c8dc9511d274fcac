"""benchmarks/datagen_overhead_parts.py runs end to end on a tiny grid: the baseline revision's GRF,
assembly and writer load next to this checkout's, both store the same bits, and the record carries
its conditions."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_overhead_parts_benchmark_compares_the_same_bits(tmp_path):
    if subprocess.run(["git", "-C", ROOT, "cat-file", "-e", "376371b"], capture_output=True).returncode:
        pytest.skip("the baseline revision is not in this checkout's history")
    out = tmp_path / "parts.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "datagen_overhead_parts.py"),
                           "--resolution", "17", "--n", "12", "--segment", "5", "--rounds", "2", "--json", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(out.read_text())
    assert record["same_bits"] == {"grf": True, "assembly": True, "dataset": True}
    for version in ("baseline", "new"):
        assert set(record["ms_per_sample"][version]) == {"grf", "assembly", "segments", "merge"}
        assert all(len(r) == 2 for r in record["rounds_ms"][version].values())
    assert record["conditions"]["load_before"] and record["conditions"]["machine"]["cpu"]


def test_overhead_parts_benchmark_rejects_a_bad_revision(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "datagen_overhead_parts.py"),
                           "--baseline", "no-such-revision", "--resolution", "9", "--n", "2"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0 and "--baseline 'no-such-revision'" in proc.stderr
