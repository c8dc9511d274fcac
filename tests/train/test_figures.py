"""Figures of ``neuralops-eval``: models trained for one epoch through ``neuralops-train`` on data of
the real generators, evaluated through the CLI; the PNGs are checked against figures rebuilt from
the checkpoint's predictions (same pixels), their size against ``figsize * DPI``, the panels and
colour scales against the definitions in :mod:`train.plots`."""

import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from train import plots
from train.evaluate import main as eval_main


def _train(tmp, config, data, split, model_config, extra=()):
    from train.cli import main as train_main

    root = str(tmp / config)
    assert (
        train_main(
            [
                "fit",
                "--config",
                config,
                "--data.init_args.path",
                data,
                *split,
                "--model.model_config",
                model_config,
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
                "--trainer.enable_model_summary",
                "false",
                "--trainer.logger",
                "false",
                *extra,
            ]
        )
        == 0
    )
    return root + "/ckpt/last.ckpt"


@pytest.fixture(scope="module")
def darcy_ckpt(tmp_path_factory):
    """fno2d trained 1 epoch on 8 Darcy samples of the SKR generator (17^2), 4 test samples."""
    from datagen.cli import main as gen_main

    tmp = tmp_path_factory.mktemp("darcy")
    data = str(tmp / "darcy.h5")
    assert gen_main(["darcy", "--n", "10", "--resolution", "17", "--out", data, "--no-progress"]) == 0
    return _train(
        tmp,
        "darcy_fno",
        data,
        ["--data.init_args.train", "0:6", "--data.init_args.test", "6:10", "--data.init_args.batch_size", "3"],
        "{modes: 4, width: 6, padding: 2, norm: none, activation: gelu, projection_channels: 8}",
    )


@pytest.fixture(scope="module")
def ns_ckpt(tmp_path_factory):
    """fno3d trained 1 epoch on Navier-Stokes trajectories of the spectral generator (16^2, 10 frames)."""
    from datagen.cli import main as gen_main

    tmp = tmp_path_factory.mktemp("ns")
    data = str(tmp / "ns.h5")
    assert (
        gen_main(
            [
                "navier-stokes",
                "--recipe",
                "fno",
                "--viscosity",
                "1e-3",
                "--n",
                "5",
                "--out",
                data,
                "--resolution",
                "16",
                "--store-resolution",
                "16",
                "--dt",
                "1e-3",
                "--t-end",
                "0.2",
                "--snapshot-interval",
                "0.02",
                "--batch-size",
                "5",
                "--dtype",
                "float32",
                "--no-progress",
            ]
        )
        == 0
    )
    return _train(
        tmp,
        "ns_fno3d",
        data,
        [
            "--data.init_args.train",
            "0:3",
            "--data.init_args.test",
            "3:5",
            "--data.init_args.t_in",
            "4",
            "--data.init_args.t_out",
            "6",
            "--data.init_args.batch_size",
            "3",
        ],
        "{modes: 3, width: 6, n_layers: 1, projection_channels: 8}",
    )


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGBA"))


def _image_axes(fig):
    """Field panels (axes holding an image), colour bars excluded."""
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


def _check_legible(fig):
    # every text drawn is at least 8 pt (8 px at 100 dpi would be too small; the minimum is for tick labels)
    sizes = [
        t.get_fontsize()
        for ax in fig.axes
        for t in ax.findobj(lambda o: hasattr(o, "get_fontsize"))
        if hasattr(t, "get_text") and t.get_text() and t.get_visible()
    ]
    assert sizes and min(sizes) >= 8, min(sizes)


def test_steady_fields_figure_of_a_cli_evaluation(darcy_ckpt, tmp_path):
    from train.module import predict_split

    out = tmp_path / "report"
    assert eval_main(["--ckpt", darcy_ckpt, "--out", str(out), "--sample", "1", "--figure-samples", "3"]) == 0
    png = str(out / "fields.png")
    assert os.path.isfile(png) and os.path.isfile(out / "spectra.png")
    assert not os.path.exists(out / "error_vs_time.png") and not os.path.exists(out / "rollout.gif")

    # the same figure rebuilt from the checkpoint's predictions: rows = test samples 1, 2, 3
    pred = predict_split(darcy_ckpt)
    p, t, x = (pred[k].double().numpy() for k in ("prediction", "target", "input"))
    assert x.shape == (4, 1, 17, 17) and np.all(x > 0)  # the Darcy coefficient a, physical units
    rows = [1, 2, 3]
    fig = plots.field_rows_figure(
        t[rows, 0, 0],
        p[rows, 0, 0],
        inputs=x[rows],
        kind="steady",
        row_labels=[f"test sample {i}" for i in rows],
        input_labels=["input: a"],
        field_label="output channel 0",
    )
    w, h = fig.get_size_inches() * plots.DPI
    assert Image.open(png).size == (round(w), round(h))
    np.testing.assert_array_equal(_pixels(png), _pixels(plots.save_figure(fig, str(tmp_path / "again.png"))))

    panels = _image_axes(fig)
    assert len(panels) == 3 * 4  # input | truth | prediction | error
    for r, i in enumerate(rows):
        a_ax, t_ax, p_ax, e_ax = panels[4 * r : 4 * r + 4]
        np.testing.assert_allclose(a_ax.images[0].get_array(), x[i, 0].T)
        np.testing.assert_allclose(e_ax.images[0].get_array(), (p[i, 0, 0] - t[i, 0, 0]).T)
        assert t_ax.images[0].get_clim() == p_ax.images[0].get_clim()  # one scale for truth and prediction
        assert t_ax.images[0].get_clim() == pytest.approx((t[i, 0, 0].min(), t[i, 0, 0].max()))
        err = np.abs(p[i, 0, 0] - t[i, 0, 0])
        emax = np.percentile(err, 99)
        assert e_ax.images[0].get_clim() == pytest.approx((-emax, emax))  # own symmetric robust scale
        assert emax < np.abs(t[i, 0, 0]).max()  # narrower than the field's
        rel = np.linalg.norm(err) / np.linalg.norm(t[i, 0, 0])
        assert e_ax.get_title().endswith(f"rel. L2 {rel:.2g}")
        assert a_ax.get_ylabel() == f"test sample {i}"
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert sum("99th pct of |error|" in s for s in labels) == 3
    _check_legible(fig)


def test_trajectory_figures_of_a_cli_evaluation(ns_ckpt, tmp_path, caplog):
    from matplotlib import animation

    from train.module import predict_split

    out = tmp_path / "report"
    with caplog.at_level(logging.WARNING, logger="train.plots"):
        assert eval_main(["--ckpt", ns_ckpt, "--out", str(out), "--frames", "3"]) == 0
    for name in ("fields.png", "error_vs_time.png", "spectra.png", "rollout.gif", "metrics.json", "report.md"):
        assert os.path.isfile(out / name), name
    if animation.writers.is_available("ffmpeg"):
        assert os.path.isfile(out / "rollout.mp4")
    else:
        assert "ffmpeg writer is not available, no .mp4 written" in caplog.text

    pred = predict_split(ns_ckpt)
    p, t, x = (pred[k].double().numpy() for k in ("prediction", "target", "input"))
    assert p.shape == (2, 6, 1, 16, 16) and x.shape == (2, 4, 1, 16, 16)
    import json

    record = json.load(open(out / "metrics.json"))
    times = record["runs"]["this run"]["times"]
    assert len(times) == 6
    # rows: first, middle, last predicted step of sample 0; the input column holds the last given frame
    path = plots.plot_fields_over_time(
        p[0, :, 0],
        t[0, :, 0],
        str(tmp_path / "again.png"),
        times=times,
        n_frames=3,
        title="test sample 0, channel 0",
        inputs=x[0, -1, 0],
    )
    np.testing.assert_array_equal(_pixels(out / "fields.png"), _pixels(path))
    fig = plots.field_rows_figure(
        t[0, [0, 2, 5], 0],
        p[0, [0, 2, 5], 0],
        inputs=x[0, -1, 0],
        kind="trajectory",
        row_labels=[f"t = {times[s]:.4g}" for s in (0, 2, 5)],
        title="test sample 0, channel 0",
    )
    w, h = fig.get_size_inches() * plots.DPI
    assert Image.open(path).size == (round(w), round(h))
    panels = _image_axes(fig)
    assert len(panels) == 1 + 3 * 3  # the input once, then truth | pred | error
    np.testing.assert_allclose(panels[0].images[0].get_array(), x[0, -1, 0].T)
    assert panels[0].images[0].get_clim() == panels[1].images[0].get_clim()
    # row labels: at the input panel in the first row, at the truth panel below (no input there)
    assert [panels[k].get_ylabel() for k in (0, 4, 7)] == [f"t = {times[s]:.4g}" for s in (0, 2, 5)]
    _check_legible(fig)

    gif = Image.open(out / "rollout.gif")
    assert gif.n_frames == 6 and gif.size[0] > 2 * gif.size[1]

    # error vs time: mean curve and the per-sample spread stored by evaluate()
    run = record["runs"]["this run"]
    per_sample = np.array(run["per_sample"]["relative_l2_per_step"])
    direct = [[np.linalg.norm(p[i, s] - t[i, s]) / np.linalg.norm(t[i, s]) for s in range(6)] for i in range(2)]
    np.testing.assert_allclose(per_sample, direct, rtol=1e-5)
    np.testing.assert_allclose(per_sample.mean(0), run["per_step"]["relative_l2"], rtol=1e-12)
    fig = plots.error_vs_time_figure(
        {"this run": run["per_step"]["relative_l2"]}, times=times, spread={"this run": per_sample}
    )
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(per_sample.min()) and band.max() == pytest.approx(per_sample.max())
    assert "min-max of 2 samples" in [tx.get_text() for tx in fig.axes[0].get_legend().get_texts()][1]
    assert Image.open(out / "error_vs_time.png").size == (700, 440)
    assert Image.open(out / "spectra.png").size == (700, 440)


def test_animation_without_writers_is_skipped_with_a_log_line(tmp_path, monkeypatch, caplog):
    from matplotlib import animation

    truth = torch.randn(3, 8, 8)
    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    with caplog.at_level(logging.WARNING, logger="train.plots"):
        assert plots.animate_rollout(truth + 0.1, truth, str(tmp_path / "roll")) == {}
    assert "pillow writer is not available, no .gif written" in caplog.text
    assert not os.listdir(tmp_path)
    with pytest.raises(ValueError, match=r"unknown animation format\(s\) \['avi'\]"):
        plots.animate_rollout(truth, truth, str(tmp_path / "roll"), formats=("avi",))


def test_error_scale_is_robust_and_bad_shapes_are_refused():
    err = np.zeros(1000)
    err[:5] = 100.0  # five outliers in a thousand points
    err[5:] = np.linspace(-1, 1, 995)
    assert plots.robust_error_scale([err]) == pytest.approx(np.percentile(np.abs(err), 99))
    assert plots.robust_error_scale([err]) < 1.01
    assert plots.robust_error_scale([np.zeros(4)]) == 1.0  # exact prediction: any positive scale
    t = np.random.default_rng(0).standard_normal((2, 8, 8))
    with pytest.raises(ValueError, match=r"prediction 'prediction' has shape \(2, 8, 7\)"):
        plots.field_rows_figure(t, t[:, :, :7])
    with pytest.raises(ValueError, match=r"steady inputs must be \(rows=2, C_in, X, Y\)"):
        plots.field_rows_figure(t, t, inputs=t)
    with pytest.raises(ValueError, match="kind must be 'steady' or 'trajectory'"):
        plots.field_rows_figure(t, t, kind="movie")


def test_several_runs_share_the_error_scale_of_a_row():
    g = np.random.default_rng(1)
    t = g.standard_normal((2, 8, 8))
    before, after = t + 0.2 * g.standard_normal(t.shape), t + 0.05 * g.standard_normal(t.shape)
    fig = plots.field_rows_figure(t, {"before": before, "after": after})
    panels = _image_axes(fig)
    assert len(panels) == 2 * 5  # truth | before | after | error (before) | error (after)
    titles = [ax.get_title() for ax in panels[:5]]
    assert titles[:3] == ["truth", "before", "after"] and titles[3].startswith("error (before)\nrel. L2")
    assert panels[3].images[0].get_clim() == panels[4].images[0].get_clim()
    emax = np.percentile(np.abs(np.concatenate([(before - t)[0].ravel(), (after - t)[0].ravel()])), 99)
    assert panels[3].images[0].get_clim() == pytest.approx((-emax, emax))
