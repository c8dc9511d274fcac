"""The neuralops HDF5 data contract: write, read, validate and describe datasets.

Every generator writes through :class:`DatasetWriter`, every data module reads through
:func:`open_dataset`; nothing else needs to know the file layout, which is::

    /                       attrs: format="neuralops", format_version, pde, spec (JSON), created,
                                   version (package), seed, n_samples, status ("complete")
    /grid/<axis>            1-D coordinates (x, y[, z][, t]); attr ``boundary`` on spatial axes
    /fields/<name>          (N, ...) float32|float64, one sample per chunk, fletcher32 checksums,
                            attr ``role`` in {input, output, state}
    /params/<name>          (N,) per-sample scalars (a wavenumber, a viscosity)
    /solver/<name>          (N,) per-sample provenance (iterations, residual, seconds, order, converged, ...)
    /samples/valid          (N,) bool: False only for samples written with an ``invalid_reason``
    /samples/reason         (N,) str: why a sample is invalid ("" when valid)

Crash safety and resume
-----------------------
HDF5 files are not crash-safe: a process killed inside a write can leave a file that no longer
opens. The writer therefore never writes the dataset in place. Samples go to small *segment*
files in ``<path>.partial/``; each segment is written under a temporary name and renamed
atomically, so after a SIGKILL every segment present is complete. ``finalize()`` merges the
segments in sample order into ``<path>.writing`` and renames it to ``<path>`` only once it is
complete: a file at ``<path>`` is always a whole dataset, and a half-written one is never found
there. Readers refuse ``*.writing`` files and segment files (their ``status`` is not "complete").
A run started again with ``resume=True`` and the same spec skips every sample already in a segment
and ends with the same file contents as an uninterrupted run (up to wall-clock fields such as
``solver/seconds``).

MPI
---
With ``comm`` (an mpi4py communicator) each rank writes only the samples it is given, into its own
segments, then its own shard ``<path>.shards/shard-<rank>.h5``; rank 0 writes the small top file
``<path>`` whose fields are HDF5 virtual datasets over the shards (nothing is copied).
"""
from __future__ import annotations

import datetime as _dt
import glob
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import h5py
import numpy as np

FORMAT = "neuralops"
FORMAT_VERSION = 1
ROLES = ("input", "output", "state")
BOUNDARIES = ("periodic", "dirichlet", "neumann", "robin", "mixed", "open", "none")
FIELD_DTYPES = ("float32", "float64")
SPATIAL_AXES = ("x", "y", "z")
TIME_AXIS = "t"
COMPLETE = "complete"
WRITING = "writing"
SEGMENT = "segment"

__all__ = [
    "DatasetError", "FieldSpec", "Grid", "DatasetWriter", "Dataset", "open_dataset", "validate",
    "describe", "FORMAT", "FORMAT_VERSION",
]


class DatasetError(Exception):
    """A dataset could not be written or read; the message says which file and why."""


def _package_version() -> str:
    from . import __version__

    return __version__


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and tuples so that ``json.dumps`` accepts ``obj``."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    raise DatasetError(f"spec value {obj!r} of type {type(obj).__name__} is not JSON-serialisable; "
                       "use numbers, strings, booleans, lists and dicts")


@dataclass(frozen=True)
class FieldSpec:
    """Per-sample shape (without the sample axis), role and storage dtype of one field."""

    shape: tuple
    role: str
    dtype: str = "float32"
    description: str = ""

    def __post_init__(self):
        shape = tuple(int(s) for s in self.shape)
        if any(s <= 0 for s in shape):
            raise DatasetError(f"field shape {self.shape!r} must have positive sizes")
        object.__setattr__(self, "shape", shape)
        if self.role not in ROLES:
            raise DatasetError(f"field role {self.role!r} is not allowed; use one of {', '.join(ROLES)}")
        dt = np.dtype(self.dtype).name
        if dt not in FIELD_DTYPES:
            raise DatasetError(f"field dtype {self.dtype!r} is not allowed; use one of {', '.join(FIELD_DTYPES)}")
        object.__setattr__(self, "dtype", dt)

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "role": self.role, "dtype": self.dtype,
                "description": self.description}


@dataclass
class Grid:
    """Coordinates of each axis and the boundary condition of each spatial axis."""

    coords: Dict[str, np.ndarray]
    boundary: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        coords = {}
        for name, c in self.coords.items():
            arr = np.asarray(c, dtype=np.float64)
            if arr.ndim != 1 or arr.size == 0:
                raise DatasetError(f"grid axis {name!r} must be a non-empty 1-D array, got shape {arr.shape}")
            coords[str(name)] = arr
        self.coords = coords
        for name, bc in self.boundary.items():
            if name not in coords:
                raise DatasetError(f"boundary given for axis {name!r}, which is not a grid axis ({list(coords)})")
            if bc not in BOUNDARIES:
                raise DatasetError(f"boundary {bc!r} of axis {name!r} is not allowed; use one of {', '.join(BOUNDARIES)}")
        for name in coords:
            if name in SPATIAL_AXES and name not in self.boundary:
                raise DatasetError(f"spatial axis {name!r} needs a boundary condition ({', '.join(BOUNDARIES)})")

    @property
    def spatial_axes(self) -> List[str]:
        return [a for a in self.coords if a != TIME_AXIS]

    def to_json(self) -> dict:
        return {"coords": {k: v.tolist() for k, v in self.coords.items()}, "boundary": dict(self.boundary)}

    @classmethod
    def from_json(cls, d: dict) -> "Grid":
        return cls({k: np.asarray(v) for k, v in d["coords"].items()}, dict(d["boundary"]))


def _value_dtype(value: Any) -> np.dtype:
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(bool)
    if isinstance(value, (int, np.integer)):
        return np.dtype(np.int64)
    if isinstance(value, (float, np.floating)):
        return np.dtype(np.float64)
    if isinstance(value, str):
        return h5py.string_dtype()
    raise DatasetError(f"per-sample value {value!r} must be a bool, int, float or str")


# --------------------------------------------------------------------------------------- writer
class DatasetWriter:
    """Write a dataset sample by sample, crash-safely and resumably (see the module docstring).

    Use as a context manager: leaving the block normally finalizes the dataset; leaving it by an
    exception flushes what was written so far (for ``resume=True``) and leaves no file at ``path``.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike],
        *,
        pde: str,
        spec: Mapping[str, Any],
        n_samples: int,
        seed: int,
        fields: Mapping[str, FieldSpec],
        grid: Grid,
        params: Sequence[str] = (),
        solver: Sequence[str] = ("iterations", "residual", "seconds", "order", "converged"),
        resume: bool = False,
        overwrite: bool = False,
        comm: Any = None,
        flush_every: int = 1,
        flush_seconds: float = 2.0,
    ):
        self.path = os.path.abspath(os.fspath(path))
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples <= 0:
            raise DatasetError(f"n_samples must be a positive integer, got {n_samples!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
        if not fields:
            raise DatasetError("a dataset needs at least one field")
        for name, fs in fields.items():
            if not isinstance(fs, FieldSpec):
                raise DatasetError(f"field {name!r} must be described by a FieldSpec, got {type(fs).__name__}")
        if not isinstance(grid, Grid):
            raise DatasetError(f"grid must be a Grid, got {type(grid).__name__}")
        if flush_every < 1:
            raise DatasetError(f"flush_every must be >= 1, got {flush_every}")
        self.pde = str(pde)
        self.n_samples = int(n_samples)
        self.seed = int(seed)
        self.fields = dict(fields)
        self.grid = grid
        self.param_names = [str(p) for p in params]
        self.solver_names = [str(s) for s in solver]
        for group, names in (("params", self.param_names), ("solver", self.solver_names)):
            if len(set(names)) != len(names):
                raise DatasetError(f"{group} names must be unique, got {names}")
        self.spec = _jsonable(dict(spec))
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.world_size = comm.Get_size() if comm is not None else 1
        self.flush_every = int(flush_every)
        self.flush_seconds = float(flush_seconds)
        self.partial_dir = self.path + ".partial"
        self.shard_dir = self.path + ".shards"
        self._buffer: List[dict] = []
        self._last_flush = time.monotonic()
        self._segment_counter = 0
        self._written: set = set()
        self._finalized = False
        self.already_complete = False
        self._manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "pde": self.pde,
            "spec": self.spec,
            "n_samples": self.n_samples,
            "seed": self.seed,
            "fields": {k: v.to_json() for k, v in self.fields.items()},
            "grid": grid.to_json(),
            "params": self.param_names,
            "solver": self.solver_names,
        }
        self._setup(resume=resume, overwrite=overwrite)

    # -- set-up -------------------------------------------------------------------------------
    def _setup(self, resume: bool, overwrite: bool) -> None:
        error = None
        if self.rank == 0:
            try:
                self._setup_rank0(resume, overwrite)
            except DatasetError as exc:
                error = str(exc)
        if self.comm is not None:
            error = self.comm.bcast(error, root=0)
            self.already_complete = self.comm.bcast(self.already_complete, root=0)
        if error is not None:
            raise DatasetError(error)
        if self.already_complete:
            return
        if self.comm is not None:
            self.comm.Barrier()
        self._written = self._scan_written()
        mine = glob.glob(os.path.join(self.partial_dir, f"seg-r{self.rank:04d}-*.h5"))
        if mine:
            self._segment_counter = 1 + max(int(os.path.basename(p)[11:-3]) for p in mine)

    def _setup_rank0(self, resume: bool, overwrite: bool) -> None:
        manifest_path = os.path.join(self.partial_dir, "manifest.json")
        if os.path.exists(self.path):
            if resume and not os.path.isdir(self.partial_dir):
                # The run finished earlier: nothing to do if it is the same dataset.
                try:
                    with h5py.File(self.path, "r") as f:
                        same = (f.attrs.get("status") == COMPLETE
                                and json.loads(f.attrs["spec"]) == self.spec
                                and int(f.attrs["n_samples"]) == self.n_samples
                                and int(f.attrs["seed"]) == self.seed)
                except (OSError, KeyError, ValueError):
                    same = False
                if same:
                    self.already_complete = True
                    return
                raise DatasetError(f"{self.path} exists and is not a complete dataset with this spec; "
                                   "choose another output path or pass overwrite")
            if not resume and not overwrite:
                raise DatasetError(f"{self.path} exists; pass overwrite (--overwrite) to replace it "
                                   "(the old file stays until the new one is complete)")
        if os.path.isdir(self.partial_dir):
            if resume:
                try:
                    with open(manifest_path) as fh:
                        old = json.load(fh)
                except (OSError, ValueError) as exc:
                    raise DatasetError(f"cannot resume: {manifest_path} is unreadable ({exc}); "
                                       "remove the .partial folder or pass overwrite") from exc
                mine = dict(self._manifest)
                theirs = {k: old.get(k) for k in mine}
                if json.loads(json.dumps(mine)) != theirs:
                    diff = [k for k in mine if json.loads(json.dumps(mine[k])) != theirs[k]]
                    raise DatasetError(f"cannot resume {self.path}: the partial run was started with a different "
                                       f"{', '.join(diff)}; rerun with the original settings or pass overwrite")
                self._manifest["created"] = old.get("created")
                return
            if not overwrite:
                raise DatasetError(f"an unfinished run exists at {self.partial_dir}; pass resume (--resume) to "
                                   "continue it or overwrite (--overwrite) to start again")
            shutil.rmtree(self.partial_dir)
        shutil.rmtree(self.shard_dir, ignore_errors=True)
        os.makedirs(self.partial_dir, exist_ok=True)
        self._manifest["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        tmp = manifest_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(self._manifest, fh)
        os.replace(tmp, manifest_path)

    def _segments(self, rank: Optional[int] = None) -> List[str]:
        pattern = "seg-r*-*.h5" if rank is None else f"seg-r{rank:04d}-*.h5"
        return sorted(glob.glob(os.path.join(self.partial_dir, pattern)))

    def _scan_written(self) -> set:
        done = set()
        for seg in self._segments():
            with h5py.File(seg, "r") as f:
                done.update(int(i) for i in f["index"][()])
        return done

    # -- writing ------------------------------------------------------------------------------
    def pending(self) -> np.ndarray:
        """Sorted indices of the samples not yet written (by any rank)."""
        if self.already_complete:
            return np.zeros(0, dtype=np.int64)
        return np.array(sorted(set(range(self.n_samples)) - self._written), dtype=np.int64)

    def is_written(self, index: int) -> bool:
        return self.already_complete or int(index) in self._written

    def write(self, index: int, fields: Mapping[str, np.ndarray], params: Optional[Mapping[str, Any]] = None,
              solver: Optional[Mapping[str, Any]] = None, invalid_reason: str = "") -> None:
        """Add sample ``index``. All declared fields, params and solver values must be given."""
        if self._finalized or self.already_complete:
            raise DatasetError(f"{self.path}: the dataset is already finalized")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.n_samples:
            raise DatasetError(f"sample index {index!r} out of range 0..{self.n_samples - 1}")
        index = int(index)
        if index in self._written:
            raise DatasetError(f"sample {index} was already written to {self.path}")
        params = dict(params or {})
        solver = dict(solver or {})
        if set(fields) != set(self.fields):
            raise DatasetError(f"sample {index}: got fields {sorted(fields)}, the dataset declares {sorted(self.fields)}")
        if set(params) != set(self.param_names):
            raise DatasetError(f"sample {index}: got params {sorted(params)}, the dataset declares {sorted(self.param_names)}")
        if set(solver) != set(self.solver_names):
            raise DatasetError(f"sample {index}: got solver values {sorted(solver)}, "
                               f"the dataset declares {sorted(self.solver_names)}")
        arrays = {}
        for name, value in fields.items():
            fs = self.fields[name]
            arr = np.asarray(value)
            if arr.shape != fs.shape:
                raise DatasetError(f"sample {index}: field {name!r} has shape {arr.shape}, expected {fs.shape}")
            arrays[name] = arr.astype(fs.dtype, copy=True)
        if not invalid_reason:
            for name, arr in arrays.items():
                if not np.all(np.isfinite(arr)):
                    raise DatasetError(f"sample {index}: field {name!r} has non-finite values; "
                                       "write it with invalid_reason=... if it must be recorded")
            if "converged" in solver and not bool(solver["converged"]):
                raise DatasetError(f"sample {index}: solver reports converged=False; an unconverged sample may only "
                                   "be written with invalid_reason=...")
        for group, values in (("params", params), ("solver", solver)):
            for k, v in values.items():
                _value_dtype(v)  # type check now, not at flush time
        self._buffer.append({"index": index, "fields": arrays, "params": params, "solver": solver,
                             "reason": str(invalid_reason)})
        self._written.add(index)
        if len(self._buffer) >= self.flush_every and time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write buffered samples to a new segment (atomically: temp name, then rename)."""
        if not self._buffer:
            return
        buf = sorted(self._buffer, key=lambda s: s["index"])
        name = os.path.join(self.partial_dir, f"seg-r{self.rank:04d}-{self._segment_counter:06d}.h5")
        tmp = name + f".tmp{os.getpid()}"
        with h5py.File(tmp, "w") as f:
            f.attrs["status"] = SEGMENT
            f.create_dataset("index", data=np.array([s["index"] for s in buf], dtype=np.int64))
            for fname in self.fields:
                f.create_dataset(f"fields/{fname}", data=np.stack([s["fields"][fname] for s in buf]))
            for group, names in (("params", self.param_names), ("solver", self.solver_names)):
                for k in names:
                    vals = [s[group][k] for s in buf]
                    f.create_dataset(f"{group}/{k}", data=np.array(vals, dtype=_value_dtype(vals[0])))
            f.create_dataset("reason", data=np.array([s["reason"] for s in buf], dtype=h5py.string_dtype()))
        os.replace(tmp, name)
        self._segment_counter += 1
        self._buffer.clear()
        self._last_flush = time.monotonic()

    # -- finishing ----------------------------------------------------------------------------
    def finalize(self) -> Optional[str]:
        """Merge the segments into the dataset at ``path`` (or the shards + top file with MPI).

        Returns the path on the rank that wrote it (rank 0), else None.
        """
        if self.already_complete:
            self._finalized = True
            return self.path if self.rank == 0 else None
        self.flush()
        if self.world_size == 1:
            self._merge(self._segments(), self.path, expect_all=True)
        else:
            os.makedirs(self.shard_dir, exist_ok=True)
            shard = os.path.join(self.shard_dir, f"shard-{self.rank:04d}.h5")
            error = None
            try:
                self._merge(self._segments(self.rank), shard, expect_all=False)
            except DatasetError as exc:
                error = str(exc)
            errors = self.comm.allgather(error)
            if any(errors):
                raise DatasetError("; ".join(e for e in errors if e))
            if self.rank == 0:
                error = None
                try:
                    self.assemble_shards(self.path, self.world_size)
                except DatasetError as exc:
                    error = str(exc)
            error = self.comm.bcast(error, root=0)
            if error:
                raise DatasetError(error)
        if self.rank == 0:
            shutil.rmtree(self.partial_dir, ignore_errors=True)
        if self.comm is not None:
            self.comm.Barrier()
        self._finalized = True
        return self.path if self.rank == 0 else None

    def _write_header(self, f: h5py.File, n: int) -> None:
        m = self._manifest
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["pde"] = self.pde
        f.attrs["spec"] = json.dumps(self.spec, sort_keys=True)
        f.attrs["created"] = m.get("created") or ""
        f.attrs["version"] = _package_version()
        f.attrs["seed"] = self.seed
        f.attrs["n_samples"] = n
        f.attrs["status"] = WRITING
        g = f.create_group("grid")
        g.attrs["axes"] = json.dumps(list(self.grid.coords))
        for axis, c in self.grid.coords.items():
            d = g.create_dataset(axis, data=c)
            if axis in self.grid.boundary:
                d.attrs["boundary"] = self.grid.boundary[axis]

    def _merge(self, segments: List[str], target: str, expect_all: bool) -> None:
        """Copy segment rows into ``target`` in increasing sample order, atomically."""
        where: Dict[int, tuple] = {}
        for seg in segments:
            with h5py.File(seg, "r") as f:
                for row, i in enumerate(f["index"][()]):
                    where.setdefault(int(i), (seg, row))
        indices = sorted(where)
        if expect_all:
            missing = sorted(set(range(self.n_samples)) - set(indices))
            if missing:
                raise DatasetError(f"{self.path}: cannot finalize, {len(missing)} samples were never written "
                                   f"(first: {missing[:10]}); resume the run to write them")
            n = self.n_samples
        else:
            n = len(indices)
        tmp = target + ".writing"
        with h5py.File(tmp, "w") as out:
            self._write_header(out, self.n_samples)
            if not expect_all:
                out.attrs["shard_rows"] = n
                out.create_dataset("index", data=np.array(indices, dtype=np.int64))
            dsets = {}
            for name, fs in self.fields.items():
                dsets[name] = out.create_dataset(f"fields/{name}", shape=(n,) + fs.shape, dtype=fs.dtype,
                                                 chunks=(1,) + fs.shape if n else None, fletcher32=bool(n))
                dsets[name].attrs["role"] = fs.role
                if fs.description:
                    dsets[name].attrs["description"] = fs.description
            small: Dict[str, list] = {f"{g}/{k}": [None] * n for g, names in
                                      (("params", self.param_names), ("solver", self.solver_names)) for k in names}
            reasons = [""] * n
            by_seg: Dict[str, List[tuple]] = {}
            for row_out, i in enumerate(indices):
                seg, row = where[i]
                by_seg.setdefault(seg, []).append((row_out, row))
            for seg, pairs in by_seg.items():
                with h5py.File(seg, "r") as f:
                    for name in self.fields:
                        src = f[f"fields/{name}"]
                        for row_out, row in pairs:
                            dsets[name][row_out] = src[row]
                    for key in small:
                        vals = f[key][()]
                        for row_out, row in pairs:
                            v = vals[row]
                            small[key][row_out] = v.decode() if isinstance(v, bytes) else v
                    rs = f["reason"][()]
                    for row_out, row in pairs:
                        r = rs[row]
                        reasons[row_out] = r.decode() if isinstance(r, bytes) else str(r)
            for key, vals in small.items():
                if n:
                    out.create_dataset(key, data=np.array(vals, dtype=_value_dtype(vals[0])))
                else:
                    out.create_dataset(key, shape=(0,), dtype=np.float64)
            out.create_dataset("samples/valid", data=np.array([r == "" for r in reasons], dtype=bool))
            out.create_dataset("samples/reason", data=np.array(reasons, dtype=h5py.string_dtype()))
            out.attrs["status"] = COMPLETE
        os.replace(tmp, target)

    @staticmethod
    def assemble_shards(path: Union[str, os.PathLike], world_size: int) -> str:
        """Write the top file at ``path``: virtual datasets over ``<path>.shards/shard-*.h5``."""
        path = os.path.abspath(os.fspath(path))
        shard_dir = path + ".shards"
        shards = [os.path.join(shard_dir, f"shard-{r:04d}.h5") for r in range(world_size)]
        missing = [s for s in shards if not os.path.exists(s)]
        if missing:
            raise DatasetError(f"cannot assemble {path}: missing shards {missing}")
        infos = []
        for s in shards:
            with h5py.File(s, "r") as f:
                infos.append({
                    "path": s, "index": f["index"][()],
                    "fields": {k: (d.shape, d.dtype, dict(d.attrs)) for k, d in f["fields"].items()},
                    "attrs": dict(f.attrs),
                })
        n = int(infos[0]["attrs"]["n_samples"])
        owner = np.full(n, -1, dtype=np.int64)
        for r, info in enumerate(infos):
            idx = info["index"]
            if np.any(owner[idx] >= 0):
                raise DatasetError(f"cannot assemble {path}: sample(s) {np.flatnonzero(owner[idx] >= 0)[:10]} "
                                   "written by more than one rank")
            owner[idx] = r
        if np.any(owner < 0):
            raise DatasetError(f"cannot assemble {path}: {int(np.sum(owner < 0))} samples written by no rank "
                               f"(first: {np.flatnonzero(owner < 0)[:10].tolist()})")
        tmp = path + ".writing"
        with h5py.File(tmp, "w") as out:
            with h5py.File(shards[0], "r") as f0:
                for k, v in f0.attrs.items():
                    if k not in ("shard_rows",):
                        out.attrs[k] = v
                f0.copy(f0["grid"], out, "grid")
            out.attrs["status"] = WRITING
            out.attrs["shards"] = json.dumps([os.path.relpath(s, os.path.dirname(path)) for s in shards])
            for name, (shape, dtype, attrs) in infos[0]["fields"].items():
                layout = h5py.VirtualLayout(shape=(n,) + tuple(shape[1:]), dtype=dtype)
                for info in infos:
                    rel = os.path.relpath(info["path"], os.path.dirname(path))
                    src_shape = info["fields"][name][0]
                    src = h5py.VirtualSource(rel, f"fields/{name}", shape=src_shape)
                    idx = info["index"]
                    # map maximal runs of consecutive sample indices with one slice each
                    start = 0
                    while start < len(idx):
                        stop = start + 1
                        while stop < len(idx) and idx[stop] == idx[stop - 1] + 1:
                            stop += 1
                        layout[int(idx[start]):int(idx[stop - 1]) + 1] = src[start:stop]
                        start = stop
                d = out.create_virtual_dataset(f"fields/{name}", layout)
                for k, v in attrs.items():
                    d.attrs[k] = v
            # the small per-sample arrays are copied (a few numbers per sample)
            for group in ("params", "solver", "samples"):
                keys = set()
                for info in infos:
                    with h5py.File(info["path"], "r") as f:
                        if group in f:
                            keys.update(f[group].keys())
                for key in sorted(keys):
                    parts = []
                    for info in infos:
                        with h5py.File(info["path"], "r") as f:
                            parts.append((info["index"], f[f"{group}/{key}"][()]))
                    dtype = parts[0][1].dtype
                    full = np.empty(n, dtype=object if dtype.kind in "OS" else dtype)
                    for idx, vals in parts:
                        full[idx] = vals
                    if dtype.kind in "OS":
                        full = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in full],
                                        dtype=h5py.string_dtype())
                    out.create_dataset(f"{group}/{key}", data=full)
            out.attrs["status"] = COMPLETE
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        """Flush without finalizing (what happens when the ``with`` block ends by an exception)."""
        if not self._finalized and not self.already_complete:
            self.flush()

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        else:
            try:
                self.close()
            except Exception:  # never mask the original error
                pass


# --------------------------------------------------------------------------------------- reader
def _open_h5(path: str) -> h5py.File:
    if not os.path.exists(path):
        hint = ""
        if os.path.isdir(path + ".partial"):
            hint = " (an unfinished run exists beside it: resume it to complete the dataset)"
        raise DatasetError(f"no dataset at {path}{hint}")
    if os.path.isdir(path):
        raise DatasetError(f"{path} is a folder, not a dataset file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file (truncated or corrupt?): {exc}") from exc


def _check_header(f: h5py.File, path: str) -> None:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT:
        raise DatasetError(f"{path} is an HDF5 file but not a neuralops dataset (root attribute format={fmt!r}, "
                           f"expected {FORMAT!r})")
    status = f.attrs.get("status")
    if status == SEGMENT or path.endswith(".writing") or status == WRITING:
        raise DatasetError(f"{path} is still being written (status={status!r}); it is not a complete dataset")
    if status != COMPLETE:
        raise DatasetError(f"{path} is not marked complete (status={status!r})")
    version = int(f.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise DatasetError(f"{path} has format_version {version}; this neuralops reads up to {FORMAT_VERSION}")


class Dataset:
    """Lazy, read-only view of a dataset file; safe to pass to DataLoader worker processes.

    The HDF5 handle is opened on first use in each process (h5py handles must not cross a fork).
    """

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = os.path.abspath(os.fspath(path))
        self._file: Optional[h5py.File] = None
        self._pid: Optional[int] = None
        f = self._h5
        self.pde = str(f.attrs["pde"])
        self.spec = json.loads(f.attrs["spec"])
        self.seed = int(f.attrs["seed"])
        self.n_samples = int(f.attrs["n_samples"])
        self.created = str(f.attrs.get("created", ""))
        self.version = str(f.attrs.get("version", ""))
        self.format_version = int(f.attrs["format_version"])
        if "fields" not in f or not len(f["fields"]):
            raise DatasetError(f"{self.path} has no fields")
        self.fields = list(f["fields"].keys())
        self._shapes = {k: tuple(f["fields"][k].shape[1:]) for k in self.fields}
        self._dtypes = {k: f["fields"][k].dtype for k in self.fields}
        self._roles = {k: str(f["fields"][k].attrs.get("role", "")) for k in self.fields}
        g = f["grid"]
        axes = json.loads(g.attrs["axes"]) if "axes" in g.attrs else list(g.keys())
        self.grid = Grid({a: g[a][()] for a in axes},
                         {a: str(g[a].attrs["boundary"]) for a in axes if "boundary" in g[a].attrs})
        self.param_names = list(f["params"].keys()) if "params" in f else []
        self.solver_names = list(f["solver"].keys()) if "solver" in f else []
        self.valid = f["samples/valid"][()].astype(bool) if "samples/valid" in f else np.ones(self.n_samples, bool)
        reasons = f["samples/reason"][()] if "samples/reason" in f else []
        self.invalid_reasons = {i: (r.decode() if isinstance(r, bytes) else str(r))
                                for i, r in enumerate(reasons) if not self.valid[i]}

    @property
    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            f = _open_h5(self.path)
            try:
                _check_header(f, self.path)
            except DatasetError:
                f.close()
                raise
            self._file, self._pid = f, os.getpid()
        return self._file

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        state["_pid"] = None
        return state

    def __len__(self) -> int:
        return self.n_samples

    def field_shape(self, name: str) -> tuple:
        self._check_field(name)
        return self._shapes[name]

    def dtype(self, name: str) -> np.dtype:
        self._check_field(name)
        return self._dtypes[name]

    def role(self, name: str) -> str:
        self._check_field(name)
        return self._roles[name]

    @property
    def inputs(self) -> List[str]:
        return [k for k in self.fields if self._roles[k] == "input"]

    @property
    def outputs(self) -> List[str]:
        return [k for k in self.fields if self._roles[k] == "output"]

    @property
    def states(self) -> List[str]:
        return [k for k in self.fields if self._roles[k] == "state"]

    def _check_field(self, name: str) -> None:
        if name not in self._shapes:
            raise DatasetError(f"{self.path} has no field {name!r}; fields: {', '.join(self.fields)}")

    def _check_index(self, index):
        n = self.n_samples
        if isinstance(index, slice):
            return index
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            i = int(index)
            if not -n <= i < n:
                raise DatasetError(f"sample index {index} out of range for {self.path} ({n} samples)")
            return i % n
        arr = np.asarray(index)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise DatasetError(f"boolean index must have shape ({n},), got {arr.shape}")
            return np.flatnonzero(arr)
        if arr.dtype.kind not in "iu":
            raise DatasetError(f"sample index must be an int, slice, or integer array, got {index!r}")
        if arr.size and (arr.min() < -n or arr.max() >= n):
            raise DatasetError(f"sample index out of range for {self.path} ({n} samples): "
                               f"{arr[(arr < -n) | (arr >= n)][:5].tolist()}")
        return arr % n

    def read(self, name: str, index=slice(None), frames=None) -> np.ndarray:
        """Field ``name`` for the given sample(s); ``frames`` optionally selects the second axis."""
        self._check_field(name)
        idx = self._check_index(index)
        d = self._h5["fields"][name]
        try:
            if isinstance(idx, np.ndarray):
                # h5py wants increasing, unique indices: read those, then restore the asked order
                uniq, inv = np.unique(idx, return_inverse=True)
                block = np.stack([self._read_one(d, int(i), frames) for i in uniq]) if len(uniq) else \
                    np.zeros((0,) + self._read_one(d, 0, frames).shape, dtype=d.dtype)
                return block[inv]
            if isinstance(idx, slice):
                rows = range(*idx.indices(self.n_samples))
                if frames is None:
                    return d[idx]
                return np.stack([self._read_one(d, i, frames) for i in rows]) if len(rows) else \
                    np.zeros((0,) + self._read_one(d, 0, frames).shape, dtype=d.dtype)
            return self._read_one(d, idx, frames)
        except OSError as exc:
            raise DatasetError(f"{self.path}: reading field {name!r} at {index!r} failed "
                               f"(corrupt or truncated file?): {exc}") from exc

    @staticmethod
    def _read_one(d, i: int, frames) -> np.ndarray:
        if frames is None:
            return d[i]
        if isinstance(frames, (slice, int, np.integer)):
            return d[i, frames]
        fr = np.asarray(frames, dtype=np.int64)
        if fr.ndim == 1 and fr.size and np.all(np.diff(fr) > 0) and fr.min() >= 0:
            return d[i, fr.min():fr.max() + 1][fr - fr.min()]
        return d[i][fr]

    def __getitem__(self, index) -> Dict[str, np.ndarray]:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise DatasetError(f"dataset[...] takes one integer sample index, got {index!r}; use read() for more")
        return {k: self.read(k, index) for k in self.fields}

    def params(self, name: str) -> np.ndarray:
        if name not in self.param_names:
            raise DatasetError(f"{self.path} has no param {name!r}; params: {', '.join(self.param_names) or '(none)'}")
        return self._h5["params"][name][()]

    def solver(self, name: str) -> np.ndarray:
        if name not in self.solver_names:
            raise DatasetError(f"{self.path} has no solver record {name!r}; "
                               f"records: {', '.join(self.solver_names) or '(none)'}")
        v = self._h5["solver"][name][()]
        if v.dtype.kind in "OS":
            v = np.array([x.decode() if isinstance(x, bytes) else str(x) for x in v], dtype=object)
        return v

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __enter__(self) -> "Dataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Dataset({self.path!r}, pde={self.pde!r}, n_samples={self.n_samples}, fields={self.fields})"


def open_dataset(path: Union[str, os.PathLike]) -> Dataset:
    """Open a complete dataset lazily; :class:`DatasetError` says clearly why a file is refused."""
    return Dataset(path)


# --------------------------------------------------------------------------------------- validate
def validate(path: Union[str, os.PathLike], deep: bool = True) -> List[str]:
    """Every way in which ``path`` violates the data contract ([] when it conforms).

    With ``deep`` every chunk of every field is read, so checksum failures (corruption) and
    non-finite values in valid samples are found.
    """
    path = os.path.abspath(os.fspath(path))
    problems: List[str] = []
    try:
        f = _open_h5(path)
    except DatasetError as exc:
        return [str(exc)]
    with f:
        a = f.attrs
        fmt = a.get("format")
        if fmt != FORMAT:
            return [f"root attribute format is {fmt!r}, expected {FORMAT!r}: not a neuralops dataset"]
        for key in ("format_version", "pde", "spec", "created", "version", "seed", "n_samples", "status"):
            if key not in a:
                problems.append(f"root attribute {key!r} is missing")
        if a.get("status") != COMPLETE:
            problems.append(f"status is {a.get('status')!r}: the file is still being written or was never finished")
        try:
            if int(a.get("format_version", -1)) > FORMAT_VERSION:
                problems.append(f"format_version {a['format_version']} is newer than supported ({FORMAT_VERSION})")
        except (TypeError, ValueError):
            problems.append(f"format_version {a.get('format_version')!r} is not an integer")
        try:
            spec = json.loads(a.get("spec", ""))
            if not isinstance(spec, dict):
                problems.append("spec is not a JSON object")
        except (TypeError, ValueError):
            problems.append("spec is not valid JSON")
        try:
            n = int(a.get("n_samples", -1))
            if n <= 0:
                problems.append(f"n_samples must be positive, got {n}")
        except (TypeError, ValueError):
            n = -1
            problems.append(f"n_samples {a.get('n_samples')!r} is not an integer")
        # grid
        axis_len: Dict[str, int] = {}
        if "grid" not in f:
            problems.append("group grid/ is missing")
        else:
            g = f["grid"]
            for axis in g:
                d = g[axis]
                if not isinstance(d, h5py.Dataset) or d.ndim != 1:
                    problems.append(f"grid/{axis} must be a 1-D dataset")
                    continue
                axis_len[axis] = d.shape[0]
                if axis != TIME_AXIS:
                    bc = d.attrs.get("boundary")
                    if bc is None:
                        problems.append(f"grid/{axis} has no boundary attribute")
                    elif bc not in BOUNDARIES:
                        problems.append(f"grid/{axis} boundary {bc!r} is not one of {BOUNDARIES}")
                vals = d[()]
                if not np.all(np.isfinite(vals)):
                    problems.append(f"grid/{axis} has non-finite coordinates")
                elif vals.size > 1 and not (np.all(np.diff(vals) > 0)):
                    problems.append(f"grid/{axis} is not strictly increasing")
        spatial = [ax for ax in axis_len if ax != TIME_AXIS]
        # fields
        valid = None
        if "samples/valid" in f:
            valid = f["samples/valid"][()].astype(bool)
            if n > 0 and valid.shape != (n,):
                problems.append(f"samples/valid has shape {valid.shape}, expected ({n},)")
                valid = None
        else:
            problems.append("samples/valid is missing")
        if "samples/reason" not in f:
            problems.append("samples/reason is missing")
        if "fields" not in f or not len(f["fields"]):
            problems.append("group fields/ is missing or empty")
        else:
            for name, d in f["fields"].items():
                where = f"fields/{name}"
                if not isinstance(d, h5py.Dataset):
                    problems.append(f"{where} is not a dataset")
                    continue
                if n > 0 and d.shape[0] != n:
                    problems.append(f"{where} has {d.shape[0]} samples, n_samples is {n}")
                role = d.attrs.get("role")
                if role not in ROLES:
                    problems.append(f"{where} role {role!r} is not one of {ROLES}")
                if d.dtype.name not in FIELD_DTYPES:
                    problems.append(f"{where} dtype {d.dtype} is not one of {FIELD_DTYPES}")
                if not d.is_virtual and d.chunks != (1,) + d.shape[1:]:
                    problems.append(f"{where} chunks {d.chunks} are not one sample per chunk {(1,) + d.shape[1:]}")
                trailing = d.shape[d.ndim - len(spatial):] if spatial else ()
                expect = tuple(axis_len[ax] for ax in spatial)
                if spatial and tuple(trailing) != expect:
                    problems.append(f"{where} spatial shape {tuple(trailing)} does not match grid {expect} ({spatial})")
                if TIME_AXIS in axis_len and d.ndim >= 2 + len(spatial) and d.shape[1] != axis_len[TIME_AXIS] \
                        and role != "input":
                    problems.append(f"{where} has {d.shape[1]} time steps, grid/t has {axis_len[TIME_AXIS]}")
                if deep:
                    for i in range(d.shape[0]):
                        try:
                            block = d[i]
                        except OSError as exc:
                            problems.append(f"{where}[{i}] cannot be read (corrupt or truncated): {exc}")
                            if sum(p.startswith(where) for p in problems) > 10:
                                problems.append(f"{where}: stopped after 10 unreadable samples")
                                break
                            continue
                        if (valid is None or valid[i]) and not np.all(np.isfinite(block)):
                            problems.append(f"{where}[{i}] has non-finite values but is marked valid")
        for group in ("params", "solver"):
            if group in f:
                for key, d in f[group].items():
                    if n > 0 and d.shape != (n,):
                        problems.append(f"{group}/{key} has shape {d.shape}, expected ({n},)")
        if "solver/converged" in f and valid is not None:
            conv = f["solver/converged"][()].astype(bool)
            if conv.shape == valid.shape:
                bad = np.flatnonzero(~conv & valid)
                if bad.size:
                    problems.append(f"{bad.size} samples are unconverged but marked valid (first: {bad[:10].tolist()})")
        if "solver/residual" in f and valid is not None:
            try:
                tol = float(json.loads(a.get("spec", "{}")).get("rtol", np.inf))
            except (TypeError, ValueError, AttributeError):
                tol = np.inf
            res = f["solver/residual"][()]
            if res.shape == valid.shape and np.isfinite(tol):
                bad = np.flatnonzero((res > tol) & valid)
                if bad.size:
                    problems.append(f"{bad.size} valid samples have a true residual above rtol={tol} "
                                    f"(first: {bad[:10].tolist()})")
    return problems


# --------------------------------------------------------------------------------------- describe
def _summary(values: np.ndarray) -> str:
    v = np.asarray(values)
    if v.dtype == bool:
        return f"{int(v.sum())}/{v.size} true"
    if v.dtype.kind in "OSU":
        uniq, counts = np.unique(v.astype(str), return_counts=True)
        return ", ".join(f"{u}: {c}" for u, c in zip(uniq[:6], counts[:6]))
    v = v.astype(np.float64)
    if v.size == 0:
        return "(empty)"
    return f"min {v.min():.4g}  mean {v.mean():.4g}  max {v.max():.4g}  total {v.sum():.4g}"


def describe(path: Union[str, os.PathLike]) -> str:
    """Human-readable summary: fields, shapes, grid, spec, per-sample and solver statistics."""
    ds = open_dataset(path)
    lines = [f"dataset   {ds.path}",
             f"pde       {ds.pde}",
             f"samples   {ds.n_samples} ({int(ds.valid.sum())} valid)",
             f"seed      {ds.seed}",
             f"format    {FORMAT} v{ds.format_version}, written by neuralops {ds.version} on {ds.created}"]
    with h5py.File(ds.path, "r") as f:
        if "shards" in f.attrs:
            lines.append(f"shards    {', '.join(json.loads(f.attrs['shards']))} (virtual datasets)")
    lines.append("fields")
    for k in ds.fields:
        lines.append(f"  {k:<14} {ds.role(k):<7} (N,{','.join(map(str, ds.field_shape(k)))}) {ds.dtype(k)}")
    lines.append("grid")
    for axis, c in ds.grid.coords.items():
        bc = ds.grid.boundary.get(axis, "")
        lines.append(f"  {axis:<3} {c.size:>6} points in [{c.min():.4g}, {c.max():.4g}]  {bc}")
    if ds.param_names:
        lines.append("params")
        for p in ds.param_names:
            lines.append(f"  {p:<14} {_summary(ds.params(p))}")
    if ds.solver_names:
        lines.append("solver")
        for s in ds.solver_names:
            lines.append(f"  {s:<14} {_summary(ds.solver(s))}")
    if ds.invalid_reasons:
        lines.append(f"invalid samples ({len(ds.invalid_reasons)})")
        for i, r in list(ds.invalid_reasons.items())[:10]:
            lines.append(f"  {i}: {r}")
    lines.append("spec")
    lines.extend("  " + line for line in json.dumps(ds.spec, indent=2, sort_keys=True).splitlines())
    ds.close()
    return "\n".join(lines)
