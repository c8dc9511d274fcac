"""Named generation recipes: complete, JSON-ready specs of a Navier-Stokes dataset.

A recipe is a plain dict (it becomes the dataset's ``spec``); every key can be overridden. Keys:

``viscosity``            nu (>= 0)
``box``                  side L of the periodic box
``resolution``           solver grid n (even)
``store_resolution``     stored grid m (m = n, or m | n for ``subsample``, even m for ``spectral``)
``resample``             ``subsample`` | ``spectral`` | ``bilinear`` (:mod:`datagen.navier_stokes.resample`)
``stepper``              ``fno`` | ``rk3cn`` | ``rk4cn`` (:mod:`datagen.navier_stokes.steppers`)
``dt_mode``, ``dt``, ``cfl``  ``fixed`` step ``dt``; or ``cfl``: per-sample steps at CFL ``cfl``, capped by ``dt``,
                         chosen again every ``cfl_recheck`` of simulated time
``t_start``              first stored time (the solver runs from 0; ``t_start > 0`` is a warm-up)
``snapshot_interval``    time between stored snapshots
``n_snapshots``          snapshots stored: ``t_start + k * snapshot_interval``, ``k = 1..n_snapshots``
                         (``k = 0..n_snapshots-1`` with ``include_initial``)
``include_initial``      store the state at ``t_start`` itself as the first frame
``forcing``              ``{"type": "none" | "fno" | "kolmogorov", ...}``; ``drag``: linear drag alpha
``initial``              ``{"type": "fno-grf" | "mcwilliams" | "file", ...}`` (:mod:`.initial`)
``fields``               stored fields: ``vorticity`` always, optionally ``velocity``, ``stream``
``store_dtype``          ``float32`` | ``float64``
``recipe``, ``equation``  the recipe's name and the equation in words (set by :func:`recipe`)
``compute_dtype``, ``seeding``  recorded by the generator

Any other key is refused (:func:`check_spec`): a misspelt ``--set viscosty=1e-4`` is an error that
names the closest documented key, never a value that is stored and ignored.

Recipes:

``fno``               the FNO benchmark (Li et al. 2020): unit torus, FNO forcing, FNO GRF initial
                      vorticity, Euler/Crank-Nicolson with dt = 1e-4 on 256^2, one snapshot per unit
                      time at t = 1..T (the benchmark files' ``u``; ``a`` is t = 0), stored at 64^2 by
                      subsampling. T = 50 / 30 / 20 for nu = 1e-3 / 1e-4 / 1e-5.
``spectral-refiner``  Spectral-Refiner's FNO-type data as torch-cfd generates them (Cao et al. 2025;
                      torch-cfd ``fno/data_gen``): FNO forcing and GRF, nu = 1e-3, 256^2, the FNO
                      explicit/Crank-Nicolson step (stepper ``fno``) at dt = 1e-3, warm-up to t = 30,
                      100 snapshots over (30, 50] (every 0.2), brought to 64^2 by bilinear
                      interpolation (``resample: bilinear``, as ``F.interpolate(mode="bilinear")``).
``spectral-refiner-rk4cn``  this toolkit's earlier variant of the same data: RK4-Crank-Nicolson at
                      dt = 1e-3 and spectral truncation to 64^2 (alias-free, so the stored data satisfy
                      the discrete equation that the refinement residual measures).
``mcwilliams``        decaying turbulence as torch-cfd generates it (``data_gen_McWilliams2d``) on
                      (0, 2 pi)^2, nu = 1e-3, no forcing: the McWilliams density applied as an
                      amplitude (``E(k) ∝ k / (1 + (k / 4)^4)^2``, kinetic energy 0.25), RK4-CN at a fixed
                      dt = 1e-3, 100 snapshots over (4.5, 10] (every 0.055), 256^2 brought to 64^2 by
                      bilinear interpolation.
``mcwilliams1984``    this toolkit's earlier variant after McWilliams (1984): power law
                      ``|psi_k|^2 ∝ k^-1 (1 + (k/4)^4)^-1`` on the 2/3 band, unit kinetic energy (Re = 1000
                      with unit energy and length), RK4-CN with CFL-limited steps (CFL 0.5,
                      dt <= 1e-2), the same window, spectral truncation to 64^2.
``kolmogorov``        Kolmogorov flow on (0, 2 pi)^2: forcing -4 cos(4 y) (body force sin(4 y) e_x),
                      drag 0.1, nu = 1e-3 (Re 1000), McWilliams-type initial field (peak 4, unit
                      energy), RK3-CN with CFL-limited steps, warm-up to t = 10, 100 snapshots every 0.1
                      over (10, 20], 256^2 stored at 64^2 by spectral truncation.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, Mapping, Optional

from datagen.spec import NS_FAMILY, check_values, settable_keys
from datagen.spec_keys import check_keys

from .initial import check_initial_spec
from .resample import check_resample
from .solver import CFL_LIMITS, DT_MODES
from .spectral import FORCINGS
from .steppers import STEPPERS

__all__ = ["RECIPES", "FNO_FINAL_TIMES", "SPEC_KEYS", "recipe", "check_spec", "snapshot_times", "OPTIONAL_FIELDS"]

FNO_FINAL_TIMES = {1e-3: 50.0, 1e-4: 30.0, 1e-5: 20.0}
OPTIONAL_FIELDS = ("velocity", "stream")

_BASE: Dict[str, Any] = {
    "equation": "w_t + u.grad w = nu Lap w - drag w + f, u = (psi_y, -psi_x), -Lap psi = w",
    "box": 1.0,
    "resolution": 256,
    "store_resolution": 64,
    "resample": "subsample",
    "stepper": "fno",
    "dt_mode": "fixed",
    "dt": 1e-4,
    "cfl": 0.5,
    "cfl_recheck": 0.1,
    "t_start": 0.0,
    "snapshot_interval": 1.0,
    "include_initial": False,
    "forcing": {"type": "none"},
    "drag": 0.0,
    "fields": ["vorticity"],
    "store_dtype": "float32",
}

RECIPES: Dict[str, Dict[str, Any]] = {
    "fno": {
        **_BASE,
        "viscosity": 1e-3,
        "n_snapshots": 50,
        "forcing": {"type": "fno", "amplitude": 0.1, "wavenumber": 1},
        "initial": {"type": "fno-grf", "alpha": 2.5, "tau": 7.0, "sigma": 7.0**1.5},
    },
    "spectral-refiner": {
        **_BASE,
        "viscosity": 1e-3,
        "stepper": "fno",
        "dt": 1e-3,
        "t_start": 30.0,
        "snapshot_interval": 0.2,
        "n_snapshots": 100,
        "resample": "bilinear",
        "forcing": {"type": "fno", "amplitude": 0.1, "wavenumber": 1},
        "initial": {"type": "fno-grf", "alpha": 2.5, "tau": 7.0, "sigma": 7.0**1.5},
    },
    "spectral-refiner-rk4cn": {
        **_BASE,
        "viscosity": 1e-3,
        "stepper": "rk4cn",
        "dt": 1e-3,
        "t_start": 30.0,
        "snapshot_interval": 0.2,
        "n_snapshots": 100,
        "resample": "spectral",
        "forcing": {"type": "fno", "amplitude": 0.1, "wavenumber": 1},
        "initial": {"type": "fno-grf", "alpha": 2.5, "tau": 7.0, "sigma": 7.0**1.5},
    },
    "mcwilliams": {
        **_BASE,
        "viscosity": 1e-3,
        "box": 2 * math.pi,
        "stepper": "rk4cn",
        "dt_mode": "fixed",
        "dt": 1e-3,
        "t_start": 4.5,
        "snapshot_interval": 0.055,
        "n_snapshots": 100,
        "resample": "bilinear",
        "initial": {"type": "mcwilliams", "peak_wavenumber": 4.0, "energy": 0.25, "law": "amplitude"},
    },
    "mcwilliams1984": {
        **_BASE,
        "viscosity": 1e-3,
        "box": 2 * math.pi,
        "stepper": "rk4cn",
        "dt_mode": "cfl",
        "dt": 1e-2,
        "cfl": 0.5,
        "t_start": 4.5,
        "snapshot_interval": 0.055,
        "n_snapshots": 100,
        "resample": "spectral",
        "initial": {"type": "mcwilliams", "peak_wavenumber": 4.0, "energy": 1.0, "law": "power"},
    },
    "kolmogorov": {
        **_BASE,
        "viscosity": 1e-3,
        "box": 2 * math.pi,
        "stepper": "rk3cn",
        "dt_mode": "cfl",
        "dt": 1e-2,
        "cfl": 0.5,
        "t_start": 10.0,
        "snapshot_interval": 0.1,
        "n_snapshots": 100,
        "resample": "spectral",
        "drag": 0.1,
        "forcing": {"type": "kolmogorov", "amplitude": 1.0, "wavenumber": 4},
        "initial": {"type": "mcwilliams", "peak_wavenumber": 4.0, "energy": 1.0},
    },
}


#: Every key a Navier-Stokes recipe may hold (module docstring); anything else is refused. The keys and
#: the section each one is stored in come from the spec schema (:data:`datagen.spec.NAVIER_STOKES`): the
#: settable ones, plus those the generator records (compute dtype, seeding rule, grid record).
SPEC_KEYS = tuple(sorted(set(settable_keys(NS_FAMILY)) | {"compute_dtype", "seeding", "grid"}))
assert set(_BASE) <= set(SPEC_KEYS)


def _hint(name: str, allowed) -> str:
    import difflib

    hits = difflib.get_close_matches(str(name), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {hits[0]!r}?)" if hits else ""


def _fno_final_time(viscosity: float) -> Optional[float]:
    for nu, t in FNO_FINAL_TIMES.items():
        if math.isclose(viscosity, nu, rel_tol=1e-9):
            return t
    return None


def recipe(name: str, overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The spec of recipe ``name`` with ``overrides`` applied (``None`` values are ignored), checked.

    ``fno``: the number of snapshots follows the viscosity (T = 50 / 30 / 20 for 1e-3 / 1e-4 / 1e-5)
    unless ``n_snapshots`` or ``t_end`` is given; other viscosities need one of them.
    ``t_end`` (override only): sets ``n_snapshots = (t_end - t_start) / snapshot_interval``.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; allowed: {', '.join(RECIPES)}" + _hint(name, RECIPES))
    spec = copy.deepcopy(RECIPES[name])
    over = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    check_keys(over, SPEC_KEYS + ("t_end",), f"navier-stokes recipe {name!r}")
    t_end = over.pop("t_end", None)
    spec.update(copy.deepcopy(over))
    if name == "fno" and "n_snapshots" not in over and t_end is None:
        nu = spec["viscosity"]
        if isinstance(nu, bool) or not isinstance(nu, (int, float)) or not math.isfinite(nu):
            raise ValueError(f"viscosity must be a finite number, got {nu!r}")
        if nu < 0:
            raise ValueError(f"viscosity must be >= 0.0, got {nu!r}")
        t_end = _fno_final_time(nu)
        if t_end is None:
            raise ValueError(
                f"recipe 'fno' defines final times only for viscosity 1e-3, 1e-4, 1e-5 "
                f"(T = 50, 30, 20); for viscosity {nu:g} give t_end or n_snapshots"
            )
    if t_end is not None:
        span = (float(t_end) - float(spec["t_start"])) / float(spec["snapshot_interval"])
        if span < 1 - 1e-9 or abs(span - round(span)) > 1e-6:
            raise ValueError(
                f"t_end = {t_end} must be t_start + a positive whole number of snapshot "
                f"intervals ({spec['t_start']} + k * {spec['snapshot_interval']})"
            )
        spec["n_snapshots"] = int(round(span)) + (1 if spec["include_initial"] else 0)
    spec["recipe"] = name
    check_spec(spec)
    return spec


def check_spec(spec: Mapping[str, Any]) -> None:
    """Raise a ``ValueError`` naming the first bad value of a spec and what is allowed."""
    check_keys(spec, SPEC_KEYS, "navier-stokes spec")
    # one definition of each value's range: the schema's (datagen.spec), here where the values enter
    check_values(
        NS_FAMILY,
        {
            k: spec.get(k)
            for k in ("viscosity", "box", "drag", "t_start", "snapshot_interval", "store_resolution", "n_snapshots")
        },
    )
    if not isinstance(spec.get("resolution"), int) or isinstance(spec.get("resolution"), bool):
        raise ValueError(f"resolution must be a positive integer, got {spec.get('resolution')!r}")
    check_values(NS_FAMILY, spec, ("resolution",))
    check_resample(spec["resample"], spec["resolution"], spec["store_resolution"])
    if spec["stepper"] not in STEPPERS:
        raise ValueError(f"unknown stepper {spec['stepper']!r}; allowed: {', '.join(STEPPERS)}")
    if spec["dt_mode"] not in DT_MODES:
        raise ValueError(f"unknown dt_mode {spec['dt_mode']!r}; allowed: {', '.join(DT_MODES)}")
    if spec["dt_mode"] == "fixed" and spec.get("dt") is None:
        raise ValueError("dt must be a finite number, got None (dt_mode 'fixed' needs a time step)")
    check_values(NS_FAMILY, spec, ("dt",))
    if spec["dt_mode"] == "cfl":
        check_values(NS_FAMILY, {k: spec.get(k) for k in ("cfl_recheck", "cfl")})
        c = spec["cfl"]
        if c > CFL_LIMITS[spec["stepper"]]:
            raise ValueError(
                f"cfl {c} is above the stability limit {CFL_LIMITS[spec['stepper']]} of stepper {spec['stepper']!r}"
            )
    forcing = spec.get("forcing") or {"type": "none"}
    if forcing.get("type") not in FORCINGS:
        raise ValueError(f"unknown forcing {forcing.get('type')!r}; allowed: {', '.join(FORCINGS)}")
    check_values(NS_FAMILY, {"forcing": forcing})
    check_initial_spec(spec.get("initial") or {})
    fields = list(spec.get("fields", []))
    if "vorticity" not in fields:
        raise ValueError(f"fields must include 'vorticity', got {fields}")
    unknown = set(fields) - {"vorticity", *OPTIONAL_FIELDS}
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}; allowed: vorticity, {', '.join(OPTIONAL_FIELDS)}")
    check_values(NS_FAMILY, {"store_dtype": spec.get("store_dtype")})


def snapshot_times(spec: Mapping[str, Any]):
    """Stored times ``(T,)`` float64 (see ``n_snapshots``, ``include_initial``)."""
    import numpy as np

    k0 = 0 if spec["include_initial"] else 1
    k = np.arange(k0, k0 + spec["n_snapshots"], dtype=np.float64)
    return spec["t_start"] + k * spec["snapshot_interval"]
