"""Importers: small synthetic files in the published layouts round-trip into the data contract."""

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from datagen.contract import Grid, node_coordinates
from datagen.dataset import open_dataset, validate
from train.importers import import_fno_darcy, import_fno_ns, import_pdebench

RNG = np.random.default_rng(0)


def write_mat73(path, arrays):
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte user block holding the text
    header, every array stored column-major (so HDF5 sees the axes reversed)."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, a in arrays.items():
            f.create_dataset(name, data=np.ascontiguousarray(np.transpose(a)))
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2020 HDF5 schema 1.00 .")


def ns_arrays(n=3, s=8, t=5):
    return {
        "u": RNG.standard_normal((n, s, s, t)).astype(np.float32),
        "a": RNG.standard_normal((n, s, s)).astype(np.float32),
        "t": np.arange(1, t + 1, dtype=np.float64)[None] * 1.0,
    }


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_fno_ns_round_trip(tmp_path, version):
    arrs = ns_arrays()
    src = tmp_path / "ns_V1e-3_N3_T5.mat"
    if version == "5":
        savemat(src, arrs)
    else:
        write_mat73(src, arrs)
    out = import_fno_ns(str(src), str(tmp_path / "ns.h5"))
    assert validate(out) == []
    ds = open_dataset(out)
    assert ds.pde == "navier_stokes_2d" and ds.states == ["vorticity"]
    assert ds.spec["sampling"]["matlab_version"] == version
    w = ds.read("vorticity")
    assert w.shape == (3, 5, 8, 8)
    # frame k of sample i is u[i, :, :, k] of the MATLAB array
    np.testing.assert_array_equal(w, np.moveaxis(arrs["u"], -1, 1))
    np.testing.assert_array_equal(ds.read("initial_vorticity"), arrs["a"])
    np.testing.assert_allclose(ds.params("viscosity"), 1e-3)
    np.testing.assert_array_equal(ds.grid.coords["t"], np.arange(1, 6))
    assert ds.grid.boundary == {"x": "periodic", "y": "periodic"}
    np.testing.assert_allclose(ds.grid.coords["x"], np.arange(8) / 8)


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_fno_darcy_round_trip_with_subsampling(tmp_path, version):
    coeff = RNG.uniform(3, 12, (4, 9, 9)).astype(np.float32)
    sol = RNG.standard_normal((4, 9, 9)).astype(np.float32)
    src = tmp_path / "piececonst_r9_N4.mat"
    arrs = {"coeff": coeff, "sol": sol, "Kcoeff": coeff * 2}
    savemat(src, arrs) if version == "5" else write_mat73(src, arrs)
    out = import_fno_darcy(str(src), str(tmp_path / "d.h5"), subsample=2, limit=3)
    ds = open_dataset(out)
    assert len(ds) == 3 and ds.inputs == ["a"] and ds.outputs == ["u"]
    np.testing.assert_array_equal(ds.read("a"), coeff[:3, ::2, ::2])
    np.testing.assert_array_equal(ds.read("u"), sol[:3, ::2, ::2])
    np.testing.assert_allclose(ds.grid.coords["x"], np.linspace(0, 1, 9)[::2])
    assert ds.grid.boundary == {"x": "dirichlet", "y": "dirichlet"}


def test_pdebench_layouts(tmp_path):
    # (i) per-sample groups, data (T, X, Y, C)
    src = tmp_path / "2D_diff-react_NA_NA.h5"
    data = RNG.standard_normal((3, 4, 8, 8, 2)).astype(np.float32)
    with h5py.File(src, "w") as f:
        for i in range(3):
            g = f.create_group(f"{i:04d}")
            g["data"] = data[i]
            g["grid/x"] = np.linspace(-1, 1, 8)
            g["grid/y"] = np.linspace(-1, 1, 8)
            g["grid/t"] = np.linspace(0, 5, 4)
    ds = open_dataset(import_pdebench(str(src), str(tmp_path / "dr.h5")))
    np.testing.assert_array_equal(ds.read("data"), np.moveaxis(data, -1, 2))  # (N, T, C, X, Y)
    assert ds.grid.boundary["x"] == "neumann"
    np.testing.assert_allclose(ds.grid.coords["t"], np.linspace(0, 5, 4))
    # (ii) compressible NS arrays; t-coordinate has one entry more than the frames in PDEBench
    src = tmp_path / "2D_CFD_Rand.hdf5"
    arr = {k: RNG.standard_normal((2, 3, 8, 8)).astype(np.float32) for k in ("density", "pressure", "Vx", "Vy")}
    with h5py.File(src, "w") as f:
        for k, v in arr.items():
            f[k] = v
        f["x-coordinate"] = np.arange(8) / 8
        f["y-coordinate"] = np.arange(8) / 8
        f["t-coordinate"] = np.arange(4) * 0.25
    ds = open_dataset(import_pdebench(str(src), str(tmp_path / "cfd.h5")))
    assert sorted(ds.states) == sorted(arr)
    for k, v in arr.items():
        np.testing.assert_array_equal(ds.read(k), v)
    np.testing.assert_allclose(ds.grid.coords["t"], [0, 0.25, 0.5])
    # (iii) Darcy: nu -> a, tensor (N, 1, X, Y) -> u
    src = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    nu = RNG.uniform(0.1, 1, (3, 8, 8)).astype(np.float32)
    ten = RNG.standard_normal((3, 1, 8, 8)).astype(np.float32)
    with h5py.File(src, "w") as f:
        f["nu"], f["tensor"] = nu, ten
    ds = open_dataset(import_pdebench(str(src), str(tmp_path / "pd_darcy.h5")))
    np.testing.assert_array_equal(ds.read("a"), nu)
    np.testing.assert_array_equal(ds.read("u"), ten[:, 0])
    assert ds.grid.boundary["x"] == "dirichlet"


def test_import_cli_and_errors(tmp_path, capsys):
    from train.data_cli import main

    src = tmp_path / "ns_V1e-4_N3_T5.mat"
    savemat(src, ns_arrays())
    out = tmp_path / "ns.h5"
    assert main(["import", "fno-ns", str(src), str(out)]) == 0
    np.testing.assert_allclose(open_dataset(out).params("viscosity"), 1e-4)
    # an existing output is not replaced silently
    assert main(["import", "fno-ns", str(src), str(out)]) == 1
    # a file without the viscosity in its name needs --viscosity
    plain = tmp_path / "ns.mat"
    savemat(plain, ns_arrays())
    assert main(["import", "fno-ns", str(plain), str(tmp_path / "x.h5")]) == 1
    assert "viscosity" in capsys.readouterr().err
    # a Darcy file without `sol`
    bad = tmp_path / "bad.mat"
    savemat(bad, {"coeff": np.ones((2, 5, 5))})
    assert main(["import", "fno-darcy", str(bad), str(tmp_path / "y.h5")]) == 1
    assert "sol" in capsys.readouterr().err


def test_imported_files_give_their_grid(tmp_path):
    """The typed grid of imported files (no grid record in their spec) comes from what they store:
    FNO Navier-Stokes x_j = j/s periodic, FNO Darcy x_j = j/(s-1) with both walls (subsampled: the
    nodes kept), PDEBench cell centres."""
    savemat(tmp_path / "ns_V1e-3_N3_T5.mat", ns_arrays())
    g = Grid.from_dataset(open_dataset(import_fno_ns(str(tmp_path / "ns_V1e-3_N3_T5.mat"), str(tmp_path / "ns.h5"))))
    assert [a.nodes for a in g.axes] == ["nodes-without-far-wall"] * 2 and g.lengths() == pytest.approx((1, 1))
    np.testing.assert_allclose(g.coordinates()["x"], node_coordinates("nodes-without-far-wall", 8), atol=1e-15)
    np.testing.assert_allclose(g.times, np.arange(1, 6))

    savemat(tmp_path / "piececonst_r9_N4.mat", {"coeff": RNG.uniform(3, 12, (2, 9, 9)), "sol": RNG.random((2, 9, 9))})
    out = import_fno_darcy(str(tmp_path / "piececonst_r9_N4.mat"), str(tmp_path / "d.h5"), subsample=2)
    g = Grid.from_dataset(open_dataset(out))
    assert g.includes_walls and g.boundaries == {"x": "dirichlet", "y": "dirichlet"}
    np.testing.assert_allclose(g.coordinates()["y"], node_coordinates("nodes-with-walls", 5), atol=1e-15)
    assert g.lengths() == pytest.approx((1.0, 1.0))

    src = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    with h5py.File(src, "w") as f:
        f["nu"] = RNG.uniform(0.1, 1, (2, 8, 8)).astype(np.float32)
        f["tensor"] = RNG.standard_normal((2, 1, 8, 8)).astype(np.float32)
        f["x-coordinate"] = (np.arange(8) + 0.5) / 8
        f["y-coordinate"] = (np.arange(8) + 0.5) / 8
    g = Grid.from_dataset(open_dataset(import_pdebench(str(src), str(tmp_path / "pd.h5"))))
    assert [a.nodes for a in g.axes] == ["cell-centres"] * 2 and g.lengths() == pytest.approx((1.0, 1.0))
    np.testing.assert_allclose(g.coordinates()["x"], node_coordinates("cell-centres", 8), atol=1e-15)
