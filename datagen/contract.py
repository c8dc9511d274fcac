"""The typed contract between data generation and training: :class:`Grid` and :class:`DataLayout`.

A data-contract file (:mod:`datagen.dataset`) stores coordinates (``/grid/<axis>``) and a boundary
condition per spatial axis. What training needs besides -- the domain, the node convention (does
the grid hold the walls?), the DFT period, the sine-series box, the padding of a convolution --
is *geometry*, and it is derived here, once, from :class:`Grid`; nothing else re-derives it.

Node conventions (``L = hi - lo``, ``j = 0 .. n-1``)
------------------------------------------------------
==========================  ====================================  ======================================
convention                  coordinates                           where it is used
==========================  ====================================  ======================================
``nodes-with-walls``        ``x_j = lo + j L / (n - 1)``          neuralops' elliptic families, FNO
                                                                  ``.mat`` Darcy (both walls stored)
``nodes-without-walls``     ``x_j = lo + (j + 1) L / (n + 1)``    interior nodes of a Dirichlet problem
                                                                  (the walls are not stored)
``nodes-without-far-wall``  ``x_j = lo + j L / n``                periodic grids (neuralops'
                                                                  Navier-Stokes), neuraloperator ``.pt``
``cell-centres``            ``x_j = lo + (j + 1/2) L / n``        finite-volume data (PDEBench, the Well)
==========================  ====================================  ======================================

Where the record comes from
---------------------------
The generators write :meth:`Grid.to_spec` into the spec (section ``discretisation``, key ``grid``:
:mod:`datagen.spec`), and :meth:`Grid.from_stored` checks it against the stored coordinates. Older
files and imported ones do not carry it; there the convention is derived from what they store: an
importer's ``discretisation.node_convention``, the elliptic generators' former text record (``"nodes x_j = j/(s-1)
... boundary included"``), else the coordinates (a first node at a half-integer multiple of the
spacing: cell centres; Dirichlet data starting on ``0``: nodes with walls; other Dirichlet data:
interior nodes; any other boundary: nodes without the far wall, the DFT grid).

:class:`DataLayout` says what a batch of a training run holds (fields, roles, channels, time
windows, the grid); its :meth:`DataLayout.to_dict` is the plain form stored in checkpoints and
hyper-parameters, and :meth:`DataLayout.from_dict` reads that form back, including the form
checkpoints had before this module (``grid: {axis: {n, boundary, length, includes_boundary}}``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "NODE_CONVENTIONS",
    "PADDING_MODES",
    "LAYOUT_MODES",
    "SPEC_KEY",
    "GridError",
    "Axis",
    "Grid",
    "DataLayout",
    "node_coordinates",
    "check_node_convention",
    "check_rtol",
]

NODE_CONVENTIONS = ("nodes-with-walls", "nodes-without-walls", "nodes-without-far-wall", "cell-centres")
#: convolution padding that continues a field across a boundary of each kind
PADDING_MODES = {"periodic": "circular", "dirichlet": "zeros", "neumann": "reflect"}
#: what a batch holds: steady pairs, a direct trajectory window, autoregressive frames
LAYOUT_MODES = ("steady", "direct", "autoregressive")
#: the spec key the generators write :meth:`Grid.to_spec` under (in section ``discretisation``)
SPEC_KEY = "grid"
SPATIAL = ("x", "y", "z")
_ELLIPTIC_TEXT = "nodes x_j = j/(s-1)"  # the elliptic generators' record before spec["grid"] was a dict


class GridError(ValueError):
    """A grid record that is inconsistent or does not fit the stored coordinates (the message says how)."""


def check_rtol(value: Any, where: str = "rtol") -> float:
    """The one range check of a relative solver tolerance (the generators' config and the solver
    backends call it where the value enters): a finite number in ``(0, 1)``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(value)
        or not 0 < value < 1
    ):
        raise ValueError(
            f"{where} must be a number in (0, 1), got {value!r}: it is the relative residual "
            "reduction every solve must reach (e.g. 1e-8)"
        )
    return float(value)


def check_node_convention(name: Any) -> str:
    if name not in NODE_CONVENTIONS:
        raise GridError(f"node convention {name!r} is not known; use one of {', '.join(NODE_CONVENTIONS)}")
    return str(name)


def _divisor(nodes: str, n: int) -> float:
    """``L / h`` of ``n`` nodes of convention ``nodes``."""
    return {"nodes-with-walls": n - 1, "nodes-without-walls": n + 1}.get(nodes, n)


def _first(nodes: str) -> float:
    """``(x_0 - lo) / h``."""
    return {"nodes-without-walls": 1.0, "cell-centres": 0.5}.get(nodes, 0.0)


def node_coordinates(convention: str, n: int, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """``(n,)`` float64 coordinates of ``convention`` on ``[lo, hi]`` (table in the module docstring)."""
    check_node_convention(convention)
    n = int(n)
    if n < (2 if convention == "nodes-with-walls" else 1):
        raise GridError(f"a grid axis of convention {convention} needs at least 2 points, got {n}")
    h = (float(hi) - float(lo)) / _divisor(convention, n)
    return float(lo) + (np.arange(n, dtype=np.float64) + _first(convention)) * h


@dataclass(frozen=True)
class Axis:
    """One spatial axis: ``n`` nodes of convention ``nodes`` on ``[lo, hi]``, boundary condition ``boundary``."""

    name: str
    n: int
    lo: float
    hi: float
    nodes: str
    boundary: str

    def __post_init__(self):
        check_node_convention(self.nodes)
        if int(self.n) < 1:
            raise GridError(f"axis {self.name!r} needs at least one node, got n={self.n}")
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.hi > self.lo):
            raise GridError(f"axis {self.name!r} has extent [{self.lo}, {self.hi}]; it must be finite with hi > lo")
        if self.nodes == "nodes-with-walls" and int(self.n) < 2:
            raise GridError(f"axis {self.name!r}: nodes-with-walls needs at least 2 nodes, got {self.n}")
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "lo", float(self.lo))
        object.__setattr__(self, "hi", float(self.hi))

    @property
    def length(self) -> float:
        """Side of the domain ``hi - lo`` (the period of a periodic axis; the sine-series box of a
        Dirichlet one)."""
        return self.hi - self.lo

    @property
    def spacing(self) -> float:
        return self.length / _divisor(self.nodes, self.n)

    @property
    def period(self) -> float:
        """DFT period ``n h`` of the stored nodes (equals :attr:`length` on a periodic grid)."""
        return self.n * self.spacing

    @property
    def includes_walls(self) -> bool:
        return self.nodes == "nodes-with-walls"

    def coordinates(self) -> np.ndarray:
        return node_coordinates(self.nodes, self.n, self.lo, self.hi)

    def resized(self, n: int) -> "Axis":
        """The same domain, convention and boundary with ``n`` nodes (another resolution)."""
        return replace(self, n=int(n))

    def to_spec(self) -> dict:
        return {"n": self.n, "extent": [self.lo, self.hi], "nodes": self.nodes, "boundary": self.boundary}

    @classmethod
    def from_coordinates(cls, name: str, coords: Sequence[float], boundary: str, nodes: str) -> "Axis":
        """The axis whose ``nodes`` formula gives ``coords`` (uniform, increasing)."""
        c = np.asarray(coords, dtype=np.float64).reshape(-1)
        n = int(c.size)
        h = float(c[1] - c[0]) if n > 1 else 1.0
        if n > 1 and not (h > 0 and np.allclose(np.diff(c), h, rtol=1e-4, atol=0)):
            raise GridError(
                f"axis {name!r}: the coordinates are not uniform and increasing "
                f"({c[:3].tolist()} ...); the data contract needs a uniform grid"
            )
        lo = float(c[0]) - _first(nodes) * h
        return cls(name, n, lo, lo + _divisor(nodes, n) * h, nodes, boundary)


def _infer_nodes(coords: np.ndarray, boundary: str) -> str:
    """The node convention the coordinates alone suggest (module docstring)."""
    c = np.asarray(coords, dtype=np.float64).reshape(-1)
    if c.size < 2:
        return "nodes-without-far-wall"
    h = float(c[1] - c[0])
    on_zero = abs(c[0]) <= 1e-9 * max(1.0, abs(c[-1]))
    if boundary == "dirichlet" and on_zero:
        return "nodes-with-walls"
    if h > 0 and abs((c[0] / h) % 1.0 - 0.5) <= 1e-4:
        return "cell-centres"
    return "nodes-without-walls" if boundary == "dirichlet" else "nodes-without-far-wall"


@dataclass(frozen=True)
class Grid:
    """The spatial axes of a data set (in order) and, for time-dependent data, its time stamps.

    Geometry is derived here and nowhere else: :meth:`coordinates`, :meth:`lengths`,
    :meth:`periods`, :meth:`padding_mode`, :meth:`sobolev_boundary`, :attr:`includes_walls`.
    """

    axes: Tuple[Axis, ...]
    times: Optional[Tuple[float, ...]] = field(default=None, compare=False)

    def __post_init__(self):
        names = [a.name for a in self.axes]
        if not names or len(set(names)) != len(names):
            raise GridError(f"a grid needs distinct spatial axes, got {names}")
        object.__setattr__(self, "axes", tuple(self.axes))
        if self.times is not None:
            object.__setattr__(self, "times", tuple(float(t) for t in np.asarray(self.times).reshape(-1)))

    # -- access -----------------------------------------------------------------------------------
    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(a.n for a in self.axes)

    def axis(self, name: str) -> Axis:
        for a in self.axes:
            if a.name == name:
                return a
        raise GridError(f"the grid has no axis {name!r} (axes: {', '.join(self.names)})")

    def __getitem__(self, name: str) -> Axis:
        return self.axis(name)

    # -- geometry ---------------------------------------------------------------------------------
    def coordinates(self) -> Dict[str, np.ndarray]:
        """``{axis: (n,) float64}`` from each axis' node formula."""
        return {a.name: a.coordinates() for a in self.axes}

    def lengths(self) -> Tuple[float, ...]:
        """Domain side per axis (period or sine-series box)."""
        return tuple(a.length for a in self.axes)

    def periods(self) -> Tuple[float, ...]:
        """DFT period ``n h`` per axis (spectral diagnostics)."""
        return tuple(a.period for a in self.axes)

    @property
    def boundaries(self) -> Dict[str, str]:
        return {a.name: a.boundary for a in self.axes}

    @property
    def includes_walls(self) -> bool:
        """True when every axis stores both walls (``nodes-with-walls``)."""
        return all(a.includes_walls for a in self.axes)

    def padding_mode(self) -> Optional[str]:
        """The convolution padding of the boundary condition shared by every axis, or ``None``."""
        kinds = {a.boundary for a in self.axes}
        return PADDING_MODES.get(kinds.pop()) if len(kinds) == 1 else None

    def sobolev_boundary(self) -> Optional[str]:
        """``"periodic"`` or ``"dirichlet"`` when every axis has that condition (the Sobolev norms of
        :mod:`neuralops.losses` are defined for those), else ``None``."""
        kinds = {a.boundary for a in self.axes}
        return kinds.pop() if len(kinds) == 1 and kinds <= {"periodic", "dirichlet"} else None

    def resized(self, shape: Sequence[int]) -> "Grid":
        """The same domain, conventions and boundaries with ``shape`` nodes (another resolution)."""
        shape = tuple(int(n) for n in shape)
        if len(shape) != len(self.axes):
            raise GridError(f"shape {shape} has {len(shape)} axes, the grid {len(self.axes)} ({', '.join(self.names)})")
        if shape == self.shape:
            return self
        return Grid(tuple(a.resized(n) for a, n in zip(self.axes, shape)), None)

    def check_shape(self, shape: Sequence[int], what: str = "the fields") -> None:
        """Raise unless ``shape`` (the trailing spatial sizes of a tensor) is the grid's."""
        shape = tuple(int(n) for n in shape)
        if shape != self.shape:
            for a, n in zip(self.axes, shape):
                if a.n != n:
                    raise GridError(f"grid axis {a.name!r} has {a.n} points but {what} have {n}")
            raise GridError(f"the grid is {self.shape} but {what} are {shape}")

    # -- records ----------------------------------------------------------------------------------
    def to_spec(self) -> dict:
        """The record the generators write into the spec (``discretisation.grid``)."""
        return {a.name: a.to_spec() for a in self.axes}

    @classmethod
    def from_spec(cls, record: Mapping[str, Any], times: Optional[Iterable[float]] = None) -> "Grid":
        axes = []
        for name, r in record.items():
            try:
                lo, hi = (float(v) for v in r["extent"])
                axes.append(Axis(str(name), int(r["n"]), lo, hi, r["nodes"], str(r["boundary"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise GridError(
                    f"grid record of axis {name!r} is {r!r}: it needs n, extent [lo, hi], nodes "
                    f"({', '.join(NODE_CONVENTIONS)}) and boundary ({exc})"
                ) from exc
        return cls(tuple(axes), None if times is None else tuple(times))

    @classmethod
    def from_coordinates(
        cls,
        coords: Mapping[str, Any],
        boundary: Optional[Mapping[str, str]] = None,
        nodes: Optional[Mapping[str, str]] = None,
    ) -> "Grid":
        """The grid of stored coordinates (``{axis: (n,)}``, ``t`` = time stamps), boundary per axis
        (default periodic) and node convention per axis (default: derived from the coordinates)."""
        boundary, nodes = dict(boundary or {}), dict(nodes or {})
        axes = []
        for name in (a for a in coords if a != "t"):
            c = np.asarray(coords[name], dtype=np.float64).reshape(-1)
            bc = boundary.get(name, "periodic")
            axes.append(Axis.from_coordinates(name, c, bc, nodes.get(name) or _infer_nodes(c, bc)))
        t = coords.get("t")
        return cls(tuple(axes), None if t is None else tuple(np.asarray(t, dtype=np.float64).reshape(-1)))

    @classmethod
    def from_stored(
        cls, coords: Mapping[str, Any], boundary: Mapping[str, str], spec: Optional[Mapping[str, Any]] = None
    ) -> "Grid":
        """The grid of a data-contract file: its coordinates, boundaries and spec (module docstring).

        ``spec``: the stored spec (or a :class:`datagen.spec.Spec`); its ``discretisation.grid`` record
        (``grid`` at the top of the flat specs of earlier versions) must agree with the coordinates
        (same nodes to ``1e-6`` of the spacing, same boundary): a :class:`GridError` names the axis otherwise.
        """
        from datagen.spec import Spec

        read = spec if isinstance(spec, Spec) else Spec.from_stored(spec if isinstance(spec, Mapping) else {})
        record = read.grid_record
        spatial = {k: v for k, v in coords.items() if k != "t"}
        if isinstance(record, Mapping):
            grid = cls.from_spec(record, coords.get("t"))
            if set(grid.names) != set(spatial):
                raise GridError(
                    f"the spec's grid record has axes {sorted(grid.names)} but the file stores {sorted(spatial)}"
                )
            for a in grid.axes:
                c = np.asarray(spatial[a.name], dtype=np.float64).reshape(-1)
                if c.size != a.n or not np.allclose(a.coordinates(), c, rtol=0, atol=1e-6 * a.spacing):
                    raise GridError(
                        f"axis {a.name!r}: the spec's grid record ({a.nodes}, n={a.n}, extent "
                        f"[{a.lo:g}, {a.hi:g}]) does not give the stored coordinates "
                        f"({c.size} points from {c[0]:g} to {c[-1]:g})"
                    )
                if boundary.get(a.name, a.boundary) != a.boundary:
                    raise GridError(
                        f"axis {a.name!r}: the spec's grid record says boundary {a.boundary!r} but the "
                        f"file stores {boundary.get(a.name)!r}"
                    )
            return grid
        stated = read.node_convention
        if stated is not None:
            check_node_convention(stated)
            nodes = {ax: stated for ax in spatial}
        elif isinstance(record, str) and _ELLIPTIC_TEXT in record and "boundary included" in record:
            nodes = {ax: "nodes-with-walls" for ax in spatial}
        else:
            nodes = {}
        return cls.from_coordinates(coords, boundary, nodes)

    @classmethod
    def from_dataset(cls, ds: Any) -> "Grid":
        """The grid of an open data-contract file (:func:`datagen.dataset.open_dataset`)."""
        from datagen.spec import Spec

        return cls.from_stored(ds.grid.coords, ds.grid.boundary, Spec.from_stored(ds.spec, pde=ds.pde))

    def to_dict(self) -> Dict[str, Dict[str, Any]]:
        """Plain form for checkpoints: per axis the record of :meth:`to_spec` plus the derived
        ``length`` and ``includes_boundary`` (the keys checkpoints held before this module)."""
        return {a.name: {**a.to_spec(), "length": a.length, "includes_boundary": a.includes_walls} for a in self.axes}

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping[str, Any]]) -> "Grid":
        """Inverse of :meth:`to_dict`; also reads the older form ``{axis: {n, boundary, length,
        includes_boundary}}`` (walls stored: nodes-with-walls; else Dirichlet: interior nodes, any
        other boundary: nodes without the far wall; the domain ``[0, length]``)."""
        axes = []
        for name, g in sorted(d.items()):
            if "nodes" in g:
                lo, hi = (float(v) for v in g["extent"])
                axes.append(Axis(name, int(g["n"]), lo, hi, g["nodes"], g["boundary"]))
                continue
            if g.get("includes_boundary"):
                nodes = "nodes-with-walls"
            else:
                nodes = "nodes-without-walls" if g.get("boundary") == "dirichlet" else "nodes-without-far-wall"
            axes.append(Axis(name, int(g["n"]), 0.0, float(g["length"]), nodes, str(g.get("boundary", "none"))))
        return cls(tuple(axes))

    def describe(self) -> str:
        return "x".join(str(n) for n in self.shape)


# ------------------------------------------------------------------------------------------------
# what a batch holds
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataLayout:
    """What a batch of a training run holds.

    ``mode`` ``steady``: ``x (B, C_in, X, Y)`` of the ``inputs`` fields -> ``y (B, C_out, X, Y)`` of
    the ``outputs`` fields. ``direct``: ``x (B, t_in, C, X, Y)`` -> ``y (B, t_out, C, X, Y)`` of the
    state ``fields``. ``autoregressive``: training windows ``(B, history, C, X, Y)`` -> the next
    ``unroll`` frames ``(B, unroll, C, X, Y)``; evaluation windows as ``direct``.
    ``in_channels`` / ``out_channels`` count the channels per frame (``C`` for trajectories).
    ``provenance``: which files and splits (reports only; not part of what a model depends on).
    """

    mode: str
    grid: Grid
    pde: str
    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]
    in_channels: int
    out_channels: int
    t_in: Optional[int] = None
    t_out: Optional[int] = None
    start: int = 0
    history: Optional[int] = None
    unroll: int = 1
    n_frames: Optional[int] = None
    normalization: str = "gaussian"
    provenance: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.mode not in LAYOUT_MODES:
            raise ValueError(f"layout mode {self.mode!r} is not known; use one of {', '.join(LAYOUT_MODES)}")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))

    @property
    def layout(self) -> str:
        """``"steady"`` or ``"trajectory"``."""
        return "steady" if self.mode == "steady" else "trajectory"

    @property
    def fields(self) -> Tuple[str, ...]:
        return self.inputs

    @property
    def channels(self) -> int:
        """Channels per frame of a trajectory."""
        return self.in_channels

    @property
    def channel_axis(self) -> int:
        """Axis of the channels in a batch: 1 for steady pairs, 2 for trajectory windows."""
        return 1 if self.mode == "steady" else 2

    def to_dict(self) -> Dict[str, Any]:
        """The plain form (checkpoints, the CLI's ``model.data_io``): the keys of the former ``io`` dict."""
        out: Dict[str, Any] = {
            "layout": self.layout,
            "mode": self.mode,
            "pde": self.pde,
            "grid": self.grid.to_dict(),
            "grid_shape": list(self.grid.shape),
            "normalization": self.normalization,
        }
        if self.mode == "steady":
            out.update(
                inputs=list(self.inputs),
                outputs=list(self.outputs),
                in_channels=self.in_channels,
                out_channels=self.out_channels,
            )
        else:
            out.update(
                fields=list(self.inputs),
                channels=self.in_channels,
                t_in=self.t_in,
                t_out=self.t_out,
                start=self.start,
                history=self.history,
                unroll=self.unroll,
                n_frames=self.n_frames,
            )
        out.update(self.provenance)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DataLayout":
        d = dict(d)
        known = {
            "layout",
            "mode",
            "pde",
            "grid",
            "grid_shape",
            "normalization",
            "inputs",
            "outputs",
            "in_channels",
            "out_channels",
            "fields",
            "channels",
            "t_in",
            "t_out",
            "start",
            "history",
            "unroll",
            "n_frames",
        }
        grid = Grid.from_dict(d.get("grid") or {})
        common = dict(
            mode=d["mode"],
            grid=grid,
            pde=d.get("pde"),
            normalization=d.get("normalization", "gaussian"),
            provenance={k: v for k, v in d.items() if k not in known},
        )
        if d["mode"] == "steady":
            return cls(
                inputs=tuple(d.get("inputs") or ()),
                outputs=tuple(d.get("outputs") or ()),
                in_channels=int(d["in_channels"]),
                out_channels=int(d["out_channels"]),
                **common,
            )
        c = int(d["channels"])
        fields = tuple(d.get("fields") or ())
        return cls(
            inputs=fields,
            outputs=fields,
            in_channels=c,
            out_channels=c,
            t_in=d.get("t_in"),
            t_out=d.get("t_out"),
            start=int(d.get("start") or 0),
            history=d.get("history"),
            unroll=int(d.get("unroll") or 1),
            n_frames=d.get("n_frames"),
            **common,
        )

    # -- what a model depends on ------------------------------------------------------------------
    def model_keys(self) -> Dict[str, Any]:
        """What a trained model depends on: fields and roles, channel counts, windows, PDE,
        normalisation, boundary conditions and whether the walls are stored; not the resolution,
        the files or the splits."""
        out: Dict[str, Any] = {
            "layout": self.layout,
            "mode": self.mode,
            "pde": self.pde,
            "normalization": self.normalization,
        }
        if self.mode == "steady":
            out.update(
                inputs=list(self.inputs),
                outputs=list(self.outputs),
                in_channels=self.in_channels,
                out_channels=self.out_channels,
            )
        else:
            out.update(fields=list(self.inputs), channels=self.in_channels)
            out.update({"t_in": self.t_in, "t_out": self.t_out} if self.mode == "direct" else {"history": self.history})
        for a in sorted(self.grid.axes, key=lambda a: a.name):
            out[f"boundary_{a.name}"] = a.boundary
            out[f"walls_included_{a.name}"] = a.includes_walls
        return out

    def differences(self, other: "DataLayout") -> Dict[str, Tuple[Any, Any]]:
        """``{key: (value here, value in other)}`` where the two differ in what a model depends on."""
        a, b = self.model_keys(), other.model_keys()
        return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}

    def describe(self) -> str:
        """One line, e.g. ``steady (steady) darcy a -> u on 16x16`` or
        ``trajectory (direct) navier_stokes_2d vorticity 10 -> 40 frames on 64x64``."""
        if self.mode == "steady":
            what = f"{', '.join(self.inputs)} -> {', '.join(self.outputs)}"
        elif self.mode == "direct":
            what = f"{', '.join(self.inputs)} {self.t_in} -> {self.t_out} frames"
        else:
            what = f"{', '.join(self.inputs)} {self.history} frames -> the next"
        return f"{self.layout} ({self.mode}) {self.pde} {what} on {self.grid.describe()}"
