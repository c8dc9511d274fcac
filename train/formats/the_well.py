"""The Well's HDF5 layout (Ohana et al. 2024, ``docs/data_format.md`` of PolymathicAI/the_well):
import into, and export from, the neuralops data contract.

::

    neuralops-data import the-well  shear_flow_Reynolds_1e4.hdf5 data/shear.h5 --node-convention cell-centres
    neuralops-data export --format the-well data/ns_fno.h5 well/data/train/ns_fno.hdf5

The Well layout (one file, ``B`` trajectories of ``T`` steps, ``D`` spatial dims)::

    /  @dataset_name @grid_type="cartesian" @n_spatial_dims=D @n_trajectories=B @simulation_parameters=[...]
    dimensions/      @spatial_dims=["x", "y"]; time (T,), x (W,), y (H,)   each @sample_varying (@time_varying)
    boundary_conditions/<name>/  @bc_type in {PERIODIC, WALL, OPEN} @associated_dims @associated_fields
                                 @sample_varying @time_varying; mask bool(n) (True where the BC holds)
    scalars/         @field_names; <name> with @sample_varying @time_varying
    t0_fields/       @field_names; <name> (B, T, W, H)          @dim_varying @sample_varying @time_varying
    t1_fields/       vectors  (B, T, W, H, D)
    t2_fields/       tensors  (B, T, W, H, D, D)                 (+ @symmetric @antisymmetric)

Leading ``B`` / ``T`` axes are absent when ``sample_varying`` / ``time_varying`` is False.

Export (neuralops -> The Well) writes every attribute above that The Well's ``WellDataset`` reads
(root ``dataset_name``, ``grid_type``, ``n_spatial_dims``, ``n_trajectories``,
``simulation_parameters``; ``dimensions@spatial_dims``; ``sample_varying``/``time_varying``/``dim_varying``
on every dataset; ``bc_type``/``associated_dims``/``associated_fields`` and ``mask`` per boundary;
``field_names`` on ``scalars`` and ``t{0,1,2}_fields``). Mapping:

* fields with a time axis ``(T, X, Y)`` -> ``t0_fields`` ``(B, T, X, Y)``; ``(T, D, X, Y)`` named
  ``velocity`` (``D`` = number of spatial dims) -> ``t1_fields`` ``(B, T, X, Y, D)``; any other
  channel axis ``(T, C, X, Y)`` -> ``C`` scalar fields ``<name>_<c>``;
* fields without a time axis ``(X, Y)`` -> time-invariant ``t0_fields`` ``(B, X, Y)`` (The Well's
  "constant fields"); a steady dataset gets ``dimensions/time = [0]`` (The Well's loader needs
  ``n_steps_input + n_steps_output`` steps, so steady data open as constant fields only);
* per-sample params -> ``scalars`` (sample-varying, time-invariant);
* boundaries: periodic -> PERIODIC, dirichlet/neumann/robin/mixed -> WALL, open/none -> OPEN, one group
  ``<axis>_<bc>`` per axis with ``mask`` True at both ends;
* coordinates are written in float64 and fields in their stored dtype (The Well's own files use fp32);
* only valid samples are exported (their original indices in ``@neuralops_sample_index``);
* the neuralops record rides along in root attributes The Well ignores: ``neuralops_format``,
  ``neuralops_pde``, ``neuralops_spec`` (JSON), ``neuralops_fields`` (JSON: role, layout and Well
  names of each field), ``neuralops_seed``, ``neuralops_node_convention``, and ``neuralops_boundary``
  on each boundary group, so ``import the-well`` restores the dataset exactly.

Import (The Well -> neuralops) of a file written elsewhere: time-varying fields become ``state``
fields ``(T, X, Y)`` (vectors ``(T, D, X, Y)``, tensors ``(T, D*D, X, Y)``); time-invariant fields
become ``input`` fields (sample-invariant ones are repeated per sample); sample-varying constant
scalars become params, file constants go to the spec. A WALL boundary says where the wall is, not
which condition holds there: ``--boundary dirichlet|neumann|...`` must say it. The node convention is
read from the coordinates where they decide it (cell centres: first coordinate at ``(k + 1/2) h``;
periodic axes at integer multiples of ``h``: nodes without the far wall) and asked for
(``--node-convention``) otherwise.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

import h5py
import numpy as np

from datagen.contract import Grid as ContractGrid
from datagen.dataset import DatasetError, FieldSpec, Grid, open_dataset
from datagen.spec import Spec, build_spec

from .grid import NODE_CONVENTIONS, check_node_convention, infer_node_convention
from .progress_writer import ImportWriter

__all__ = ["export_the_well", "import_the_well", "BC_TO_WELL", "WELL_TO_BC"]

BC_TO_WELL = {
    "periodic": "PERIODIC",
    "dirichlet": "WALL",
    "neumann": "WALL",
    "robin": "WALL",
    "mixed": "WALL",
    "open": "OPEN",
    "none": "OPEN",
}
WELL_TO_BC = {"PERIODIC": "periodic", "OPEN": "open"}  # WALL: the condition must be stated
VECTOR_NAMES = ("velocity",)
SPATIAL = ("x", "y", "z")
_STR = h5py.string_dtype()


def _strings(values) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=_STR)


def _attr_str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _attr_list(v) -> List[str]:
    if v is None:
        return []
    if isinstance(v, (str, bytes)):
        return [_attr_str(v)]
    return [_attr_str(x) for x in np.asarray(v).reshape(-1)]


def _node_convention_of(ds) -> Optional[str]:
    """The file's node convention (:class:`datagen.contract.Grid`), when every spatial axis shares it."""
    try:
        kinds = {a.nodes for a in ContractGrid.from_dataset(ds).axes}
    except ValueError:
        return None
    return kinds.pop() if len(kinds) == 1 else None


# ------------------------------------------------------------------------------------------ export
def export_the_well(src: str, out: str, dataset_name: Optional[str] = None, overwrite: bool = False) -> str:
    """Write the neuralops dataset ``src`` as one Well-layout HDF5 file ``out`` (module docstring)."""
    ds = open_dataset(src)
    try:
        if os.path.exists(out) and not overwrite:
            raise DatasetError(f"{out} exists; pass --overwrite to replace it")
        axes = ds.grid.spatial_axes
        D = len(axes)
        has_t = "t" in ds.grid.coords
        times = np.asarray(ds.grid.coords["t"], dtype=np.float64) if has_t else np.zeros(1)
        T = times.size
        keep = np.flatnonzero(ds.valid)
        if keep.size == 0:
            raise DatasetError(f"{src} has no valid samples to export")
        B = int(keep.size)
        layout: Dict[str, dict] = {}
        for name in ds.fields:
            shape = ds.field_shape(name)
            extra = shape[: len(shape) - D]
            timed = has_t and len(extra) >= 1 and extra[0] == T and not (ds.role(name) == "input" and len(extra) == 0)
            chan = extra[1:] if timed else extra
            if len(chan) > 1:
                raise DatasetError(
                    f"field {name!r} has per-sample shape {shape}: only one channel axis can be exported"
                )
            entry = {"role": ds.role(name), "shape": list(shape), "time": bool(timed), "dtype": str(ds.dtype(name))}
            if not chan:
                entry.update(order=0, well=[name])
            elif name in VECTOR_NAMES and chan[0] == D:
                entry.update(order=1, well=[name])
            else:
                entry.update(order=0, well=[f"{name}_{c}" for c in range(chan[0])])
            layout[name] = entry
        tmp = out + ".writing"
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with h5py.File(tmp, "w") as f:
            f.attrs["dataset_name"] = dataset_name or ds.pde
            f.attrs["grid_type"] = "cartesian"
            f.attrs["n_spatial_dims"] = D
            f.attrs["n_trajectories"] = B
            f.attrs["simulation_parameters"] = _strings([])
            f.attrs["neuralops_format"] = "neuralops"
            f.attrs["neuralops_pde"] = ds.pde
            f.attrs["neuralops_spec"] = json.dumps(ds.spec, sort_keys=True)
            f.attrs["neuralops_fields"] = json.dumps(layout, sort_keys=True)
            f.attrs["neuralops_seed"] = ds.seed
            f.attrs["neuralops_has_time"] = bool(has_t)
            f.attrs["neuralops_sample_index"] = keep.astype(np.int64)
            conv = _node_convention_of(ds)
            if conv:
                f.attrs["neuralops_node_convention"] = conv
            dims = f.create_group("dimensions")
            dims.attrs["spatial_dims"] = _strings(axes)
            d = dims.create_dataset("time", data=times)
            d.attrs["sample_varying"] = False
            for ax in axes:
                d = dims.create_dataset(ax, data=np.asarray(ds.grid.coords[ax], dtype=np.float64))
                d.attrs["sample_varying"] = False
                d.attrs["time_varying"] = False
            bcs = f.create_group("boundary_conditions")
            for ax in axes:
                bc = ds.grid.boundary[ax]
                g = bcs.create_group(f"{ax}_{bc}")
                g.attrs["associated_dims"] = _strings([ax])
                g.attrs["associated_fields"] = _strings([])
                g.attrs["bc_type"] = BC_TO_WELL[bc]
                g.attrs["sample_varying"] = False
                g.attrs["time_varying"] = False
                g.attrs["neuralops_boundary"] = bc
                mask = np.zeros(ds.grid.coords[ax].size, dtype=bool)
                mask[[0, -1]] = True
                g.create_dataset("mask", data=mask)
            sc = f.create_group("scalars")
            sc.attrs["field_names"] = _strings(ds.param_names)
            for p in ds.param_names:
                d = sc.create_dataset(p, data=np.asarray(ds.params(p))[keep])
                d.attrs["sample_varying"] = True
                d.attrs["time_varying"] = False
            groups = {i: f.create_group(f"t{i}_fields") for i in range(3)}
            names = {0: [], 1: [], 2: []}
            dsets = {}
            for name, e in layout.items():
                shape = e["shape"]
                space = tuple(shape[len(shape) - D :])
                lead = (B, T) if e["time"] else (B,)
                for k, wname in enumerate(e["well"]):
                    wshape = lead + space + ((D,) if e["order"] == 1 else ())
                    d = groups[e["order"]].create_dataset(
                        wname, shape=wshape, dtype=e["dtype"], chunks=(1,) + wshape[1:]
                    )
                    d.attrs["dim_varying"] = np.ones(D, dtype=bool)
                    d.attrs["sample_varying"] = True
                    d.attrs["time_varying"] = bool(e["time"])
                    if e["order"] == 2:
                        d.attrs["symmetric"] = False
                        d.attrs["antisymmetric"] = False
                    names[e["order"]].append(wname)
                    dsets[(name, k)] = d
            for i in range(3):
                groups[i].attrs["field_names"] = _strings(names[i])
            for row, i in enumerate(keep):
                for name, e in layout.items():
                    a = ds.read(name, int(i))
                    if e["order"] == 1:  # (T, D, X, Y) -> (T, X, Y, D)
                        dsets[(name, 0)][row] = np.moveaxis(a, 1 if e["time"] else 0, -1)
                    elif len(e["well"]) > 1:  # (T, C, X, Y) -> C fields
                        cax = 1 if e["time"] else 0
                        for k in range(len(e["well"])):
                            dsets[(name, k)][row] = np.take(a, k, axis=cax)
                    else:
                        dsets[(name, 0)][row] = a
        os.replace(tmp, out)
    finally:
        ds.close()
    return out


# ------------------------------------------------------------------------------------------ import
def _axis_boundaries(f: h5py.File, axes: List[str], boundary: Optional[str]) -> Dict[str, str]:
    found: Dict[str, str] = {}
    for name, g in f.get("boundary_conditions", {}).items():
        kind = _attr_str(g.attrs.get("bc_type", "")).upper()
        ours = _attr_str(g.attrs["neuralops_boundary"]) if "neuralops_boundary" in g.attrs else None
        for ax in _attr_list(g.attrs.get("associated_dims")):
            if ax not in axes:
                continue
            if ours is not None:
                bc = ours
            elif kind == "WALL":
                if boundary is None:
                    raise ValueError(
                        f"boundary_conditions/{name} is a WALL on axis {ax!r}: "
                        "The Well does not say which "
                        "condition holds there; pass --boundary dirichlet|neumann|robin|mixed"
                    )
                bc = boundary
            elif kind in WELL_TO_BC:
                bc = WELL_TO_BC[kind]
            else:
                raise ValueError(f"boundary_conditions/{name}: bc_type {kind!r} is not one of PERIODIC, WALL, OPEN")
            if ax in found and found[ax] != bc:
                raise ValueError(
                    f"axis {ax!r} has two boundary conditions ({found[ax]}, {bc}); neuralops needs one per axis"
                )
            found[ax] = bc
    return {ax: found.get(ax, "open") for ax in axes}  # The Well's loader: open unless stated


def _convention(f: h5py.File, axes, coords, boundary, stated: Optional[str]) -> str:
    if "neuralops_node_convention" in f.attrs and stated is None:
        return check_node_convention(_attr_str(f.attrs["neuralops_node_convention"]))
    decided = {}
    for ax in axes:
        c = coords[ax]
        conv = infer_node_convention(c)
        if conv is None and boundary[ax] == "periodic" and c.size > 1:
            frac = (c[0] / (c[1] - c[0])) % 1.0
            if min(frac, 1 - frac) <= 1e-4:
                conv = "nodes-without-far-wall"  # a periodic grid never holds both ends of the period
        decided[ax] = conv
    seen = {c for c in decided.values() if c is not None}
    if stated is not None:
        check_node_convention(stated)
        if seen and seen != {stated}:
            raise ValueError(
                f"--node-convention {stated} contradicts the file's coordinates, which are {', '.join(sorted(seen))}"
            )
        return stated
    if len(seen) == 1 and None not in decided.values():
        return seen.pop()
    raise ValueError(
        "the coordinates do not say whether the grid holds the walls; pass --node-convention "
        f"({', '.join(NODE_CONVENTIONS)})"
    )


def import_the_well(
    src: str,
    out: str,
    node_convention: Optional[str] = None,
    boundary: Optional[str] = None,
    limit: Optional[int] = None,
    dtype: Optional[str] = None,
    overwrite: bool = False,
) -> str:
    """One Well-layout HDF5 file -> data contract (module docstring)."""
    if not os.path.exists(src):
        raise FileNotFoundError(f"no such file: {src}")
    with h5py.File(src, "r") as f:
        for key in ("dimensions", "t0_fields"):
            if key not in f:
                raise ValueError(
                    f"{src} is not in The Well's layout: group {key!r} is missing (found {', '.join(f.keys())})"
                )
        grid_type = _attr_str(f.attrs.get("grid_type", "cartesian"))
        if grid_type != "cartesian":
            raise ValueError(f"{src}: grid_type {grid_type!r}; neuralops datasets are on cartesian grids only")
        axes = _attr_list(f["dimensions"].attrs.get("spatial_dims"))
        if not axes or any(a not in f["dimensions"] for a in axes):
            raise ValueError(f"{src}: dimensions@spatial_dims {axes} does not name coordinate datasets in dimensions/")
        if len(axes) > 3:
            raise ValueError(f"{src}: {len(axes)} spatial dims; neuralops stores up to 3")
        names = {ax: SPATIAL[i] for i, ax in enumerate(axes)}  # The Well's axis names -> x, y, z
        D = len(axes)
        coords = {}
        for ax in axes:
            d = f["dimensions"][ax]
            if d.attrs.get("sample_varying", False):
                raise ValueError(f"{src}: dimensions/{ax} varies between trajectories; neuralops needs one grid")
            coords[ax] = np.asarray(d[()], dtype=np.float64).reshape(-1)
        t = f["dimensions"]["time"] if "time" in f["dimensions"] else None
        times = None
        if t is not None:
            tv = np.asarray(t[()], dtype=np.float64)
            if t.attrs.get("sample_varying", False) and tv.ndim == 2:
                if not np.allclose(tv, tv[:1]):
                    raise ValueError(
                        f"{src}: dimensions/time differs between trajectories; neuralops needs one time grid"
                    )
                tv = tv[0]
            times = tv.reshape(-1)
        ours = "neuralops_fields" in f.attrs
        if ours and not bool(f.attrs.get("neuralops_has_time", True)):
            times = None
        bcs = _axis_boundaries(f, axes, boundary)
        conv = _convention(f, axes, coords, bcs, node_convention)
        B = int(f.attrs.get("n_trajectories", 0)) or None
        # ---- what to read: (neuralops name, role, [(group, well name)], order, timed)
        plan = []
        if ours:
            layout = json.loads(_attr_str(f.attrs["neuralops_fields"]))
            for name, e in layout.items():
                group = f"t{e['order']}_fields"
                plan.append((name, e["role"], [(group, w) for w in e["well"]], e["order"], e["time"]))
        else:
            for order in range(3):
                g = f.get(f"t{order}_fields")
                if g is None:
                    continue
                for w in _attr_list(g.attrs.get("field_names")):
                    d = g[w]
                    if not np.all(np.asarray(d.attrs.get("dim_varying", np.ones(D, bool)), dtype=bool)):
                        raise ValueError(
                            f"{src}: t{order}_fields/{w} is constant along a spatial axis "
                            f"(dim_varying {d.attrs['dim_varying'].tolist()}); not supported"
                        )
                    timed = bool(d.attrs.get("time_varying", True))
                    plan.append((w, "state" if timed else "input", [(f"t{order}_fields", w)], order, timed))
        if not plan:
            raise ValueError(f"{src} holds no fields (t0_fields/t1_fields/t2_fields list none)")

        def sample_count(ds):
            return ds.shape[0] if ds.attrs.get("sample_varying", True) else None

        counts = {sample_count(f[g][w]) for _, _, parts, _, _ in plan for g, w in parts} - {None}
        n_all = B or (counts.pop() if counts else 1)
        n = min(n_all, limit) if limit else n_all
        space = tuple(coords[ax].size for ax in axes)
        T = times.size if times is not None else 0
        fields: Dict[str, FieldSpec] = {}
        for name, role, parts, order, timed in plan:
            d0 = f[parts[0][0]][parts[0][1]]
            chan = ((D**order,) if order else ()) if len(parts) == 1 else (len(parts),)
            shape = ((T,) if timed else ()) + chan + space
            dt = dtype or (d0.dtype.name if d0.dtype.name in ("float32", "float64") else "float32")
            fields[name] = FieldSpec(shape, role, dt)
        params, spec_scalars, skipped = [], {}, []
        sc = f.get("scalars")
        if sc is not None:
            for s_name in _attr_list(sc.attrs.get("field_names")):
                d = sc[s_name]
                if d.attrs.get("time_varying", False):
                    skipped.append(s_name)
                elif d.attrs.get("sample_varying", False):
                    params.append(s_name)
                else:
                    spec_scalars[s_name] = float(np.asarray(d[()]).reshape(-1)[0])
        sim = {
            p: (f.attrs[p].item() if hasattr(f.attrs[p], "item") else f.attrs[p])
            for p in _attr_list(f.attrs.get("simulation_parameters"))
            if p in f.attrs
        }
        if ours:
            pde = _attr_str(f.attrs["neuralops_pde"])
            # the exported spec, sectioned or the flat form of an earlier version: its settings
            stored = Spec.from_stored(json.loads(_attr_str(f.attrs["neuralops_spec"])), pde)
            family, values = stored.family or pde, stored.flat()
            seed = int(f.attrs.get("neuralops_seed", 0))
        else:
            pde = _attr_str(f.attrs.get("dataset_name", "the_well"))
            seed = 0
            family = pde
            values = {
                "source": "the_well",
                "dataset_name": pde,
                "simulation_parameters": {**sim, **spec_scalars},
                "skipped_time_varying_scalars": skipped,
                "grid_type": _attr_str(f.attrs.get("grid_type", "")),
            }
        where = {"imported_from": {"format": "the_well", "file": os.path.basename(src)}, "node_convention": conv}
        if ours and stored.legacy:
            # a flat spec of an earlier version passes through as it was (readers upgrade it in memory)
            spec = dict(json.loads(_attr_str(f.attrs["neuralops_spec"])), **where)
        else:
            spec = build_spec(family, dict(values, **where))
        grid_coords = {names[ax]: coords[ax] for ax in axes}
        if times is not None:
            grid_coords["t"] = times
        grid = Grid(grid_coords, {names[ax]: bcs[ax] for ax in axes})
        with ImportWriter(
            out,
            pde=pde,
            spec=spec,
            n_samples=n,
            seed=seed,
            fields=fields,
            grid=grid,
            params=params,
            solver=[],
            overwrite=overwrite,
            flush_every=16,
        ) as w:
            for i in range(n):
                sample = {}
                for name, _role, parts, order, timed in plan:
                    blocks = []
                    for g, wname in parts:
                        d = f[g][wname]
                        a = np.asarray(d[i] if d.attrs.get("sample_varying", True) else d[()])
                        if order >= 1:  # (..., X, Y, D[, D]) -> (..., D^order, X, Y)
                            a = a.reshape(a.shape[: a.ndim - order] + (D**order,))
                            a = np.moveaxis(a, -1, 1 if timed else 0)
                        blocks.append(a)
                    if len(blocks) > 1:
                        a = np.stack(blocks, axis=1 if timed else 0)
                    else:
                        a = blocks[0]
                    sample[name] = a
                w.write(i, sample, params={p: float(np.asarray(sc[p][i])) for p in params})
    return out
