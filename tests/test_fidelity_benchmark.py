"""benchmarks/gpu.sh (its --dry-run on the CPU) and benchmarks/fidelity.py at tiny sizes.

The GPU script runs unattended on a lent machine with a few minutes of device time: a stage that
breaks, a record that misses a field, or a budget that is not kept must fail here first.
"""

import json
import math
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "NEURALOPS_PYTHON": sys.executable,
    "PYTHONPATH": ROOT + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
}


@pytest.fixture(scope="module")
def fidelity():
    """benchmarks/fidelity.py as a module, loaded from its path (the folder is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fidelity", os.path.join(ROOT, "benchmarks", "fidelity.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gpu_sh(*args, timeout=300):
    return subprocess.run(
        ["bash", os.path.join(ROOT, "benchmarks", "gpu.sh"), *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=timeout,
    )


def test_gpu_script_dry_run_runs_every_stage_and_writes_one_record(tmp_path):
    out = tmp_path / "gpu.json"
    proc = gpu_sh("--dry-run", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads(out.read_text())
    assert rec["dry_run"] and rec["machine"]["device"] == "cpu"
    assert rec["seconds_used"] < rec["budget_s"]
    st = rec["stages"]
    assert set(st) == {"datagen", "identity", "models", "fidelity"}
    assert not any("error" in s for s in st.values()), {k: s.get("error") for k, s in st.items()}
    # generator: every batch x dtype, the plain re-statement of the scheme agrees with ours
    d = st["datagen"]
    assert {(r["batch"], r["dtype"]) for r in d["rows"]} == {
        (1, "float32"),
        (2, "float32"),
        (1, "float64"),
        (2, "float64"),
    }
    for r in d["rows"]:
        assert r["mpoint_steps_per_s"] > 0
        assert r["max_rel_diff_plain_vs_ours"] < (1e-4 if r["dtype"] == "float32" else 1e-10)
    # the full-set time is the timed step x 500,000 steps x the batches 1200 trajectories need
    ex = d["extrapolation"]
    assert ex["set"]["trajectories"] == 1200 and ex["set"]["steps_per_trajectory"] == 500_000
    for e in ex["runs"]:
        want = e["seconds_per_step"] * 500_000 * math.ceil(1200 / e["batch"]) / 60
        assert e["extrapolated_minutes_full_set"] == pytest.approx(want)
    assert ex["minutes"] == min(e["extrapolated_minutes_full_set"] for e in ex["runs"])
    # identity: CPU against CPU in a dry run is exact
    assert [r["dtype"] for r in st["identity"]["rows"]] == ["float64", "float32"]
    assert all(r["max_rel_diff"] == 0.0 for r in st["identity"]["rows"])
    # models: both precisions of each model
    rows = {(r["model"], r["precision"]): r for r in st["models"]["rows"]}
    assert set(rows) == {(m, p) for m in ("fno2d", "fno3d") for p in ("fp32", "bf16-mixed")}
    for r in rows.values():
        assert "error" not in r, r
        assert r["samples_per_s"] > 0 and r["params"] > 0
    # fidelity: the tiny preset trained our FNOs through the training code
    f = st["fidelity"]
    assert f["preset"] == "tiny"
    got = {r["model"]: r for r in f["rows"]}
    for m in ("fno3d", "fno2d"):
        assert math.isfinite(got[m]["test_relative_l2"]) and got[m]["epochs_run"] == 1
    assert "Training step" in proc.stdout and "Fidelity (tiny)" in proc.stdout


def test_gpu_script_rejects_a_bad_budget():
    proc = gpu_sh("--dry-run", "--budget", "0", timeout=60)
    assert proc.returncode == 2 and "--budget must be a positive" in proc.stderr, proc.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA driver")
def test_gpu_script_without_a_gpu_says_so():
    proc = gpu_sh(timeout=60)
    assert proc.returncode == 1 and "nvidia-smi not found" in proc.stderr, proc.stderr


def test_fidelity_config_keeps_the_paper_recipe_and_scales_the_schedule(tmp_path, fidelity):
    import yaml

    from train.cli import CONFIG_DIR

    args = fidelity.parse_args(["--preset", "tiny", "--epochs", "50"])
    for model, name in fidelity.CONFIGS.items():
        with open(os.path.join(CONFIG_DIR, name + ".yaml")) as fh:
            paper = yaml.safe_load(fh)
        cfg = fidelity.run_config(model, args, "/data.h5", str(tmp_path))
        m, pm = cfg["model"], paper["model"]
        for key in ("model", "loss", "loss_config", "optimizer", "lr", "weight_decay", "scheduler"):
            assert m.get(key) == pm.get(key), (model, key)
        d, pd = cfg["data"]["init_args"], paper["data"]["init_args"]
        for key in ("mode", "history", "batch_size", "normalization"):
            assert d.get(key) == pd.get(key), (model, key)
        assert (d["path"], d["train"], d["test"], d["val"]) == ("/data.h5", "0:4", "4:6", "none")
        assert (d["t_in"], d["t_out"]) == (10, 14) and d.get("unroll", 1) <= 14
        assert cfg["trainer"]["max_epochs"] == 50
        scale = 50 / paper["trainer"]["max_epochs"]
        if pm["scheduler"] == "step":  # the FNO scripts: halve every 100 of 500 epochs -> every 10 of 50
            assert m["scheduler_config"]["step_size"] == round(pm["scheduler_config"]["step_size"] * scale)
        if pm["scheduler"] == "warmup_cosine":
            assert m["scheduler_config"]["warmup_epochs"] == pytest.approx(
                pm["scheduler_config"]["warmup_epochs"] * scale
            )
    assert fidelity.run_config("mgno_ns", args, "/d.h5", str(tmp_path))["model"]["model_config"]["resolution"] == 32


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--models", "fno9d"], "unknown model(s) fno9d"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--epochs", "0"], "--epochs must be a positive integer"),
        (["--n-train", "1"], "--n-train must be >= 2"),
    ],
)
def test_fidelity_rejects_bad_arguments(argv, message, capsys, fidelity):
    with pytest.raises(SystemExit) as exc:
        fidelity.parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_fidelity_tiny_run_trains_for_the_budget_and_compares_with_neuraloperator(tmp_path):
    out = tmp_path / "fid.json"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "fidelity.py"),
            "--preset",
            "tiny",
            "--models",
            "fno3d",
            "--epochs",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads(out.read_text())
    assert rec["data"]["spec"]["recipe"] == "fno" and rec["data"]["spec"]["n_snapshots"] == 24
    rows = {r["model"]: r for r in rec["rows"]}
    ours = rows["fno3d"]
    assert ours["epochs_run"] == 2 and len(ours["epoch_seconds"]) == 2
    assert ours["recipe"]["loss_config"] == {"reduction": "sum", "pool": "all"}
    assert ours["recipe"]["scheduler_config"]["step_size"] == 1  # 100 of 500 epochs -> 1 of 2 (at least 1)
    if "neuralop_fno3d" in rows:
        theirs = rows["neuralop_fno3d"]
        assert theirs["epochs_run"] == 2 and math.isfinite(theirs["test_relative_l2"])
        assert rec["fno3d_over_neuralop"] == pytest.approx(ours["test_relative_l2"] / theirs["test_relative_l2"])
    else:
        assert any("neuraloperator not importable" in s for s in rec["skipped"])
