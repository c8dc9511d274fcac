"""What every elliptic PDE family provides to the SKR generator.

A family turns ``(seed, index)`` into one problem instance (its random inputs), the instance into a
sparse matrix, and the matrix plus a linear solver into the stored outputs. The generator never
looks inside: sample -> features (for sorting) -> operator -> solve -> store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np
import scipy.sparse as sp

from datagen.contract import SPEC_KEY, Axis, Grid
from datagen.elliptic.assembly import block_average, check_resolution, node_coordinates

# solve(b, x0) -> x for the matrix the family returned from ``operator``; x0 may be None (zero guess)
LinearSolve = Callable[[np.ndarray, Optional[np.ndarray]], np.ndarray]


@dataclass
class ProblemSample:
    """The random inputs of sample ``index``: full-grid input fields and per-sample scalars."""

    index: int
    inputs: Dict[str, np.ndarray]
    params: Dict[str, float] = field(default_factory=dict)


class EllipticFamily(ABC):
    """Base class: a grid of ``resolution`` points per axis (boundary included) in ``dim`` dimensions.

    Subclasses set ``name`` and implement ``sample``, ``operator``, ``solve``, ``field_roles`` and
    ``options``; the sorting features default to block averages of the fields listed in
    ``feature_fields`` (transformed by ``feature_transform``) plus the scalar params scaled by
    ``param_scales``.
    """

    name: str = ""
    feature_fields: tuple = ()
    feature_cells_2d = 16  # 16^2 block averages: resolves GRF correlation lengths >= 1/16
    feature_cells_3d = 8

    def __init__(self, resolution: int, dim: int = 2):
        self.resolution = check_resolution(resolution, dim)
        self.dim = dim
        self.shape = (self.resolution,) * dim
        self.h = 1.0 / (self.resolution - 1)

    # -- description ------------------------------------------------------------------------------
    @abstractmethod
    def field_roles(self) -> Dict[str, tuple]:
        """``{name: (per-sample shape, role)}`` of the stored fields."""

    @property
    def param_names(self) -> list:
        return []

    @abstractmethod
    def options(self) -> dict:
        """The family's settings (equation, discretisation, distributions) for the dataset spec."""

    def spec(self) -> dict:
        """The family's settings, flat; :func:`datagen.spec.build_spec` puts each in its section (the
        generator adds the solver's)."""
        return {
            "family": self.name,
            "dim": self.dim,
            "resolution": self.resolution,
            SPEC_KEY: self.grid().to_spec(),
            **self.options(),
        }

    def grid(self) -> Grid:
        """The typed grid record (:mod:`datagen.contract`): nodes ``x_j = j/(s-1)`` on ``[0, 1]`` per
        axis, both walls stored, the family's boundary conditions."""
        bcs = self.boundary()
        return Grid(tuple(Axis(ax, self.resolution, 0.0, 1.0, "nodes-with-walls", bcs[ax]) for ax in bcs))

    def coordinates(self) -> Dict[str, np.ndarray]:
        x = node_coordinates(self.resolution)
        return {ax: x for ax in ("x", "y", "z")[: self.dim]}

    def boundary(self) -> Dict[str, str]:
        return {ax: "dirichlet" for ax in ("x", "y", "z")[: self.dim]}

    @property
    def systems_per_sample(self) -> int:
        return 1

    # -- the pipeline -----------------------------------------------------------------------------
    @abstractmethod
    def sample(self, seed: int, index: int) -> ProblemSample:
        """Random inputs of sample ``index`` (depends only on ``seed`` and ``index``)."""

    @abstractmethod
    def operator(self, sample: ProblemSample) -> sp.csr_matrix:
        """The sparse system matrix of the sample (same sparsity pattern for every sample)."""

    @abstractmethod
    def solve(self, sample: ProblemSample, matrix: sp.csr_matrix, linear_solve: LinearSolve) -> Dict[str, np.ndarray]:
        """Output fields, solving with ``linear_solve`` (the matrix is already set in the solver)."""

    def feature_transform(self, name: str, field: np.ndarray) -> np.ndarray:
        return field

    def param_scales(self) -> Dict[str, float]:
        """Weight of each scalar param in the sorting distance (0 = ignored)."""
        return {}

    def features(self, sample: ProblemSample) -> np.ndarray:
        """Sorting features: block averages of the operator-defining fields, scaled so that the
        Euclidean distance between two samples approximates the L2(unit box) distance of the fields,
        followed by the weighted scalar params. float64 ``(F,)``."""
        cells = self.feature_cells_2d if self.dim == 2 else self.feature_cells_3d
        parts = []
        for name in self.feature_fields:
            f = block_average(self.feature_transform(name, sample.inputs[name]), cells)
            parts.append(f.ravel() / np.sqrt(f.size))
        for name, w in self.param_scales().items():
            if w:
                parts.append(np.array([w * sample.params[name]]))
        return np.concatenate(parts)
