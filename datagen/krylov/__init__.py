"""Krylov recycling on PETSc: GCRO-DR(m, k) for sequences of similar linear systems.

The API other modules use::

    from petsc4py import PETSc
    from datagen.krylov import GCRODR, SolveResult

    solver = GCRODR(restart=40, recycle=20, rtol=1e-8, atol=0.0, max_it=10000,
                    pc_side="right", comm=PETSc.COMM_SELF, options_prefix="skr_")
    # the PC comes from the options database: -skr_pc_type ilu, -skr_pc_type gamg, ...
    res = solver.solve(A, b, x)   # PETSc Mat/Vec; x: initial guess on entry, solution on exit
    res.iterations, res.residual, res.converged, res.seconds, res.reason
    solver.reset()                # drop the recycled space (a resumed or split run starts empty)
    solver.set_pc_reuse(max_systems=8, iteration_growth=1.5)   # keep a neighbour's PC

- ``res.residual`` is the true relative residual ``||b - A x||_2 / ||b||_2``, recomputed
  explicitly from ``A``, ``b`` and the returned ``x``; ``res.converged`` is ``True`` only if it is
  ``<= max(rtol, atol / ||b||)``. Right preconditioning is the default; with either side the
  stopping test is on this true (unpreconditioned) residual, so a converged solve always meets
  ``rtol`` on what is stored. ``res.reason`` names why it stopped (PETSc-style names).
- The recycled space persists across ``solve`` calls; it is re-mapped onto a new matrix
  automatically (detected from the Mat's PETSc object id and state counter, so a matrix
  refilled in place counts as new).
- ``recycle=0`` is GMRES(m).
- A caller that owns the PC passes it: ``solver.solve(A, b, x, pc=pc)`` (the solver calls
  ``pc.setUp()``, a no-op when the PC is current or told to reuse itself). If the caller keeps
  the PC across a matrix change (``pc.setReusePreconditioner(True)``), it says so with
  ``solve(..., pc=pc, pc_reused=True)``; after ``solver.set_pc_reuse(max_systems=K)`` (K > 1)
  the solver then stores ``M^{-1} U~`` and moves the recycled space to the new matrix with
  ``k`` products with ``A`` instead of ``k`` PC applications.
- Cost model (256^2, ILU(0), m = 40, k = 20): one iteration ~1.7x a PETSc GMRES iteration
  (orthogonalisation against k + j vectors instead of j, plus ~13 ms of GEMMs per recycled-space
  update), ~3x fewer iterations on sorted Darcy sequences. With a strong PC (GAMG, LU: < k
  iterations per system) recycling does not pay: moving the space to a new matrix costs k PC
  applications; use ``recycle=0`` or PC reuse there (benchmarks/gcrodr_iteration_cost.py).

As a PETSc KSP (``-ksp_type python``)::

    -ksp_type python -ksp_python_type datagen.krylov.ksp_python.GCRODRKSP
    -ksp_gcrodr_restart 40 -ksp_gcrodr_recycle 20 -ksp_pc_side right -pc_type ilu -ksp_rtol 1e-8

Modules: :mod:`~datagen.krylov.gcrodr` (the solver), :mod:`~datagen.krylov.harmonic_ritz`
(the small eigenproblem), :mod:`~datagen.krylov.pc_reuse` (PC reuse policy),
:mod:`~datagen.krylov.ksp_python` (KSP registration), :mod:`~datagen.krylov.reference`
(a plain NumPy/SciPy GCRO-DR used as a test oracle), :mod:`~datagen.krylov.result`.
"""

from datagen.krylov.gcrodr import GCRODR
from datagen.krylov.pc_reuse import PCReusePolicy
from datagen.krylov.result import SolveResult

__all__ = ["GCRODR", "SolveResult", "PCReusePolicy"]
