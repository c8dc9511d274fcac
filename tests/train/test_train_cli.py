"""``neuralops-train``: packaged configs (parameter counts of the papers' models), fit/test through
the CLI with checkpoints and logs, CPU smoke runs of the NS configs, the refine hook, bad configs."""

import glob
import os

import numpy as np
import pytest
from lightning.pytorch import LightningDataModule
from train_helpers import write_steady, write_trajectories

from train.cli import NeuralOperatorCLI, available_configs, main, resolve_config_args
from train.module import NeuralOperatorModule

CONFIGS = ["darcy_mgno", "darcy_fno", "ns_fno3d", "ns_fno2d", "ns_sfno", "ns_sinenet", "ns_mgno", "ns_mgno_ts"]
# parameter counts of the configured models (572,661 / 6,558,537 / 414,517 / 9,242,461 / 2,885,194 / 602,604)
PARAMS = {
    "darcy_mgno": 572_661,
    "ns_fno3d": 6_558_537,
    "ns_fno2d": 414_517,
    "ns_sfno": 9_242_461,
    "ns_mgno": 2_885_194,
    "ns_mgno_ts": 602_604,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return {
        "darcy": str(write_steady(d / "darcy.h5", n=6, res=64)),
        "ns": str(write_trajectories(d / "ns.h5", n=4, frames=50, res=64)),
    }


def split_args(path):
    return [
        "--data.init_args.path",
        path,
        "--data.init_args.train",
        "0:2",
        "--data.init_args.val",
        "2:4",
        "--data.init_args.test",
        "2:4",
    ]


def test_configs_are_found_by_name(tmp_path):
    assert set(CONFIGS) <= set(available_configs())
    args = resolve_config_args(["fit", "--config", "darcy_mgno", "--config=ns_sfno.yaml"])
    assert args[2].endswith(os.path.join("train", "configs", "darcy_mgno.yaml")) and os.path.exists(args[2])
    assert args[3].startswith("--config=") and args[3].endswith("ns_sfno.yaml")
    own = tmp_path / "mine.yaml"
    own.write_text("trainer: {max_epochs: 1}\n")
    assert resolve_config_args(["--config", str(own)])[1] == str(own)
    with pytest.raises(SystemExit, match="neither a file nor a packaged config; packaged configs: .*darcy_mgno"):
        resolve_config_args(["--config", "darcy_mgnoo"])


@pytest.mark.parametrize("name", CONFIGS)
def test_packaged_configs_build_the_papers_models(name, data, tmp_path):
    path = data["darcy"] if name.startswith("darcy") else data["ns"]
    cli = NeuralOperatorCLI(
        NeuralOperatorModule,
        LightningDataModule,
        subclass_mode_data=True,
        run=False,
        auto_configure_optimizers=False,
        args=resolve_config_args(["--config", name, *split_args(path), "--trainer.default_root_dir", str(tmp_path)]),
    )
    n = sum(p.numel() for p in cli.model.model.parameters())
    if name in PARAMS:
        assert n == PARAMS[name]
    if name == "ns_sfno":
        assert abs(n - 9.2e6) < 0.1e6
    io = cli.datamodule.io
    if name.startswith("ns_"):
        assert (io["t_in"], io["t_out"]) == (10, 40)
    ckpt = [c for c in cli.trainer.callbacks if type(c).__name__ == "ModelCheckpoint"][0]
    last = [c for c in cli.trainer.callbacks if type(c).__name__ == "LastCheckpoint"]
    assert ckpt.monitor == "val/relative_l2" and not ckpt.save_last  # last.ckpt: its own callback
    assert len(last) == 1 and last[0].dirpath == ckpt.dirpath and last[0].monitor is None


def test_fit_resume_and_test_through_the_cli(data, tmp_path, capsys):
    root = str(tmp_path / "run")
    small = ["--model.model_config", "{channels: 6, num_layers: 2, smoothing: [[1, 0], [1, 0], [2, 0]]}"]
    common = [
        "--config",
        "darcy_mgno",
        *split_args(data["darcy"]),
        *small,
        "--trainer.default_root_dir",
        root,
        "--checkpoint.dirpath",
        root + "/ckpt",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.accelerator",
        "cpu",
    ]
    assert main(["fit", *common, "--trainer.max_epochs", "2"]) == 0
    assert os.path.exists(root + "/ckpt/last.ckpt") and glob.glob(root + "/ckpt/best-*.ckpt")
    metrics_csv = glob.glob(root + "/logs/version_*/metrics.csv")
    assert metrics_csv and "val/relative_l2" in open(metrics_csv[0]).read()
    # a one-cycle schedule cannot be stretched on resume: clear message
    capsys.readouterr()
    assert main(["fit", *common, "--trainer.max_epochs", "3", "--ckpt_path", root + "/ckpt/last.ckpt"]) == 2
    assert "one-cycle schedule in the checkpoint spans 2 steps but this run has 3" in capsys.readouterr().err
    # with a step schedule the run continues to 3 epochs from last.ckpt
    common += ["--model.scheduler", "step", "--model.scheduler_config", "{}", "--checkpoint.dirpath", root + "/ckpt2"]
    assert main(["fit", *common, "--trainer.max_epochs", "2"]) == 0
    assert main(["fit", *common, "--trainer.max_epochs", "3", "--ckpt_path", root + "/ckpt2/last.ckpt"]) == 0
    import torch

    assert torch.load(root + "/ckpt2/last.ckpt", weights_only=False)["epoch"] == 2
    capsys.readouterr()
    assert main(["test", *common, "--ckpt_path", root + "/ckpt2/last.ckpt"]) == 0
    assert "test/relative_l2" in capsys.readouterr().out
    # neuralops-eval's entry point rebuilds the data module from a CLI checkpoint
    from train.module import predict_split

    out = predict_split(root + "/ckpt2/last.ckpt")
    assert out["prediction"].shape == (2, 1, 1, 64, 64) and out["indices"].tolist() == [2, 3]
    # `predict` writes a dataset of predictions that agrees with the evaluation path
    pred_path = str(tmp_path / "pred" / "predictions.h5")
    assert main(["predict", *common, "--ckpt_path", root + "/ckpt2/last.ckpt", "--predictions_path", pred_path]) == 0
    from datagen.dataset import open_dataset, validate

    assert validate(pred_path) == []
    ds = open_dataset(pred_path)
    assert ds.params("index").tolist() == [2, 3]
    np.testing.assert_allclose(ds.read("prediction"), out["prediction"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ds.read("target"), out["target"].numpy())


@pytest.mark.parametrize("name", ["ns_fno3d", "ns_sfno"])
def test_cpu_smoke_of_the_ns_configs(name, data, tmp_path):
    """The full-size models of the target configs take training steps on tiny data."""
    root = str(tmp_path)
    assert (
        main(
            [
                "fit",
                "--config",
                name,
                *split_args(data["ns"]),
                "--data.init_args.batch_size",
                "1",
                "--trainer.max_steps",
                "2",
                "--trainer.limit_val_batches",
                "1",
                "--trainer.accelerator",
                "cpu",
                "--trainer.default_root_dir",
                root,
                "--checkpoint.dirpath",
                root + "/ckpt",
                "--trainer.enable_progress_bar",
                "false",
            ]
        )
        == 0
    )
    assert os.path.exists(root + "/ckpt/last.ckpt")


def test_refine_subcommand_is_dispatched(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["refine", "--help"])
    assert exc.value.code == 0
    assert "--ckpt" in capsys.readouterr().out


@pytest.mark.parametrize(
    "override, message",
    [
        (["--model.model", "fno4d"], "unknown model 'fno4d'"),
        (["--data.init_args.t_out", "45"], "is longer than the 50 frames"),
        (["--data.init_args.fields", "[pressure]"], "field 'pressure' is not in"),
    ],
)
def test_bad_configs_stop_before_training(override, message, data, tmp_path, capsys):
    args = [
        "fit",
        "--config",
        "ns_fno3d",
        *split_args(data["ns"]),
        *override,
        "--trainer.default_root_dir",
        str(tmp_path),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not glob.glob(str(tmp_path) + "/**/*.ckpt", recursive=True)


def test_invalid_dataset_stops_before_training(data, tmp_path, capsys):
    import shutil

    import h5py

    bad = str(tmp_path / "bad.h5")
    shutil.copy(data["darcy"], bad)
    with h5py.File(bad, "r+") as f:
        f.attrs["status"] = "writing"
    assert main(["fit", "--config", "darcy_mgno", *split_args(bad), "--trainer.default_root_dir", str(tmp_path)]) == 2
    assert "fails the data contract's validation" in capsys.readouterr().err


def test_without_validation_split_only_last_checkpoint(data, tmp_path, capsys):
    root = str(tmp_path)
    assert (
        main(
            [
                "fit",
                "--config",
                "darcy_mgno",
                "--data.init_args.path",
                data["darcy"],
                "--data.init_args.train",
                "0:2",
                "--data.init_args.val",
                "none",
                "--data.init_args.test",
                "none",
                "--model.model_config",
                "{channels: 4, num_layers: 1, smoothing: [[1, 0], [1, 0]]}",
                "--trainer.max_epochs",
                "1",
                "--trainer.accelerator",
                "cpu",
                "--trainer.default_root_dir",
                root,
                "--checkpoint.dirpath",
                root + "/ckpt",
                "--trainer.enable_progress_bar",
                "false",
            ]
        )
        == 0
    )
    assert "saving last.ckpt only" in capsys.readouterr().err
    assert os.path.exists(root + "/ckpt/last.ckpt")
    assert main(["configs"]) == 0 and "ns_sinenet" in capsys.readouterr().out
