"""GCRO-DR as a PETSc KSP of type ``python``: drive it with ordinary PETSc options.

::

    -ksp_type python -ksp_python_type datagen.krylov.ksp_python.GCRODRKSP
    -ksp_gcrodr_restart 40            # m (default 40)
    -ksp_gcrodr_recycle 20            # k (default 20), 0 gives GMRES(m)
    -ksp_gcrodr_reorthogonalize never|ifneeded|always     (default never, as PETSc GMRES)
    -ksp_gcrodr_update_interval 1     # harmonic Ritz update every this many cycles
    -ksp_gcrodr_update_rank_tol 0.1   # rewrite only directions that moved more (0: full update)
    -ksp_gcrodr_pc_reuse_max 1        # keep a PC for up to this many new matrices
    -ksp_gcrodr_pc_reuse_growth 1.5   # ... rebuilding once iterations grow by this factor
    -ksp_gcrodr_pc_reuse_min_baseline 10   # ... over at least this many iterations
    -ksp_pc_side right|left           # default right for this KSP unless given
    -ksp_rtol 1e-8 -ksp_atol 0 -ksp_max_it 10000 -pc_type ilu ...

or from Python: ``ksp.setType("python"); ksp.setPythonContext(GCRODRKSP())``.

Semantics: the recycled space lives in the context and survives across ``KSPSolve`` calls and
``KSPSetFromOptions`` calls that change no ``-ksp_gcrodr_restart/recycle/reorthogonalize/update_*``
option (``KSPReset`` drops it). Convergence is tested on the true residual,
``||b - A x|| <= max(rtol ||b||, atol)`` (relative to ``||b||``, like PETSc's default test),
after each restart cycle; ``KSPGetResidualNorm`` returns that true norm, ``KSPGetIterationNumber``
the Arnoldi steps, and a solve that did not converge ends with a negative
``KSPConvergedReason`` (``DIVERGED_MAX_IT`` ...), never a positive one.

What any KSP offers works as for PETSc's GMRES:

- ``divtol`` (``-ksp_divtol``): a reported residual ``>= divtol ||b||`` ends the solve with
  ``DIVERGED_DTOL`` (PETSc's default test; ``PETSC_UNLIMITED`` switches it off).
- Every residual is *reported* like PETSc's GMRES reports it: the initial true residual, the
  GMRES estimate after each Arnoldi step (with right preconditioning it equals the true residual
  of the current iterate up to rounding), and the recomputed true residual at each cycle end under
  the same iteration number (GMRES does that at each restart). Each report logs the convergence
  history (``KSPSetResidualHistory`` / ``ksp.setConvergenceHistory()``), calls the monitors
  (``-ksp_monitor``, ``-ksp_monitor_true_residual``, ``ksp.setMonitor``) and then the
  convergence test.
- A convergence test set with ``ksp.setConvergenceTest(...)`` replaces the built-in one (as
  ``KSPSetConvergenceTest`` does): a nonzero reason stops the solve at that iteration, ``x`` is
  that iterate, and the KSP reports the test's reason.
- ``KSPBuildSolution`` / ``KSPBuildResidual`` (``ksp.buildSolution()``, ``ksp.buildResidual()``)
  give the current iterate and its true residual ``b - A x`` from inside a monitor or test.
- The dense block work is logged as PETSc events with flop counts (``GCRODROrthog``,
  ``GCRODRLstSq``, ``GCRODRUpdate``, ``GCRODRRemap``), so ``-log_view`` accounts for the solve.

The last :class:`~datagen.krylov.SolveResult` is available as
``ksp.getPythonContext().last_result``.
"""

from __future__ import annotations

from petsc4py import PETSc

from datagen.krylov.gcrodr import GCRODR, REORTHOGONALIZE
from datagen.krylov.pc_reuse import PCReusePolicy

_REASONS = {
    "CONVERGED_RTOL": "CONVERGED_RTOL",
    "CONVERGED_ATOL": "CONVERGED_ATOL",
    "CONVERGED_ZERO_RHS": "CONVERGED_ATOL",
    "CONVERGED_ITS": "CONVERGED_ITS",
    "CONVERGED_USER": "CONVERGED_USER",
    "DIVERGED_MAX_IT": ("DIVERGED_MAX_IT", "DIVERGED_ITS"),
    "DIVERGED_BREAKDOWN": "DIVERGED_BREAKDOWN",
    "DIVERGED_NANORINF": "DIVERGED_NANORINF",
    "DIVERGED_DTOL": "DIVERGED_DTOL",
    "DIVERGED_USER": "DIVERGED_USER",
}
# divtol at or above this is "unlimited" (PETSC_UNLIMITED reads back as the largest double)
_NO_DIVTOL = 1e300


def _reason_name(value: int) -> str:
    """The :class:`~datagen.krylov.SolveResult` name of a ``KSPConvergedReason`` code returned by
    a user test: its PETSc name when the result knows it, else ``CONVERGED_USER`` /
    ``DIVERGED_USER`` (the KSP still reports the exact code)."""
    for name in _REASONS:
        if _petsc_reason(name) == value and name != "CONVERGED_ZERO_RHS":
            return name
    return "CONVERGED_USER" if value > 0 else "DIVERGED_USER"


def _petsc_reason(name: str) -> int:
    candidates = _REASONS[name]
    for candidate in (candidates,) if isinstance(candidates, str) else candidates:
        value = getattr(PETSc.KSP.ConvergedReason, candidate, None)
        if value is not None:
            return value
    raise RuntimeError(f"petsc4py has no KSPConvergedReason for {name}")


class GCRODRKSP:
    """petsc4py KSP python context wrapping :class:`~datagen.krylov.GCRODR`."""

    def __init__(
        self,
        restart: int = 40,
        recycle: int = 20,
        reorthogonalize: str = "never",
        update_interval: int = 1,
        update_rank_tol: float = 0.1,
    ):
        self.restart = restart
        self.recycle = recycle
        self.reorthogonalize = reorthogonalize
        self.update_interval = update_interval
        self.update_rank_tol = update_rank_tol
        self.pc_reuse = PCReusePolicy()
        self.solver: GCRODR | None = None
        self.last_result = None
        self._solving = False
        self._last_pc_key = None
        self._reusing = False  # what this context last told the PC (PCSetReusePreconditioner)
        self._user_reason = None  # the exact code a user convergence test stopped with

    # --- petsc4py protocol --------------------------------------------------------
    def create(self, ksp) -> None:
        ksp.setPCSide(PETSc.PC.Side.RIGHT)
        ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)

    def setFromOptions(self, ksp) -> None:
        opts = PETSc.Options(ksp.getOptionsPrefix() or "")
        restart = opts.getInt("ksp_gcrodr_restart", self.restart)
        recycle = opts.getInt("ksp_gcrodr_recycle", self.recycle)
        reorth = opts.getString("ksp_gcrodr_reorthogonalize", self.reorthogonalize)
        interval = opts.getInt("ksp_gcrodr_update_interval", self.update_interval)
        rank_tol = opts.getReal("ksp_gcrodr_update_rank_tol", self.update_rank_tol)
        reuse_max = opts.getInt("ksp_gcrodr_pc_reuse_max", self.pc_reuse.max_systems)
        reuse_growth = opts.getReal("ksp_gcrodr_pc_reuse_growth", self.pc_reuse.iteration_growth)
        reuse_floor = opts.getInt("ksp_gcrodr_pc_reuse_min_baseline", self.pc_reuse.min_baseline)
        if reorth not in REORTHOGONALIZE:
            raise ValueError(f"-ksp_gcrodr_reorthogonalize must be one of {REORTHOGONALIZE}, got {reorth!r}")
        # right preconditioning unless -ksp_pc_side says otherwise (create() already set right,
        # after PETSc had parsed -ksp_pc_side, so the option is applied again here)
        side = opts.getString("ksp_pc_side", "right").lower()
        sides = {"right": PETSc.PC.Side.RIGHT, "left": PETSc.PC.Side.LEFT}
        if side not in sides:
            raise ValueError(f"GCRO-DR supports -ksp_pc_side right or left, got {side!r}")
        ksp.setPCSide(sides[side])
        ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
        changed = (restart, recycle, reorth, interval, rank_tol) != (
            self.restart,
            self.recycle,
            self.reorthogonalize,
            self.update_interval,
            self.update_rank_tol,
        )
        (self.restart, self.recycle, self.reorthogonalize, self.update_interval, self.update_rank_tol) = (
            restart,
            recycle,
            reorth,
            interval,
            rank_tol,
        )
        policy = self.pc_reuse
        if (reuse_max, reuse_growth, reuse_floor) != (policy.max_systems, policy.iteration_growth, policy.min_baseline):
            self.pc_reuse = PCReusePolicy(reuse_max, reuse_growth, reuse_floor)
        if changed or self.solver is None:
            # only a changed recycling option rebuilds the solver (and drops the recycled space):
            # a KSPSetFromOptions between solves keeps it. Builds validate the values now.
            self._build(ksp)

    def setUp(self, ksp) -> None:
        if self.solver is None:
            self._build(ksp)

    def reset(self, ksp) -> None:
        if self.solver is not None:
            self.solver.reset()
        self.pc_reuse.forget()
        self._last_pc_key = None
        if self._reusing:
            ksp.getPC().setReusePreconditioner(False)
            self._reusing = False

    def view(self, ksp, viewer) -> None:
        s = self.solver
        viewer.printfASCII(
            f"  GCRO-DR(m={self.restart}, k={self.recycle}), "
            f"CGS reorthogonalization {self.reorthogonalize}, recycled-space update "
            f"every {self.update_interval} cycle(s) (low-rank below sine "
            f"{self.update_rank_tol}), current recycle dim "
            f"{s.recycle_dim if s else 0}; convergence on the true residual\n"
        )

    def solve(self, ksp, b, x) -> None:
        if self.solver is None:
            self._build(ksp)
        solver = self.solver
        rtol, atol, divtol, max_it = ksp.getTolerances()
        solver.rtol, solver.atol, solver.max_it = float(rtol), float(atol), int(max_it)
        solver.divtol = float(divtol) if 0 < divtol < _NO_DIVTOL else None
        side = ksp.getPCSide()
        if side not in (PETSc.PC.Side.RIGHT, PETSc.PC.Side.LEFT):
            raise ValueError("GCRO-DR supports -ksp_pc_side right or left, not symmetric")
        solver.pc_side = "right" if side == PETSc.PC.Side.RIGHT else "left"
        A, P = ksp.getOperators()
        pc = ksp.getPC()
        pc_key = (P.getId(), P.stateGet())
        if self.pc_reuse.active and not self._reusing and pc_key != self._last_pc_key:
            self.pc_reuse.built(pc_key)  # KSPSetUp rebuilt the PC for this matrix
        self._last_pc_key = pc_key
        bnorm = b.norm()

        def monitor(iteration, relative):
            # as PETSc's GMRES: KSPLogResidualHistory, KSPMonitor, then the convergence test
            norm = relative * bnorm
            ksp.setIterationNumber(iteration)
            ksp.setResidualNorm(norm)
            ksp.logConvergenceHistory(norm)
            ksp.monitor(iteration, norm)

        self._user_reason = None
        test = None
        if ksp.getConvergenceTest() is not None:  # a Python test set with setConvergenceTest

            def test(iteration, norm):
                value = int(ksp.callConvergenceTest(iteration, norm))
                if value == 0:
                    return None
                self._user_reason = value
                return _reason_name(value)

        self._solving = True
        try:
            result = solver.solve(
                A,
                b,
                x,
                pc=pc,
                initial_guess_nonzero=ksp.getInitialGuessNonzero(),
                monitor=monitor,
                convergence_test=test,
            )
        finally:
            self._solving = False
        self.last_result = result
        ksp.setIterationNumber(result.iterations)
        ksp.setResidualNorm(result.residual * bnorm)
        user = self._user_reason
        # the test's exact code, unless the solve ended for another reason (NaN) after it
        ksp.setConvergedReason(
            user if user is not None and _reason_name(user) == result.reason else _petsc_reason(result.reason)
        )
        if self.pc_reuse.active:
            self.pc_reuse.solved(result.iterations)
            # decided now for the next KSPSetUp: keep the PC unless the policy wants a new one
            self._reusing = self.pc_reuse.keeps_for_new_matrix()
            pc.setReusePreconditioner(self._reusing)

    def buildSolution(self, ksp, v) -> None:  # noqa: N802 - petsc4py's protocol name
        """``KSPBuildSolution``: the current iterate during a solve (see
        :meth:`GCRODR.build_solution`), the solution vector otherwise."""
        if self._solving and self.solver is not None:
            self.solver.build_solution(v)
        elif v.handle != ksp.getSolution().handle:
            ksp.getSolution().copy(v)

    def buildResidual(self, ksp, t, v) -> None:  # noqa: N802 - petsc4py's protocol name
        """``KSPBuildResidual``: ``v = b - A x`` for the current iterate ``x`` (built in ``t``),
        the true, unpreconditioned residual for either PC side."""
        self.buildSolution(ksp, t)
        A, _ = ksp.getOperators()
        A.mult(t, v)
        v.aypx(-1.0, ksp.getRhs())

    # --- helpers ------------------------------------------------------------------
    def _build(self, ksp) -> None:
        rtol, atol, _divtol, max_it = ksp.getTolerances()
        side = "left" if ksp.getPCSide() == PETSc.PC.Side.LEFT else "right"
        self.solver = GCRODR(
            restart=self.restart,
            recycle=self.recycle,
            rtol=min(rtol, 0.999),
            atol=atol,
            max_it=max_it,
            pc_side=side,
            comm=ksp.getComm(),
            reorthogonalize=self.reorthogonalize,
            update_interval=self.update_interval,
            update_rank_tol=self.update_rank_tol,
        )
