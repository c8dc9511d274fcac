"""``benchmarks/refine.py`` runs end to end on a tiny problem and records both refinements.

It is the evidence behind the README's refinement numbers: band-limited and full-band refinement of
the same SFNO on the same trajectories, with errors per Fourier band and the residuals."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # about a minute on a shared 2-core machine (data, training, two refinements)
def test_refine_benchmark_records_both_methods(tmp_path):
    out = tmp_path / "refine.json"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "refine.py"),
            "--resolution",
            "16",
            "--t-start",
            "0",
            "--dt",
            "1e-2",
            "--n-train",
            "2",
            "--n-test",
            "1",
            "--epochs",
            "1",
            "--width",
            "4",
            "--steps",
            "2",
            "--relinearize-every",
            "1",
            "--solver-resolution",
            "32",
            "--super-resolution",
            "32",
            "--super-n-test",
            "1",
            "--dtype",
            "float32",
            "--out",
            str(tmp_path),
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
    record = json.loads(out.read_text())["recipes"][0]
    assert set(record["methods"]) == {"band-limited", "full-band"}
    limited, full = record["methods"]["band-limited"], record["methods"]["full-band"]
    assert (limited["config"]["band"], full["config"]["band"]) == ("dealiased", "full")
    for r in (limited, full):
        assert set(r["bands_after"]) == {"low", "mid", "high"}
        assert r["summary"]["residual_after"] < r["summary"]["residual_before"]
        assert r["summary"]["seconds_per_trajectory"] > 0
    assert "band-limited" in proc.stdout and "full-band" in proc.stdout
    # the same trajectories refined at the solver grid by the model trained on their resampling
    fine = record["super_resolution"]
    assert (record["grid"], fine["grid"], fine["n_test"]) == (16, 32, 1)
    assert set(fine["methods"]) == {"band-limited", "full-band"}
    assert fine["methods"]["full-band"]["config"]["modes"][:2] == [16, 16]  # n/2 per sign on 32^2
