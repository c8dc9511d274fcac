"""User-supplied parameter fields for the elliptic families (``--coefficient-file``, ``--source-file``,
``--wavenumber-file``).

:class:`UserFields` wraps a family and replaces the named input fields of every sample by row
``index`` of an array read from a file; everything else (the operator, the solve, the other inputs,
the sorting features) is the family's own, so the family code is untouched and a field written out
from the family's own sampling and read back gives the same dataset.

Which fields a family takes (``ROLES``): ``darcy``/``darcy3d`` ``coefficient`` -> ``a``;
``heat`` ``coefficient`` -> ``a``; ``poisson`` ``source`` -> ``f``; ``helmholtz``/``helmholtz3d``
``wavenumber`` -> ``k`` and ``source`` -> ``f``.

Files: ``.npy``, ``.npz`` (``key``), ``.h5``/``.hdf5`` (``key``) and MATLAB ``.mat`` v5 or v7.3
(``key``; v7.3 arrays are read column-major, i.e. with their axes reversed back to MATLAB order),
holding ``N`` fields of shape ``(N, s, s)`` (``(N, s, s, s)`` in 3D) on the family's grid: nodes
``x_j = j/(s-1)`` with both walls, ``s = --resolution``. A file on another grid is refused (no
interpolation: the file does not say where its points lie, and guessing a node convention would
change the data); resample it onto the family's nodes first.

Checked on reading: finite values everywhere; a coefficient and a wavenumber positive.

Provenance: the dataset spec drops the family's law for a replaced field (``grf``, ``coefficient_law``,
``k_grf``, ...) and records under ``user_fields`` the file's absolute path, key, sha256, array shape
and sample count; e.g. ``"coefficient": "file"`` for Darcy. For Helmholtz with a user wavenumber the
param ``k0`` is the grid mean of ``k`` and ``points_per_wavelength_min`` is recomputed from the
file's largest ``k``.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import replace
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from datagen.elliptic.family import EllipticFamily, ProblemSample

__all__ = ["UserFields", "ROLES", "read_fields"]

ROLES: Dict[str, Dict[str, str]] = {
    "darcy": {"coefficient": "a"},
    "darcy3d": {"coefficient": "a"},
    "heat": {"coefficient": "a"},
    "poisson": {"source": "f"},
    "helmholtz": {"wavenumber": "k", "source": "f"},
    "helmholtz3d": {"wavenumber": "k", "source": "f"},
}
POSITIVE = ("coefficient", "wavenumber")
# spec keys that describe the law a replaced field would have come from
LAW_KEYS = {
    ("darcy", "a"): ("grf", "coefficient_law"),
    ("heat", "a"): ("a_law", "a_grf"),
    ("poisson", "f"): ("f_grf",),
    ("helmholtz", "k"): ("k_grf", "wavenumber_law", "contrast", "spread", "wavenumber"),
    ("helmholtz", "f"): ("f_grf",),
}


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_fields(path: str, key: Optional[str] = None) -> np.ndarray:
    """The whole array ``key`` of ``path`` (``.npy``, ``.npz``, ``.h5``/``.hdf5``, ``.mat``), float64."""
    if not os.path.exists(path):
        raise ValueError(f"field file {path!r} does not exist")
    low = path.lower()
    if low.endswith(".npy"):
        return np.asarray(np.load(path), dtype=np.float64)
    if low.endswith(".npz"):
        with np.load(path) as z:
            k = key or (z.files[0] if len(z.files) == 1 else None)
            if k not in z.files:
                raise ValueError(f"{path}: key {key!r} not found; keys: {', '.join(z.files)}")
            return np.asarray(z[k], dtype=np.float64)
    import h5py

    if low.endswith((".h5", ".hdf5")) or (low.endswith(".mat") and h5py.is_hdf5(path)):
        with h5py.File(path, "r") as f:
            names = [k for k in f.keys() if not k.startswith("#")]
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise ValueError(f"{path}: key {key!r} is not a dataset; keys: {', '.join(names)}")
            a = np.asarray(f[key][()], dtype=np.float64)
            return np.transpose(a) if low.endswith(".mat") else a  # MATLAB v7.3 is column-major
    if low.endswith(".mat"):
        from scipy.io import loadmat, whosmat

        names = [w[0] for w in whosmat(path)]
        if key not in names:
            raise ValueError(f"{path}: key {key!r} not found; variables: {', '.join(names)}")
        return np.asarray(loadmat(path, variable_names=[key])[key], dtype=np.float64)
    raise ValueError(f"field file {path!r}: use .npy, .npz, .h5/.hdf5 or .mat")


class UserFields:
    """``family`` with the fields named in ``files`` read from files (module docstring).

    Args:
        family: an :class:`EllipticFamily`.
        files: ``{role: (path, key)}`` with roles from ``ROLES[family.name]`` (``coefficient``,
            ``source``, ``wavenumber``).
    """

    def __init__(self, family: EllipticFamily, files: Mapping[str, Tuple[str, Optional[str]]]):
        self.family = family
        allowed = ROLES.get(family.name, {})
        self.fields: Dict[str, np.ndarray] = {}
        self.records: Dict[str, dict] = {}
        for role, (path, key) in files.items():
            if role not in allowed:
                raise ValueError(
                    f"{family.name} takes no {role} field from a file; it takes {', '.join(allowed) or 'none'}"
                )
            name = allowed[role]
            arr = read_fields(path, key)
            want = family.shape
            if arr.shape[1:] != want:
                raise ValueError(
                    f"{path}[{key}] holds fields of shape {arr.shape[1:]} (array {arr.shape}); "
                    f"{family.name} at --resolution {family.resolution} needs (N,) + {want} on its nodes "
                    f"x_j = j/(s-1): resample the fields or pass --resolution {arr.shape[-1]}"
                    if arr.ndim == len(want) + 1
                    else f"{path}[{key}] has shape {arr.shape}; expected (N,) + {want}"
                )
            bad = ~np.isfinite(arr)
            if role in POSITIVE:
                bad |= ~(arr > 0)
            if bad.any():
                idx = tuple(int(v[0]) for v in np.nonzero(bad))
                need = "positive and finite" if role in POSITIVE else "finite"
                raise ValueError(f"{path}[{key}]{list(idx)} = {arr[idx]:g}: a {role} must be {need}")
            self.fields[name] = arr
            self.records[name] = {
                "role": role,
                "path": os.path.abspath(path),
                "key": key,
                "sha256": _sha256(path),
                "shape": list(arr.shape),
                "samples": int(arr.shape[0]),
            }

    @property
    def n_available(self) -> int:
        return min(a.shape[0] for a in self.fields.values())

    def check_samples(self, n: int) -> None:
        if n > self.n_available:
            raise ValueError(
                f"the field file(s) hold {self.n_available} samples but --n is {n}; "
                f"pass --n {self.n_available} or fewer"
            )

    def __getattr__(self, name):  # everything else is the family's
        if name == "family":
            raise AttributeError(name)
        return getattr(self.family, name)

    def sample(self, seed: int, index: int) -> ProblemSample:
        s = self.family.sample(seed, index)
        if index >= self.n_available:
            raise ValueError(f"sample {index}: the field file(s) hold only {self.n_available} samples")
        inputs = dict(s.inputs)
        for name, arr in self.fields.items():
            inputs[name] = arr[index].copy()
        params = dict(s.params)
        if "k" in self.fields and "k0" in params:
            params["k0"] = float(np.mean(inputs["k"]))
        return replace(s, inputs=inputs, params=params)

    def spec(self) -> dict:
        spec = dict(self.family.spec())
        base = self.family.name.replace("3d", "")
        for name in self.fields:
            for k in LAW_KEYS.get((base, name), ()):
                spec.pop(k, None)
        if "a" in self.fields and base == "darcy":
            spec["coefficient"] = "file"
        if "k" in self.fields:
            spec["k0_param"] = "grid mean of the file's k"
            spec["points_per_wavelength_min"] = 2 * math.pi / float(self.fields["k"].max()) / self.family.h
        spec["user_fields"] = {name: dict(rec) for name, rec in self.records.items()}
        return spec


def add_arguments(group, family: str) -> None:
    """``--<role>-file`` / ``--<role>-key`` for each field ``family`` takes from a file."""
    for role, name in ROLES.get(family, {}).items():
        group.add_argument(
            f"--{role}-file",
            default=None,
            metavar="FILE",
            help=f"take the {role} {name} of sample i from row i of FILE (.npy/.npz/.h5/.mat, "
            f"(N, s, s) on the family's nodes) instead of drawing it",
        )
        group.add_argument(f"--{role}-key", default=None, metavar="KEY", help=f"array name in --{role}-file")


def from_args(family: EllipticFamily, args):
    """``family`` wrapped by :class:`UserFields` when any ``--<role>-file`` is given, checked against ``--n``."""
    files = {
        role: (getattr(args, f"{role}_file"), getattr(args, f"{role}_key", None))
        for role in ROLES.get(family.name, {})
        if getattr(args, f"{role}_file", None)
    }
    for role in ROLES.get(family.name, {}):
        if getattr(args, f"{role}_key", None) and not getattr(args, f"{role}_file", None):
            raise ValueError(f"--{role}-key needs --{role}-file")
    if not files:
        return family
    wrapped = UserFields(family, files)
    wrapped.check_samples(int(args.n))
    return wrapped
