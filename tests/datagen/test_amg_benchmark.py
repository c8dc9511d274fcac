"""benchmarks/amg.py and benchmarks/datagen_overhead.py run end to end on tiny problems and write
consistent records (the evidence behind the README's CG + GAMG and generator-overhead rows)."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("petsc4py")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}


def run(script, *args):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=300,
    )
    return proc


def test_amg_benchmark_compares_every_variant_on_the_same_systems(tmp_path):
    out = tmp_path / "amg.json"
    proc = run(
        "amg.py",
        "--families",
        "darcy,heat",
        "--resolutions",
        "33",
        "--n",
        "4",
        "--reuse",
        "2,0",
        "--rounds",
        "1",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads(out.read_text())
    assert "conditions" in rec and rec["tuned_defaults"].startswith("-skrcg_mg_levels_ksp_type richardson")
    names = ["petsc", "tuned", "petsc-reuse2", "tuned-reuse2", "tuned-reuse0", "tuned-pc2", "tuned-reuse2-prev"]
    for fam, systems in (("darcy", 4), ("heat", 4 * 10)):
        rows = [r for r in rec["results"] if r["family"] == fam]
        assert [r["variant"] for r in rows] == names
        for r in rows:
            # every variant solved every system to rtol (true residual recomputed with SciPy)
            assert r["systems"] == systems and r["max_true_residual"] <= rec["rtol"] and r["not_converged"] == 0
            assert r["me_time"] > 0 and r["me_flops"] > 0
        # the tuned smoother costs fewer flops per solve than PETSc's Chebyshev(2)/Jacobi
        assert rows[1]["me_flops"] < rows[0]["me_flops"]


def test_amg_benchmark_rejects_a_reuse_of_one():
    proc = run("amg.py", "--reuse", "1")
    assert proc.returncode != 0 and "--reuse" in proc.stderr


def test_overhead_benchmark_splits_the_run(tmp_path):
    out = tmp_path / "o.json"
    proc = run("datagen_overhead.py", "--resolution", "33", "--sizes", "3,6", "--rounds", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads(out.read_text())
    assert rec["sizes"] == [3, 6] and "conditions" in rec and rec["method"] == "lu"
    for n in ("3", "6"):
        (r,) = rec["runs"]["new"][n]  # runs by version ("baseline" too with --baseline)
        assert 0 < r["solve"] < r["cpu"] and r["outside_cpu"] > 0
    assert "per_sample_outside_ms" in rec and rec["meets_target"] == (rec["per_sample_outside_ms"] <= 2.0)
