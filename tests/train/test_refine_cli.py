"""``neuralops-train refine`` end to end: generator data -> SFNO checkpoint (neuralops-train fit)
-> refinement -> refined predictions (data contract) and the before/after report."""

from __future__ import annotations

import json
import os

import pytest
from train_helpers import fit_tiny

from datagen.dataset import open_dataset, validate
from datagen.navier_stokes.generator import generate
from datagen.navier_stokes.recipes import recipe
from train.refine.cli import main as refine_main

T_IN, T_OUT = 6, 8


@pytest.fixture(scope="module")
def ns_data(tmp_path_factory):
    """Four short trajectories of the spectral-refiner recipe computed directly on 16^2."""
    d = tmp_path_factory.mktemp("refine_cli")
    spec = recipe(
        "spectral-refiner",
        {"resolution": 16, "store_resolution": 16, "dt": 1e-2, "t_start": 1.0, "n_snapshots": T_IN + T_OUT},
    )
    path = str(d / "ns.h5")
    generate(spec, path, 4, seed=0, batch_size=4, progress=False, log=None)
    return path


def _fit(model, model_config, data, root):
    return fit_tiny(data, root, model, model_config, T_IN, T_OUT)


@pytest.fixture(scope="module")
def sfno_ckpt(ns_data, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("sfno_run"))
    return _fit(
        "sfno",
        {"modes_x": 3, "modes_y": 3, "modes_t": 3, "width": 4, "latent_steps": 4, "mlp_channels": 8},
        ns_data,
        root,
    )


def test_refine_writes_predictions_and_before_after_report(ns_data, sfno_ckpt, tmp_path, capsys):
    out = str(tmp_path / "refined")
    assert refine_main(["--ckpt", sfno_ckpt, "--data", ns_data, "--steps", "4", "--out", out, "--fd-order", "4"]) == 0
    printed = capsys.readouterr().out
    assert "relative L2" in printed and "H^-1 residual" in printed
    ds = open_dataset(os.path.join(out, "refined.h5"))
    # the checkpoint's test split (samples 2, 3) of the same file
    assert len(ds) == 2 and list(ds.params("source_index")) == [2, 3]
    assert ds.field_shape("prediction_after") == (T_OUT, 16, 16)
    assert all(ds.params("residual_after") < ds.params("residual_before"))
    assert ds.spec["solver"]["refinement"]["config"]["linearization"] == "newton" and validate(ds.path) == []
    ds.close()
    with open(os.path.join(out, "metrics.json")) as f:
        record = json.load(f)
    runs = record["runs"]
    assert set(runs) == {"before refinement", "after refinement"}
    for run in runs.values():
        assert {"relative_l2", "residual_h_minus1"} <= set(run["metrics"])
    assert (
        runs["after refinement"]["metrics"]["residual_h_minus1"]
        < runs["before refinement"]["metrics"]["residual_h_minus1"]
    )
    report = open(os.path.join(out, "report.md")).read()
    assert "| residual_h_minus1 |" in report and "after refinement" in report


def test_zero_shot_super_resolution(ns_data, sfno_ckpt, tmp_path):
    out = str(tmp_path / "superres")
    assert (
        refine_main(
            [
                "--ckpt",
                sfno_ckpt,
                "--data",
                ns_data,
                "--steps",
                "2",
                "--out",
                out,
                "--fd-order",
                "4",
                "--eval-resolution",
                "32",
                "--indices",
                "3",
            ]
        )
        == 0
    )
    ds = open_dataset(os.path.join(out, "refined.h5"))
    assert ds.spec["solver"]["refinement"]["resolution"] == 32 and ds.field_shape("prediction_after") == (T_OUT, 16, 16)
    ds.close()


def test_grid_too_coarse_for_modes_is_refused(ns_data, sfno_ckpt, tmp_path, capsys):
    assert (
        refine_main(
            [
                "--ckpt",
                sfno_ckpt,
                "--data",
                ns_data,
                "--steps",
                "1",
                "--out",
                str(tmp_path / "o"),
                "--modes",
                "9",
                "9",
                "3",
            ]
        )
        == 2
    )
    assert "modes_x=9 is too many for a 16x16 grid" in capsys.readouterr().err
    assert (
        refine_main(
            [
                "--ckpt",
                sfno_ckpt,
                "--data",
                ns_data,
                "--steps",
                "1",
                "--out",
                str(tmp_path / "o"),
                "--eval-resolution",
                "8",
            ]
        )
        == 2
    )
    assert "coarser than the data grid" in capsys.readouterr().err


def test_checkpoint_that_is_not_an_sfno_is_refused(ns_data, tmp_path, capsys):
    ckpt = _fit(
        "fno3d",
        {"modes": 3, "width": 4, "projection_channels": 8, "time_padding": 2},
        ns_data,
        str(tmp_path / "fno_run"),
    )
    capsys.readouterr()
    assert refine_main(["--ckpt", ckpt, "--data", ns_data, "--steps", "1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not an SFNO" in err and "fno3d" in err
