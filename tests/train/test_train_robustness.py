"""``neuralops-train`` as a user meets it, through ``train.cli.main`` on data written by the real
generators: last.ckpt holds the last epoch and resumes from it, foreign checkpoints are refused,
a diverged loss stops the run, degenerate data is refused, packaged configs work on a single file
of any size, splits are strings in every spelling, config names never resolve to folders, user
errors end in one line, logs go to CSV and TensorBoard, and evaluation runs at another resolution."""

import glob
import json
import os
import shutil

import h5py
import numpy as np
import pytest
import torch
from train_helpers import RecordTraining  # noqa: F401  (imported by the CLI as train_helpers.RecordTraining)

from train.cli import main, resolve_config_args

TINY_FNO = ["--model.model_config", "{modes: 4, width: 8, padding: 2}"]
QUIET = [
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.accelerator",
    "cpu",
]


def _darcy(path, n, resolution, seed=0):
    pytest.importorskip("petsc4py")
    from datagen.cli import main as datagen

    assert (
        datagen(
            [
                "darcy",
                "--n",
                str(n),
                "--resolution",
                str(resolution),
                "--out",
                str(path),
                "--seed",
                str(seed),
                "--no-progress",
            ]
        )
        == 0
    )
    return str(path)


@pytest.fixture(scope="module")
def darcy(tmp_path_factory):
    """Darcy flow from the SKR generator: 12 samples on 17^2 nodes, and 4 test samples of the same
    law on 17^2 and on 33^2."""
    d = tmp_path_factory.mktemp("darcy")
    return {
        "17": _darcy(d / "darcy17.h5", 12, 17),
        "17test": _darcy(d / "test17.h5", 4, 17, seed=1),
        "33": _darcy(d / "test33.h5", 4, 33, seed=1),
    }


@pytest.fixture(scope="module")
def ns(tmp_path_factory):
    """Navier-Stokes from the spectral generator (fno recipe, solved on 32^2): 4 trajectories of 6
    frames stored on 16^2, and 2 test trajectories stored on 16^2 and on 32^2."""
    from datagen.navier_stokes.generator import generate
    from datagen.navier_stokes.recipes import recipe

    d = tmp_path_factory.mktemp("ns")
    out = {}
    for key, n, seed, store in (("16", 4, 0, 16), ("test16", 2, 1, 16), ("test32", 2, 1, 32)):
        spec = recipe(
            "fno",
            {
                "viscosity": 1e-3,
                "resolution": 32,
                "store_resolution": store,
                "dt": 1e-3,
                "t_end": 0.6,
                "snapshot_interval": 0.1,
            },
        )
        out[key] = str(d / f"ns{key}.h5")
        generate(spec, out[key], n, seed=seed, batch_size=n, progress=False, log=None)
    return out


def _fit_fno(data, root, *extra):
    return main(
        [
            "fit",
            "-c",
            "darcy_fno",
            "--data.path",
            data,
            *TINY_FNO,
            *QUIET,
            "--trainer.default_root_dir",
            root,
            "--checkpoint.dirpath",
            os.path.join(root, "ckpt"),
            *extra,
        ]
    )


def test_last_checkpoint_holds_the_final_epoch_and_resume_continues_from_it(darcy, tmp_path, capsys):
    """A monitor that improves only at epoch 0 ('epoch', mode min): best is epoch 0, last.ckpt must
    still hold epoch 2 with the final weights; --ckpt_path last continues with epoch 3."""
    root, rec = str(tmp_path / "run"), str(tmp_path / "final.pt")
    # darcy_fno has no validation split (the script reports its final epoch): give it one here.
    common = [
        "--checkpoint.monitor",
        "epoch",
        "--checkpoint.mode",
        "min",
        "--data.train",
        "0:8",
        "--data.val",
        "8:10",
        "--data.test",
        "10:12",
    ]
    assert (
        _fit_fno(
            darcy["17"],
            root,
            *common,
            "--trainer.max_epochs",
            "3",
            "--trainer.callbacks+=train_helpers.RecordTraining",
            "--trainer.callbacks.path",
            rec,
        )
        == 0
    )
    ckpt_dir = os.path.join(root, "ckpt")
    assert sorted(os.listdir(ckpt_dir)) == ["best-epoch=000.ckpt", "last.ckpt"]
    last = torch.load(os.path.join(ckpt_dir, "last.ckpt"), weights_only=False)
    final = torch.load(rec, weights_only=False)
    steps_per_epoch = final["end_step"] // 3
    assert last["epoch"] == 2 and last["global_step"] == final["end_step"] == 3 * steps_per_epoch > 0
    assert set(last["state_dict"]) == set(final["state_dict"])
    for k, v in final["state_dict"].items():
        assert torch.equal(last["state_dict"][k], v), k
    best = torch.load(os.path.join(ckpt_dir, "best-epoch=000.ckpt"), weights_only=False)
    assert best["epoch"] == 0 and not all(torch.equal(best["state_dict"][k], v) for k, v in final["state_dict"].items())
    # resume: --ckpt_path last starts at epoch 3 with the optimiser state of step 3 * steps_per_epoch
    rec2 = str(tmp_path / "resumed.pt")
    assert (
        _fit_fno(
            darcy["17"],
            root,
            *common,
            "--trainer.max_epochs",
            "4",
            "--ckpt_path",
            "last",
            "--trainer.callbacks+=train_helpers.RecordTraining",
            "--trainer.callbacks.path",
            rec2,
        )
        == 0
    )
    resumed = torch.load(rec2, weights_only=False)
    assert (resumed["start_epoch"], resumed["start_step"]) == (3, 3 * steps_per_epoch)
    last = torch.load(os.path.join(ckpt_dir, "last.ckpt"), weights_only=False)
    assert last["epoch"] == 3 and last["global_step"] == 4 * steps_per_epoch
    # the logs: CSV and TensorBoard, paths printed
    err = capsys.readouterr().err
    assert "CSV log: " in err and "TensorBoard log: " in err and "checkpoints: " in err
    assert glob.glob(os.path.join(root, "logs", "version_0", "metrics.csv"))
    assert glob.glob(os.path.join(root, "logs", "version_0", "events.out.tfevents.*"))


def test_foreign_checkpoints_are_refused_naming_both(darcy, ns, tmp_path, capsys):
    root = str(tmp_path / "fno")
    assert _fit_fno(darcy["17"], root, "--trainer.max_epochs", "1") == 0
    fno_ckpt = os.path.join(root, "ckpt", "last.ckpt")
    capsys.readouterr()
    # another model: without the check LightningCLI would silently train the checkpoint's FNO
    assert (
        main(
            [
                "fit",
                "-c",
                "darcy_mgno",
                "--data.path",
                darcy["17"],
                *QUIET,
                "--trainer.max_epochs",
                "2",
                "--trainer.default_root_dir",
                str(tmp_path / "mgno"),
                "--ckpt_path",
                fno_ckpt,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    # (the CLI's check before LightningCLI swaps in the checkpoint's model, or the module's when loading)
    assert "holds a 'fno2d' model but" in err and "builds 'mgno'" in err and "Traceback" not in err
    assert not glob.glob(str(tmp_path / "mgno" / "**" / "*.ckpt"), recursive=True)
    # same model name, another data layout (steady Darcy a -> u vs vorticity trajectories)
    assert (
        main(
            [
                "fit",
                "-c",
                "ns_fno2d",
                "--data.path",
                ns["16"],
                "--data.train",
                "0:3",
                "--data.val",
                "3:4",
                "--data.test",
                "3:4",
                "--data.t_in",
                "2",
                "--data.t_out",
                "2",
                "--data.history",
                "2",
                "--data.unroll",
                "1",
                *QUIET,
                "--trainer.max_epochs",
                "2",
                "--trainer.default_root_dir",
                str(tmp_path / "ns"),
                "--ckpt_path",
                fno_ckpt,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "the checkpoint was trained on steady (steady) darcy a -> u" in err
    assert "but the data give trajectory (autoregressive) navier_stokes_2d vorticity" in err


def test_non_finite_loss_stops_the_run_naming_epoch_and_batch(darcy, tmp_path, capsys):
    assert (
        _fit_fno(
            darcy["17"], str(tmp_path), "--trainer.max_epochs", "3", "--model.lr", "1e30", "--model.scheduler", "none"
        )
        == 1
    )
    err = capsys.readouterr().err
    import re

    m = re.search(
        r"neuralops-train: error: the training loss is (nan|inf|-inf) at epoch (\d+), batch (\d+) "
        r"\(global step (\d+)\); the run stops here",
        err,
    )
    assert m and int(m.group(2)) < 3 and "Traceback" not in err
    assert not glob.glob(str(tmp_path / "**" / "last.ckpt"), recursive=True) or torch.load(
        glob.glob(str(tmp_path / "**" / "last.ckpt"), recursive=True)[0], weights_only=False
    )["epoch"] < int(m.group(2))


def test_degenerate_data_is_refused_by_the_data_modules(darcy, tmp_path, capsys):
    from train.data import SteadyDataModule

    def variant(name, edit):
        path = str(tmp_path / name)
        shutil.copy(darcy["17"], path)
        with h5py.File(path, "r+") as f:
            edit(f)
        return path

    def zero_u(f):
        f["fields/u"][...] = 0.0

    def constant_a(f):
        f["fields/a"][...] = 3.0

    def one_zero_sample(f):
        f["fields/u"][2] = 0.0

    def all_invalid(f):
        f["samples/valid"][...] = False

    for name, edit, message in [
        ("zero_u.h5", zero_u, "output channel 0 (fields 'u') is constant (0) over the train split"),
        ("const_a.h5", constant_a, "input channel 0 (fields 'a') is constant (3) over the train split"),
        ("one_zero.h5", one_zero_sample, "1 sample(s) of the train split"),
    ]:
        dm = SteadyDataModule(variant(name, edit), train="0:10", val="10:12", check="none")
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            dm.setup("fit")
    with pytest.raises(ValueError, match="holds no valid sample: all 10 selected samples are marked invalid"):
        SteadyDataModule(variant("invalid.h5", all_invalid), train="0:10", check="none")
    # through the CLI: one line, exit status 2, no checkpoint
    path = variant("zero_u_cli.h5", zero_u)
    assert _fit_fno(path, str(tmp_path / "run"), "--trainer.max_epochs", "1", "--data.check", "none") == 2
    err = capsys.readouterr().err
    assert "neuralops-train: error:" in err and "is constant (0)" in err and "Traceback" not in err
    assert not glob.glob(str(tmp_path / "run" / "**" / "*.ckpt"), recursive=True)


def test_packaged_config_on_a_single_small_file_and_on_separate_files(darcy, tmp_path, capsys):
    """darcy_fno's 0:1000 / -100: (no validation split) on a 12-sample file: split by fraction, said on stderr;
    --data.val FILE --data.test FILE: separate files, the train file used whole."""
    root = str(tmp_path / "one")
    assert _fit_fno(darcy["17"], root, "--trainer.max_epochs", "1") == 0
    err = capsys.readouterr().err
    assert (
        "the index splits (train 0:1000, test -100:) do not fit the 12 samples of "
        f"{darcy['17']}; split by fraction instead: train 0:11, test 11:12"
    ) in err
    val = str(tmp_path / "val.h5")
    shutil.copy(darcy["17"], val)
    root = str(tmp_path / "files")
    assert _fit_fno(darcy["17"], root, "--trainer.max_epochs", "1", "--data.val", val, "--data.test", val) == 0
    err = capsys.readouterr().err
    assert "train: 12 samples of darcy17.h5 (indices 0..11); val: 12 samples of val.h5" in err
    # adapt_splits false: the same config stops with one line that says how to fix it
    assert (
        _fit_fno(darcy["17"], str(tmp_path / "strict"), "--trainer.max_epochs", "1", "--data.adapt_splits", "false")
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1].startswith(
            "neuralops-train: error: the index splits (train 0:1000, test -100:) do not fit the 12 samples"
        )
        and "data.adapt_splits: true" in err[-1]
    )
    assert not any("Traceback" in line for line in err)


def test_splits_are_strings_in_every_spelling(darcy, tmp_path):
    """``10:20`` is YAML 1.1's base-60 620, ``-4:`` an option to argparse and a mapping to YAML:
    all stay split strings, on the command line and in config files."""
    from lightning.pytorch import LightningDataModule

    from train.cli import NeuralOperatorCLI
    from train.module import NeuralOperatorModule

    own = tmp_path / "splits.yaml"
    own.write_text("data:\n  init_args:\n    train: 1:10   # base-60 in YAML 1.1\n    val: -2:\n    test: 0.9:\n")

    def splits(*args):
        cli = NeuralOperatorCLI(
            NeuralOperatorModule,
            LightningDataModule,
            subclass_mode_data=True,
            run=False,
            auto_configure_optimizers=False,
            args=resolve_config_args(
                ["-c", "darcy_fno", "--data.path", darcy["17"], *TINY_FNO, "--trainer.logger", "false", *args]
            ),
        )
        return {k: (None if s is None else s.indices.tolist()) for k, s in cli.datamodule.splits.items()}

    assert splits("--data.train", "0:6", "--data.val", "6:9", "--data.test", "-3:") == {
        "train": list(range(6)),
        "val": [6, 7, 8],
        "test": [9, 10, 11],
    }
    assert splits("--data.train", "0:0.5", "--data.val", "0.5:0.75", "--data.init_args.test", "-0.25:") == {
        "train": list(range(6)),
        "val": [6, 7, 8],
        "test": [9, 10, 11],
    }
    assert splits("--config", str(own)) == {"train": list(range(1, 10)), "val": [10, 11], "test": [10, 11]}
    from train.data.splits import parse_split

    with pytest.raises(ValueError, match="is a number, not a split string"):
        parse_split("train", 620, darcy["17"], None)


def test_config_names_help_and_user_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    os.mkdir("darcy_fno")  # a folder named like a packaged config
    for flag in ("--config", "-c"):
        path = resolve_config_args([flag, "darcy_fno"])[1]
        assert path.endswith(os.path.join("train", "configs", "darcy_fno.yaml")) and os.path.isfile(path)
    with pytest.raises(SystemExit, match="'nope' is neither a file nor a packaged config"):
        resolve_config_args(["-c", "nope"])
    assert resolve_config_args(["fit", "--data.test", "-4:"]) == ["fit", "--data.test=-4:"]
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("fit", "validate", "test", "predict", "configs", "refine"):
        assert f"\n  {name} " in out
    assert main(["fit", "-c", "darcy_fno", "--data.path", str(tmp_path / "missing.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("neuralops-train: error:") and "missing.h5" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_evaluation_at_another_resolution_through_the_clis(darcy, tmp_path, capsys):
    """FNO-2D trained on 17^2 Darcy, evaluated at 33^2 (zero-shot super-resolution) by
    neuralops-train test and by neuralops-eval with both files: error-vs-resolution table."""
    from train.evaluate import main as eval_main

    root = str(tmp_path / "run")
    assert _fit_fno(darcy["17"], root, "--trainer.max_epochs", "2") == 0
    ckpt = os.path.join(root, "ckpt", "last.ckpt")
    capsys.readouterr()
    assert (
        main(
            [
                "test",
                "-c",
                "darcy_fno",
                "--data.path",
                darcy["17"],
                "--data.test",
                darcy["33"],
                *TINY_FNO,
                *QUIET,
                "--trainer.default_root_dir",
                root,
                "--ckpt_path",
                ckpt,
            ]
        )
        == 0
    )
    assert "test/relative_l2" in capsys.readouterr().out
    out = str(tmp_path / "report")
    assert eval_main(["--ckpt", ckpt, "--data", darcy["33"], darcy["17test"], "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "error vs resolution: 33x33" in printed and "17x17" in printed
    record = json.load(open(os.path.join(out, "metrics.json")))
    rows = {tuple(r["resolution"]): r for r in record["rows"]}
    assert set(rows) == {(17, 17), (33, 33)} and record["train_resolution"] == [17, 17]
    assert all(0 < r["relative_l2"] < 10 for r in rows.values())
    md = open(os.path.join(out, "report.md")).read()
    assert "| 17x17 (training grid) |" in md and "| 33x33 |" in md and "error_vs_resolution.png" in md
    assert os.path.getsize(os.path.join(out, "error_vs_resolution.png")) > 1000
    # each file's own report states training and test grids and why there is no published column
    sub = open(rows[(33, 33)]["report"]).read()
    assert (
        "training data: " in sub
        and "grid 17x17; the index splits (train 0:1000, test -100:) do "
        "not fit the 12 samples of the file; split by fraction instead: train 0:11"
        in sub
    )
    assert "grid 33x33 (another resolution than training: zero-shot)" in sub
    assert "published comparison: no published comparison: the published tables are for FNO Navier-Stokes" in sub
    # the per-file report's metrics equal a direct computation on the 33^2 file
    from train.module import predict_split

    p = predict_split(ckpt, data=darcy["33"])
    rel = [
        float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))
        for a, b in zip(p["prediction"].double(), p["target"].double())
    ]
    assert rows[(33, 33)]["relative_l2"] == pytest.approx(float(np.mean(rel)), rel=1e-6)


def test_published_setting_matches_viscosity_windows_and_training_size(ns):
    from train.evaluate import match_setting

    key, why = match_setting(ns["16"], {"t_in": 10, "t_out": 40, "n_train": 1000})
    assert key == "fno_ns_nu1e-3_T50_N1000" and "matches" in why
    key, why = match_setting(ns["16"], {"t_in": 10, "t_out": 40, "n_train": 10})
    assert key is None and "training samples 10 (published: 1000)" in why
    key, why = match_setting(ns["16"], {"t_in": 10, "t_out": 20, "n_train": 1000})
    assert key is None and "predicted frames 20 (published: 40)" in why


def test_without_tensorboard_logs_go_to_csv_only(darcy, tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",  # as train.lightning_cli looks for tensorboard
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    root = str(tmp_path / "run")
    assert _fit_fno(darcy["17"], root, "--trainer.max_epochs", "1") == 0
    err = capsys.readouterr().err
    assert f"CSV log: {os.path.join(root, 'logs', 'version_0')}" in err and "TensorBoard log: off" in err
    assert os.path.exists(os.path.join(root, "logs", "version_0", "metrics.csv"))
    assert not glob.glob(os.path.join(root, "logs", "version_0", "events.out.tfevents.*"))


def test_trajectory_model_evaluated_at_another_resolution(ns, tmp_path, capsys):
    """FNO-3D trained on 16^2 Navier-Stokes, evaluated on the same test trajectories stored at 16^2
    and 32^2; the per-file report says why there is no published column (3 -> 3 frames, 3 samples)."""
    from train.evaluate import main as eval_main

    root = str(tmp_path / "run")
    assert (
        main(
            [
                "fit",
                "-c",
                "ns_fno3d",
                "--data.path",
                ns["16"],
                "--data.t_in",
                "3",
                "--data.t_out",
                "3",
                "--data.normalization",
                "gaussian",  # per-grid-point statistics are bound to the training grid
                "--data.batch_size",
                "2",
                "--model.model_config",
                "{modes: 4, width: 6, n_layers: 1, projection_channels: 8}",
                *QUIET,
                "--trainer.max_epochs",
                "2",
                "--trainer.default_root_dir",
                root,
                "--checkpoint.dirpath",
                root + "/ckpt",
            ]
        )
        == 0
    )
    out = str(tmp_path / "report")
    assert eval_main(["--ckpt", root + "/ckpt/last.ckpt", "--data", ns["test16"], ns["test32"], "--out", out]) == 0
    record = json.load(open(os.path.join(out, "metrics.json")))
    rows = {tuple(r["resolution"]): r for r in record["rows"]}
    assert set(rows) == {(16, 16), (32, 32)} and all(r["relative_h1"] is not None for r in rows.values())
    sub = open(rows[(32, 32)]["report"]).read()
    assert "grid 32x32 (another resolution than training: zero-shot)" in sub
    assert "the closest, fno_ns_nu1e-3_T50_N1000, differs in input frames 3 (published: 10)" in sub
    assert "(published)" not in sub
