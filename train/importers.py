"""Convert published benchmark files into neuralops datasets (``neuralops-data import``).

::

    neuralops-data import fno-ns     ns_V1e-3_N5000_T50.mat          data/ns_fno_v1e-3.h5
    neuralops-data import fno-darcy  piececonst_r421_N1024_smooth1.mat data/darcy_r421.h5 --subsample 2
    neuralops-data import pdebench   2D_diff-react_NA_NA.h5          data/pdebench_dr.h5

Layouts read (MATLAB arrays are column-major: MATLAB v7.3 files are HDF5 and h5py sees every
array with its axes reversed; v5 files are read with ``scipy.io.loadmat``, which restores them):

* FNO Navier-Stokes (``ns_V1e-3_N5000_T50.mat``, ``NavierStokes_V1e-5_N1200_T20.mat``): ``u``
  ``(N, X, Y, T)`` vorticity snapshots at ``t = 1..T`` (MATLAB order), ``a`` ``(N, X, Y)`` the
  initial vorticity (t = 0), optional ``t`` ``(1, T)``. Written as ``vorticity`` ``(N, T, X, Y)``
  (role state, frames at the file's times) and ``initial_vorticity`` ``(N, X, Y)`` (role input);
  periodic grid ``x_j = j / X`` on the unit torus. The viscosity is read from the file name
  (``V1e-3`` / ``V1e-5``) or ``--viscosity``. The physics goes into the spec in the generator's own
  form (``viscosity``, ``box`` 1, ``drag`` 0, ``forcing`` ``{"type": "fno", "amplitude": 0.1,
  "wavenumber": 1}``, ``snapshot_interval`` from ``t``; :mod:`datagen.navier_stokes.physics`), so
  refinement and evaluation read an imported file as they read a generated one. The FNO protocol's
  "first 10 snapshots" are the first 10 frames of ``vorticity`` (``a`` is not one of them).
* FNO Darcy (``piececonst_r421_N1024_smooth1.mat``): ``coeff`` ``(N, s, s)`` and ``sol``
  ``(N, s, s)`` on the nodes ``j / (s - 1)`` of the unit square, boundary included. Written as
  ``a`` (input) and ``u`` (output) with Dirichlet axes; ``--subsample r`` keeps every r-th node
  (the FNO scripts' ``r``: 421 -> 211 for r = 2, 85 for r = 5).
* PDEBench HDF5, three layouts: (i) one group per sample (``0000/data`` ``(T, X, Y, C)`` with
  ``0000/grid/{x,y,t}``, e.g. 2D diffusion-reaction, shallow water) -> ``data`` ``(N, T, [C,] X, Y)``;
  (ii) compressible NS (``density``, ``pressure``, ``Vx``, ``Vy`` each ``(N, T, X, Y)`` with
  ``x-coordinate``, ``y-coordinate``, ``t-coordinate``) -> one state field each; (iii) 2D Darcy
  (``nu`` ``(N, X, Y)``, ``tensor`` ``(N, 1, X, Y)``) -> ``a`` (input), ``u`` (output).
  The boundary condition is not stored in PDEBench files: ``--boundary`` (default periodic, except
  Darcy: dirichlet; diffusion-reaction is neumann).

Samples are copied in chunks (``--chunk`` samples at a time for HDF5 sources; a v5 ``.mat`` file
is loaded variable by variable, since the format cannot be read partially).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Dict, Iterator, Optional, Sequence, Tuple

import h5py
import numpy as np

from datagen.dataset import DatasetError, FieldSpec, Grid
from datagen.navier_stokes.physics import Forcing, NavierStokesPhysics
from datagen.spec import build_spec

from .formats.progress_writer import ImportWriter, summary_line

__all__ = ["import_fno_ns", "import_fno_darcy", "import_pdebench", "add_arguments", "run", "main", "FORMATS"]

FORMATS = ("fno-ns", "fno-darcy", "pdebench")
PDEBENCH_CFD = ("density", "pressure", "Vx", "Vy")


# --------------------------------------------------------------------------------------------
# MATLAB files
# --------------------------------------------------------------------------------------------
class _MatFile:
    """Uniform access to MATLAB v5 (scipy) and v7.3 (HDF5) files in MATLAB axis order."""

    def __init__(self, path: str):
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such file: {path}")
        self.path = path
        self.v73 = h5py.is_hdf5(path)
        self._h5 = h5py.File(path, "r") if self.v73 else None
        self._cache: Dict[str, np.ndarray] = {}
        if self.v73:
            self.names = [k for k in self._h5.keys() if not k.startswith("#")]
        else:
            from scipy.io import whosmat

            self.names = [w[0] for w in whosmat(path)]

    def shape(self, name: str) -> Tuple[int, ...]:
        self._need(name)
        if self.v73:
            return tuple(reversed(self._h5[name].shape))
        return tuple(self._load(name).shape)

    def _need(self, name: str) -> None:
        if name not in self.names:
            raise KeyError(f"{self.path} has no variable {name!r}; variables: {', '.join(self.names)}")

    def _load(self, name: str) -> np.ndarray:
        if name not in self._cache:
            from scipy.io import loadmat

            self._cache = {name: loadmat(self.path, variable_names=[name])[name]}
        return self._cache[name]

    def read(self, name: str, first: slice) -> np.ndarray:
        """Rows ``first`` of the first (MATLAB) axis, MATLAB axis order."""
        self._need(name)
        if self.v73:
            d = self._h5[name]
            block = d[(Ellipsis, first)]  # the first MATLAB axis is the last HDF5 axis
            return np.ascontiguousarray(np.transpose(block))
        return self._load(name)[first]

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()


def _chunks(n: int, size: int) -> Iterator[slice]:
    for a in range(0, n, size):
        yield slice(a, min(n, a + size))


def _viscosity_from_name(path: str) -> Optional[float]:
    m = re.search(r"[Vv](\d+(?:\.\d+)?e-?\d+)", os.path.basename(path))
    return float(m.group(1)) if m else None


def _spacing(t: np.ndarray, src: str) -> float:
    """Uniform spacing of the time stamps ``t`` (the FNO files: 1.0)."""
    if t.size < 2:
        return 1.0
    steps = np.diff(t)
    if not np.allclose(steps, steps[0], rtol=1e-9, atol=0.0) or steps[0] <= 0:
        raise ValueError(f"{src}: the time stamps t are not uniformly increasing ({t[:4]}...)")
    return float(steps[0])


def import_fno_ns(
    src: str,
    out: str,
    viscosity: Optional[float] = None,
    limit: Optional[int] = None,
    chunk: int = 64,
    dtype: str = "float32",
    overwrite: bool = False,
) -> str:
    """FNO Navier-Stokes ``.mat`` (v5 or v7.3) -> data contract (see the module docstring)."""
    mat = _MatFile(src)
    try:
        n, nx, ny, nt = mat.shape("u")
        n = min(n, limit) if limit else n
        nu = viscosity if viscosity is not None else _viscosity_from_name(src)
        if nu is None:
            raise ValueError(
                f"cannot read the viscosity from the file name {os.path.basename(src)!r}; pass --viscosity"
            )
        t = np.arange(1, nt + 1, dtype=np.float64)
        if "t" in mat.names:
            t = np.asarray(mat.read("t", slice(None)), dtype=np.float64).reshape(-1)[:nt]
        has_a = "a" in mat.names
        fields = {"vorticity": FieldSpec((nt, nx, ny), "state", dtype)}
        if has_a:
            fields["initial_vorticity"] = FieldSpec((nx, ny), "input", dtype)
        grid = Grid({"x": np.arange(nx) / nx, "y": np.arange(ny) / ny, "t": t}, {"x": "periodic", "y": "periodic"})
        if nx != ny:
            raise ValueError(f"{src}: u has a {nx} x {ny} grid; the FNO Navier-Stokes layout is square")
        # the physics in the generator's own form (datagen.navier_stokes.physics), so that every
        # consumer reads an imported file exactly as a generated one
        physics = NavierStokesPhysics(
            viscosity=float(nu), dt=_spacing(t, src), box=1.0, forcing=Forcing("fno", 0.1, 1), drag=0.0
        )
        spec = build_spec(
            "navier_stokes_2d",
            {
                "source": "fno_mat",
                "file": os.path.basename(src),
                "matlab_version": "7.3" if mat.v73 else "5",
                "layout": "u (N, X, Y, T) -> vorticity (N, T, X, Y); a -> initial_vorticity",
                **physics.to_spec(),
                "n": int(n),
                "resolution": [int(nx), int(ny)],
                "frames": int(nt),
                "equation": "w_t + u.grad w = nu Lap w - drag w + f, u = (psi_y, -psi_x), -Lap psi = w",
                "domain": "unit torus",
            },
        )
        with ImportWriter(
            out,
            pde="navier_stokes_2d",
            spec=spec,
            n_samples=n,
            seed=0,
            fields=fields,
            grid=grid,
            params=["viscosity"],
            solver=["converged"],
            overwrite=overwrite,
        ) as w:
            for sl in _chunks(n, chunk):
                u = np.moveaxis(np.asarray(mat.read("u", sl)), -1, 1)  # (b, T, X, Y)
                a = np.asarray(mat.read("a", sl)) if has_a else None
                for j, i in enumerate(range(sl.start, sl.stop)):
                    f = {"vorticity": u[j].astype(dtype)}
                    if has_a:
                        f["initial_vorticity"] = a[j].astype(dtype)
                    w.write(i, f, params={"viscosity": nu}, solver={"converged": True})
    finally:
        mat.close()
    return out


def import_fno_darcy(
    src: str,
    out: str,
    subsample: int = 1,
    limit: Optional[int] = None,
    chunk: int = 64,
    dtype: str = "float32",
    overwrite: bool = False,
) -> str:
    """FNO Darcy ``.mat`` (v5 or v7.3): ``coeff``, ``sol`` -> ``a``, ``u`` (see the module docstring)."""
    if int(subsample) < 1:
        raise ValueError(f"subsample must be a positive integer, got {subsample}")
    r = int(subsample)
    mat = _MatFile(src)
    try:
        n, sx, sy = mat.shape("coeff")
        if mat.shape("sol") != (n, sx, sy):
            raise ValueError(f"{src}: sol has shape {mat.shape('sol')}, coeff {(n, sx, sy)}")
        n = min(n, limit) if limit else n
        x = np.linspace(0.0, 1.0, sx)[::r]
        y = np.linspace(0.0, 1.0, sy)[::r]
        fields = {"a": FieldSpec((x.size, y.size), "input", dtype), "u": FieldSpec((x.size, y.size), "output", dtype)}
        spec = build_spec(
            "darcy",
            {
                "source": "fno_mat",
                "file": os.path.basename(src),
                "matlab_version": "7.3" if mat.v73 else "5",
                "layout": "coeff -> a, sol -> u",
                "subsample": r,
                "n": int(n),
                "resolution": [int(x.size), int(y.size)],
                "equation": "-div(a grad u) = 1 on the unit square, u = 0 on the boundary",
            },
        )
        grid = Grid({"x": x, "y": y}, {"x": "dirichlet", "y": "dirichlet"})
        with ImportWriter(
            out,
            pde="darcy",
            spec=spec,
            n_samples=n,
            seed=0,
            fields=fields,
            grid=grid,
            params=[],
            solver=["converged"],
            overwrite=overwrite,
        ) as w:
            for sl in _chunks(n, chunk):
                a = np.asarray(mat.read("coeff", sl))[:, ::r, ::r]
                u = np.asarray(mat.read("sol", sl))[:, ::r, ::r]
                for j, i in enumerate(range(sl.start, sl.stop)):
                    w.write(i, {"a": a[j].astype(dtype), "u": u[j].astype(dtype)}, solver={"converged": True})
    finally:
        mat.close()
    return out


# --------------------------------------------------------------------------------------------
# PDEBench
# --------------------------------------------------------------------------------------------
def _coords(f: h5py.File, key: str, n: int) -> np.ndarray:
    if key in f:
        c = np.asarray(f[key][()], dtype=np.float64).reshape(-1)
        return c[:n] if c.size >= n else np.arange(n, dtype=np.float64)
    return np.arange(n, dtype=np.float64) / n


def import_pdebench(
    src: str,
    out: str,
    boundary: Optional[str] = None,
    limit: Optional[int] = None,
    chunk: int = 16,
    dtype: str = "float32",
    overwrite: bool = False,
) -> str:
    """PDEBench 2-D HDF5 file -> data contract (layouts in the module docstring)."""
    with h5py.File(src, "r") as f:
        keys = list(f.keys())
        groups = sorted(k for k in keys if isinstance(f[k], h5py.Group) and "data" in f[k])
        base = {"source": "pdebench", "file": os.path.basename(src)}
        if groups:
            n = min(len(groups), limit) if limit else len(groups)
            t_len, nx, ny, nc = f[groups[0]]["data"].shape
            g0 = f[groups[0]]
            coords = {"x": _coords(g0, "grid/x", nx), "y": _coords(g0, "grid/y", ny), "t": _coords(g0, "grid/t", t_len)}
            bc = boundary or ("neumann" if "diff-react" in os.path.basename(src) else "periodic")
            shape = (t_len, nx, ny) if nc == 1 else (t_len, nc, nx, ny)
            spec = build_spec(
                "pdebench",
                dict(base, layout="groups/<seed>/data (T, X, Y, C) -> data (N, T, [C,] X, Y)", samples=groups[:n]),
            )
            with ImportWriter(
                out,
                pde="pdebench",
                spec=spec,
                n_samples=n,
                seed=0,
                fields={"data": FieldSpec(shape, "state", dtype)},
                grid=Grid(coords, {"x": bc, "y": bc}),
                params=[],
                solver=["converged"],
                overwrite=overwrite,
            ) as w:
                for i, g in enumerate(groups[:n]):
                    d = np.asarray(f[g]["data"][()])  # (T, X, Y, C)
                    d = d[..., 0] if nc == 1 else np.moveaxis(d, -1, 1)
                    w.write(i, {"data": d.astype(dtype)}, solver={"converged": True})
            return out
        if "nu" in keys and "tensor" in keys:
            n_all, nx, ny = f["nu"].shape
            n = min(n_all, limit) if limit else n_all
            bc = boundary or "dirichlet"
            coords = {"x": _coords(f, "x-coordinate", nx), "y": _coords(f, "y-coordinate", ny)}
            spec = build_spec("darcy", dict(base, layout="nu (N, X, Y) -> a, tensor (N, 1, X, Y) -> u"))
            with ImportWriter(
                out,
                pde="darcy",
                spec=spec,
                n_samples=n,
                seed=0,
                fields={"a": FieldSpec((nx, ny), "input", dtype), "u": FieldSpec((nx, ny), "output", dtype)},
                grid=Grid(coords, {"x": bc, "y": bc}),
                params=[],
                solver=["converged"],
                overwrite=overwrite,
            ) as w:
                for sl in _chunks(n, chunk):
                    a, u = f["nu"][sl], f["tensor"][sl][:, 0]
                    for j, i in enumerate(range(sl.start, sl.stop)):
                        w.write(i, {"a": a[j].astype(dtype), "u": u[j].astype(dtype)}, solver={"converged": True})
            return out
        names = [k for k in PDEBENCH_CFD if k in keys]
        if names:
            n_all, t_len, nx, ny = f[names[0]].shape
            n = min(n_all, limit) if limit else n_all
            bc = boundary or "periodic"
            coords = {
                "x": _coords(f, "x-coordinate", nx),
                "y": _coords(f, "y-coordinate", ny),
                "t": _coords(f, "t-coordinate", t_len),
            }
            spec = build_spec(
                "compressible_navier_stokes_2d",
                dict(base, layout="density/pressure/Vx/Vy (N, T, X, Y) -> one state field each"),
            )
            with ImportWriter(
                out,
                pde="compressible_navier_stokes_2d",
                spec=spec,
                n_samples=n,
                seed=0,
                fields={k: FieldSpec((t_len, nx, ny), "state", dtype) for k in names},
                grid=Grid(coords, {"x": bc, "y": bc}),
                params=[],
                solver=["converged"],
                overwrite=overwrite,
            ) as w:
                for sl in _chunks(n, chunk):
                    blocks = {k: f[k][sl] for k in names}
                    for j, i in enumerate(range(sl.start, sl.stop)):
                        w.write(i, {k: blocks[k][j].astype(dtype) for k in names}, solver={"converged": True})
            return out
    raise ValueError(
        f"{src} is not a PDEBench 2-D file this importer knows: expected per-sample groups with "
        f"'data', 'nu' + 'tensor' (Darcy) or any of {', '.join(PDEBENCH_CFD)}; found keys {keys[:10]}"
    )


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("format", choices=FORMATS, help="layout of the source file")
    parser.add_argument("source", help="the published file (.mat v5 / v7.3, PDEBench .h5/.hdf5)")
    parser.add_argument("out", help="the neuralops dataset to write (.h5)")
    parser.add_argument("--limit", type=int, default=None, help="import only the first LIMIT samples")
    parser.add_argument("--viscosity", type=float, default=None, help="fno-ns: viscosity (default: from the file name)")
    parser.add_argument("--subsample", type=int, default=1, help="fno-darcy: keep every r-th grid node")
    parser.add_argument(
        "--boundary",
        default=None,
        choices=("periodic", "dirichlet", "neumann", "robin", "mixed", "open", "none"),
        help="pdebench: boundary condition of both axes (not stored in the files)",
    )
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--chunk", type=int, default=None, help="samples copied at a time")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser


def run(args) -> int:
    kw = dict(limit=args.limit, dtype=args.dtype, overwrite=args.overwrite)
    if args.chunk:
        kw["chunk"] = args.chunk
    try:
        if args.format == "fno-ns":
            out = import_fno_ns(args.source, args.out, viscosity=args.viscosity, **kw)
        elif args.format == "fno-darcy":
            out = import_fno_darcy(args.source, args.out, subsample=args.subsample, **kw)
        else:
            out = import_pdebench(args.source, args.out, boundary=args.boundary, **kw)
    except (OSError, KeyError, ValueError, DatasetError) as exc:
        print(f"neuralops-data import: {exc}", file=sys.stderr)
        return 1
    print(summary_line(out))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = add_arguments(
        argparse.ArgumentParser(
            prog="neuralops-data import", description="Convert a published benchmark file into a neuralops dataset."
        )
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
