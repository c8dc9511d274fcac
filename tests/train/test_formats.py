"""neuraloperator .pt and The Well importers, The Well export: files written in the foreign layouts
by the tests (torch.save with neuraloperator's keys, h5py with The Well's groups and attributes)."""

import json
import math
import re

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from datagen.contract import Grid as ContractGrid  # noqa: E402
from datagen.dataset import DatasetWriter, FieldSpec, Grid, open_dataset, validate  # noqa: E402
from train.formats.grid import infer_node_convention, node_coordinates  # noqa: E402
from train.formats.neuraloperator import import_neuraloperator  # noqa: E402
from train.formats.pdebench import pdebench_boundary  # noqa: E402
from train.formats.the_well import export_the_well, import_the_well  # noqa: E402

RNG = np.random.default_rng(0)


def darcy_pt(path, n=4, s=8, mask=False):
    """neuraloperator's Darcy layout: {'x': (N, s, s), 'y': (N, s, s)} float tensors."""
    x = (RNG.random((n, s, s)) > 0.5).astype(np.float32) if mask else RNG.uniform(3, 12, (n, s, s)).astype(np.float32)
    j = np.arange(s) / s  # their grid: x_j = j/s, u = 0 on the wall x = 0
    y = (np.sin(np.pi * j)[:, None] * np.sin(np.pi * j)[None, :])[None] * RNG.uniform(0.5, 1, (n, 1, 1))
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y.astype(np.float32))}, path)
    return x, y.astype(np.float32)


def test_node_conventions():
    np.testing.assert_allclose(node_coordinates("nodes-with-walls", 5), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(node_coordinates("nodes-without-far-wall", 4), [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(node_coordinates("cell-centres", 4, -2.5, 2.5), -2.5 + (np.arange(4) + 0.5) * 1.25)
    assert infer_node_convention((np.arange(128) + 0.5) / 128) == "cell-centres"  # PDEBench Darcy
    assert infer_node_convention(node_coordinates("cell-centres", 128, -2.5, 2.5)) == "cell-centres"  # SWE
    assert infer_node_convention(np.arange(16) / 16) is None  # with or without far wall?
    assert infer_node_convention(np.arange(16) / 16, 0, 1) == "nodes-without-far-wall"
    assert infer_node_convention(np.linspace(0, 1, 16), 0, 1) == "nodes-with-walls"


def test_neuraloperator_darcy_pt(tmp_path):
    src = tmp_path / "darcy_train_8.pt"
    x, y = darcy_pt(src)
    out = import_neuraloperator(str(src), str(tmp_path / "d.h5"))
    assert validate(out) == []
    ds = open_dataset(out)
    np.testing.assert_array_equal(ds.read("a"), x)
    np.testing.assert_array_equal(ds.read("u"), y)
    assert ds.role("a") == "input" and ds.role("u") == "output" and ds.pde == "darcy"
    np.testing.assert_allclose(ds.grid.coords["x"], np.arange(8) / 8)  # last row inside the wall
    assert ds.grid.boundary == {"x": "dirichlet", "y": "dirichlet"}
    disc, phys, samp = (ds.spec[s] for s in ("discretisation", "physics", "sampling"))
    assert disc["node_convention"] == "nodes-without-far-wall"
    assert "regular_grid_2d" in disc["node_convention_source"]
    assert phys["equation"].startswith("-div(a grad u) = f") and phys["forcing"] == 1.0
    assert samp["u_on_wall_relative"] < 1e-6 and len(samp["sha256"]) == 64
    assert ContractGrid.from_dataset(ds).to_spec() == disc["grid"]


def test_neuraloperator_darcy_refuses_a_zero_coefficient_unless_the_mask_is_stated(tmp_path):
    src = tmp_path / "darcy_test_8.pt"
    x, _ = darcy_pt(src, mask=True)
    with pytest.raises(ValueError, match=r"is not a valid Darcy coefficient .*--mask-values"):
        import_neuraloperator(str(src), str(tmp_path / "d.h5"))
    out = import_neuraloperator(str(src), str(tmp_path / "d.h5"), mask_values="3,12")
    np.testing.assert_array_equal(open_dataset(out).read("a"), np.where(x > 0.5, 12, 3))
    bad = tmp_path / "darcy_neg_8.pt"
    torch.save({"x": -torch.ones(2, 8, 8), "y": torch.zeros(2, 8, 8)}, bad)
    with pytest.raises(ValueError, match=r"'x'\[0, 0, 0\] = -1"):
        import_neuraloperator(str(bad), str(tmp_path / "e.h5"))


def test_neuraloperator_navier_stokes_needs_its_physics_stated(tmp_path):
    src = tmp_path / "nsforcing_train_16.pt"
    x, y = RNG.standard_normal((2, 3, 16, 16)).astype(np.float32)
    torch.save({"x": torch.from_numpy(x)[:, None], "y": torch.from_numpy(y)[:, None]}, src)  # (N, 1, s, s)
    with pytest.raises(ValueError, match="pass --viscosity, --box, --forcing"):
        import_neuraloperator(str(src), str(tmp_path / "ns.h5"))
    with pytest.raises(ValueError, match="periodic grid does not hold both ends"):
        import_neuraloperator(
            str(src),
            str(tmp_path / "ns.h5"),
            viscosity=1e-3,
            box=1.0,
            forcing="fno",
            node_convention="nodes-with-walls",
        )
    out = import_neuraloperator(str(src), str(tmp_path / "ns.h5"), viscosity=1e-3, box=2 * math.pi, forcing="fno")
    ds = open_dataset(out)
    np.testing.assert_array_equal(ds.read("initial_vorticity"), x)
    np.testing.assert_array_equal(ds.read("vorticity"), y)
    np.testing.assert_allclose(ds.grid.coords["x"], np.arange(16) * 2 * math.pi / 16)
    assert ds.grid.boundary == {"x": "periodic", "y": "periodic"}
    assert ds.spec["physics"]["viscosity"] == 1e-3 and ds.spec["physics"]["forcing"] == {"type": "fno"}
    np.testing.assert_allclose(ds.params("viscosity"), 1e-3)


def write_trajectories(path, n=3, T=4, s=8):
    """A neuralops trajectory dataset: vorticity (T, s, s) state, velocity (T, 2, s, s), an input, a param."""
    fields = {
        "vorticity": FieldSpec((T, s, s), "state"),
        "velocity": FieldSpec((T, 2, s, s), "output"),
        "tracer": FieldSpec((T, 3, s, s), "output", "float64"),
        "initial_vorticity": FieldSpec((s, s), "input"),
    }
    grid = Grid(
        {"x": np.arange(s) / s, "y": np.arange(s) / s, "t": 0.5 * np.arange(1, T + 1)},
        {"x": "periodic", "y": "periodic"},
    )
    data = {k: RNG.standard_normal((n,) + fs.shape).astype(fs.dtype) for k, fs in fields.items()}
    nu = RNG.uniform(1e-4, 1e-3, n)
    with DatasetWriter(
        path,
        pde="navier_stokes_2d",
        spec={"viscosity_law": "per sample", "box": 1.0},
        n_samples=n,
        seed=7,
        fields=fields,
        grid=grid,
        params=["viscosity"],
        solver=["converged"],
    ) as w:
        for i in range(n):
            w.write(
                i, {k: v[i] for k, v in data.items()}, params={"viscosity": float(nu[i])}, solver={"converged": True}
            )
    return data, nu


def test_the_well_export_layout_and_round_trip(tmp_path):
    src = tmp_path / "ns.h5"
    data, nu = write_trajectories(src)
    well = tmp_path / "well" / "data" / "train" / "ns.hdf5"
    export_the_well(str(src), str(well))
    with h5py.File(well, "r") as f:  # the attributes The Well's WellDataset reads
        assert f.attrs["n_spatial_dims"] == 2 and f.attrs["n_trajectories"] == 3 and f.attrs["grid_type"] == "cartesian"
        assert [s.decode() if isinstance(s, bytes) else s for s in f["dimensions"].attrs["spatial_dims"]] == ["x", "y"]
        assert f["dimensions/time"].shape == (4,)
        assert f["t0_fields/vorticity"].shape == (3, 4, 8, 8) and f["t0_fields/vorticity"].attrs["time_varying"]
        np.testing.assert_array_equal(f["t1_fields/velocity"][1], np.moveaxis(data["velocity"][1], 1, -1))
        np.testing.assert_array_equal(f["t0_fields/tracer_2"][0], data["tracer"][0][:, 2])
        assert not f["t0_fields/initial_vorticity"].attrs["time_varying"]
        assert f["t0_fields/initial_vorticity"].shape == (3, 8, 8)
        assert {g.attrs["bc_type"] for g in f["boundary_conditions"].values()} == {"PERIODIC"}
        np.testing.assert_array_equal(f["scalars/viscosity"][()], nu)
        for i in range(3):
            assert "field_names" in f[f"t{i}_fields"].attrs
    back = import_the_well(str(well), str(tmp_path / "back.h5"))
    assert validate(back) == []
    a, b = open_dataset(src), open_dataset(back)
    for k in a.fields:
        np.testing.assert_array_equal(b.read(k), a.read(k))
        assert b.role(k) == a.role(k)
    for ax in ("x", "y", "t"):
        np.testing.assert_array_equal(b.grid.coords[ax], a.grid.coords[ax])
    assert b.grid.boundary == a.grid.boundary and b.pde == a.pde and b.seed == a.seed
    np.testing.assert_array_equal(b.params("viscosity"), nu)
    assert b.spec["node_convention"] == "nodes-without-far-wall" and b.spec["box"] == 1.0  # flat: passed through


def test_the_well_round_trip_of_imported_darcy_keeps_walls_and_convention(tmp_path):
    src = tmp_path / "darcy_train_8.pt"
    darcy_pt(src)
    d = import_neuraloperator(str(src), str(tmp_path / "d.h5"))
    well = export_the_well(d, str(tmp_path / "d.hdf5"))
    with h5py.File(well, "r") as f:
        assert {g.attrs["bc_type"] for g in f["boundary_conditions"].values()} == {"WALL"}
    back = open_dataset(import_the_well(well, str(tmp_path / "back.h5")))
    a = open_dataset(d)
    np.testing.assert_array_equal(back.read("a"), a.read("a"))
    np.testing.assert_array_equal(back.grid.coords["x"], a.grid.coords["x"])
    assert back.grid.boundary == {"x": "dirichlet", "y": "dirichlet"}
    assert back.spec["discretisation"]["node_convention"] == "nodes-without-far-wall" and "t" not in back.grid.coords
    assert back.spec["sampling"]["imported_from"]["format"] == "the_well" and validate(back.path) == []


def foreign_well_file(path, bc="WALL", coords=None, n=2, T=3, s=6):
    """A file as The Well publishes it (no neuralops attributes)."""
    x = coords if coords is not None else (np.arange(s) + 0.5) / s
    with h5py.File(path, "w") as f:
        f.attrs.update(
            {
                "dataset_name": "shear_flow",
                "grid_type": "cartesian",
                "n_spatial_dims": 2,
                "n_trajectories": n,
                "simulation_parameters": ["Reynolds"],
                "Reynolds": 1e4,
            }
        )
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = ["x", "y"]
        dims.create_dataset("time", data=np.arange(T, dtype=np.float32)).attrs["sample_varying"] = False
        for ax in ("x", "y"):
            d = dims.create_dataset(ax, data=x.astype(np.float32))
            d.attrs.update({"sample_varying": False, "time_varying": False})
        g = f.create_group("boundary_conditions").create_group("x_wall")
        g.attrs.update(
            {
                "bc_type": bc,
                "associated_dims": ["x"],
                "associated_fields": [],
                "sample_varying": False,
                "time_varying": False,
            }
        )
        g.create_dataset("mask", data=np.r_[True, np.zeros(s - 2, bool), True])
        sc = f.create_group("scalars")
        sc.attrs["field_names"] = ["Reynolds"]
        sc.create_dataset("Reynolds", data=np.float32(1e4)).attrs.update(
            {"sample_varying": False, "time_varying": False}
        )
        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = ["pressure", "mask"]
        p = t0.create_dataset("pressure", data=RNG.standard_normal((n, T, s, s)).astype(np.float32))
        p.attrs.update({"dim_varying": [True, True], "sample_varying": True, "time_varying": True})
        m = t0.create_dataset("mask", data=RNG.standard_normal((s, s)).astype(np.float32))
        m.attrs.update({"dim_varying": [True, True], "sample_varying": False, "time_varying": False})
        t1 = f.create_group("t1_fields")
        t1.attrs["field_names"] = ["velocity"]
        v = t1.create_dataset("velocity", data=RNG.standard_normal((n, T, s, s, 2)).astype(np.float32))
        v.attrs.update({"dim_varying": [True, True], "sample_varying": True, "time_varying": True})
        f.create_group("t2_fields").attrs["field_names"] = []
    return path


def test_the_well_import_of_a_published_layout(tmp_path):
    src = foreign_well_file(tmp_path / "shear.hdf5")
    with pytest.raises(ValueError, match="WALL on axis 'x'.*pass --boundary"):
        import_the_well(str(src), str(tmp_path / "a.h5"))
    out = import_the_well(str(src), str(tmp_path / "a.h5"), boundary="dirichlet")
    ds = open_dataset(out)
    assert ds.grid.boundary == {"x": "dirichlet", "y": "open"}  # The Well: open unless stated
    assert ds.spec["discretisation"]["node_convention"] == "cell-centres"
    assert ds.spec["physics"]["simulation_parameters"]["Reynolds"] == 1e4
    assert ds.field_shape("velocity") == (3, 2, 6, 6) and ds.role("pressure") == "state" and ds.role("mask") == "input"
    with h5py.File(src, "r") as f:
        np.testing.assert_array_equal(ds.read("velocity", 1), np.moveaxis(f["t1_fields/velocity"][1], -1, 1))
        np.testing.assert_array_equal(ds.read("mask", 1), f["t0_fields/mask"][()])
    with pytest.raises(ValueError, match="contradicts the file's coordinates"):
        import_the_well(str(src), str(tmp_path / "b.h5"), boundary="dirichlet", node_convention="nodes-with-walls")
    nodes = foreign_well_file(tmp_path / "nodes.hdf5", coords=np.linspace(0, 1, 6))
    with pytest.raises(ValueError, match="pass --node-convention"):
        import_the_well(str(nodes), str(tmp_path / "c.h5"), boundary="neumann")
    out = import_the_well(str(nodes), str(tmp_path / "c.h5"), boundary="neumann", node_convention="nodes-with-walls")
    assert open_dataset(out).spec["discretisation"]["node_convention"] == "nodes-with-walls"


def test_pdebench_boundaries():
    assert pdebench_boundary("2D_rdb_NA_NA.h5") == "neumann"  # shallow water is not periodic
    assert pdebench_boundary("2D_diff-react_NA_NA.h5") == "neumann"
    assert pdebench_boundary("2D_CFD_Rand_M0.1_Eta0.01_Zeta0.01_periodic_128_Train.hdf5") == "periodic"
    assert pdebench_boundary("2D_DarcyFlow_beta1.0_Train.hdf5") == "dirichlet"
    assert pdebench_boundary("whatever.h5", "open") == "open"
    with pytest.raises(ValueError, match="pass --boundary"):
        pdebench_boundary("/nonexistent/unknown.h5")


def test_cli_import_and_export(tmp_path, capsys):
    from train.data_cli import main

    src = tmp_path / "darcy_train_8.pt"
    darcy_pt(src, mask=True)
    assert main(["import", "neuraloperator", str(src), str(tmp_path / "d.h5")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--mask-values" in err
    assert main(["import", "neuraloperator", str(src), str(tmp_path / "d.h5"), "--mask-values", "3,12"]) == 0
    # progress on stderr (a log, not a terminal: its closing line says 4 of 4), one summary line on stdout
    out = capsys.readouterr()
    assert "import d.h5" in out.err and "4/4" in out.err
    assert re.fullmatch(rf"wrote {re.escape(str(tmp_path / 'd.h5'))}: 4 samples in \d+\.\d s", out.out.strip())
    assert main(["export", "--format", "the-well", str(tmp_path / "d.h5"), str(tmp_path / "d.hdf5")]) == 0
    assert main(["import", "the-well", str(tmp_path / "d.hdf5"), str(tmp_path / "e.h5")]) == 0
    np.testing.assert_array_equal(open_dataset(tmp_path / "e.h5").read("a"), open_dataset(tmp_path / "d.h5").read("a"))
    spec = json.loads(json.dumps(open_dataset(tmp_path / "e.h5").spec))
    assert spec["sampling"]["coefficient"] == "0/1 mask -> 3/12"


def test_an_imported_neuraloperator_grid_reaches_training_as_x_j_equals_j_over_s(tmp_path):
    """The data module passes the stated convention on: no wall at the far end, so models take
    coordinates j/s (endpoint=False), the convention neuraloperator's models were trained with."""
    from train.data import SteadyDataModule
    from train.module import model_arguments

    src = tmp_path / "darcy_train_8.pt"
    darcy_pt(src, n=6)
    out = import_neuraloperator(str(src), str(tmp_path / "d.h5"))
    layout = SteadyDataModule(out, train="0:4", test="4:6").layout
    g = layout.grid
    assert g["x"].nodes == "nodes-without-far-wall" and not g.includes_walls
    assert g["x"].length == pytest.approx(1.0)
    assert model_arguments(layout)["endpoint"] is False


def test_cli_refuses_a_node_convention_for_formats_that_fix_their_grid(tmp_path, capsys):
    from train.data_cli import main

    assert (
        main(
            [
                "import",
                "fno-darcy",
                str(tmp_path / "x.mat"),
                str(tmp_path / "x.h5"),
                "--node-convention",
                "cell-centres",
            ]
        )
        == 1
    )
    assert "--node-convention applies to neuraloperator and the-well" in capsys.readouterr().err


def test_cli_pdebench_shallow_water_is_neumann_on_its_cell_centres(tmp_path):
    """PDEBench's radial dam break (one group per sample, grid/x the cell centres of [-2.5, 2.5])."""
    from train.data_cli import main

    src = tmp_path / "2D_rdb_NA_NA.h5"
    x = node_coordinates("cell-centres", 8, -2.5, 2.5)
    with h5py.File(src, "w") as f:
        for i in range(2):
            f.create_dataset(f"{i:04d}/data", data=RNG.random((3, 8, 8, 1)).astype(np.float32))
            for ax, c in (("x", x), ("y", x), ("t", np.linspace(0, 1, 3))):
                f.create_dataset(f"{i:04d}/grid/{ax}", data=c.astype(np.float32))
    assert main(["import", "pdebench", str(src), str(tmp_path / "swe.h5")]) == 0
    ds = open_dataset(tmp_path / "swe.h5")
    assert ds.grid.boundary == {"x": "neumann", "y": "neumann"}
    assert infer_node_convention(ds.grid.coords["x"], -2.5, 2.5) == "cell-centres"


@pytest.mark.parametrize("convention", ["nodes-without-far-wall", "cell-centres"])
def test_neuraloperator_import_gives_the_stated_grid(tmp_path, convention):
    """The importer states its node convention in the spec; the typed grid reads it and its
    coordinates follow that convention's formula on [0, 1]."""
    from datagen.contract import Grid
    from datagen.contract import node_coordinates as contract_nodes

    darcy_pt(tmp_path / "darcy_train_8.pt", n=2)
    out = import_neuraloperator(str(tmp_path / "darcy_train_8.pt"), str(tmp_path / "d.h5"), node_convention=convention)
    ds = open_dataset(out)
    g = Grid.from_dataset(ds)
    assert [a.nodes for a in g.axes] == [convention] * 2 and g.lengths() == pytest.approx((1.0, 1.0))
    for ax in ("x", "y"):
        np.testing.assert_allclose(g.coordinates()[ax], contract_nodes(convention, 8), atol=1e-15)
        np.testing.assert_allclose(ds.grid.coords[ax], contract_nodes(convention, 8), atol=1e-15)
