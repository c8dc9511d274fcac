"""The dataset spec: one schema, fixed sections, shared by the generators, the importers and ``validate``.

A stored spec (the JSON root attribute ``spec`` of a data-contract file) is::

    {"family": "darcy", "schema": "neuralops-spec/2",
     "physics": {...}, "discretisation": {...}, "solver": {...}, "sampling": {...}}

Every setting has exactly one place, given by the table of its family below. Writers hand a flat
mapping of settings to :func:`build_spec`, which puts each key in its section and refuses unknown
keys (one line, closest allowed key); :func:`check_spec` lists every problem of a stored spec (an
unknown or missing section, a key in the wrong section, an unknown key, a bad value);
:meth:`Spec.from_stored` is the one typed read accessor, and also reads the flat specs earlier
versions wrote (upgraded in memory; the file is never rewritten).

Sections (what goes where)
--------------------------
==================  ==============================================================================
section             holds
==================  ==============================================================================
``physics``         the equation and its deterministic data: boundary condition, constant source,
                    NS viscosity, drag, box, forcing; an imported file's physical parameters
``discretisation``  how the continuous problem becomes stored arrays: dimension, resolution(s),
                    the typed grid record (:meth:`datagen.contract.Grid.to_spec`, key ``grid``),
                    node convention, the scheme, time step and theta of the heat scheme, NS
                    resampling, stored fields and dtype
``solver``          how the discrete problem is solved: method, preconditioner, tolerance ``rtol``
                    (the only place validate reads it), restarts, ordering, blocks, the auto record,
                    NS stepper and its time step / CFL rule, compute dtype, refinement provenance
``sampling``        seed-independent laws of the random inputs (GRF laws, coefficient laws, the
                    Helmholtz wavenumber law, the NS initial-field law), the seeding rule, the time
                    window of what is stored (NS ``t_start``/``snapshot_interval``/``n_snapshots``,
                    heat ``n_steps``), the recipe name and where imported samples came from
==================  ==============================================================================

Families: the elliptic families (``darcy``, ``darcy3d``, ``helmholtz``, ``helmholtz3d``,
``poisson``, ``heat``) share one table, ``navier_stokes_2d`` has its own; both include the
importers' provenance keys (:data:`COMMON`), which alone make the table of any other family (files
imported from PDEBench or the Well). The family of a flat spec without ``family`` is the dataset's
``pde`` when that names a table, else ``navier_stokes_2d`` when it records a ``viscosity``.

A value is validated once, where it enters (the family constructors, the generation config, the
recipes): the checkers of the tables are those same functions (``check_rtol``,
``check_node_convention``, :class:`~datagen.navier_stokes.physics.Forcing`, the families'
``check_*``), or the one definition of a range that the entry point itself calls
(:func:`check_values`, used by :func:`datagen.navier_stokes.recipes.check_spec`).
"""

from __future__ import annotations

import importlib
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from datagen.spec_keys import close_match, unknown_key_message

__all__ = [
    "SCHEMA",
    "SECTIONS",
    "NS_FAMILY",
    "ELLIPTIC_FAMILIES",
    "Key",
    "COMMON",
    "ELLIPTIC",
    "NAVIER_STOKES",
    "ELLIPTIC_OPTIONS",
    "table",
    "section_of",
    "build_spec",
    "check_spec",
    "same_spec",
    "check_values",
    "settable_keys",
    "Spec",
    "SpecError",
]

SCHEMA = "neuralops-spec/2"
SECTIONS = ("physics", "discretisation", "solver", "sampling")
TOP_LEVEL = ("family", "schema") + SECTIONS
NS_FAMILY = "navier_stokes_2d"
ELLIPTIC_FAMILIES = ("darcy", "darcy3d", "helmholtz", "helmholtz3d", "poisson", "heat")

Checker = Callable[[str, Any], None]


class SpecError(ValueError):
    """A spec that does not follow the schema (the message names the key and what is allowed)."""


@dataclass(frozen=True)
class Key:
    """One setting: its ``section``, its ``check(key, value)`` (raises ``ValueError``) and whether
    ``--set`` may give it (``settable``)."""

    section: str
    check: Checker
    settable: bool = False


# ------------------------------------------------------------------------------------------------
# checkers (type checks, ranges that have no other home, and delegation to the entry-point checks)
# ------------------------------------------------------------------------------------------------
def _is_number(v: Any) -> bool:
    """A finite real number (Python or NumPy), not a bool."""
    return not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(v)


def number(low: Optional[float] = None, strict: bool = False, optional: bool = False) -> Checker:
    """A finite number, ``>= low`` (``> low`` when ``strict``); ``None`` allowed when ``optional``."""

    def check(key, v):
        if v is None and optional:
            return
        if not _is_number(v):
            raise ValueError(f"{key} must be a finite number, got {v!r}")
        if low is not None and (v <= low if strict else v < low):
            raise ValueError(f"{key} must be {'>' if strict else '>='} {low}, got {v!r}")

    return check


def integer(low: int = 1, optional: bool = False) -> Checker:
    def check(key, v):
        if v is None and optional:
            return
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
            what = "a positive integer" if low == 1 else f"an integer >= {low}"
            raise ValueError(f"{key} must be {what}, got {v!r}")

    return check


def _type(kinds: tuple, what: str, optional: bool = True) -> Checker:
    def check(key, v):
        if v is None and optional:
            return
        if isinstance(v, bool) and bool not in kinds or not isinstance(v, kinds):
            raise ValueError(f"{key} must be {what}, got {type(v).__name__} {v!r}")

    return check


TEXT = _type((str,), "a string")
MAPPING = _type((dict,), "a JSON object", optional=False)
OPT_MAPPING = _type((dict,), "a JSON object or null")
LIST = _type((list, tuple), "a list")
FLAG = _type((bool,), "true or false", optional=False)
INT_OR_TEXT = _type((numbers.Integral, str), "an integer or a string")
INT = _type((numbers.Integral,), "an integer", optional=False)


def one_of(choices: Iterable[str]) -> Checker:
    choices = tuple(choices)

    def check(key, v):
        if v not in choices:
            hint = close_match(str(v), choices) if isinstance(v, str) else None
            raise ValueError(
                f"{key} {v!r} is not allowed; use one of {', '.join(map(str, choices))}"
                + (f" (did you mean {hint!r}?)" if hint else "")
            )

    return check


def delegate(module: str, name: str, style: str = "value") -> Checker:
    """The entry point's own check ``module.name``, imported when first used (the Navier-Stokes
    modules import torch). ``style``: ``value`` calls ``f(v)``; ``choices`` treats ``module.name``
    as the tuple of allowed values."""

    def check(key, v):
        target = getattr(importlib.import_module(module), name)
        if style == "choices":
            one_of(target)(key, v)
        else:
            target(v)

    return check


def _rtol(key, v):
    from datagen.contract import check_rtol

    check_rtol(v, key)


def _grid(key, v):
    from datagen.contract import Grid

    if not isinstance(v, Mapping):
        raise ValueError(
            f"{key} must be the grid record {{axis: {{n, extent, nodes, boundary}}}} of "
            f"datagen.contract.Grid.to_spec, got {type(v).__name__} {v!r}"
        )
    Grid.from_spec(v)


def _node_convention(key, v):
    from datagen.contract import check_node_convention

    check_node_convention(v)


def _sizes(key, v):
    if (
        isinstance(v, (list, tuple))
        and v
        and all(not isinstance(n, bool) and isinstance(n, numbers.Integral) and n >= 1 for n in v)
    ):
        return
    raise ValueError(f"{key} must be a list of positive integers (points per axis), got {v!r}")


def resolution_or_sizes(per_axis: Checker) -> Checker:
    """A generator's resolution (``per_axis``) or an importer's points per axis ``[nx, ny]``."""

    def check(key, v):
        (_sizes if isinstance(v, (list, tuple)) else per_axis)(key, v)

    return check


# -- values of the elliptic families: the family constructors call these where the values enter --------
BOUNDARY_CONDITIONS = ("dirichlet", "neumann")


_real = _is_number


def check_source(value) -> float:
    """The constant source ``f`` of darcy and heat (``physics.forcing``): a finite number."""
    if not _real(value):
        raise ValueError(f"forcing must be a finite number (the constant source f), got {value!r}")
    return float(value)


def check_wavenumber(value) -> float:
    """Helmholtz mean wavenumber (``sampling.wavenumber``): a positive number."""
    if not (_real(value) and value > 0):
        raise ValueError(f"helmholtz: wavenumber must be a positive number, got {value!r}")
    return float(value)


def check_contrast(value) -> float:
    if not (_real(value) and value >= 0):
        raise ValueError(f"helmholtz: contrast must be >= 0, got {value!r}")
    return float(value)


def check_spread(value) -> float:
    if not (_real(value) and 0 <= value < 1):
        raise ValueError(f"helmholtz: spread must be in [0, 1), got {value!r}")
    return float(value)


def check_bc(value) -> str:
    if value not in BOUNDARY_CONDITIONS:
        raise ValueError(f"helmholtz: unknown boundary condition {value!r}; allowed: {', '.join(BOUNDARY_CONDITIONS)}")
    return str(value)


def check_n_steps(value) -> int:
    """Heat: time steps stored per sample (``sampling.n_steps``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"heat: n_steps must be a positive integer, got {value!r}")
    return int(value)


def check_dt(value) -> float:
    if not (_real(value) and value > 0):
        raise ValueError(f"heat: dt must be a positive number, got {value!r}")
    return float(value)


def check_theta(value) -> float:
    if not (_real(value) and 0.5 <= value <= 1.0):
        raise ValueError(f"heat: theta must be in [0.5, 1] (unconditionally stable schemes), got {value!r}")
    return float(value)


def _value(check: Callable[[Any], Any]) -> Checker:
    return lambda key, v: check(v)


def _ns_resolution(key, v):
    integer()(key, v)
    if v < 4 or v % 2:
        raise ValueError(f"{key} must be an even integer >= 4, got {v}")


def _ns_forcing(key, v):
    from datagen.navier_stokes.physics import Forcing

    Forcing.from_spec(v)


def _dim(key, v):
    one_of((2, 3))(key, v)


# ------------------------------------------------------------------------------------------------
# the tables
# ------------------------------------------------------------------------------------------------
def _keys(section: str, entries: Mapping[str, Checker], settable: bool = False) -> Dict[str, Key]:
    return {k: Key(section, c, settable) for k, c in entries.items()}


#: provenance and grid keys every family may hold (the importers write them)
COMMON: Dict[str, Key] = {
    **_keys("physics", {"equation": TEXT, "domain": TEXT, "simulation_parameters": OPT_MAPPING}),
    **_keys(
        "discretisation",
        {
            "grid": _grid,
            "node_convention": _node_convention,
            "node_convention_source": TEXT,
            "layout": TEXT,
            "grid_type": TEXT,
            "resolution": _sizes,
            "subsample": integer(),
        },
    ),
    **_keys("solver", {"rtol": _rtol}),
    **_keys(
        "sampling",
        {
            "source": TEXT,
            "file": TEXT,
            "sha256": TEXT,
            "matlab_version": TEXT,
            "n": integer(),
            "frames": integer(),
            "samples": LIST,
            "imported_from": OPT_MAPPING,
            "dataset_name": TEXT,
            "skipped_time_varying_scalars": LIST,
            "seeding": TEXT,
            "recipe": TEXT,
        },
    ),
}

#: the elliptic families (their ``spec()`` and the generator's solver record)
ELLIPTIC: Dict[str, Key] = {
    **COMMON,
    **_keys("physics", {"forcing": _value(check_source), "boundary_condition": _value(check_bc)}),
    # resolution: its range (>= 3 points per axis) is checked where it enters (the family constructor)
    **_keys(
        "discretisation",
        {
            "dim": _dim,
            "resolution": resolution_or_sizes(integer()),
            "scheme": TEXT,
            "dt": _value(check_dt),
            "theta": _value(check_theta),
            "g_storage": TEXT,
            "points_per_wavelength_min": number(0.0, strict=True),
        },
    ),
    **_keys(
        "sampling",
        {
            "coefficient": TEXT,
            "coefficient_law": TEXT,
            "a_law": TEXT,
            "wavenumber_law": TEXT,
            "grf": MAPPING,
            "k_grf": MAPPING,
            "f_grf": MAPPING,
            "g_grf": MAPPING,
            "a_grf": MAPPING,
            "u0_grf": MAPPING,
            "wavenumber": _value(check_wavenumber),
            "contrast": _value(check_contrast),
            "spread": _value(check_spread),
            "n_steps": _value(check_n_steps),
            "u_times": TEXT,
            "user_fields": MAPPING,
            "k0_param": TEXT,
            "u_on_wall_relative": number(0.0),
        },
    ),
    # the generation config: its ranges are checked where it enters (GenerationConfig.validate, the PETSc
    # backend, the sorting), so the schema checks only the type, except rtol whose one check is
    # contract.check_rtol; settable: what --set may change
    **_keys(
        "solver",
        {
            "solver": TEXT,
            "pc": TEXT,
            "rtol": _rtol,
            "restart": INT,
            "recycle": INT,
            "max_it": INT,
            "ordering": TEXT,
            "group_size": INT,
            "initial_guess": TEXT,
            "pc_reuse": INT,
            "petsc_options": TEXT,
            "block": INT,
        },
        settable=True,
    ),
    **_keys(
        "solver",
        {
            "dtype": TEXT,
            "method": TEXT,
            "auto_reason": TEXT,
            "auto": OPT_MAPPING,
            "factor_used": TEXT,
            "petsc_options_unused": LIST,
            "pc_used": TEXT,
            "pc_defaults": TEXT,
            "pc_reuse_used": INT_OR_TEXT,
            "ordering_used": TEXT,
            "pc_side": TEXT,
            "stopping": TEXT,
            "fallback": TEXT,
            "block_reset": TEXT,
            "storage": MAPPING,
        },
    ),
}

#: elliptic ``--set`` / flag options (keyword arguments of the family classes) and the spec key each sets
ELLIPTIC_OPTIONS: Dict[str, Dict[str, str]] = {
    "darcy": {
        "coefficient": "sampling.coefficient",
        "alpha": "sampling.grf.alpha",
        "tau": "sampling.grf.tau",
        "forcing": "physics.forcing",
    },
    "helmholtz": {
        "wavenumber": "sampling.wavenumber",
        "contrast": "sampling.contrast",
        "spread": "sampling.spread",
        "bc": "physics.boundary_condition",
        "alpha": "sampling.k_grf.alpha",
        "tau": "sampling.k_grf.tau",
    },
    "poisson": {
        "alpha": "sampling.f_grf.alpha",
        "tau": "sampling.f_grf.tau",
        "boundary_alpha": "sampling.g_grf.alpha",
        "boundary_tau": "sampling.g_grf.tau",
    },
    "heat": {
        "steps": "sampling.n_steps",
        "dt": "discretisation.dt",
        "theta": "discretisation.theta",
        "alpha": "sampling.a_grf.alpha",
        "tau": "sampling.a_grf.tau",
        "forcing": "physics.forcing",
    },
}

_NS = "datagen.navier_stokes"
STORE_DTYPES = ("float32", "float64")  # of the Navier-Stokes fields (discretisation.store_dtype)
#: the Navier-Stokes generator (recipes), the importers' physics and the refinement record
NAVIER_STOKES: Dict[str, Key] = {
    **COMMON,
    **_keys(
        "physics",
        {"viscosity": number(0.0), "box": number(0.0, strict=True), "drag": number(0.0), "forcing": _ns_forcing},
        settable=True,
    ),
    **_keys("physics", {"equation": TEXT}, settable=True),
    **_keys(
        "discretisation",
        {
            "resolution": resolution_or_sizes(_ns_resolution),
            "store_resolution": integer(),
            "resample": delegate(f"{_NS}.resample", "RESAMPLE_METHODS", "choices"),
            "fields": LIST,
            "store_dtype": one_of(STORE_DTYPES),
        },
        settable=True,
    ),
    **_keys(
        "solver",
        {
            "stepper": delegate(f"{_NS}.steppers", "STEPPERS", "choices"),
            "dt_mode": delegate(f"{_NS}.solver", "DT_MODES", "choices"),
            "dt": number(0.0, strict=True, optional=True),
            "cfl": number(0.0, strict=True),
            "cfl_recheck": number(0.0, strict=True),
        },
        settable=True,
    ),
    **_keys("solver", {"compute_dtype": TEXT, "refinement": MAPPING}),  # generate() checks compute_dtype
    **_keys(
        "sampling",
        {
            "initial": delegate(f"{_NS}.initial", "check_initial_spec"),
            "t_start": number(0.0),
            "snapshot_interval": number(0.0, strict=True),
            "n_snapshots": integer(),
            "include_initial": FLAG,
        },
        settable=True,
    ),
}
NAVIER_STOKES["recipe"] = Key("sampling", TEXT, True)

_TABLES: Dict[str, Dict[str, Key]] = {**{f: ELLIPTIC for f in ELLIPTIC_FAMILIES}, NS_FAMILY: NAVIER_STOKES}


def table(family: Optional[str]) -> Dict[str, Key]:
    """``{key: Key}`` of ``family`` (:data:`COMMON` for a family without its own table)."""
    return _TABLES.get(str(family), COMMON) if family is not None else COMMON


def section_of(family: Optional[str], key: str) -> Optional[str]:
    k = table(family).get(key)
    return k.section if k is not None else None


def settable_keys(family: str, section: Optional[str] = None) -> Tuple[str, ...]:
    """The keys ``--set`` may give (of one ``section``), sorted."""
    return tuple(
        sorted(k for k, v in table(family).items() if v.settable and (section is None or v.section == section))
    )


def _check_value(family: Optional[str], key: str, value: Any, where: str = "") -> Optional[str]:
    k = table(family).get(key)
    if k is None:
        return None
    try:
        k.check(key, value)
    except ValueError as exc:
        return f"{where}{exc}"
    return None


def check_values(family: str, values: Mapping[str, Any], keys: Optional[Iterable[str]] = None) -> None:
    """Raise the first bad value of a flat mapping (``keys``: only these, in this order), with the
    checker's message (what is allowed)."""
    for key in keys if keys is not None else values:
        if key in values:
            problem = _check_value(family, key, values[key])
            if problem:
                raise ValueError(problem)


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
def build_spec(family: str, values: Mapping[str, Any], where: Optional[str] = None) -> dict:
    """The stored spec of ``family`` from a flat mapping of its settings: each key in its section.

    ``values`` may repeat ``family``; a key of no section is a :class:`SpecError` naming it, the
    closest allowed key and the allowed ones; a bad value is one naming the key and the range.
    """
    family = str(family)
    tab = table(family)
    values = dict(values)
    given = values.pop("family", family)
    if given != family:
        raise SpecError(f"spec: family {given!r} given for a {family!r} spec")
    unknown = [k for k in values if k not in tab]
    if unknown:
        raise SpecError(unknown_key_message(unknown, tab, where or f"{family} spec"))
    out: Dict[str, Any] = {"family": family, "schema": SCHEMA, **{s: {} for s in SECTIONS}}
    for key, value in values.items():
        problem = _check_value(family, key, value, f"{family} spec {tab[key].section}.{key}: ")
        if problem:
            raise SpecError(problem)
        out[tab[key].section][key] = value
    return out


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
def _family_of_flat(flat: Mapping[str, Any], pde: Optional[str]) -> Optional[str]:
    fam = flat.get("family")
    if isinstance(fam, str):
        return fam
    if pde is not None and str(pde) in _TABLES:
        return str(pde)
    if "viscosity" in flat:
        return NS_FAMILY
    return None


@dataclass(frozen=True)
class Spec:
    """A stored spec, read: ``family``, the four sections (plain dicts), ``legacy`` (True when the file
    holds the flat form of an earlier version) and ``unplaced`` (keys of such a flat spec that no
    section has, e.g. a refinement's or a prediction file's provenance; kept, never checked)."""

    family: Optional[str]
    physics: Dict[str, Any] = field(default_factory=dict)
    discretisation: Dict[str, Any] = field(default_factory=dict)
    solver: Dict[str, Any] = field(default_factory=dict)
    sampling: Dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA
    legacy: bool = False
    unplaced: Dict[str, Any] = field(default_factory=dict)
    conflicts: Tuple[str, ...] = ()

    @classmethod
    def from_stored(cls, obj: Any, pde: Optional[str] = None) -> "Spec":
        """The spec of a file: a stored mapping, its JSON text, or an open dataset (its ``spec`` and
        ``pde``). A flat spec of an earlier version is upgraded in memory (module docstring)."""
        if hasattr(obj, "spec") and not isinstance(obj, Mapping):
            pde = pde if pde is not None else getattr(obj, "pde", None)
            obj = obj.spec
        if isinstance(obj, (str, bytes)):
            obj = json.loads(obj)
        if not isinstance(obj, Mapping):
            return cls(None)
        if "schema" in obj:
            sections = {s: dict(obj.get(s) or {}) if isinstance(obj.get(s), Mapping) else {} for s in SECTIONS}
            return cls(obj.get("family"), schema=str(obj["schema"]), **sections)
        return cls._upgrade(obj, pde)

    @classmethod
    def _upgrade(cls, flat: Mapping[str, Any], pde: Optional[str]) -> "Spec":
        family = _family_of_flat(flat, pde)
        tab = table(family)
        sections: Dict[str, Dict[str, Any]] = {s: {} for s in SECTIONS}
        unplaced: Dict[str, Any] = {}
        conflicts: List[str] = []

        def put(section, key, value):
            if key in sections[section] and sections[section][key] != value:
                conflicts.append(
                    f"spec (flat, earlier version) records {key} twice: {sections[section][key]!r} and {value!r}"
                )
            sections[section][key] = value

        for key, value in flat.items():
            if key == "family":
                continue
            if key == "solver" and isinstance(value, Mapping):  # the elliptic solver record
                for k, v in value.items():
                    put("solver", k, v)
            elif key == "discretisation" and isinstance(value, str):  # the elliptic scheme text
                put("discretisation", "scheme", value)
            elif key in tab:
                put(tab[key].section, key, value)
            else:
                unplaced[key] = value
        return cls(family, schema="flat", legacy=True, unplaced=unplaced, conflicts=tuple(conflicts), **sections)

    # -- access -----------------------------------------------------------------------------------
    def section(self, name: str) -> Dict[str, Any]:
        if name not in SECTIONS:
            raise KeyError(f"spec has no section {name!r}; sections: {', '.join(SECTIONS)}")
        return getattr(self, name)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` in the section the family's table gives it (else any section)."""
        sec = section_of(self.family, key)
        if sec is not None and key in self.section(sec):
            return self.section(sec)[key]
        for s in SECTIONS:
            if key in self.section(s):
                return self.section(s)[key]
        return self.unplaced.get(key, default)

    def __contains__(self, key: str) -> bool:
        return any(key in self.section(s) for s in SECTIONS)

    def flat(self) -> Dict[str, Any]:
        """Every setting in one mapping (keys are unique within a family's table), ``family`` included
        when known: the form :func:`build_spec` takes."""
        out: Dict[str, Any] = {"family": self.family} if self.family is not None else {}
        for s in SECTIONS:
            out.update(self.section(s))
        return out

    @property
    def grid_record(self) -> Any:
        """``discretisation.grid``: the typed record (a mapping), a legacy text, or None."""
        return self.discretisation.get("grid")

    @property
    def grid(self):
        """The :class:`datagen.contract.Grid` of the record (None when there is no typed record)."""
        from datagen.contract import Grid

        rec = self.grid_record
        return Grid.from_spec(rec) if isinstance(rec, Mapping) else None

    @property
    def node_convention(self) -> Optional[str]:
        return self.discretisation.get("node_convention")

    @property
    def rtol(self) -> Optional[float]:
        """``solver.rtol`` (the one place a tolerance is recorded), or None."""
        return self.solver.get("rtol")

    def to_stored(self) -> dict:
        """The sectioned form (what :func:`build_spec` writes) of this spec."""
        out: Dict[str, Any] = {"family": self.family, "schema": SCHEMA}
        out.update({s: dict(self.section(s)) for s in SECTIONS})
        return out


def same_spec(stored: Any, requested: Any, pde: Optional[str] = None) -> bool:
    """True when a stored spec (sectioned, or the flat form of an earlier version) holds the same
    settings as ``requested``: what a resume compares, so that a run started by an earlier version
    goes on (the finished file is written with the requested, sectioned spec)."""
    a, b = Spec.from_stored(stored, pde), Spec.from_stored(requested, pde)
    norm = lambda s: json.loads(json.dumps({**s.to_stored(), "unplaced": s.unplaced}, sort_keys=True))  # noqa: E731
    return norm(a) == norm(b)


def check_spec(spec: Any, pde: Optional[str] = None) -> List[str]:
    """Every way in which a stored spec breaks the schema ([] when it conforms).

    Sectioned specs: the top level holds ``family``, ``schema`` and the four sections, each a JSON
    object; each key lies in the section its family's table gives it and passes its check. Flat
    specs of earlier versions are read through :meth:`Spec.from_stored`: their known keys' values
    are checked; keys no table has are kept (earlier writers allowed them).
    """
    if isinstance(spec, (str, bytes)):
        try:
            spec = json.loads(spec)
        except ValueError:
            return ["spec is not valid JSON"]
    if not isinstance(spec, Mapping):
        return ["spec is not a JSON object"]
    problems: List[str] = []
    if "schema" not in spec:
        s = Spec.from_stored(spec, pde)
        problems += list(s.conflicts)
        for sec in SECTIONS:
            for key, value in s.section(sec).items():
                if key == "grid" and isinstance(value, str):
                    continue  # the text record of earlier versions (datagen.contract reads it)
                p = _check_value(s.family, key, value, f"spec (flat, earlier version) {key}: ")
                if p:
                    problems.append(p)
        return problems
    if spec.get("schema") != SCHEMA:
        problems.append(
            f"spec schema {spec.get('schema')!r} is not known; this version reads {SCHEMA!r} "
            "(and the flat specs before it)"
        )
    family = spec.get("family")
    if not isinstance(family, str) or not family:
        problems.append(f"spec family must be a non-empty string, got {family!r}")
        family = None
    for key in spec:
        if key not in TOP_LEVEL:
            hint = close_match(key, SECTIONS)
            problems.append(
                f"spec: unknown section {key!r}"
                + (f" (did you mean {hint!r}?)" if hint else "")
                + f"; the top level holds family, schema and the sections {', '.join(SECTIONS)}"
            )
    tab = table(family)
    for sec in SECTIONS:
        if sec not in spec:
            problems.append(f"spec: section {sec!r} is missing (sections: {', '.join(SECTIONS)})")
            continue
        body = spec[sec]
        if not isinstance(body, Mapping):
            problems.append(f"spec: section {sec!r} must be a JSON object, got {type(body).__name__}")
            continue
        for key, value in body.items():
            k = tab.get(key)
            if k is None:
                allowed = [n for n, v in tab.items() if v.section == sec]
                problems.append(unknown_key_message([key], allowed, f"spec section {sec!r} of family {family!r}"))
            elif k.section != sec:
                problems.append(
                    f"spec: key {key!r} is in section {sec!r} but belongs in section {k.section!r} "
                    f"(family {family!r}); move it to {k.section}.{key}"
                )
            else:
                p = _check_value(family, key, value, f"spec {sec}.{key}: ")
                if p:
                    problems.append(p)
    return problems
