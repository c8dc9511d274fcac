"""The physics of a Navier-Stokes dataset as one typed record, whatever wrote the dataset.

A consumer of vorticity data (the Spectral-Refiner residual in ``train.refine``, evaluation, a
user) needs the equation the data solve::

    w_t + u . grad w = nu Lap w - alpha w + f    on the periodic box [0, L)^2,

that is the viscosity ``nu``, the linear drag ``alpha``, the fixed forcing ``f``, the box side ``L``,
and the spacing of the stored snapshots. :class:`NavierStokesPhysics` holds exactly these, with the
forcing as a typed :class:`Forcing` (kind and parameters, never free text), and
:func:`physics_from_dataset` / :func:`physics_from_spec` read it from any Navier-Stokes dataset:

* files written by ``neuralops-datagen navier-stokes`` (the recipe's keys ``viscosity``, ``box``,
  ``drag``, ``forcing`` = ``{"type": ..., "amplitude": ..., "wavenumber": ...}``,
  ``snapshot_interval``);
* files written by the importers (``train.importers``), which store the same keys in the same form
  (:meth:`NavierStokesPhysics.to_spec`);
* files written by older importers that stored the FNO forcing as the text
  ``"0.1 (sin(2 pi (x + y)) + cos(2 pi (x + y)))"``: recognised and read as the FNO forcing.

Anything else (an unknown forcing text or type, a missing viscosity) is a one-line ``ValueError``
that says what is missing and how to fix it.

Grid offset: the stored grid may be shifted from ``x_i = i L / m`` (bilinear downsampling of a fine
grid samples the points ``(i + 1/2) L / m - L / (2 n)``; :mod:`.resample`). The dataset's grid
records its coordinates; ``origin`` is its first coordinate, and :meth:`NavierStokesPhysics.forcing_field`
evaluates the forcing at ``origin + i L / n`` so that the forcing lines up with the stored fields on
any evaluation grid.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Union

import torch

from datagen.spec import NS_FAMILY, Spec, check_values

__all__ = [
    "FORCING_KINDS",
    "Forcing",
    "NavierStokesPhysics",
    "physics_from_spec",
    "physics_from_dataset",
    "NS_PDE_NAMES",
]

FORCING_KINDS = ("none", "fno", "kolmogorov")
_DEFAULTS = {"fno": {"amplitude": 0.1, "wavenumber": 1}, "kolmogorov": {"amplitude": 1.0, "wavenumber": 4}}
NS_PDE_NAMES = ("navier_stokes_2d", "navier_stokes")

# free-text forcings written by earlier versions of the importers, and what they mean
_LEGACY_TEXT = {
    re.sub(r"\s+", "", "0.1 (sin(2 pi (x + y)) + cos(2 pi (x + y)))"): ("fno", 0.1, 1),
    re.sub(r"\s+", "", "0.1*(sin(2*pi*(x+y))+cos(2*pi*(x+y)))"): ("fno", 0.1, 1),
}


@dataclass(frozen=True)
class Forcing:
    """A fixed vorticity forcing by kind:

    * ``"none"``: ``f = 0``;
    * ``"fno"``: ``a (sin(2 pi m (x + y) / L) + cos(2 pi m (x + y) / L))`` (the FNO benchmark's,
      ``a = 0.1``, ``m = 1`` on the unit torus);
    * ``"kolmogorov"``: ``-a k cos(k y)``, ``k = 2 pi m / L`` (curl of the body force ``(a sin(k y), 0)``).
    """

    kind: str = "none"
    amplitude: Optional[float] = None
    wavenumber: Optional[int] = None

    def __post_init__(self):
        if self.kind not in FORCING_KINDS:
            raise ValueError(f"forcing: unknown type {self.kind!r}; allowed: {', '.join(FORCING_KINDS)}")
        if self.kind == "none":
            object.__setattr__(self, "amplitude", None)
            object.__setattr__(self, "wavenumber", None)
            return
        d = _DEFAULTS[self.kind]
        a = d["amplitude"] if self.amplitude is None else self.amplitude
        m = d["wavenumber"] if self.wavenumber is None else self.wavenumber
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a):
            raise ValueError(f"forcing {self.kind!r}: amplitude must be a finite number, got {a!r}")
        if isinstance(m, bool) or not float(m).is_integer():
            raise ValueError(f"forcing {self.kind!r}: wavenumber must be an integer (periodic box), got {m!r}")
        object.__setattr__(self, "amplitude", float(a))
        object.__setattr__(self, "wavenumber", int(m))

    # ------------------------------------------------------------------ conversions
    @classmethod
    def from_spec(cls, spec: Union[None, str, Mapping, "Forcing"]) -> "Forcing":
        """From a spec entry: ``None``; a dict ``{"type": ..., "amplitude": ..., "wavenumber": ...}``
        (missing parameters take the kind's defaults); a known legacy text; or a :class:`Forcing`."""
        if spec is None:
            return cls("none")
        if isinstance(spec, Forcing):
            return spec
        if isinstance(spec, str):
            key = re.sub(r"\s+", "", spec)
            if key in FORCING_KINDS:
                return cls(key)
            if key in _LEGACY_TEXT:
                kind, a, m = _LEGACY_TEXT[key]
                return cls(kind, a, m)
            raise ValueError(
                f"forcing {spec!r} is free text this toolkit cannot evaluate; store it as "
                f'{{"type": one of {", ".join(FORCING_KINDS)}, "amplitude": a, "wavenumber": m}} '
                f"(re-import the file with neuralops-data import, or regenerate it)"
            )
        if isinstance(spec, Mapping):
            kind = spec.get("type", "none")
            unknown = set(spec) - {"type", "amplitude", "wavenumber"}
            if unknown:
                raise ValueError(
                    f"forcing: unknown parameter(s) {sorted(unknown)} for {kind!r}; allowed: amplitude, wavenumber"
                )
            return cls(kind, spec.get("amplitude"), spec.get("wavenumber"))
        raise ValueError(f"forcing must be a dict, a known name or None, got {type(spec).__name__} {spec!r}")

    def to_spec(self) -> Dict[str, Any]:
        """The generator's JSON form: ``{"type": ...}`` plus ``amplitude`` and ``wavenumber``."""
        if self.kind == "none":
            return {"type": "none"}
        return {"type": self.kind, "amplitude": self.amplitude, "wavenumber": self.wavenumber}

    def field(
        self, n: int, box: float = 1.0, origin: float = 0.0, dtype: torch.dtype = torch.float64, device=None
    ) -> Optional[torch.Tensor]:
        """``f`` on the ``n x n`` grid ``x_i = origin + i L / n`` (``indexing='ij'``), or ``None``."""
        if self.kind == "none":
            return None
        x = origin + torch.arange(n, dtype=torch.float64, device=device) * (box / n)
        X, Y = torch.meshgrid(x, x, indexing="ij")
        k = 2.0 * math.pi * self.wavenumber / box
        if self.kind == "fno":
            out = self.amplitude * (torch.sin(k * (X + Y)) + torch.cos(k * (X + Y)))
        else:
            out = -self.amplitude * k * torch.cos(k * Y)
        return out.to(dtype)


@dataclass
class NavierStokesPhysics:
    """What a consumer of a Navier-Stokes dataset needs to know about its equation.

    ``viscosity`` ``nu``; ``dt``: spacing of the stored snapshots; ``box``: side ``L``; ``forcing``:
    a :class:`Forcing` (or, for hand-made forcings, a callable ``n -> (n, n)`` float64 tensor or
    ``None``); ``drag``: linear drag ``alpha``; ``origin``: first grid coordinate of the stored
    fields (0 unless the data were resampled with a shift, module docstring).
    """

    viscosity: float
    dt: float
    box: float = 1.0
    forcing: Union[Forcing, Callable[[int], Optional[torch.Tensor]], None] = field(default_factory=Forcing)
    drag: float = 0.0
    origin: float = 0.0

    def __post_init__(self):
        # the ranges of the spec schema (datagen.spec), the one definition the recipes use too; dt is
        # the spec's sampling.snapshot_interval
        try:
            check_values(NS_FAMILY, {"viscosity": self.viscosity, "drag": self.drag, "box": self.box})
            check_values(NS_FAMILY, {"snapshot_interval": self.dt})
        except ValueError as exc:
            raise ValueError(f"physics: {exc}" + (" (dt)" if "snapshot_interval" in str(exc) else "")) from None
        if self.forcing is None or isinstance(self.forcing, (str, Mapping)):
            self.forcing = Forcing.from_spec(self.forcing)

    def forcing_field(self, n: int) -> Optional[torch.Tensor]:
        """The forcing on an ``n x n`` grid (float64 ``(n, n)``), or ``None`` for no forcing."""
        if isinstance(self.forcing, Forcing):
            return self.forcing.field(int(n), self.box, self.origin)
        return self.forcing(int(n)) if callable(self.forcing) else None

    @property
    def has_forcing(self) -> bool:
        return not (isinstance(self.forcing, Forcing) and self.forcing.kind == "none")

    def to_spec(self) -> Dict[str, Any]:
        """The settings the generator writes into a dataset's spec (the importers write the same), flat:
        :func:`datagen.spec.build_spec` puts them in ``physics`` and ``sampling.snapshot_interval``."""
        if not isinstance(self.forcing, Forcing):
            raise ValueError(
                "physics with a hand-made forcing function cannot be stored in a spec; "
                "use a Forcing (none / fno / kolmogorov)"
            )
        return {
            "viscosity": float(self.viscosity),
            "box": float(self.box),
            "drag": float(self.drag),
            "forcing": self.forcing.to_spec(),
            "snapshot_interval": float(self.dt),
        }

    def describe(self) -> str:
        f = self.forcing.to_spec() if isinstance(self.forcing, Forcing) else "custom"
        return (
            f"nu = {self.viscosity:g}, drag = {self.drag:g}, box = {self.box:g}, forcing = {f}, "
            f"snapshot spacing = {self.dt:g}"
        )


def _uniform_spacing(t) -> float:
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    if t.numel() < 2:
        raise ValueError("physics: the dataset has fewer than 2 time stamps and no 'snapshot_interval'")
    steps = t[1:] - t[:-1]
    if (steps - steps[0]).abs().max() > 1e-9 * max(1.0, float(steps[0].abs())):
        raise ValueError("physics: the snapshots are not uniformly spaced in time")
    return float(steps[0])


def physics_from_spec(spec: Union[Mapping, Spec], grid=None) -> NavierStokesPhysics:
    """:class:`NavierStokesPhysics` from a dataset's ``spec`` (generator or importer) and grid.

    Args:
        spec: the stored spec (sectioned, or the flat form of an earlier version) or a
            :class:`datagen.spec.Spec`; uses ``physics.viscosity`` (required), ``physics.box``
            (default 1), ``physics.drag`` (0), ``physics.forcing`` (dict, known legacy text or absent =
            none), ``sampling.snapshot_interval``.
        grid: the dataset's grid (``datagen.dataset.Grid``-like with ``coords``) or ``None``; when
            the spec lacks ``snapshot_interval`` the spacing is taken from uniform ``t`` stamps; its
            first ``x`` coordinate is the ``origin``.
    """
    spec = spec if isinstance(spec, Spec) else Spec.from_stored(spec, pde=NS_PDE_NAMES[0])
    if spec.get("viscosity") is None:
        raise ValueError(
            "physics: the spec has no 'viscosity'; is this a Navier-Stokes dataset? (for an "
            "imported file, re-import it with neuralops-data import fno-ns --viscosity NU)"
        )
    coords = getattr(grid, "coords", None) if grid is not None else None
    dt = spec.get("snapshot_interval")
    if dt is None:
        if coords is None or "t" not in coords:
            raise ValueError("physics: no 'snapshot_interval' in the spec and no time stamps in the grid")
        dt = _uniform_spacing(coords["t"])
    origin = 0.0
    if coords is not None and "x" in coords and len(coords["x"]):
        origin = float(coords["x"][0])
        if "y" in coords and len(coords["y"]) and not math.isclose(float(coords["y"][0]), origin, abs_tol=1e-12):
            raise ValueError(f"physics: grid origins differ in x and y ({origin}, {float(coords['y'][0])})")
    return NavierStokesPhysics(
        viscosity=float(spec.get("viscosity")),
        dt=float(dt),
        box=float(spec.get("box", 1.0) or 1.0),
        forcing=Forcing.from_spec(spec.get("forcing")),
        drag=float(spec.get("drag", 0.0) or 0.0),
        origin=origin,
    )


def physics_from_dataset(ds) -> NavierStokesPhysics:
    """:func:`physics_from_spec` of an open dataset (``datagen.dataset.open_dataset``), which must be
    a Navier-Stokes one."""
    if ds.pde not in NS_PDE_NAMES:
        raise ValueError(f"{ds.path!r} holds pde={ds.pde!r}, not a Navier-Stokes (vorticity) dataset")
    return physics_from_spec(Spec.from_stored(ds.spec, pde=ds.pde), ds.grid)
