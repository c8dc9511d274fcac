"""What one linear solve reports: :class:`SolveResult`.

The numbers are what a dataset's ``solver/`` provenance group stores (iterations, the true
relative residual ``||b - A x||_2 / ||b||_2``, seconds, converged), so they are computed
explicitly at the end of every solve, never taken from a recurrence or a preconditioned norm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Reasons, spelled like PETSc's ``KSPConvergedReason`` names so logs read the same.
#: ``*_ITS`` / ``*_USER`` / ``DIVERGED_DTOL`` come from a user convergence test or ``divtol``.
CONVERGED_REASONS = ("CONVERGED_RTOL", "CONVERGED_ATOL", "CONVERGED_ZERO_RHS", "CONVERGED_ITS", "CONVERGED_USER")
DIVERGED_REASONS = ("DIVERGED_MAX_IT", "DIVERGED_BREAKDOWN", "DIVERGED_NANORINF", "DIVERGED_DTOL", "DIVERGED_USER")


@dataclass
class SolveResult:
    """Outcome of one ``GCRODR.solve`` call.

    Attributes:
        iterations: Arnoldi steps taken (one operator and one preconditioner application each;
            the ``k`` extra applications that re-map the recycled space onto a new matrix are
            counted in ``operator_applications``, not here, as in the GCRO-DR literature).
        residual: true relative residual ``||b - A x||_2 / ||b||_2`` of the returned ``x``,
            recomputed from ``A``, ``b`` and ``x`` after the last cycle (0 for ``b = 0``).
        converged: ``residual <= max(rtol, atol / ||b||)`` (with the built-in test);
            ``False`` is never hidden.
        seconds: wall time of the whole call (PC set-up, recycled-space refresh, cycles).
        reason: ``CONVERGED_RTOL`` | ``CONVERGED_ATOL`` | ``CONVERGED_ZERO_RHS`` |
            ``DIVERGED_MAX_IT`` | ``DIVERGED_BREAKDOWN`` | ``DIVERGED_NANORINF`` |
            ``DIVERGED_DTOL`` (``divtol``), or what a user convergence test returned
            (``CONVERGED_ITS``, ``CONVERGED_USER``, ``DIVERGED_USER``, or any of the others).
            With a user test, ``converged`` follows its verdict, not ``rtol``.
        cycles: restart cycles run.
        operator_applications: products with ``A`` (Arnoldi steps, explicit residuals, refresh).
        pc_applications: preconditioner applications (Arnoldi steps, one per cycle for the
            solution update or the left-preconditioned start vector, and ``k`` for the re-map
            onto a new operator unless a kept PC lets it reuse ``M^{-1} U~``).
        recycle_dim: dimension of the recycled space kept after this solve.
        pc_rebuilt: whether the preconditioner was (re)built for this solve (``False`` when a
            neighbour's preconditioner was reused, see ``GCRODR.set_pc_reuse``).
        updates_skipped: recycled-space updates skipped in this solve (the harmonic Ritz problem
            failed or gave a degenerate basis; the previous space was kept).
        space_dropped: the recycled space was discarded in this solve (numerically dependent
            on the new operator); the solve went on as GMRES(m) from an empty space.
        residual_history: relative residual of every report, as PETSc's convergence history:
            the initial true one, the GMRES estimate after each Arnoldi step, and the explicitly
            recomputed true value at each cycle end (same iteration number as the cycle's last
            step, like PETSc's GMRES at a restart).
    """

    iterations: int
    residual: float
    converged: bool
    seconds: float
    reason: str
    cycles: int = 0
    operator_applications: int = 0
    pc_applications: int = 0
    recycle_dim: int = 0
    pc_rebuilt: bool = True
    updates_skipped: int = 0
    space_dropped: bool = False
    residual_history: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        if self.reason not in CONVERGED_REASONS + DIVERGED_REASONS:
            raise ValueError(f"unknown solve reason {self.reason!r}; allowed: {CONVERGED_REASONS + DIVERGED_REASONS}")
        if self.converged != (self.reason in CONVERGED_REASONS):
            raise ValueError(f"converged={self.converged} contradicts reason {self.reason!r}")
