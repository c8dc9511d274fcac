"""Refinement on imported data: an FNO-layout ``.mat`` written here (scipy.io.savemat) from the
toolkit's own generator, imported with ``neuralops-data import fno-ns``, read back with the same
typed physics as the generated file, and refined through ``neuralops-train refine``; and the
ground-truth residual check that refuses snapshots too coarse to refine on."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from scipy.io import savemat
from train_helpers import fit_tiny

from datagen.dataset import open_dataset
from datagen.navier_stokes.generator import generate
from datagen.navier_stokes.physics import Forcing, NavierStokesPhysics, physics_from_dataset, physics_from_spec
from datagen.navier_stokes.recipes import recipe
from train.data_cli import main as data_main
from train.refine.cli import check_truth_residual
from train.refine.cli import main as refine_main

T_IN, T_OUT, N = 6, 8, 16


def _generated(path, interval):
    spec = recipe(
        "spectral-refiner",
        {
            "resolution": N,
            "store_resolution": N,
            "dt": 1e-2,
            "t_start": 1.0,
            "snapshot_interval": interval,
            "n_snapshots": T_IN + T_OUT,
        },
    )
    generate(spec, path, 4, seed=0, batch_size=4, progress=False, log=None)
    return path


def _as_fno_mat(h5, mat, with_t):
    """The FNO benchmark layout: u (N, X, Y, T), a (N, X, Y), optionally t (1, T)."""
    with open_dataset(h5) as ds:
        w = ds.read("vorticity")
        t = np.asarray(ds.grid.coords["t"])
    arrays = {"u": np.moveaxis(w, 1, -1), "a": w[:, 0]}
    if with_t:
        arrays["t"] = t[None]
    savemat(mat, arrays)
    return mat


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("refine_import")
    gen = _generated(str(d / "gen.h5"), 0.2)
    mat = _as_fno_mat(gen, str(d / "ns_V1e-3_N4_T14.mat"), with_t=True)
    imported = str(d / "imported.h5")
    assert data_main(["import", "fno-ns", mat, imported]) == 0
    return {"dir": d, "generated": gen, "imported": imported}


def _fit(data, root):
    config = {"modes_x": 3, "modes_y": 3, "modes_t": 3, "width": 4, "latent_steps": 4, "mlp_channels": 8}
    return fit_tiny(data, root, "sfno", config, T_IN, T_OUT)


def test_imported_file_has_the_generators_physics(files):
    with open_dataset(files["generated"]) as g, open_dataset(files["imported"]) as i:
        pg, pi = physics_from_dataset(g), physics_from_dataset(i)
        # stored in the same form
        for key in ("viscosity", "box", "drag", "forcing"):
            assert i.spec["physics"][key] == g.spec["physics"][key], key
        assert isinstance(i.spec["physics"]["forcing"], dict)
    assert pi.forcing == pg.forcing == Forcing("fno", 0.1, 1)
    assert (pi.viscosity, pi.box, pi.drag) == (pg.viscosity, pg.box, pg.drag) == (1e-3, 1.0, 0.0)
    assert pi.dt == pytest.approx(pg.dt) == pytest.approx(0.2)
    assert torch.equal(pi.forcing_field(N), pg.forcing_field(N))


def test_refine_on_the_imported_file_through_the_cli(files, tmp_path, capsys):
    ckpt = _fit(files["imported"], str(tmp_path / "run"))
    out = str(tmp_path / "refined")
    assert (
        refine_main(["--ckpt", ckpt, "--data", files["imported"], "--steps", "4", "--out", out, "--fd-order", "4"]) == 0
    )
    printed = capsys.readouterr().out
    assert "relative error per band" in printed and "alpha = 0.1" in printed
    with open_dataset(os.path.join(out, "refined.h5")) as ds:
        assert all(ds.params("residual_after") < ds.params("residual_before"))
        # the refined file carries the same physics record
        assert physics_from_dataset(ds).forcing == Forcing("fno", 0.1, 1)
    with open(os.path.join(out, "metrics.json")) as f:
        record = json.load(f)
    after = record["runs"]["after refinement"]
    assert set(after["metrics"]["spectral_band_relative_error"]) == {"low", "mid", "high"}
    assert after["metrics"]["seconds_per_trajectory"] > 0
    assert "alpha = 0.1" in after["definitions"]["residual_h_minus1"]
    assert record["extra"]["ground_truth_to_model_residual"] < 0.1
    assert os.path.exists(os.path.join(out, "spectra.png"))


def test_coarse_snapshots_are_refused_with_the_data_to_use(files, tmp_path, capsys):
    """Snapshots 1.0 apart (the FNO files' spacing; no t in the file: t = 1..T), read as such from
    the imported file; when the ground truth's own residual exceeds the stated fraction of the
    model's, refine refuses with the numbers and names the data to use instead. (A 2-step SFNO's
    residual is mostly its own error, so the fraction is set low here; with a trained SFNO on the
    1.0-spaced FNO files the default 0.1 is exceeded.)"""
    d = files["dir"]
    coarse = _generated(str(d / "coarse.h5"), 1.0)
    mat = _as_fno_mat(coarse, str(d / "ns_V1e-3_N4_T14_coarse.mat"), with_t=False)
    imported = str(d / "coarse_imported.h5")
    assert data_main(["import", "fno-ns", mat, imported]) == 0
    ckpt = _fit(imported, str(tmp_path / "run"))
    capsys.readouterr()
    with open_dataset(imported) as ds:
        assert physics_from_dataset(ds).dt == 1.0
    args = ["--ckpt", ckpt, "--data", imported, "--steps", "1", "--fd-order", "4", "--truth-fraction", "1e-6"]
    assert refine_main(args + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "ground truth's own H^-1 residual on this snapshot spacing (dt = 1)" in err
    assert "(allowed: 1e-06)" in err
    assert "--recipe spectral-refiner" in err and err.count("\n") == 1
    assert refine_main(args + ["--out", str(tmp_path / "o2"), "--truth-check", "warn"]) == 0
    assert "warning: the ground truth's own H^-1 residual" in capsys.readouterr().out


def test_truth_check_thresholds():
    truth, model = torch.tensor([0.02, 0.04]), torch.tensor([1.0, 1.0])
    assert check_truth_residual(truth, model, 0.2, 0.1) == pytest.approx(0.03)
    with pytest.raises(ValueError, match="0.03 of the model's residual"):
        check_truth_residual(truth, model, 0.2, 0.01)
    logged = []
    check_truth_residual(truth, model, 0.2, 0.01, mode="warn", log=logged.append)
    assert logged and logged[0].startswith("warning:")


def test_physics_record_reads_every_form():
    legacy = {"viscosity": 1e-3, "forcing": "0.1 (sin(2 pi (x + y)) + cos(2 pi (x + y)))", "domain": "unit torus"}

    class Grid:
        coords = {"t": np.arange(1.0, 6.0), "x": np.arange(8) / 8, "y": np.arange(8) / 8}

    ph = physics_from_spec(legacy, Grid())
    assert ph.forcing == Forcing("fno", 0.1, 1) and ph.dt == 1.0 and ph.box == 1.0
    assert physics_from_spec({"viscosity": 1e-3}, Grid()).forcing == Forcing("none")
    with pytest.raises(ValueError, match="free text this toolkit cannot evaluate"):
        physics_from_spec({"viscosity": 1e-3, "forcing": "sin(x) * 3"}, Grid())
    with pytest.raises(ValueError, match="no 'viscosity'"):
        physics_from_spec({"forcing": {"type": "fno"}}, Grid())
    with pytest.raises(ValueError, match="unknown type 'swirl'"):
        Forcing.from_spec({"type": "swirl"})
    rec = NavierStokesPhysics(1e-3, 0.2, forcing=Forcing("kolmogorov"), drag=0.1, box=2 * np.pi).to_spec()
    assert rec["forcing"] == {"type": "kolmogorov", "amplitude": 1.0, "wavenumber": 4}
    back = physics_from_spec(rec)
    assert back.forcing == Forcing("kolmogorov", 1.0, 4) and back.drag == 0.1
    # a shifted grid (bilinear storage) shifts the forcing with it
    shifted = NavierStokesPhysics(1e-3, 0.2, forcing=Forcing("fno"), origin=0.25)
    x = 0.25 + torch.arange(8, dtype=torch.float64) / 8
    X, Y = torch.meshgrid(x, x, indexing="ij")
    want = 0.1 * (torch.sin(2 * np.pi * (X + Y)) + torch.cos(2 * np.pi * (X + Y)))
    assert torch.allclose(shifted.forcing_field(8), want, atol=1e-14)
