"""When to rebuild the preconditioner along a sorted run of systems: :class:`PCReusePolicy`.

Building ILU, a GAMG hierarchy or a sparse LU can cost as much as the solve itself. Sorted
neighbours are close, so the PC of system ``i`` still preconditions system ``i + 1`` well, and
the recycled Krylov space absorbs part of the difference. The policy keeps a PC for at most
``max_systems`` systems and asks for a rebuild sooner when the iteration count with the kept PC
grows past ``iteration_growth`` times that of the first solve with it.

One policy decides everywhere a PC is kept: :class:`datagen.krylov.GCRODR` (its own PC),
the PETSc KSP type ``gcrodr`` (``-ksp_gcrodr_pc_reuse_*``, through ``PCSetReusePreconditioner``)
and the data generator's ``PetscBackend`` (``--pc-reuse K``: ILU & co. kept, or GAMG's
interpolation kept, for ``K`` matrices). The backend uses the count-only mode
(``iteration_growth=None``): a PC serves exactly ``max_systems`` matrices, then a new one is built.
"""

from __future__ import annotations

import math
from typing import Optional


class PCReusePolicy:
    """Decides, before each solve, whether the PC must be rebuilt for the new matrix.

    Args:
        max_systems: a PC serves at most this many consecutive systems (``1``: rebuild for
            every new matrix, i.e. no reuse), integer ``>= 1``.
        iteration_growth: rebuild early once a solve needs more than this factor times the
            iterations of the first solve with the current PC, ``>= 1``; ``None``: count only
            (no early rebuild: every PC serves ``max_systems`` systems).
        min_baseline: that first count is taken as at least this many iterations, so that a
            near-exact PC (the LU of a neighbour: 1-3 iterations) is not rebuilt because a few
            extra iterations doubled a tiny count, ``>= 1``.
    """

    def __init__(self, max_systems: int = 1, iteration_growth: Optional[float] = 1.5, min_baseline: int = 10):
        if isinstance(max_systems, bool) or not isinstance(max_systems, int) or max_systems < 1:
            raise ValueError(f"max_systems must be an integer >= 1, got {max_systems!r}")
        growth = None
        if iteration_growth is not None:
            growth = float(iteration_growth)
            if not (growth >= 1.0) or math.isinf(growth):
                raise ValueError(
                    f"iteration_growth must be a finite number >= 1 (or None: count only), got {iteration_growth!r}"
                )
        if isinstance(min_baseline, bool) or not isinstance(min_baseline, int) or min_baseline < 1:
            raise ValueError(f"min_baseline must be an integer >= 1, got {min_baseline!r}")
        self.min_baseline = min_baseline
        self.max_systems = max_systems
        self.iteration_growth = growth
        self.forget()

    @property
    def active(self) -> bool:
        return self.max_systems > 1

    @property
    def has_pc(self) -> bool:
        """Whether a PC was built since the last :meth:`forget`."""
        return self._operator_key is not None

    def forget(self) -> None:
        """Start over: the next solve builds a fresh PC."""
        self._operator_key = None
        self._systems = 0
        self._baseline = None
        self._rebuild_requested = False

    def needs_rebuild(self, operator_key) -> bool:
        """``operator_key``: the next solve's matrix (PETSc object id, state counter)."""
        if self._operator_key is None:
            return True
        if operator_key == self._operator_key:
            return False  # same matrix (many right-hand sides): the PC is exact for it
        if not self.active:
            return True
        return self._rebuild_requested or self._systems >= self.max_systems

    def keeps_for_new_matrix(self) -> bool:
        """Whether the current PC serves the next, different matrix (what a caller that only
        tells PETSc ``PCSetReusePreconditioner`` asks; ``False`` before the first build)."""
        if self._operator_key is None or not self.active:
            return False
        return not (self._rebuild_requested or self._systems >= self.max_systems)

    def built(self, operator_key) -> None:
        self._operator_key = operator_key
        self._systems = 0
        self._baseline = None
        self._rebuild_requested = False

    def solved(self, iterations: Optional[int] = None) -> None:
        """Record a system served by the current PC (``iterations``: its solve's count, for the
        growth trigger; ``None`` or ignored in count-only mode)."""
        self._systems += 1
        if self.iteration_growth is None or iterations is None:
            return
        if self._baseline is None:
            self._baseline = max(int(iterations), self.min_baseline)
        elif iterations > self.iteration_growth * self._baseline:
            self._rebuild_requested = True
