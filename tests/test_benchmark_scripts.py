"""The SKR benchmark scripts run end to end on tiny problems and write consistent records.

They are the evidence behind the README's solver numbers, so a change that breaks them (or makes
them report a method that did not converge as fine) must fail here, not in a later long run.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(script, *args):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_iteration_cost_benchmark_records_interleaved_rounds(tmp_path):
    out = tmp_path / "cost.json"
    run(
        "gcrodr_iteration_cost.py",
        "--n",
        "24",
        "--systems",
        "3",
        "--repeats",
        "2",
        "--restart",
        "16",
        "--recycle",
        "6",
        "--json",
        str(out),
    )
    record = json.loads(out.read_text())
    results = record["results"]
    for name in ("petsc_gmres", "gcrodr", "gcrodr_k0"):
        assert results[name]["all_converged"] and results[name]["max_residual"] <= 1e-8
    # k = 0 is GMRES(m): the same iterations as PETSc's (to within restarts' rounding)
    assert abs(results["gcrodr_k0"]["iterations"] - results["petsc_gmres"]["iterations"]) <= 6
    assert results["gcrodr"]["iterations"] < results["petsc_gmres"]["iterations"]
    assert len(results["gcrodr"]["iteration_cost_ratio_rounds"]) == 2
    stats = results["gcrodr"]["update_stats"]
    assert stats["full"] + stats["low_rank"] + stats["unchanged"] > 0


def test_datagen_benchmark_tolerance_sweep_and_lu_cap(tmp_path):
    out = tmp_path / "skr.json"
    run(
        "datagen_skr.py",
        "--families",
        "darcy",
        "--resolution",
        "17",
        "--n",
        "4",
        "--methods",
        "gmres,skr,lu",
        "--rtol",
        "1e-6,1e-10",
        "--lu-samples",
        "2",
        "--no-sweeps",
        "--json",
        str(out),
    )
    record = json.loads(out.read_text())
    rows = record["families"]
    assert [r["rtol"] for r in rows] == [1e-6, 1e-10]
    for r in rows:
        assert r["methods"]["lu"]["samples"] == 2 and r["methods"]["skr"]["samples"] == 4
        for method in ("gmres", "skr"):
            assert r["methods"][method]["max_res"] <= r["rtol"]
    # a tighter tolerance costs the iterative methods more iterations
    assert rows[1]["methods"]["skr"]["its"] > rows[0]["methods"]["skr"]["its"]
    check_conditions(record["conditions"])


def check_conditions(cond):
    """A record's ``conditions`` (benchmarks/conditions.py): machine, load before/after, allocator, versions."""
    assert cond["machine"]["cpu"] and cond["machine"]["cores"] >= 1 and cond["machine"]["usable_cores"] >= 1
    assert len(cond["load_before"]) == 3 and len(cond["load_after"]) == 3
    assert cond["allocator"]["setting"] and isinstance(cond["allocator"]["environment"], dict)
    assert cond["versions"]["python"] and cond["versions"]["numpy"]
    assert cond["wall_seconds"] >= 0 and cond["started"] <= cond["finished"]


def test_every_benchmark_records_its_conditions_and_none_hard_codes_them():
    folder = os.path.join(ROOT, "benchmarks")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py") and name != "conditions.py":
            text = open(os.path.join(folder, name)).read()
            assert "conditions()" in text or "write_record(" in text, (
                f"{name} does not record benchmarks/conditions.py's conditions"
            )
            assert "shared, loaded" not in text, f"{name} hard-codes the machine's load"
    proc = subprocess.run(
        [sys.executable, os.path.join(folder, "conditions.py")],
        capture_output=True,
        text=True,
        env={
            **{
                k: v
                for k, v in ENV.items()
                if not k.startswith(("MALLOC", "NEURALOPS_ALLOC", "TCMALLOC"))
                and k not in ("LD_PRELOAD", "GLIBC_TUNABLES")
            },
            "NEURALOPS_ALLOCATOR_ACTIVE": "tuned",
            "MALLOC_MMAP_MAX_": "0",
        },
        timeout=60,
    )
    cond = json.loads(proc.stdout)
    check_conditions(cond)
    assert cond["allocator"] == {
        "setting": "tuned",
        "environment": {"NEURALOPS_ALLOCATOR_ACTIVE": "tuned", "MALLOC_MMAP_MAX_": "0"},
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rtol", "0"], "--rtol values"),
        (["--rtol", "1e-8,abc"], "comma-separated"),
        (["--gain-ns", "1"], "--gain-ns"),
        (["--lu-samples", "0"], "--lu-samples"),
    ],
)
def test_datagen_benchmark_rejects_bad_arguments(args, message):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "datagen_skr.py"), "--no-sweeps", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_allocator_benchmark_runs_each_setting_in_its_own_process(tmp_path):
    out = tmp_path / "alloc.json"
    env = {k: v for k, v in ENV.items() if not k.startswith(("MALLOC", "NEURALOPS_ALLOC"))}
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "allocator.py"),
            "--cases",
            "fno2d_darcy",
            "--settings",
            "tuned,system",
            "--rounds",
            "1",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--darcy-res",
            "17",
            "--darcy-batch",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(out.read_text())
    case = record["cases"]["fno2d_darcy"]
    tuned, system = case["tuned"]["runs"][0], case["system"]["runs"][0]
    # the child really ran under the setting's environment (glibc reads it at process start)
    assert tuned["allocator_env"] == {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(64 * 2**30)}
    assert system["allocator_env"] == {}
    for s in (tuned, system):
        assert s["samples_per_s"] > 0 and s["max_rss_mib"] > 0 and s["minor_faults_per_step"] >= 0
    assert case["system"]["speed_vs_system"] == 1.0 and case["tuned"]["rss_vs_system"] > 0
    check_conditions(record["conditions"])


def test_ns_dtype_benchmark_measures_the_float32_difference(tmp_path):
    out = tmp_path / "ns_dtype.json"
    run(
        "ns_dtype.py",
        "--resolution",
        "16",
        "--dt",
        "1e-2",
        "--t-end",
        "1",
        "--snapshot-interval",
        "0.5",
        "--n",
        "1",
        "--json",
        str(out),
    )
    record = json.loads(out.read_text())
    rows = record["snapshots"]
    assert [r["t"] for r in rows] == [0.5, 1.0]
    # float32 compute differs from float64 by more than storage rounding, and stays a small relative error
    for r in rows:
        assert record["float32_unit_roundoff"] < r["rel_l2_mean"] < 1e-3
    check_conditions(record["conditions"])


def test_darcy_scipy_baseline_solves_the_same_problems_as_the_cli(tmp_path):
    pytest.importorskip("petsc4py")
    out = tmp_path / "ds.json"
    run(
        "darcy_scipy.py",
        "--n",
        "3",
        "--resolution",
        "17",
        "--rounds",
        "1",
        "--methods",
        "cli,splu-colamd,splu-mmd",
        "--json",
        str(out),
    )
    record = json.loads(out.read_text())
    assert set(record["methods"]) == {"cli", "splu-colamd", "splu-mmd"}
    # the plain scripts' u equals the toolkit's on the same samples (same scheme, direct solves)
    assert all(v < 1e-8 for v in record["max_rel_diff_u_vs_cli"].values()), record["max_rel_diff_u_vs_cli"]
    assert record["cli_speedup_vs_best_plain"] > 0
    assert record["methods"]["cli"]["runs"][0]["allocator_line"].startswith("neuralops: allocator")
    check_conditions(record["conditions"])


def test_training_baseline_benchmark_names_a_bad_commit():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "training_baseline.py"), "--baseline", "no-such-commit-0000"],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode != 0 and "--baseline 'no-such-commit-0000'" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_training_baseline_benchmark_times_both_versions(tmp_path):
    """HEAD against the working tree on a tiny Darcy set: both trees generate, train and are timed."""
    out = tmp_path / "tb.json"
    run(
        "training_baseline.py",
        "--baseline",
        "HEAD",
        "--res",
        "17",
        "--n",
        "4",
        "--extra-epochs",
        "1",
        "--rounds",
        "1",
        "--json",
        str(out),
    )
    record = json.loads(out.read_text())
    for clock in ("wall", "cpu"):
        assert set(record["summary"][clock]["samples_per_s"]) == {"baseline", "current"}
    check_conditions(record["conditions"])


def test_fno_cpu_paths_benchmark_times_both_transforms_and_records(tmp_path):
    out = tmp_path / "fcp.json"
    run("fno_cpu_paths.py", "--grids", "17", "--batch", "2", "--skip", "slab", "--rounds", "1", "--json", str(out))
    record = json.loads(out.read_text())
    (row,) = record["dft"]
    assert row["padded"] == 26 and row["by_matmul"]  # 26 = 2 x 13: the matmul path
    assert set(row["transform_ms"]) == {"rfft", "rfft_matmul", "irfft", "irfft_matmul"}
    assert set(row["step_ms_per_sample"]) == {"fft", "rule"}
    check_conditions(record["conditions"])
