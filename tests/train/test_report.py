"""evaluate() + write_report(): numbers, report files, published comparison, figures."""

import json
import math
import os
import re

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from train import metrics as M
from train.evaluate import evaluate
from train.report import PUBLISHED, PUBLISHED_TABLES, SETTINGS, published_tables, write_report

NS_SETTING = "fno_ns_nu1e-3_T50_N1000"


def _trajectories(n=3, t=6, size=32, seed=0, noise=0.05):
    """Smooth periodic fields with a growing perturbation: (N, T, X, Y) truth and prediction."""
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(size, dtype=torch.float64) / size
    X, Y = torch.meshgrid(x, x, indexing="ij")
    frames = []
    for _i in range(n):
        phase = torch.rand(3, generator=g, dtype=torch.float64) * 2 * math.pi
        frames.append(
            torch.stack(
                [
                    torch.sin(2 * math.pi * (X + Y) + phase[0] + 0.2 * k)
                    + 0.5 * torch.cos(2 * math.pi * (3 * X - 2 * Y) + phase[1])
                    + 0.1 * torch.sin(2 * math.pi * (7 * X + 9 * Y) + phase[2] - 0.1 * k)
                    for k in range(t)
                ]
            )
        )
    truth = torch.stack(frames).float()
    growth = torch.linspace(0.5, 2.0, t)[None, :, None, None]
    pred = truth + noise * growth * torch.randn(truth.shape, generator=g)
    grid = {"x": x.numpy(), "y": x.numpy(), "t": np.arange(10.0 + t)}
    return pred, truth, grid


def test_evaluate_numbers_match_direct_computation():
    pred, truth, grid = _trajectories()
    r = evaluate(pred, truth, grid, NS_SETTING)
    p, t = pred.double().numpy(), truth.double().numpy()
    direct = np.mean([np.linalg.norm(p[i] - t[i]) / np.linalg.norm(t[i]) for i in range(len(p))])
    assert r["metrics"]["relative_l2"] == pytest.approx(direct, rel=1e-12)
    step = np.mean(
        [
            [np.linalg.norm(p[i, s] - t[i, s]) / np.linalg.norm(t[i, s]) for s in range(p.shape[1])]
            for i in range(len(p))
        ],
        axis=0,
    )
    np.testing.assert_allclose(r["per_step"]["relative_l2"], step, rtol=1e-12)
    assert r["metrics"]["nrmse"] == pytest.approx(float(np.mean(step)), rel=1e-12)  # one channel: same average
    # predicted steps are the last T snapshots of the grid's time axis
    assert r["times"] == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    # mean spectra keep Parseval: sum_s E(s) = mean u^2 / 2 averaged over frames
    assert sum(r["spectrum"]["truth"]) == pytest.approx(0.5 * float((t**2).mean()), rel=1e-10)
    assert set(r["metrics"]["spectral_band_relative_error"]) == {"low", "mid", "high"}
    assert r["metrics"]["spectral_band_relative_error"]["high"] is None  # truth has no shell >= 12
    assert r["metrics"]["spectral_band_relative_error"]["mid"] > 0


def test_chunking_does_not_change_results():
    pred, truth, grid = _trajectories(n=5, seed=1)
    a = evaluate(pred, truth, grid, NS_SETTING, chunk_size=2)
    b = evaluate(pred, truth, grid, NS_SETTING, chunk_size=100)
    for name in ("relative_l2", "rmse", "nrmse", "max_error"):
        assert a["metrics"][name] == pytest.approx(b["metrics"][name], rel=1e-12)
    np.testing.assert_allclose(a["per_step"]["relative_l2"], b["per_step"]["relative_l2"], rtol=1e-12)
    np.testing.assert_allclose(a["spectrum"]["prediction"], b["spectrum"]["prediction"], rtol=1e-12)


def test_perfect_prediction_evaluates_to_zero():
    _, truth, grid = _trajectories()
    r = evaluate(truth, truth, grid, NS_SETTING)
    for name in ("relative_l2", "rmse", "nrmse", "max_error"):
        assert r["metrics"][name] == 0.0
    if r["metrics"]["relative_h1"] is not None:
        assert r["metrics"]["relative_h1"] == 0.0
    assert all(v == 0 for v in r["per_step"]["relative_l2"])


def test_evaluate_rejects_bad_input():
    pred, truth, grid = _trajectories()
    with pytest.raises(ValueError, match="unknown evaluation setting 'ns_typo'"):
        evaluate(pred, truth, grid, "ns_typo")
    with pytest.raises(ValueError, match="needs a layout"):
        evaluate(pred, truth, grid)
    bad = pred.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="nan or inf"):
        evaluate(bad, truth, grid, NS_SETTING)
    with pytest.raises(ValueError, match="differs from target shape"):
        evaluate(pred[:, :3], truth, grid, NS_SETTING)
    with pytest.raises(ValueError, match="relative_h1 must be"):
        evaluate(pred, truth, grid, NS_SETTING, relative_h1="yes")


def test_report_folder_json_markdown_and_figures(tmp_path):
    pred, truth, grid = _trajectories()
    r = evaluate(pred, truth, grid, NS_SETTING)
    paths = write_report(
        str(tmp_path),
        r,
        predictions=M.to_canonical(pred, "trajectory"),
        targets=M.to_canonical(truth, "trajectory"),
        extra={"ckpt": "none"},
    )
    for key in ("metrics_json", "report_md", "fields", "error_vs_time", "spectra"):
        assert os.path.isfile(paths[key]), key
    with open(paths["metrics_json"]) as f:
        record = json.load(f)
    run = record["runs"]["this run"]
    assert run["metrics"]["relative_l2"] == pytest.approx(r["metrics"]["relative_l2"], rel=1e-15)
    for name in (
        "relative_l2",
        "relative_l2_per_step",
        "relative_h1",
        "spectral_band_relative_error",
        "energy_spectrum",
        "rmse",
        "nrmse",
    ):
        assert record["definitions"][name] == M.METRIC_DEFINITIONS[name]
    assert record["published"][0]["values"]["FNO-3D"] == 0.0086
    assert record["extra"] == {"ckpt": "none"}

    md = open(paths["report_md"]).read()
    assert "| FNO-3D (published) | 0.0086 |" in md
    assert f"| **this run** (this toolkit) | {r['metrics']['relative_l2']:.4g} |" in md
    assert "nu=1e-3, T=50" in md
    assert "| relative_l2 |" in md
    assert "Published metric definition" in md
    assert "low [0, 4), mid [4, 12), high [12, inf)" in md

    for key in ("fields", "error_vs_time", "spectra"):
        image = imread(paths[key])
        assert image.ndim == 3 and image.shape[2] in (3, 4), (key, image.shape)
        assert image.shape[0] > 200 and image.shape[1] > 300, (key, image.shape)
        assert image[..., :3].std() > 0.05, key  # not a blank canvas


def test_before_after_columns_for_refinement(tmp_path):
    pred, truth, grid = _trajectories(seed=2)
    better = truth + 0.5 * (pred - truth)
    before = evaluate(pred, truth, grid, NS_SETTING)
    after = evaluate(better, truth, grid, NS_SETTING)
    assert after["metrics"]["relative_l2"] == pytest.approx(0.5 * before["metrics"]["relative_l2"], rel=1e-6)
    paths = write_report(
        str(tmp_path),
        {"before refinement": before, "after refinement": after},
        predictions={
            "before refinement": M.to_canonical(pred, "trajectory"),
            "after refinement": M.to_canonical(better, "trajectory"),
        },
        targets=M.to_canonical(truth, "trajectory"),
    )
    md = open(paths["report_md"]).read()
    assert "| metric | before refinement | after refinement |" in md
    assert f"| **after refinement** (this toolkit) | {after['metrics']['relative_l2']:.4g} |" in md
    record = json.load(open(paths["metrics_json"]))
    assert set(record["runs"]) == {"before refinement", "after refinement"}
    assert imread(paths["fields"]).shape[0] > imread(paths["spectra"]).shape[0]  # 5 rows of panels


def test_steady_darcy_setting_lists_l2_and_h1_tables(tmp_path):
    g = torch.Generator().manual_seed(3)
    truth = torch.randn(4, 1, 16, 16, generator=g, dtype=torch.float64)
    pred = truth + 0.01 * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    x = np.linspace(0, 1, 16)
    r = evaluate(pred, truth, {"x": x, "y": x}, "darcy_rough_256")
    assert r["layout"] == "steady" and r["n_steps"] == 1 and r["n_channels"] == 1
    paths = write_report(str(tmp_path), r)
    md = open(paths["report_md"]).read()
    assert "| MgNO (published) | 0.00339 |" in md
    assert "| MgNO (published) | 0.0138 |" in md
    assert "relative_h1" in md
    assert "fields" not in paths  # no fields given: no field panels
    assert "error_vs_time" not in paths  # steady data: no time axis to plot


def test_published_table_is_keyed_and_consistent():
    key = (
        "FNO Navier-Stokes (vorticity, unit torus, 64^2)",
        "nu=1e-3, T=50, 1000 train / 200 test, 10 input -> 40 predicted snapshots",
        "FNO-3D",
    )
    assert PUBLISHED[key]["value"] == 0.0086 and PUBLISHED[key]["metric"] == "relative_l2"
    for table in PUBLISHED_TABLES:
        assert table.metric in M.METRIC_DEFINITIONS, table
        assert table.layout in M.LAYOUTS
        assert table.metric_definition and table.source
        assert all(0 < v < 1 for v in table.values.values())
    assert {t.metric for t in published_tables("darcy_rough_256")} == {"relative_l2", "relative_h1"}
    assert SETTINGS[NS_SETTING]["layout"] == "trajectory"
    assert published_tables(None) == []


def test_relative_h1_in_evaluate_follows_the_grid_boundaries():
    pred, truth, grid = _trajectories(seed=4)
    r = evaluate(pred, truth, grid, NS_SETTING)
    direct = (
        M.relative_h1_per_sample(
            M.to_canonical(pred, "trajectory"), M.to_canonical(truth, "trajectory"), M.as_grid(grid)
        )
        .mean()
        .item()
    )
    assert r["metrics"]["relative_h1"] == pytest.approx(direct, rel=1e-12)
    assert r["metrics"]["relative_h1"] > r["metrics"]["relative_l2"]  # white-noise error: H1 weights it up
    mixed = dict(grid, boundary={"x": "periodic", "y": "neumann"})
    r_mixed = evaluate(pred, truth, mixed, NS_SETTING)
    assert r_mixed["metrics"]["relative_h1"] is None
    assert "relative_h1 not computed" in r_mixed["notes"][0]
    with pytest.raises(ValueError, match="the same on x and y"):
        evaluate(pred, truth, mixed, NS_SETTING, relative_h1=True)


def test_neuralops_eval_cli_on_a_checkpoint(tmp_path, capsys):
    """Train a tiny fno3d for two steps, save the Lightning checkpoint, run neuralops-eval, and
    check the report's numbers against predictions recomputed here from the checkpoint."""
    import lightning.pytorch as pl
    from train_helpers import write_advection

    from train.data import TrajectoryDataModule
    from train.evaluate import main
    from train.module import NeuralOperatorModule

    data = write_advection(str(tmp_path / "adv.h5"), n=8, frames=8, res=16)
    dm = TrajectoryDataModule(
        path=data, train="0:5", val="5:6", test="6:8", mode="direct", t_in=4, t_out=4, batch_size=2
    )
    torch.manual_seed(0)
    module = NeuralOperatorModule(
        "fno3d", {"modes": 4, "width": 6, "n_layers": 1, "projection_channels": 8}, data_io=dm.io
    )
    trainer = pl.Trainer(
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        limit_val_batches=0,
    )
    trainer.fit(module, dm)
    ckpt = str(tmp_path / "tiny.ckpt")
    trainer.save_checkpoint(ckpt)

    out = tmp_path / "report"
    assert main(["--ckpt", ckpt, "--out", str(out), "--setting", NS_SETTING]) == 0
    assert "report:" in capsys.readouterr().out
    record = json.load(open(out / "metrics.json"))
    run = record["runs"]["this run"]
    assert run["n_samples"] == 2 and run["n_steps"] == 4 and run["grid_shape"] == [16, 16]
    assert run["times"] == [4.0, 5.0, 6.0, 7.0]  # frames start + t_in .. of the protocol window
    assert record["extra"]["sample_indices"] == [6, 7] and record["extra"]["model"] == "fno3d"

    # independent recomputation: the restored module on the raw test windows
    restored = NeuralOperatorModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    rel = []
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            p = restored(x, y.shape[1]).double().numpy()
            t = y.double().numpy()
            rel += [np.linalg.norm(p[i] - t[i]) / np.linalg.norm(t[i]) for i in range(len(p))]
    assert run["metrics"]["relative_l2"] == pytest.approx(float(np.mean(rel)), rel=1e-5)
    md = open(out / "report.md").read()
    # a tiny run forced onto the published setting: the published rows say the protocol differs
    assert re.search(
        r"\| FNO-3D \(published; another protocol: [^|]*training samples \d+ \(published: 1000\)\) "
        r"\| 0\.0086 \|",
        md,
    ), md
    for name in ("fields.png", "error_vs_time.png", "spectra.png"):
        assert imread(str(out / name)).ndim == 3

    assert main(["--ckpt", str(tmp_path / "missing.ckpt"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_multichannel_trajectories_report_per_channel_errors(tmp_path):
    g = torch.Generator().manual_seed(5)
    truth = torch.randn(3, 4, 2, 16, 16, generator=g, dtype=torch.float64)
    pred = truth.clone()
    pred[:, :, 1] += 0.1 * torch.randn(3, 4, 16, 16, generator=g, dtype=torch.float64)  # only channel 1 wrong
    r = evaluate(pred, truth, None, "sinenet_shallow_water")
    assert r["layout"] == "trajectory_channels"
    assert r["per_channel"]["relative_l2"][0] == 0.0 and r["per_channel"]["relative_l2"][1] > 0.05
    md = open(write_report(str(tmp_path), r, predictions=pred, targets=truth, channel=1)["report_md"]).read()
    assert "## Relative L2 per channel" in md
    assert "| SineNet-8 (circular padding) (published) | 0.0178 |" in md


def test_datagen_grid_object_and_figure_layout_errors(tmp_path):
    from datagen.dataset import Grid

    pred, truth, grid = _trajectories(n=2, t=3, size=16, seed=6)
    g = Grid({"x": grid["x"], "y": grid["y"], "t": grid["t"]}, {"x": "periodic", "y": "periodic"})
    r_obj = evaluate(pred, truth, g, NS_SETTING)
    r_map = evaluate(pred, truth, grid, NS_SETTING)
    assert r_obj["metrics"]["relative_h1"] == pytest.approx(r_map["metrics"]["relative_h1"], rel=1e-14)
    assert r_obj["times"] == r_map["times"]
    with pytest.raises(ValueError, match=r"must be \(N, T, C, X, Y\)"):
        write_report(str(tmp_path), r_obj, predictions=pred, targets=truth)  # 4-D: not canonical
    with pytest.raises(ValueError, match="out of range"):
        write_report(str(tmp_path), r_obj, predictions=pred[:, :, None], targets=truth[:, :, None], sample=5)


def test_published_setting_is_inferred_only_for_the_matching_benchmark(tmp_path):
    from datagen.dataset import DatasetWriter, FieldSpec, Grid
    from train.evaluate import infer_setting

    def write(name, pde, spec):
        x = np.arange(8) / 8
        path = tmp_path / name
        with DatasetWriter(
            path,
            pde=pde,
            spec=spec,
            n_samples=1,
            seed=0,
            fields={"vorticity": FieldSpec((3, 8, 8), "state")},
            grid=Grid({"x": x, "y": x, "t": np.arange(1.0, 4.0)}, {"x": "periodic", "y": "periodic"}),
            solver=[],
        ) as w:
            w.write(0, {"vorticity": np.zeros((3, 8, 8))})
        return str(path)

    nu4 = {"t_in": 10, "t_out": 20, "n_train": 10000}
    nu3 = {"t_in": 10, "t_out": 40, "n_train": 1000}
    assert (
        infer_setting(write("a.h5", "navier_stokes_2d", {"recipe": "fno", "viscosity": 1e-4}), nu4)
        == "fno_ns_nu1e-4_T30_N10000"
    )
    assert (
        infer_setting(write("b.h5", "navier_stokes_2d", {"source": "fno_mat", "viscosity": 1e-3}), nu3)
        == "fno_ns_nu1e-3_T50_N1000"
    )
    # another viscosity, another recipe, another input window, output window or training-set size is not
    # the published setting
    assert infer_setting(write("c.h5", "navier_stokes_2d", {"recipe": "fno", "viscosity": 2e-3}), nu3) is None
    assert infer_setting(write("d.h5", "navier_stokes_2d", {"recipe": "kolmogorov", "viscosity": 1e-3}), nu3) is None
    for change in ({"t_in": 5}, {"t_out": 40}, {"n_train": 1000}, {"n_train": None}):
        assert infer_setting(str(tmp_path / "a.h5"), {**nu4, **change}) is None
    # the reason names the closest setting and each difference
    from train.evaluate import match_setting

    key, why = match_setting(str(tmp_path / "b.h5"), {"t_in": 10, "t_out": 40, "n_train": 10})
    assert key is None and "fno_ns_nu1e-3_T50_N1000, differs in training samples 10 (published: 1000)" in why
