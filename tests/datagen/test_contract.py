"""The typed grid of the data contract (datagen.contract): written by the real generators, read back
from their files (and from files without the record), checked by validate, round trips."""

import json

import h5py
import numpy as np
import pytest

from datagen.contract import NODE_CONVENTIONS, Axis, DataLayout, Grid, GridError, node_coordinates
from datagen.dataset import DatasetWriter, FieldSpec, open_dataset, validate
from datagen.dataset import Grid as StoredGrid


@pytest.mark.parametrize("nodes", NODE_CONVENTIONS)
def test_node_formulas_and_their_inverse(nodes):
    n, lo, hi = 7, -0.5, 2.0
    c = node_coordinates(nodes, n, lo, hi)
    h = np.diff(c)
    assert np.allclose(h, h[0])
    # the walls: stored at both ends / one spacing outside / the far one a spacing after the last node / half
    gap_lo, gap_hi = c[0] - lo, hi - c[-1]
    want = {
        "nodes-with-walls": (0, 0),
        "nodes-without-walls": (h[0], h[0]),
        "nodes-without-far-wall": (0, h[0]),
        "cell-centres": (h[0] / 2, h[0] / 2),
    }[nodes]
    assert (gap_lo, gap_hi) == pytest.approx(want, abs=1e-12)
    a = Axis.from_coordinates("x", c, "dirichlet", nodes)
    assert (a.lo, a.hi, a.n) == pytest.approx((lo, hi, n), abs=1e-12)
    np.testing.assert_allclose(a.coordinates(), c, rtol=0, atol=1e-14)


def test_spec_and_plain_form_round_trips():
    g = Grid(
        (
            Axis("x", 16, 0.0, 2 * np.pi, "nodes-without-far-wall", "periodic"),
            Axis("y", 8, 0.25, 1.0, "cell-centres", "neumann"),
        )
    )
    assert Grid.from_spec(json.loads(json.dumps(g.to_spec()))) == g
    assert Grid.from_dict(g.to_dict()) == g
    assert g.resized((32, 4)).resized(g.shape) == g and g.resized((32, 4)).lengths() == g.lengths()
    layout = DataLayout(
        "direct",
        g,
        "navier_stokes_2d",
        ("vorticity",),
        ("vorticity",),
        1,
        1,
        t_in=10,
        t_out=40,
        provenance={"train_path": "a.h5", "n_train": 3},
    )
    back = DataLayout.from_dict(json.loads(json.dumps(layout.to_dict())))
    assert back == layout and back.provenance == layout.provenance and not back.differences(layout)
    # the plain form checkpoints held before the typed grid: walls stored or not, the domain side
    old = {
        "x": {"n": 9, "boundary": "dirichlet", "length": 1.0, "includes_boundary": True},
        "y": {"n": 9, "boundary": "dirichlet", "length": 1.0, "includes_boundary": False},
    }
    og = Grid.from_dict(old)
    assert og["x"].nodes == "nodes-with-walls" and og["y"].nodes == "nodes-without-walls"
    assert og.lengths() == (1.0, 1.0) and og["x"].spacing == pytest.approx(1 / 8) and og["y"].spacing == 0.1


def test_elliptic_generator_writes_its_grid(tmp_path):
    pytest.importorskip("petsc4py")
    from datagen.elliptic.assembly import node_coordinates as elliptic_nodes
    from datagen.elliptic.darcy import Darcy
    from datagen.elliptic.generator import GenerationConfig, generate

    out = tmp_path / "d.h5"
    generate(Darcy(9), out, GenerationConfig(n_samples=2, seed=1, solver="gmres", rtol=1e-8), progress=False)
    assert validate(out) == []
    ds = open_dataset(out)
    g = Grid.from_dataset(ds)
    assert ds.spec["discretisation"]["grid"] == g.to_spec()
    assert g.names == ("x", "y") and g.boundaries == {"x": "dirichlet", "y": "dirichlet"} and g.includes_walls
    for ax in ("x", "y"):
        np.testing.assert_allclose(g.coordinates()[ax], elliptic_nodes(9), rtol=0, atol=1e-15)  # its own formula
        np.testing.assert_array_equal(ds.grid.coords[ax], elliptic_nodes(9))
    assert g.lengths() == (1.0, 1.0) and g.padding_mode() == "zeros" and g.sobolev_boundary() == "dirichlet"
    # older files: the former text record, or nothing at all, give the same grid
    coords, bcs = ds.grid.coords, ds.grid.boundary
    text = {"grid": "nodes x_j = j/(s-1) on [0,1]^d, boundary included"}
    assert Grid.from_stored(coords, bcs, text) == g
    assert Grid.from_stored(coords, bcs, {}) == g


def test_navier_stokes_generator_writes_its_grid(tmp_path):
    from datagen.navier_stokes import generator as G
    from datagen.navier_stokes.recipes import recipe
    from datagen.navier_stokes.resample import grid_offset

    spec = recipe(
        "fno", dict(resolution=32, store_resolution=16, dt=1e-3, snapshot_interval=0.2, t_end=0.2, resample="bilinear")
    )
    out = str(tmp_path / "ns.h5")
    G.generate(spec, out, 1, seed=0, batch_size=1, progress=False, log=None)
    assert validate(out) == []
    ds = open_dataset(out)
    g = Grid.from_dataset(ds)
    x0 = grid_offset("bilinear", 32, 16, 1.0)  # bilinear downsampling: the coarse nodes sit between fine ones
    assert x0 != 0
    for ax in ("x", "y"):
        want = x0 + np.arange(16) * (1.0 / 16)  # the generator's own node formula
        np.testing.assert_allclose(g.coordinates()[ax], want, rtol=0, atol=1e-15)
        np.testing.assert_allclose(ds.grid.coords[ax], want, rtol=0, atol=1e-15)
        assert g[ax].nodes == "nodes-without-far-wall" and g[ax].boundary == "periodic"
    assert g.lengths() == pytest.approx((1.0, 1.0)) and g.periods() == pytest.approx((1.0, 1.0))
    assert g.padding_mode() == "circular" and not g.includes_walls
    np.testing.assert_allclose(g.times, ds.grid.coords["t"])
    # the same file without the record (files written before it): the same geometry from the coordinates
    old = Grid.from_stored(ds.grid.coords, ds.grid.boundary, {})
    assert old.lengths() == pytest.approx(g.lengths()) and [a.nodes for a in old.axes] == [a.nodes for a in g.axes]


def test_validate_refuses_a_grid_record_that_contradicts_the_coordinates(tmp_path):
    x = np.arange(8) / 8
    wrong = Grid(
        (
            Axis("x", 8, 0.0, 1.0, "nodes-with-walls", "periodic"),
            Axis("y", 8, 0.0, 1.0, "nodes-without-far-wall", "periodic"),
        )
    )
    out = tmp_path / "w.h5"
    with DatasetWriter(
        out,
        pde="toy",
        spec={"grid": wrong.to_spec()},
        n_samples=1,
        seed=0,
        fields={"u": FieldSpec((8, 8), "state")},
        grid=StoredGrid({"x": x, "y": x}, {"x": "periodic", "y": "periodic"}),
        solver=[],
    ) as w:
        w.write(0, {"u": np.ones((8, 8), np.float32)})
    problems = validate(out)
    assert any(p.startswith("grid: axis 'x'") and "nodes-with-walls" in p for p in problems), problems
    with h5py.File(out, "r") as f:
        coords = {ax: f["grid"][ax][()] for ax in f["grid"]}
    with pytest.raises(GridError, match="does not give the stored coordinates"):
        Grid.from_stored(coords, {"x": "periodic", "y": "periodic"}, {"grid": wrong.to_spec()})
