"""The README's Spectral-Refiner pipeline, as written, at reduced size:

    neuralops-datagen navier-stokes --recipe spectral-refiner ...      (snapshots every 0.2)
    neuralops-train fit --config ns_sfno --data.init_args.path <that file>
    neuralops-train refine --ckpt .../last.ckpt --data <that file>
    neuralops-eval --ckpt .../last.ckpt --out ...

The SFNO is trained on the data it is refined on. The default test runs it in seconds (16^2,
a few training steps); the slow one at 64^2 -> 32^2 with the recipe's own scheme and a trained model,
and checks what refinement is for: a lower residual and no worse error.
"""

from __future__ import annotations

import json
import os

import pytest

from datagen.cli import main as datagen_main
from datagen.dataset import open_dataset
from train.cli import main as train_main
from train.evaluate import main as eval_main
from train.refine.cli import main as refine_main


def _pipeline(root, gen_args, fit_args, refine_args):
    data = os.path.join(root, "ns_refiner.h5")
    assert (
        datagen_main(["navier-stokes", "--recipe", "spectral-refiner", "--out", data, "--no-progress", *gen_args]) == 0
    )
    run = os.path.join(root, "ns_sfno")
    assert (
        train_main(
            [
                "fit",
                "--config",
                "ns_sfno",
                "--data.init_args.path",
                data,
                "--trainer.default_root_dir",
                run,
                "--checkpoint.dirpath",
                run + "/checkpoints",
                "--trainer.accelerator",
                "cpu",
                "--trainer.enable_progress_bar",
                "false",
                *fit_args,
            ]
        )
        == 0
    )
    ckpt = run + "/checkpoints/last.ckpt"
    refined = os.path.join(root, "sfno_refined")
    assert refine_main(["--ckpt", ckpt, "--data", data, "--out", refined, *refine_args]) == 0
    report = os.path.join(root, "ns_sfno_report")
    assert eval_main(["--ckpt", ckpt, "--out", report]) == 0
    with open(os.path.join(refined, "metrics.json")) as f:
        refined_record = json.load(f)
    with open(os.path.join(report, "metrics.json")) as f:
        eval_record = json.load(f)
    with open_dataset(data) as ds:
        assert ds.spec["sampling"]["recipe"] == "spectral-refiner" and ds.spec["sampling"]["snapshot_interval"] == 0.2
    return refined_record, eval_record


SMALL_MODEL = '{"modes_x": 3, "modes_y": 3, "modes_t": 3, "width": 4, "latent_steps": 4, "mlp_channels": 8}'
WINDOW = ["--data.init_args.t_in", "6", "--data.init_args.t_out", "8"]


def test_pipeline_small(tmp_path):
    refined, evaluated = _pipeline(
        str(tmp_path),
        [
            "--n",
            "4",
            "--resolution",
            "16",
            "--store-resolution",
            "16",
            "--dt",
            "1e-2",
            "--t-start",
            "1.0",
            "--n-snapshots",
            "14",
        ],
        [
            "--model.model_config",
            SMALL_MODEL,
            "--data.init_args.train",
            "0:2",
            "--data.init_args.val",
            "2:4",
            "--data.init_args.test",
            "2:4",
            *WINDOW,
            "--data.init_args.batch_size",
            "2",
            "--trainer.max_steps",
            "2",
            "--trainer.limit_val_batches",
            "1",
        ],
        ["--steps", "4", "--fd-order", "4"],
    )
    before, after = refined["runs"]["before refinement"], refined["runs"]["after refinement"]
    assert after["metrics"]["residual_h_minus1"] < before["metrics"]["residual_h_minus1"]
    assert "relative_l2" in evaluated["runs"][next(iter(evaluated["runs"]))]["metrics"]


@pytest.mark.slow
@pytest.mark.timeout(2400)  # about 10 minutes on a shared 2-core machine
def test_pipeline_reduced_size(tmp_path):
    """64^2 solved with the recipe's FNO step at dt = 1e-3, bilinear to 32^2, warm-up to t = 5; an
    SFNO trained for 300 steps on 24 trajectories; 60 refinement steps on the 4 test trajectories."""
    refined, _ = _pipeline(
        str(tmp_path),
        [
            "--n",
            "28",
            "--resolution",
            "64",
            "--store-resolution",
            "32",
            "--t-start",
            "5",
            "--n-snapshots",
            "30",
            "--batch-size",
            "28",
        ],
        [
            "--model.model_config",
            '{"modes_x": 8, "modes_y": 8, "modes_t": 5, "width": 12}',
            "--data.init_args.train",
            "0:24",
            "--data.init_args.val",
            "24:28",
            "--data.init_args.test",
            "24:28",
            "--data.init_args.t_in",
            "10",
            "--data.init_args.t_out",
            "20",
            "--data.init_args.batch_size",
            "4",
            "--trainer.max_steps",
            "300",
        ],
        ["--steps", "60"],
    )
    before, after = refined["runs"]["before refinement"], refined["runs"]["after refinement"]
    assert after["metrics"]["residual_h_minus1"] < 0.1 * before["metrics"]["residual_h_minus1"]
    assert after["metrics"]["relative_l2"] <= 1.05 * before["metrics"]["relative_l2"]
