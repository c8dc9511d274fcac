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
atomically (after an fsync), so after a SIGKILL every segment present is complete. Segments
store fields as the final file does (one sample per chunk with its fletcher32 checksum).
``finalize()`` merges the segments in sample order into ``<path>.writing``, copying those chunks as
they are (no second checksum pass; a chunk damaged in a segment is caught by its checksum in the
final file), and renames it to ``<path>`` only once it is complete and fsync'ed: a file at
``<path>`` is always a whole dataset, and a half-written one is never found there. The merge
deletes segments batch by batch once their rows are on disk and marked merged (see
:meth:`DatasetWriter._merge`), so it needs no second copy of the data, and a kill while finalising
is resumed in place. Readers refuse ``*.writing`` files and segment files (their ``status`` is not
"complete"). A run started again with ``resume=True`` and the same spec skips every sample already
written and ends with the same file contents as an uninterrupted run (up to wall-clock fields such
as ``solver/seconds``). One writer per output: ``<path>.lock`` (:class:`OutputLock`).

MPI
---
With ``comm`` (an mpi4py communicator) each rank writes only the samples it is given, into its own
segments, then its own shard ``<path>.shards/shard-<rank>.h5``; rank 0 writes the small top file
``<path>`` whose fields are HDF5 virtual datasets over the shards (nothing is copied; the fill
value is NaN and readers check that every shard is there with its recorded shape). A run can be
resumed with any number of ranks: rank ``r`` takes over the segments and shards of every former
rank ``q`` with ``q % world_size == r``.

Invalid samples
---------------
A sample written with ``invalid_reason`` (a blown-up trajectory) is stored and marked; readers
skip it unless ``open_dataset(path, include_invalid=True)``.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import glob
import json
import os
import shutil
import signal
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import h5py
import numpy as np

from .spec import same_spec

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
    "DatasetError",
    "FieldSpec",
    "Grid",
    "DatasetWriter",
    "Dataset",
    "open_dataset",
    "validate",
    "describe",
    "spec_rtol",
    "OutputLock",
    "StaleLockWarning",
    "Interrupted",
    "interruptible",
    "FORMAT",
    "FORMAT_VERSION",
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
    raise DatasetError(
        f"spec value {obj!r} of type {type(obj).__name__} is not JSON-serialisable; "
        "use numbers, strings, booleans, lists and dicts"
    )


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
        return {"shape": list(self.shape), "role": self.role, "dtype": self.dtype, "description": self.description}


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
                raise DatasetError(
                    f"boundary {bc!r} of axis {name!r} is not allowed; use one of {', '.join(BOUNDARIES)}"
                )
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


# --------------------------------------------------------------------------------------- durability
def _fsync_path(path: str) -> None:
    """fsync a file (or a folder, so that a rename or unlink inside it is on disk)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _durable_replace(tmp: str, target: str) -> None:
    """Rename ``tmp`` to ``target`` only after ``tmp`` is on disk, then make the rename durable."""
    _fsync_path(tmp)
    os.replace(tmp, target)
    _fsync_path(os.path.dirname(target) or ".")


def _row_writer(d: h5py.Dataset):
    """``write(row, values)``: store one sample row of ``d`` with a single low-level HDF5 write (h5py's
    ``d[row] = values`` spends about twice the write itself on building its selections)."""
    count = (1,) + tuple(d.shape[1:])
    mspace = h5py.h5s.create_simple(count)
    fspace = d.id.get_space()
    rest = (0,) * (len(count) - 1)

    def write(row: int, values: np.ndarray) -> None:
        fspace.select_hyperslab((int(row),) + rest, count)
        d.id.write(mspace, fspace, np.ascontiguousarray(values, dtype=d.dtype).reshape(count))

    return write


def _filters(d: h5py.Dataset) -> list:
    plist = d.id.get_create_plist()
    return [plist.get_filter(k)[:3] for k in range(plist.get_nfilters())]


def _chunk_copier(src: h5py.Dataset, dst: h5py.Dataset):
    """``copy(row_dst, row_src)`` that moves one sample's stored chunk from ``src`` to ``dst`` as it is on
    disk (filtered bytes and fletcher32 checksum, no decoding or re-encoding), or None when the two do not
    store samples alike (chunking, dtype, filters), e.g. a contiguous segment of an older version. The
    checksum travels with the bytes, so a chunk damaged in a segment is found by the readers and
    :func:`validate` of the final file, as one damaged there."""
    if (
        src.chunks is None
        or src.chunks != dst.chunks
        or src.chunks[1:] != src.shape[1:]
        or src.chunks[0] != 1
        or src.dtype != dst.dtype
        or src.shape[1:] != dst.shape[1:]
        or _filters(src) != _filters(dst)
    ):
        return None
    rest = (0,) * (len(src.shape) - 1)
    read, write = src.id.read_direct_chunk, dst.id.write_direct_chunk

    def copy(row_dst: int, row_src: int) -> None:
        mask, raw = read((row_src,) + rest)
        write((row_dst,) + rest, raw, mask)

    return copy


def _remove_files(paths: Sequence[str]) -> None:
    folders = set()
    for p in paths:
        try:
            os.remove(p)
            folders.add(os.path.dirname(p))
        except FileNotFoundError:
            pass
    for d in folders:
        _fsync_path(d)


# --------------------------------------------------------------------------------------- lock
class StaleLockWarning(UserWarning):
    """A writer took over the lock of a process that no longer runs."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """One writer per output: ``<path>.lock`` holds the owner's pid, host and start time.

    The lock is an ``flock`` on that file, held as long as the writer lives, so the operating
    system releases it when the owner dies (even by SIGKILL); the file's contents name the owner in
    the refusal message. A lock file left behind by a process that no longer runs on this host is
    taken over with a :class:`StaleLockWarning`; one left by a process on another host is refused
    (its owner cannot be checked from here), and the message says how to remove it.
    """

    def __init__(self, output: str):
        self.output = output
        self.path = output + ".lock"
        self._fd: Optional[int] = None
        self._ino: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    @staticmethod
    def _read(fd: int) -> dict:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            raw = os.read(fd, 4096).decode(errors="replace")
            return json.loads(raw) if raw.strip() else {}
        except (OSError, ValueError):
            return {}

    def _describe(self, owner: dict) -> str:
        me = " (this process)" if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname() else ""
        return f"pid {owner.get('pid', '?')}{me} on host {owner.get('host', '?')}, since {owner.get('since', '?')}"

    def acquire(self) -> None:
        host = socket.gethostname()
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise DatasetError(
                    f"cannot create the lock file {self.path}: {exc.strerror or exc}; "
                    "the output folder must be writable"
                ) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = self._read(fd)
                os.close(fd)
                raise DatasetError(
                    f"{self.output} is being written by another writer ({self._describe(owner)}; "
                    f"lock {self.path}); two writers on one output are refused: wait for it to "
                    "finish or stop it, or choose another --out"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # released (and removed) between open and flock: lock the new file
                os.close(fd)
                continue
            owner = self._read(fd)
            if owner and owner.get("pid") != os.getpid():
                if owner.get("host") not in (None, host):
                    os.close(fd)
                    raise DatasetError(
                        f"{self.output} is locked by a writer on another host ({self._describe(owner)}; "
                        f"lock {self.path}); if no writer runs there any more, remove {self.path}"
                    )
                state = (
                    "no longer runs"
                    if not _pid_alive(int(owner.get("pid", -1)))
                    else "holds no lock (its pid was reused)"
                )
                warnings.warn(
                    f"taking over the stale lock {self.path}: its owner ({self._describe(owner)}) {state}",
                    StaleLockWarning,
                    stacklevel=3,
                )
            me = {
                "pid": os.getpid(),
                "host": host,
                "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(me).encode())
            os.fsync(fd)
            self._fd, self._ino = fd, os.fstat(fd).st_ino
            return
        raise DatasetError(f"could not lock {self.path}: it keeps being replaced by another process")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if os.stat(self.path).st_ino == self._ino:
                os.remove(self.path)
        except OSError:
            pass
        try:
            os.close(self._fd)
        except OSError:
            pass
        self._fd = None

    def __del__(self):  # an abandoned writer must not keep its output locked
        try:
            self.release()
        except Exception:
            pass


# --------------------------------------------------------------------------------------- signals
class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by :func:`interruptible` when SIGINT or SIGTERM arrives.

    A :class:`DatasetWriter` that is closed while it propagates (``with`` block, or ``close()`` in
    an ``except`` clause) flushes its finished samples and records ``partial_dir`` and ``saved``
    (samples on disk) on the exception, so the caller can print where the partial run is.
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.partial_dir: Optional[str] = None
        self.saved: Optional[int] = None
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """128 + signal number: 130 for SIGINT, 143 for SIGTERM (the shell convention)."""
        return 128 + self.signum


class interruptible:
    """Context manager: SIGINT/SIGTERM raise :class:`Interrupted` (once) instead of killing the process.

    The exception unwinds through the generator, whose writer flushes what is finished. A second
    signal while that happens gets the previous handler (default: terminate). No-op outside the
    main thread.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self._old: Dict[int, Any] = {}

    def _handler(self, signum, frame):
        for s, h in self._old.items():
            signal.signal(s, h)
        raise Interrupted(signum)

    def __enter__(self) -> "interruptible":
        import threading

        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()


# --------------------------------------------------------------------------------------- writer
class DatasetWriter:
    """Write a dataset sample by sample, crash-safely and resumably (see the module docstring).

    Use as a context manager: leaving the block normally finalizes the dataset; leaving it by an
    exception flushes what was written so far (for ``resume=True``) and leaves no file at ``path``.
    """

    #: finalize() makes merged rows durable and deletes their segments every this many bytes of
    #: field data, so finalising needs this much extra disk space, not a second copy of the data.
    MERGE_BATCH_BYTES = 64 << 20

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
        self._closed = False
        self._lock = OutputLock(self.path)
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
                self._lock.acquire()
                try:
                    self._setup_rank0(resume, overwrite)
                except BaseException:
                    self._lock.release()
                    raise
                if self.already_complete:
                    self._lock.release()
            except DatasetError as exc:
                error = str(exc)
            except OSError as exc:  # read-only folder, full disk, ...: one line that names the path
                error = (
                    f"cannot prepare {self.path}: {exc.strerror or exc}"
                    f"{' (' + str(exc.filename) + ')' if exc.filename else ''}"
                )
        if self.comm is not None:
            error = self.comm.bcast(error, root=0)
            self.already_complete = self.comm.bcast(self.already_complete, root=0)
        if error is not None:
            exc = DatasetError(error)
            exc.collective = True  # raised on every rank alike (broadcast): no rank is left in a collective
            raise exc
        if self.already_complete:
            return
        if self.comm is not None:
            self.comm.Barrier()
        self._written = self._scan_written()
        mine = glob.glob(os.path.join(self.partial_dir, f"seg-r{self.rank:04d}-*.h5"))
        if mine:
            self._segment_counter = 1 + max(int(os.path.basename(p)[11:-3]) for p in mine)

    def _same_dataset(self, path: str) -> bool:
        try:
            with h5py.File(path, "r") as f:
                return (
                    f.attrs.get("status") == COMPLETE
                    and same_spec(json.loads(f.attrs["spec"]), self.spec, self.pde)  # datagen.spec
                    and int(f.attrs["n_samples"]) == self.n_samples
                    and int(f.attrs["seed"]) == self.seed
                    and not _virtual_source_problems(f, path)
                )
        except (OSError, KeyError, ValueError):
            return False

    def _setup_rank0(self, resume: bool, overwrite: bool) -> None:
        manifest_path = os.path.join(self.partial_dir, "manifest.json")
        if os.path.exists(self.path):
            if resume and self._same_dataset(self.path):
                # The run finished earlier (possibly killed after the final rename, before the
                # partial folder was removed): nothing left to do.
                shutil.rmtree(self.partial_dir, ignore_errors=True)
                self.already_complete = True
                return
            if resume and not os.path.isdir(self.partial_dir):
                raise DatasetError(
                    f"{self.path} exists and is not a complete dataset with this spec; "
                    "choose another output path or pass overwrite"
                )
            if not resume and not overwrite:
                raise DatasetError(
                    f"{self.path} exists; pass overwrite (--overwrite) to replace it "
                    "(the old file stays until the new one is complete)"
                )
        if os.path.isdir(self.partial_dir):
            if resume:
                try:
                    with open(manifest_path) as fh:
                        old = json.load(fh)
                except (OSError, ValueError) as exc:
                    raise DatasetError(
                        f"cannot resume: {manifest_path} is unreadable ({exc}); "
                        "remove the .partial folder or pass overwrite"
                    ) from exc
                mine = dict(self._manifest)
                theirs = {k: old.get(k) for k in mine}
                if same_spec(theirs.get("spec"), mine.get("spec"), self.pde):  # an earlier version's flat form
                    theirs["spec"] = json.loads(json.dumps(mine.get("spec")))
                if json.loads(json.dumps(mine)) != theirs:
                    diff = [k for k in mine if json.loads(json.dumps(mine[k])) != theirs[k]]
                    raise DatasetError(
                        f"cannot resume {self.path}: the partial run was started with a different "
                        f"{', '.join(diff)}; rerun with the original settings or pass overwrite"
                    )
                self._manifest["created"] = old.get("created")
                self._drop_unreadable_merges()
                return
            if not overwrite:
                raise DatasetError(
                    f"an unfinished run exists at {self.partial_dir}; pass resume (--resume) to "
                    "continue it or overwrite (--overwrite) to start again"
                )
            shutil.rmtree(self.partial_dir)
        shutil.rmtree(self.shard_dir, ignore_errors=True)
        _remove_files([self.path + ".writing"])
        os.makedirs(self.partial_dir, exist_ok=True)
        self._manifest["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        tmp = manifest_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(self._manifest, fh)
        _durable_replace(tmp, manifest_path)

    # -- what is on disk ----------------------------------------------------------------------
    def _segments(self, rank: Optional[int] = None) -> List[str]:
        pattern = "seg-r*-*.h5" if rank is None else f"seg-r{rank:04d}-*.h5"
        return sorted(glob.glob(os.path.join(self.partial_dir, pattern)))

    @staticmethod
    def _owner(path: str) -> int:
        """The rank that wrote a segment or merge file (a single-process file: 0)."""
        base = os.path.basename(path)
        for prefix in ("seg-r", "old-r", "shard-"):
            if base.startswith(prefix):
                return int(base[len(prefix) : len(prefix) + 4])
        return 0

    def _merge_files(self) -> List[str]:
        """Files that hold merged rows of an interrupted finalize: the single-process ``<path>.writing``,
        shards (finished or ``.writing``) and earlier merge targets moved into the partial folder."""
        files = [self.path + ".writing"] if os.path.exists(self.path + ".writing") else []
        files += sorted(glob.glob(os.path.join(self.shard_dir, "shard-*.h5")))
        files += sorted(glob.glob(os.path.join(self.shard_dir, "shard-*.h5.writing")))
        files += sorted(glob.glob(os.path.join(self.partial_dir, "old-r*-*.h5")))
        return files

    @staticmethod
    def _merged_rows(path: str):
        """``(rows, indices)`` of the rows of a merge file that are complete on disk, or None when the
        file is not a merge file (e.g. a killed top-file assembly) or is unreadable."""
        try:
            with h5py.File(path, "r") as f:
                status = f.attrs.get("status")
                if "shards" in f.attrs or "fields" not in f:
                    return None
                if status == WRITING:
                    if "_merged" not in f:
                        return None
                    rows = np.flatnonzero(f["_merged"][()])
                elif status == COMPLETE:
                    rows = np.arange(int(f["samples/valid"].shape[0]))
                else:
                    return None
                indices = f["index"][()][rows] if "index" in f else rows
                return rows, np.asarray(indices, dtype=np.int64)
        except (OSError, KeyError, ValueError):
            return None

    def _drop_unreadable_merges(self) -> None:
        """Remove merge files that a kill left unusable; their samples are written again on resume."""
        for p in self._merge_files():
            if self._merged_rows(p) is not None:
                continue
            try:
                h5py.File(p, "r").close()
            except OSError:
                warnings.warn(
                    f"{p} was left unreadable by an interrupted finalize; the samples merged into it "
                    "will be generated again",
                    RuntimeWarning,
                    stacklevel=4,
                )
            _remove_files([p])  # readable but not a merge file (a killed top-file assembly): its rows are elsewhere

    def _scan_written(self) -> set:
        done = set()
        for seg in self._segments():
            with h5py.File(seg, "r") as f:
                done.update(int(i) for i in f["index"][()])
        for p in self._merge_files():
            got = self._merged_rows(p)
            if got is not None:
                done.update(int(i) for i in got[1])
        return done

    # -- writing ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise DatasetError(
                f"the writer of {self.path} was closed (its output lock released); "
                "open a new DatasetWriter with resume=True to continue"
            )

    def pending(self) -> np.ndarray:
        """Sorted indices of the samples not yet written (by any rank)."""
        if self.already_complete:
            return np.zeros(0, dtype=np.int64)
        return np.array(sorted(set(range(self.n_samples)) - self._written), dtype=np.int64)

    def is_written(self, index: int) -> bool:
        return self.already_complete or int(index) in self._written

    def write(
        self,
        index: int,
        fields: Mapping[str, np.ndarray],
        params: Optional[Mapping[str, Any]] = None,
        solver: Optional[Mapping[str, Any]] = None,
        invalid_reason: str = "",
    ) -> None:
        """Add sample ``index``. All declared fields, params and solver values must be given."""
        if self._finalized or self.already_complete:
            raise DatasetError(f"{self.path}: the dataset is already finalized")
        self._check_open()
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.n_samples:
            raise DatasetError(f"sample index {index!r} out of range 0..{self.n_samples - 1}")
        index = int(index)
        if index in self._written:
            raise DatasetError(f"sample {index} was already written to {self.path}")
        params = dict(params or {})
        solver = dict(solver or {})
        if set(fields) != set(self.fields):
            raise DatasetError(
                f"sample {index}: got fields {sorted(fields)}, the dataset declares {sorted(self.fields)}"
            )
        if set(params) != set(self.param_names):
            raise DatasetError(
                f"sample {index}: got params {sorted(params)}, the dataset declares {sorted(self.param_names)}"
            )
        if set(solver) != set(self.solver_names):
            raise DatasetError(
                f"sample {index}: got solver values {sorted(solver)}, the dataset declares {sorted(self.solver_names)}"
            )
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
                    raise DatasetError(
                        f"sample {index}: field {name!r} has non-finite values; "
                        "write it with invalid_reason=... if it must be recorded"
                    )
            if "converged" in solver and not bool(solver["converged"]):
                raise DatasetError(
                    f"sample {index}: solver reports converged=False; an unconverged sample may only "
                    "be written with invalid_reason=..."
                )
        for values in (params, solver):
            for v in values.values():
                _value_dtype(v)  # type check now, not at flush time
        self._buffer.append(
            {"index": index, "fields": arrays, "params": params, "solver": solver, "reason": str(invalid_reason)}
        )
        self._written.add(index)
        if len(self._buffer) >= self.flush_every and time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write buffered samples to a new segment: temp name, fsync, atomic rename, fsync of the folder."""
        if not self._buffer:
            return
        buf = sorted(self._buffer, key=lambda s: s["index"])
        name = os.path.join(self.partial_dir, f"seg-r{self.rank:04d}-{self._segment_counter:06d}.h5")
        tmp = name + f".tmp{os.getpid()}"
        try:
            # no chunk cache: every chunk is written (and a full disk reported) inside create_dataset, not
            # later from HDF5's deferred writes at close
            with h5py.File(tmp, "w", rdcc_nbytes=0) as f:
                f.attrs["status"] = SEGMENT
                f.create_dataset("index", data=np.array([s["index"] for s in buf], dtype=np.int64))
                for fname, fs in self.fields.items():
                    # the final file's layout (one sample per chunk, fletcher32): finalize() copies the
                    # checksummed chunks as they are (_chunk_copier) instead of filtering every row again
                    f.create_dataset(
                        f"fields/{fname}",
                        data=np.stack([s["fields"][fname] for s in buf]),
                        chunks=(1,) + fs.shape,
                        fletcher32=True,
                    )
                for group, names in (("params", self.param_names), ("solver", self.solver_names)):
                    for k in names:
                        vals = [s[group][k] for s in buf]
                        f.create_dataset(f"{group}/{k}", data=np.array(vals, dtype=_value_dtype(vals[0])))
                f.create_dataset("reason", data=np.array([s["reason"] for s in buf], dtype=h5py.string_dtype()))
            _durable_replace(tmp, name)
        except BaseException:
            _remove_files([tmp])
            raise
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
        self._check_open()
        self.flush()
        if self.world_size == 1:
            self._merge(self.path, expect_all=True)
        else:
            os.makedirs(self.shard_dir, exist_ok=True)
            shard = os.path.join(self.shard_dir, f"shard-{self.rank:04d}.h5")
            error = None
            try:
                self._merge(shard, expect_all=False)
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
            if self.world_size == 1:
                shutil.rmtree(self.shard_dir, ignore_errors=True)  # an earlier MPI attempt, merged into path
            _fsync_path(os.path.dirname(self.path))
            self._lock.release()
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

    def _sources(self, target: str, single: bool) -> List[dict]:
        """The files whose rows belong in ``target``: this rank's segments, those of ranks that no
        longer exist (rank ``q`` is taken over by rank ``q % world_size``), and merge files of an
        interrupted finalize. Each: ``{"path", "rows", "indices", "kind"}``."""
        out = []
        for p in self._merge_files():
            if p in (target, target + ".writing") or (not single and self._owner(p) % self.world_size != self.rank):
                continue
            if not single and p == self.path + ".writing" and self.rank != 0:
                continue
            got = self._merged_rows(p)
            if got is not None:
                out.append({"path": p, "rows": got[0], "indices": got[1], "kind": "merged"})
        for seg in self._segments():
            if not single and self._owner(seg) % self.world_size != self.rank:
                continue
            with h5py.File(seg, "r") as f:
                idx = np.asarray(f["index"][()], dtype=np.int64)
                dtypes = {
                    f"{g}/{k}": f[f"{g}/{k}"].dtype
                    for g, names in (("params", self.param_names), ("solver", self.solver_names))
                    for k in names
                }
            out.append({"path": seg, "rows": np.arange(idx.size), "indices": idx, "kind": "segment", "dtypes": dtypes})
        return out

    def _merge(self, target: str, expect_all: bool) -> None:
        """Move every row this rank owns into ``target`` in increasing sample order.

        Crash safety and disk space: rows are copied into ``<target>.writing`` (all datasets are
        created at full size first, their chunks allocated as rows arrive); every
        :attr:`MERGE_BATCH_BYTES` of field data the file is flushed and fsync'ed, the copied rows
        are marked in ``_merged`` (flushed and fsync'ed again) and only then are their source
        files deleted, so the disk holds the data once plus one batch. A kill leaves each row in a
        source file or marked merged in ``.writing`` as of its last flush; HDF5 does not promise
        that a file killed between flushes still opens, so an unreadable ``.writing`` is dropped on
        resume and the rows merged into it are reported pending (the generator writes them
        again); a readable one is continued in place. The finished file is fsync'ed before its
        atomic rename to ``target``.
        """
        single = expect_all
        tmp = target + ".writing"
        sources = self._sources(target, single)
        # the target's own earlier attempt (a .writing, or a finished shard) is continued in place
        own = []
        for cand in [tmp] + ([target] if not single else []):
            if os.path.exists(cand):
                got = self._merged_rows(cand)
                if got is None:
                    _remove_files([cand])
                else:
                    own.append((cand, got))
        all_idx = set()
        for s in sources:
            all_idx.update(int(i) for i in s["indices"])
        for _, (_, idx) in own:
            all_idx.update(int(i) for i in idx)
        if expect_all:
            missing = sorted(set(range(self.n_samples)) - all_idx)
            if missing:
                raise DatasetError(
                    f"{self.path}: cannot finalize, {len(missing)} samples were never written "
                    f"(first: {missing[:10]}); resume the run to write them"
                )
            layout = np.arange(self.n_samples)
        else:
            layout = np.array(sorted(all_idx), dtype=np.int64)
        adopted = None
        for cand, (rows, idx) in own:
            with h5py.File(cand, "r") as f:
                same = (
                    ("index" in f and np.array_equal(f["index"][()], layout))
                    if not single
                    else ("index" not in f and f["samples/valid"].shape[0] == layout.size)
                )
            if same and adopted is None:
                adopted = cand
            else:  # another layout (rank count changed): keep its rows as a source
                k = len(glob.glob(os.path.join(self.partial_dir, f"old-r{self.rank:04d}-*.h5")))
                moved = os.path.join(self.partial_dir, f"old-r{self.rank:04d}-{k:06d}.h5")
                _durable_replace(cand, moved)
                sources.insert(0, {"path": moved, "rows": rows, "indices": idx, "kind": "merged"})
        if adopted == target:  # a finished shard with exactly these rows
            _remove_files([s["path"] for s in sources])
            return
        row_of = {int(i): r for r, i in enumerate(layout)}
        if adopted is None:
            self._create_target(tmp, layout, sources, single)
        out = h5py.File(tmp, "r+")
        try:
            done = out["_merged"][()].astype(bool)
            batch_rows: List[int] = []
            batch_files: List[str] = []
            batch_small: Dict[str, list] = {}
            batch_bytes = 0
            row_bytes = sum(int(np.prod(fs.shape)) * np.dtype(fs.dtype).itemsize for fs in self.fields.values())
            keys = [f"params/{k}" for k in self.param_names] + [f"solver/{k}" for k in self.solver_names]

            def checkpoint():
                if batch_rows:
                    order = np.argsort(batch_rows)
                    rows = np.asarray(batch_rows)[order]
                    for key in keys + ["samples/reason"]:
                        vals = np.asarray(batch_small[key], dtype=object)[order]
                        d = out[key]
                        data = vals.astype(d.dtype) if d.dtype.kind not in "OS" else vals
                        d[rows] = data
                    reasons = np.asarray(batch_small["samples/reason"], dtype=object)[order]
                    out["samples/valid"][rows] = np.array([r == "" for r in reasons], dtype=bool)
                    out.flush()
                    _fsync_path(tmp)
                    out["_merged"][rows] = True
                    out.flush()
                    _fsync_path(tmp)
                _remove_files(batch_files)
                batch_rows.clear()
                batch_files.clear()
                batch_small.clear()

            write_row = {name: _row_writer(out[f"fields/{name}"]) for name in self.fields}
            for src in sources:
                with h5py.File(src["path"], "r") as f:
                    reason_key = "reason" if src["kind"] == "segment" else "samples/reason"
                    small = {key: f[key][()] for key in keys}
                    small["samples/reason"] = f[reason_key][()]
                    fields_in = {}
                    for name in self.fields:
                        d = f[f"fields/{name}"]
                        copy = _chunk_copier(d, out[f"fields/{name}"])
                        if copy is not None:
                            fields_in[name] = copy
                        else:  # a segment of an older version (contiguous): one read, then row by row
                            rows_in = d[()] if src["kind"] == "segment" else d
                            fields_in[name] = lambda ro, r, rows_in=rows_in, w=write_row[name]: w(ro, rows_in[r])
                    for r, i in zip(src["rows"], src["indices"]):
                        i = int(i)
                        if i not in row_of:
                            continue
                        ro = row_of[i]
                        if done[ro]:
                            continue  # already merged (a duplicate left by a kill before its source was deleted)
                        for copy in fields_in.values():
                            copy(ro, int(r))
                        for key, vals in small.items():
                            v = vals[r]
                            batch_small.setdefault(key, []).append(v.decode() if isinstance(v, bytes) else v)
                        batch_rows.append(ro)
                        done[ro] = True
                        batch_bytes += row_bytes
                batch_files.append(src["path"])
                if batch_bytes >= self.MERGE_BATCH_BYTES:
                    checkpoint()
                    batch_bytes = 0
            checkpoint()
            if not done.all():
                missing = layout[~done]
                raise DatasetError(
                    f"{target}: cannot finalize, {missing.size} samples are in no segment "
                    f"(first: {missing[:10].tolist()}); resume the run to write them"
                )
            del out["_merged"]
            out.attrs["status"] = COMPLETE
        finally:
            out.close()
        _durable_replace(tmp, target)

    def _create_target(self, tmp: str, layout: np.ndarray, sources: List[dict], single: bool) -> None:
        """``tmp`` with every dataset at full size; the per-sample arrays take the widest dtype found."""
        n = int(layout.size)
        dtypes: Dict[str, list] = {}
        for src in sources:
            if "dtypes" in src:
                for key, dt in src["dtypes"].items():
                    dtypes.setdefault(key, []).append(dt)
                continue
            with h5py.File(src["path"], "r") as f:
                for group, names in (("params", self.param_names), ("solver", self.solver_names)):
                    for k in names:
                        dtypes.setdefault(f"{group}/{k}", []).append(f[f"{group}/{k}"].dtype)
        # chunks are allocated as rows arrive (early allocation would write every filtered chunk
        # up front: a second copy of the data on disk before any segment could be deleted)
        with h5py.File(tmp, "w") as out:
            self._write_header(out, self.n_samples)
            if not single:
                out.attrs["shard_rows"] = n
                out.create_dataset("index", data=layout.astype(np.int64))
            for name, fs in self.fields.items():
                d = out.create_dataset(
                    f"fields/{name}",
                    shape=(n,) + fs.shape,
                    dtype=fs.dtype,
                    chunks=(1,) + fs.shape if n else None,
                    fletcher32=bool(n),
                )
                d.attrs["role"] = fs.role
                if fs.description:
                    d.attrs["description"] = fs.description
            for group, names in (("params", self.param_names), ("solver", self.solver_names)):
                for k in names:
                    found = dtypes.get(f"{group}/{k}", [])
                    if any(dt.kind in "OSU" for dt in found):
                        dt = h5py.string_dtype()
                    elif not found:
                        dt = np.dtype(np.float64)
                    elif all(dt.kind == "b" for dt in found):
                        dt = np.dtype(bool)
                    else:
                        dt = np.result_type(*found)
                    out.create_dataset(f"{group}/{k}", shape=(n,), dtype=dt)
            out.create_dataset("samples/valid", shape=(n,), dtype=bool)
            out.create_dataset("samples/reason", shape=(n,), dtype=h5py.string_dtype())
            out.create_dataset("_merged", data=np.zeros(n, dtype=bool))
        _fsync_path(tmp)

    @staticmethod
    def assemble_shards(path: Union[str, os.PathLike], world_size: int) -> str:
        """Write the top file at ``path``: virtual datasets over ``<path>.shards/shard-*.h5``.

        The virtual datasets' fill value is NaN, so a part whose shard went missing can never read
        as plausible zeros; :func:`open_dataset` and :func:`validate` also check every shard's
        presence and shape against the mapping recorded here.
        """
        path = os.path.abspath(os.fspath(path))
        shard_dir = path + ".shards"
        shards = [os.path.join(shard_dir, f"shard-{r:04d}.h5") for r in range(world_size)]
        missing = [s for s in shards if not os.path.exists(s)]
        if missing:
            raise DatasetError(f"cannot assemble {path}: missing shards {missing}")
        infos = []
        for s in shards:
            with h5py.File(s, "r") as f:
                infos.append(
                    {
                        "path": s,
                        "index": f["index"][()],
                        "fields": {k: (d.shape, d.dtype, dict(d.attrs)) for k, d in f["fields"].items()},
                        "attrs": dict(f.attrs),
                    }
                )
        n = int(infos[0]["attrs"]["n_samples"])
        owner = np.full(n, -1, dtype=np.int64)
        for r, info in enumerate(infos):
            idx = info["index"]
            if np.any(owner[idx] >= 0):
                raise DatasetError(
                    f"cannot assemble {path}: sample(s) {np.flatnonzero(owner[idx] >= 0)[:10]} "
                    "written by more than one rank"
                )
            owner[idx] = r
        if np.any(owner < 0):
            raise DatasetError(
                f"cannot assemble {path}: {int(np.sum(owner < 0))} samples written by no rank "
                f"(first: {np.flatnonzero(owner < 0)[:10].tolist()})"
            )
        tmp = path + ".writing"
        with h5py.File(tmp, "w") as out:
            with h5py.File(shards[0], "r") as f0:
                for k, v in f0.attrs.items():
                    if k not in ("shard_rows",):
                        out.attrs[k] = v
                f0.copy(f0["grid"], out, "grid")
            out.attrs["status"] = WRITING
            out.attrs["shards"] = json.dumps([os.path.relpath(s, os.path.dirname(path)) for s in shards])
            out.attrs["shard_rows"] = json.dumps([int(len(info["index"])) for info in infos])
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
                        layout[int(idx[start]) : int(idx[stop - 1]) + 1] = src[start:stop]
                        start = stop
                d = out.create_virtual_dataset(f"fields/{name}", layout, fillvalue=np.nan)
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
                    dtypes = [p[1].dtype for p in parts if len(p[0])]
                    dtype = dtypes[0] if dtypes else parts[0][1].dtype
                    if any(dt.kind in "OS" for dt in dtypes):
                        dtype = np.dtype(object)
                    elif dtypes and not all(dt.kind == "b" for dt in dtypes):
                        dtype = np.result_type(*dtypes)
                    full = np.empty(n, dtype=object if dtype.kind in "OS" else dtype)
                    for idx, vals in parts:
                        full[idx] = vals
                    if dtype.kind in "OS":
                        full = np.array(
                            [v.decode() if isinstance(v, bytes) else str(v) for v in full], dtype=h5py.string_dtype()
                        )
                    out.create_dataset(f"{group}/{key}", data=full)
            out.attrs["status"] = COMPLETE
        _durable_replace(tmp, path)
        return path

    def close(self) -> None:
        """Flush without finalizing (what happens when the ``with`` block ends by an exception) and
        release the output lock. Called while an :class:`Interrupted` propagates, it records on
        the exception where the partial run is and how many samples it holds."""
        self._closed = True
        try:
            if not self._finalized and not self.already_complete:
                self.flush()
        finally:
            self._lock.release()
            exc = sys.exc_info()[1]
            if isinstance(exc, Interrupted) and exc.partial_dir is None:
                exc.partial_dir = self.partial_dir
                exc.saved = len(self._written) - len(self._buffer)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if not self._closed:  # close() inside the block: a partial run left for resume
                self.finalize()
        else:
            try:
                self.close()
            except Exception:  # never mask the original error
                pass
            if isinstance(exc, Interrupted) and exc.partial_dir is None:
                exc.partial_dir = self.partial_dir
                exc.saved = len(self._written) - len(self._buffer)


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
        raise DatasetError(
            f"{path} is an HDF5 file but not a neuralops dataset (root attribute format={fmt!r}, expected {FORMAT!r})"
        )
    status = f.attrs.get("status")
    if status == SEGMENT or path.endswith(".writing") or status == WRITING:
        raise DatasetError(f"{path} is still being written (status={status!r}); it is not a complete dataset")
    if status != COMPLETE:
        raise DatasetError(f"{path} is not marked complete (status={status!r})")
    version = int(f.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise DatasetError(f"{path} has format_version {version}; this neuralops reads up to {FORMAT_VERSION}")


def _virtual_source_problems(f: h5py.File, path: str) -> List[str]:
    """Every source file of the virtual field datasets that is missing, unreadable or of the wrong shape.

    HDF5 fills the part of a virtual dataset whose source is missing with the fill value (NaN
    here) without an error, so the sources are checked explicitly: each must exist (relative names
    are resolved against the folder of ``path``, as HDF5 does), hold the named dataset, and have the
    shape recorded in the virtual dataset's mapping.
    """
    problems: List[str] = []
    if "fields" not in f:
        return problems
    base = os.path.dirname(os.path.abspath(path))
    seen: Dict[tuple, Optional[str]] = {}
    rows: Dict[str, int] = {}
    try:  # rows per shard, recorded by DatasetWriter.assemble_shards
        names, counts = json.loads(f.attrs["shards"]), json.loads(f.attrs["shard_rows"])
        rows = {os.path.normpath(os.path.join(base, s)): int(c) for s, c in zip(names, counts)}
    except (KeyError, TypeError, ValueError):
        pass
    for name, d in f["fields"].items():
        if not isinstance(d, h5py.Dataset) or not d.is_virtual:
            continue
        for vmap in d.virtual_sources():
            fname = vmap.file_name
            src = fname if os.path.isabs(fname) or fname == "." else os.path.join(base, fname)
            if fname == ".":
                continue
            # the mapping's selection in the source must lie inside the source's shape, and the
            # source's per-sample shape and (when recorded) row count must be those assembled
            high = tuple(int(h) for h in vmap.src_space.get_select_bounds()[1])
            want_rows = rows.get(os.path.normpath(src))
            key = (src, vmap.dset_name, high)
            if key in seen:
                continue
            problem = None
            if not os.path.exists(src):
                problem = f"shard {src} of fields/{name} is missing (the data would read as NaN)"
            else:
                try:
                    with h5py.File(src, "r") as sf:
                        shape = tuple(sf[vmap.dset_name].shape) if vmap.dset_name in sf else None
                    if shape is None:
                        problem = f"shard {src} has no dataset {vmap.dset_name} (needed by fields/{name})"
                    elif (
                        len(shape) != len(high)
                        or any(h >= s for h, s in zip(high, shape))
                        or shape[1:] != tuple(d.shape[1:])
                        or (want_rows is not None and shape[0] != want_rows)
                    ):
                        expect = f"{want_rows} rows" if want_rows is not None else f"at least {high[0] + 1} rows"
                        problem = (
                            f"shard {src}: {vmap.dset_name} has shape {shape}, the top file {path} needs "
                            f"{expect} of shape {tuple(d.shape[1:])} (short or replaced shard)"
                        )
                except OSError as exc:
                    problem = f"shard {src} of fields/{name} is not a readable HDF5 file (truncated or corrupt?): {exc}"
            seen[key] = problem
            if problem and problem not in problems:
                problems.append(problem)
    return problems


class Dataset:
    """Lazy, read-only view of a dataset file; safe to pass to DataLoader worker processes.

    By default only the *valid* samples are presented: ``len(ds)`` counts them and sample ``i``
    is the ``i``-th valid sample of the file (its row in the file is ``ds.indices[i]``).
    ``include_invalid=True`` presents every row of the file (then ``ds.indices[i] == i`` and
    ``ds.valid`` says which rows are valid). ``ds.invalid_reasons`` always maps the *file* index of
    every invalid sample to its reason, and ``ds.n_rows`` is the file's sample count.

    The HDF5 handle is opened on first use in each process (h5py handles must not cross a fork).
    """

    def __init__(self, path: Union[str, os.PathLike], include_invalid: bool = False):
        self.path = os.path.abspath(os.fspath(path))
        self.include_invalid = bool(include_invalid)
        self._file: Optional[h5py.File] = None
        self._pid: Optional[int] = None
        f = self._h5
        self.pde = str(f.attrs["pde"])
        self.spec = json.loads(f.attrs["spec"])
        self.seed = int(f.attrs["seed"])
        self.n_rows = int(f.attrs["n_samples"])
        self.created = str(f.attrs.get("created", ""))
        self.version = str(f.attrs.get("version", ""))
        self.format_version = int(f.attrs["format_version"])
        if "fields" not in f or not len(f["fields"]):
            raise DatasetError(f"{self.path} has no fields")
        problems = _virtual_source_problems(f, self.path)
        if problems:
            raise DatasetError(
                f"{self.path}: "
                + "; ".join(problems[:3])
                + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
            )
        self.fields = list(f["fields"].keys())
        self._shapes = {k: tuple(f["fields"][k].shape[1:]) for k in self.fields}
        self._dtypes = {k: f["fields"][k].dtype for k in self.fields}
        self._roles = {k: str(f["fields"][k].attrs.get("role", "")) for k in self.fields}
        g = f["grid"]
        axes = json.loads(g.attrs["axes"]) if "axes" in g.attrs else list(g.keys())
        self.grid = Grid(
            {a: g[a][()] for a in axes}, {a: str(g[a].attrs["boundary"]) for a in axes if "boundary" in g[a].attrs}
        )
        self.param_names = list(f["params"].keys()) if "params" in f else []
        self.solver_names = list(f["solver"].keys()) if "solver" in f else []
        valid = f["samples/valid"][()].astype(bool) if "samples/valid" in f else np.ones(self.n_rows, bool)
        reasons = f["samples/reason"][()] if "samples/reason" in f else []
        self.invalid_reasons = {
            i: (r.decode() if isinstance(r, bytes) else str(r)) for i, r in enumerate(reasons) if not valid[i]
        }
        self.indices = np.arange(self.n_rows) if self.include_invalid else np.flatnonzero(valid)
        self._identity = self.include_invalid or bool(valid.all())
        self.n_samples = int(self.indices.size)
        self.valid = valid[self.indices]

    @property
    def n_invalid(self) -> int:
        """Invalid samples in the file (presented only with ``include_invalid=True``)."""
        return len(self.invalid_reasons)

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
        """Presented index -> file row(s): an int, a slice (identity view only) or an int array."""
        n = self.n_samples
        what = "samples" if self.include_invalid else "valid samples"
        if isinstance(index, slice):
            if self._identity:
                return index
            return self.indices[index]
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            i = int(index)
            if not -n <= i < n:
                raise DatasetError(f"sample index {index} out of range for {self.path} ({n} {what})")
            return int(self.indices[i % n])
        arr = np.asarray(index)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise DatasetError(f"boolean index must have shape ({n},), got {arr.shape}")
            return self.indices[np.flatnonzero(arr)]
        if arr.dtype.kind not in "iu":
            raise DatasetError(f"sample index must be an int, slice, or integer array, got {index!r}")
        if arr.size and (arr.min() < -n or arr.max() >= n):
            raise DatasetError(
                f"sample index out of range for {self.path} ({n} {what}): {arr[(arr < -n) | (arr >= n)][:5].tolist()}"
            )
        return self.indices[arr % n] if arr.size else arr.astype(np.int64)

    def read(self, name: str, index=slice(None), frames=None) -> np.ndarray:
        """Field ``name`` for the given sample(s); ``frames`` optionally selects the second axis."""
        self._check_field(name)
        idx = self._check_index(index)
        d = self._h5["fields"][name]
        try:
            if isinstance(idx, np.ndarray):
                # h5py wants increasing, unique indices: read those, then restore the asked order
                uniq, inv = np.unique(idx, return_inverse=True)
                block = (
                    np.stack([self._read_one(d, int(i), frames) for i in uniq])
                    if len(uniq)
                    else np.zeros((0,) + self._read_one(d, 0, frames).shape, dtype=d.dtype)
                )
                return block[inv.reshape(-1)]
            if isinstance(idx, slice):
                rows = range(*idx.indices(self.n_rows))
                if frames is None:
                    return d[idx]
                return (
                    np.stack([self._read_one(d, i, frames) for i in rows])
                    if len(rows)
                    else np.zeros((0,) + self._read_one(d, 0, frames).shape, dtype=d.dtype)
                )
            return self._read_one(d, idx, frames)
        except OSError as exc:
            raise DatasetError(
                f"{self.path}: reading field {name!r} at {index!r} failed (corrupt or truncated file?): {exc}"
            ) from exc

    @staticmethod
    def _read_one(d, i: int, frames) -> np.ndarray:
        if frames is None:
            return d[i]
        if isinstance(frames, (slice, int, np.integer)):
            return d[i, frames]
        fr = np.asarray(frames, dtype=np.int64)
        if fr.ndim == 1 and fr.size and np.all(np.diff(fr) > 0) and fr.min() >= 0:
            return d[i, fr.min() : fr.max() + 1][fr - fr.min()]
        return d[i][fr]

    def __getitem__(self, index) -> Dict[str, np.ndarray]:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise DatasetError(f"dataset[...] takes one integer sample index, got {index!r}; use read() for more")
        return {k: self.read(k, index) for k in self.fields}

    def _per_sample(self, values: np.ndarray) -> np.ndarray:
        return values if self._identity else values[self.indices]

    def params(self, name: str) -> np.ndarray:
        if name not in self.param_names:
            raise DatasetError(f"{self.path} has no param {name!r}; params: {', '.join(self.param_names) or '(none)'}")
        return self._per_sample(self._h5["params"][name][()])

    def solver(self, name: str) -> np.ndarray:
        if name not in self.solver_names:
            raise DatasetError(
                f"{self.path} has no solver record {name!r}; records: {', '.join(self.solver_names) or '(none)'}"
            )
        v = self._h5["solver"][name][()]
        if v.dtype.kind in "OS":
            v = np.array([x.decode() if isinstance(x, bytes) else str(x) for x in v], dtype=object)
        return self._per_sample(v)

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __enter__(self) -> "Dataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Dataset({self.path!r}, pde={self.pde!r}, n_samples={self.n_samples}"
            f"{'' if self.include_invalid else f' valid of {self.n_rows}'}, fields={self.fields})"
        )


def open_dataset(path: Union[str, os.PathLike], include_invalid: bool = False) -> Dataset:
    """Open a complete dataset lazily; :class:`DatasetError` says clearly why a file is refused.

    Only valid samples are presented unless ``include_invalid=True`` (see :class:`Dataset`).
    """
    return Dataset(path, include_invalid=include_invalid)


# --------------------------------------------------------------------------------------- validate
def validate(path: Union[str, os.PathLike], deep: bool = True) -> List[str]:
    """Every way in which ``path`` violates the data contract ([] when it conforms).

    With ``deep`` every chunk of every field is read, so checksum failures (corruption) and
    non-finite values in valid samples are found.
    """
    path = os.path.abspath(os.fspath(path))
    try:
        f = _open_h5(path)
    except DatasetError as exc:
        return [str(exc)]
    with f:
        a = f.attrs
        fmt = a.get("format")
        if fmt != FORMAT:
            return [f"root attribute format is {fmt!r}, expected {FORMAT!r}: not a neuralops dataset"]
        problems, n = _header_problems(a)
        grid_problems, axis_len = _grid_problems(f)
        problems += grid_problems + _grid_record_problems(f, a)
        sample_problems, valid = _sample_mask_problems(f, n)
        problems += sample_problems
        shard_problems = _virtual_source_problems(f, path)
        problems += shard_problems
        if shard_problems:
            deep = False  # a missing shard reads as NaN everywhere: its own message says enough
        field_problems, field_range = _field_problems(f, n, axis_len, valid, deep)
        problems += field_problems + _record_problems(f, n, valid)
        if valid is not None and n > 0 and not valid.any():
            problems.append(
                f"no valid sample: all {n} samples are marked invalid "
                f"(first reason: {_first_reason(f)!r}); there is nothing to train on"
            )
        if deep and valid is not None and valid.any():
            for name, (lo, hi) in field_range.items():
                if lo == hi:
                    what = "all zero" if lo == 0 else f"constant ({lo:.6g})"
                    problems.append(
                        f"fields/{name} is {what} over all {int(valid.sum())} valid samples: "
                        "degenerate data that carries no information"
                    )
    return problems


def _header_problems(a) -> tuple:
    """``(problems, n_samples)`` of the root attributes (``n_samples`` -1 when unusable)."""
    problems: List[str] = []
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
        else:
            from .spec import check_spec

            problems += check_spec(spec, pde=a.get("pde"))
    except (TypeError, ValueError):
        problems.append("spec is not valid JSON")
    try:
        n = int(a.get("n_samples", -1))
        if n <= 0:
            problems.append(f"n_samples must be positive, got {n}")
    except (TypeError, ValueError):
        n = -1
        problems.append(f"n_samples {a.get('n_samples')!r} is not an integer")
    return problems, n


def _grid_problems(f: h5py.File) -> tuple:
    """``(problems, {axis: length})`` of the stored coordinates."""
    problems: List[str] = []
    axis_len: Dict[str, int] = {}
    if "grid" not in f:
        return ["group grid/ is missing"], axis_len
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
    return problems, axis_len


def _sample_mask_problems(f: h5py.File, n: int) -> tuple:
    """``(problems, valid)``: the ``samples/`` group; ``valid`` is None when unusable."""
    problems: List[str] = []
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
    return problems, valid


def _field_problems(f: h5py.File, n: int, axis_len: Dict[str, int], valid, deep: bool) -> tuple:
    """``(problems, {field: (min, max) over the valid samples})`` (the range only with ``deep``)."""
    problems: List[str] = []
    field_range: Dict[str, tuple] = {}
    if "fields" not in f or not len(f["fields"]):
        return ["group fields/ is missing or empty"], field_range
    spatial = [ax for ax in axis_len if ax != TIME_AXIS]
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
        trailing = d.shape[d.ndim - len(spatial) :] if spatial else ()
        expect = tuple(axis_len[ax] for ax in spatial)
        if spatial and tuple(trailing) != expect:
            problems.append(f"{where} spatial shape {tuple(trailing)} does not match grid {expect} ({spatial})")
        if (
            TIME_AXIS in axis_len
            and d.ndim >= 2 + len(spatial)
            and d.shape[1] != axis_len[TIME_AXIS]
            and role != "input"
        ):
            problems.append(f"{where} has {d.shape[1]} time steps, grid/t has {axis_len[TIME_AXIS]}")
        if deep:
            problems += _read_every_sample(d, where, valid, field_range, name)
    return problems, field_range


def _read_every_sample(d, where: str, valid, field_range: Dict[str, tuple], name: str) -> List[str]:
    """Read every chunk of field ``d``: unreadable (corrupt) chunks and non-finite valid samples;
    the range of the valid samples goes into ``field_range[name]``."""
    problems: List[str] = []
    for i in range(d.shape[0]):
        try:
            block = d[i]
        except OSError as exc:
            problems.append(f"{where}[{i}] cannot be read (corrupt or truncated): {exc}")
            if len(problems) > 10:
                problems.append(f"{where}: stopped after 10 unreadable samples")
                break
            continue
        if valid is None or valid[i]:
            if not np.all(np.isfinite(block)):
                problems.append(f"{where}[{i}] has non-finite values but is marked valid")
            elif block.size:
                lo, hi = float(block.min()), float(block.max())
                if name in field_range:
                    lo, hi = min(lo, field_range[name][0]), max(hi, field_range[name][1])
                field_range[name] = (lo, hi)
    return problems


def _record_problems(f: h5py.File, n: int, valid) -> List[str]:
    """The per-sample records (``params/``, ``solver/``) and the solver's tolerance against the spec."""
    problems: List[str] = []
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
    try:
        tol, tol_key = spec_rtol(json.loads(f.attrs.get("spec", "{}")), f.attrs.get("pde"))
    except (TypeError, ValueError):
        tol, tol_key = None, ""  # an unusable spec or tolerance: check_spec reports it
    if tol is not None and valid is not None:
        if "solver/residual" not in f:
            problems.append(
                f"the spec records {tol_key}={tol:g} but solver/residual is missing: the tolerance cannot be checked"
            )
        else:
            res = np.asarray(f["solver/residual"][()], dtype=np.float64)
            if res.shape == valid.shape:
                # NaN compares False: written as ~(res <= tol) so a NaN residual is flagged too
                bad = np.flatnonzero(~(res <= tol) & valid)
                if bad.size:
                    problems.append(
                        f"{bad.size} valid samples have solver/residual above {tol_key}={tol:g} "
                        f"(first: {bad[:10].tolist()}, largest {_largest(res[bad])})"
                    )
    return problems


def _grid_record_problems(f: h5py.File, attrs) -> List[str]:
    """The spec's typed grid record (:mod:`datagen.contract`) against the stored coordinates."""
    from .contract import Grid as ContractGrid
    from .contract import GridError
    from .spec import Spec

    try:
        spec = Spec.from_stored(json.loads(attrs.get("spec", "{}")), attrs.get("pde"))
        g = f["grid"]
        ContractGrid.from_stored(
            {ax: g[ax][()] for ax in g},
            {ax: str(g[ax].attrs["boundary"]) for ax in g if "boundary" in g[ax].attrs},
            spec,
        )
    except GridError as exc:
        return [f"grid: {exc}"]
    except (KeyError, TypeError, ValueError):  # a malformed spec or grid: reported by the other checks
        return []
    return []


def spec_rtol(spec: Any, pde: Optional[str] = None):
    """``(rtol, "spec.solver.rtol")``: the relative tolerance a dataset's spec records, or ``(None, "")``.

    Read through :class:`datagen.spec.Spec` from ``solver.rtol``, its one place (a flat spec of an
    earlier version with ``rtol`` at the top or in its ``solver`` record is upgraded to it). A value that
    is no tolerance (:func:`datagen.contract.check_rtol`) reads as ``(None, "")``: :func:`check_spec`
    reports it.
    """
    from .contract import check_rtol
    from .spec import Spec

    tol = Spec.from_stored(spec, pde).rtol if isinstance(spec, dict) else None
    if tol is None:
        return None, ""
    try:
        return check_rtol(tol, "spec.solver.rtol"), "spec.solver.rtol"
    except ValueError:
        return None, ""


def _largest(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    text = f"{finite.max():.3e}" if finite.size else ""
    if finite.size < values.size:
        text += (" or " if text else "") + "NaN/inf"
    return text


def _first_reason(f: h5py.File) -> str:
    if "samples/reason" not in f:
        return ""
    for r in f["samples/reason"][()]:
        r = r.decode() if isinstance(r, bytes) else str(r)
        if r:
            return r
    return ""


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
    ds = open_dataset(path, include_invalid=True)
    n_invalid = ds.n_invalid
    lines = [
        f"dataset   {ds.path}",
        f"pde       {ds.pde}",
        f"samples   {ds.n_samples} ({ds.n_samples - n_invalid} valid, {n_invalid} invalid"
        f"{': readers skip them unless include_invalid=True' if n_invalid else ''})",
        f"seed      {ds.seed}",
        f"format    {FORMAT} v{ds.format_version}, written by neuralops {ds.version} on {ds.created}",
    ]
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
        lines.append(f"invalid samples ({n_invalid}), by reason")
        by_reason: Dict[str, List[int]] = {}
        for i, r in ds.invalid_reasons.items():
            by_reason.setdefault(r, []).append(i)
        for r, idx in sorted(by_reason.items(), key=lambda kv: -len(kv[1]))[:10]:
            first = ", ".join(map(str, idx[:8])) + (", ..." if len(idx) > 8 else "")
            lines.append(f"  {len(idx):>6} x {r}  (samples {first})")
    lines.append("spec")
    lines.extend("  " + line for line in json.dumps(ds.spec, indent=2, sort_keys=True).splitlines())
    ds.close()
    return "\n".join(lines)
