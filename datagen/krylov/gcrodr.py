"""GCRO-DR(m, k): restarted GMRES with a recycled, deflated subspace, on petsc4py objects.

Parks, de Sturler, Mackey, Johnson, Maiti, "Recycling Krylov subspaces for sequences of linear
systems", SISC 28 (2006). Used by Sorting Krylov Recycling (Wang et al., ICLR 2024).

Notation (``Op`` is the preconditioned operator, ``M^{-1}`` the PETSc PC):

- right preconditioning (default): ``Op = A M^{-1}``; the Arnoldi residual *is* the true
  residual ``b - A x``, so the in-cycle stopping estimate already measures what is stored;
  ``x += M^{-1} t`` once per cycle (one extra PC application per cycle, as in PETSc GMRES).
- left preconditioning: ``Op = M^{-1} A``; the cycle minimises ``||M^{-1}(b - A x)||`` and stops
  at that norm scaled by the ratio ``||M^{-1} r|| / ||r||`` seen at the cycle start.

In both cases convergence is decided on the **true** residual: after every cycle
``r = b - A x`` is recomputed explicitly and the solve stops only if
``||r|| <= max(rtol ||b||, atol)``. So every solve reported as converged has a true relative
residual ``<= rtol`` (for ``atol = 0``), and one that is not is reported as not converged.

State carried between solves: ``C`` (``k`` orthonormal vectors), ``U~`` (``k`` vectors, kept
near unit length) and a ``k x k`` matrix ``Lambda`` with ``Op U~ = C Lambda`` (diagonal after a
full update or a re-map). One cycle, given ``r``:

1. ``c = C^T r``, ``v_1 = (I - C C^T) r / beta``; ``s = m - k`` Arnoldi steps on
   ``(I - C C^T) Op``: ``Op V_s = C B_s + V_{s+1} Hbar_s``. Classical Gram-Schmidt on the
   contiguous block ``[C; V_j]``: one BLAS gemv for the coefficients, one VecMAXPY for the
   update (no second pass by default, like PETSc's GMRES; see ``reorthogonalize``).
2. ``y = argmin ||beta e_1 - Hbar y||`` (Givens; ``|g_{j+1}|`` is the residual estimate),
   ``y_u = Lambda^{-1} (c - B y)`` (this zeroes the ``C`` component, and on the first cycle of
   a new system it *is* Parks' ``x_1 = x_0 + U C^T r_0``), ``x += [U~, V_s] [y_u; y]``
   (through ``M^{-1}`` for right preconditioning).
3. Recycled-space update (every ``update_interval`` cycles): harmonic Ritz vectors of smallest
   magnitude (:mod:`datagen.krylov.harmonic_ritz`) with the Gram block
   ``[C; V_{s+1}]^T [U~, V_s]`` built from real inner products (one chunked GEMM for
   ``V_{s+1}^T U~``; ``C^T U~`` and ``U~^T U~`` are carried by exact small recurrences);
   ``[Q, R] = qr(Gbar P)``, ``C = What Q``, ``U~ = Vhat P R^{-1}`` normalised: two GEMMs into
   the spare block. Cost per update: ~3 GEMMs of size ``k x (m+1) x n``.
3b. Low-rank update (``update_rank_tol > 0``, the default): the new ``C`` is ``What Q``; the
   singular values of ``Q``'s ``V`` block are the sines of the principal angles to the old
   space. Directions within ``update_rank_tol`` stay in the old space; the ``r`` that moved
   are written as ``C += E A_perp^T``, ``U~ += F A_perp^T Lambda`` with ``E = What Delta``,
   ``Op F = E`` (``F = Vhat Gbar^+ Delta``), in place: one thin GEMM over ``[U~; C; V]``
   and two rank-``r`` GEMMs instead of ``2k`` rows of output, and ``Lambda`` (with
   ``Op U~ = C Lambda``) becomes a full ``k x k`` matrix. On sorted sequences ``r`` is small
   (most harmonic Ritz vectors have converged), which is what makes the update pay.

When the operator changes (a new matrix, detected by PETSc object id and state, or a rebuilt
preconditioner): ``[Q, R] = qr(Op_new U~)``, ``C = Q``, ``U~ = U~ R^{-1}`` (renormalised):
``k`` operator applications and a Cholesky QR (a second pass when the Gram matrix is
ill-conditioned, Householder as the last resort). Under PC reuse with right preconditioning the
solver also keeps ``Z = M^{-1} U~`` (and ``M^{-1} V`` from the Arnoldi steps, so the solution
update needs no PC application), and re-mapping costs ``k`` products with ``A`` only.
With ``k = 0`` the method is exactly GMRES(m).

Storage: every ``n``-vector is a row of a C-ordered NumPy block ``W`` of ``k + m + 1`` rows laid
out as ``[U~ | C | V]`` (two such blocks, swapped after each update; four with stored ``Z``):
``16 (k + m + 1) n`` bytes, 61 MB at ``n = 256^2``, ``m = 40``, ``k = 20``. PETSc only sees
rows through ``Vec.createWithArray`` wrappers (no copies) when applying ``A`` and the PC.
Inner products are summed over the communicator's ranks, so a distributed ``Mat`` works; data
generation uses ``COMM_SELF`` (one system per rank).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from scipy.linalg import blas

from datagen.krylov.harmonic_ritz import LeastSquares, harmonic_ritz_basis, small_qr
from datagen.krylov.pc_reuse import PCReusePolicy
from datagen.krylov.result import CONVERGED_REASONS, DIVERGED_REASONS, SolveResult

PC_SIDES = ("right", "left")
REORTHOGONALIZE = ("ifneeded", "always", "never")
# Classical Gram-Schmidt keeps a vector when ||w_after|| > eta ||w_before||; below it cancellation
# may have destroyed orthogonality and one more pass restores it (Daniel, Gragg, Kaufman, Stewart).
_REORTH_ETA = 1.0 / math.sqrt(2.0)
_BREAKDOWN = 1e-14
# The re-mapped recycled space is dropped when Op_new U~ is numerically dependent: the smallest
# diagonal entry of its QR factor is at most this fraction of the largest.
_DROP_RATIO = 1e-12
_INNER_CHUNK = 2048  # columns per chunk of the inner-product GEMMs (41 x 2048 doubles ~ 0.7 MB)


#: PETSc log events of the dense block work (``-log_view`` lists them with their flops; what is
#: not in them is PETSc's own MatMult / PCApply / Vec events):
#: ``GCRODROrthog`` classical Gram-Schmidt against ``[C; V]`` (its VecMAXPY is nested in it),
#: ``GCRODRLstSq`` Givens rotations, the small least-squares solve and the solution combination,
#: ``GCRODRUpdate`` the harmonic Ritz recycled-space update, ``GCRODRRemap`` the QR that moves
#: ``U~`` and ``C`` to a new operator (after its ``k`` operator applications).
LOG_EVENTS = ("GCRODROrthog", "GCRODRLstSq", "GCRODRUpdate", "GCRODRRemap")
_EVENTS: dict = {}
_LOG = []


def _events() -> dict:
    """The log events, registered once per process (after PETSc is initialised)."""
    if not _EVENTS:
        PETSc = _petsc()
        for name in LOG_EVENTS:
            _EVENTS[name] = PETSc.Log.Event(name)
        _LOG.append(PETSc.Log.logFlops)
    return _EVENTS


def _log_flops(count) -> None:
    """Count ``count`` floating-point operations of NumPy/BLAS work in PETSc's log (they show
    in ``-log_view`` under the event that is running)."""
    if count > 0:
        _LOG[0](float(count))


def _dense_flops(p: int) -> int:
    """Approximate operation count of the small dense algebra of one recycled-space update on
    ``p = k + s`` columns (Golub & Van Loan's counts): the least-squares solve ``Gbar^+ Gram``
    by SVD (~12 p^3), the nonsymmetric eigenproblem with vectors (~25 p^3), QRs, SVD of the
    principal-angle block and small products (~13 p^3)."""
    return 50 * p**3


def _petsc():
    try:
        from petsc4py import PETSc
    except ImportError as exc:  # pragma: no cover - the environment always has petsc4py
        raise ImportError("datagen.krylov needs petsc4py (pip install neuralops[petsc])") from exc
    return PETSc


@dataclass(eq=False)
class _Solve:
    """One solve's reporting context and counters (``target = max(rtol ||b||, atol)``)."""

    bnorm: float
    target: float
    monitor: object = None
    convergence_test: object = None
    applications: int = 0  # operator applications (each counted once)
    iterations: int = 0  # Arnoldi steps so far
    cycles: int = 0
    history: list = field(default_factory=list)  # reported relative residuals


@dataclass(eq=False)
class _Cycle:
    """One restart cycle (module docstring, 1-2), passed between its steps and to
    :meth:`GCRODR.build_solution` while it runs. Rows: ``U~`` ``[k - k_act, k)``, ``C``
    ``[k, k + k_act)``, ``V`` from ``k + k_act``."""

    k_act: int  # recycled vectors in use
    inner_target: float  # stopping threshold of the in-cycle estimate |g_{j+1}|
    report_scale: float  # in-cycle estimate -> reported (unpreconditioned) residual
    c_top: np.ndarray  # c = C^T r, the start vector's C component
    beta: float  # ||(I - C C^T) r||
    g: np.ndarray  # beta e_1 after the Givens rotations, (s + 1,)
    hess: np.ndarray  # raw Hbar (for the Ritz problem), (s + 1, s)
    coupling: np.ndarray  # B = C^T Op V, (k_act, s)
    rot: np.ndarray  # Hbar after the Givens rotations, (s + 1, s)
    cosines: list = field(default_factory=list)
    sines: list = field(default_factory=list)
    steps: int = 0
    breakdown: bool = False
    nonfinite: bool = False  # the operator or the PC gave NaN/inf
    stop_reason: str | None = None  # the convergence test's (or divtol's) reason mid-cycle


class GCRODR:
    """GCRO-DR(m, k) Krylov solver with a recycled subspace kept between solves.

    Args:
        restart: ``m``, the Krylov dimension per cycle including the recycled vectors
            (a cycle with a recycled space runs ``m - k`` Arnoldi steps), ``m >= 1``.
        recycle: ``k``, recycled-space dimension, ``0 <= k < m``; ``k = 0`` is GMRES(m).
        rtol: relative tolerance on the true residual, ``||b - A x|| <= rtol ||b||``, in [0, 1).
        atol: absolute tolerance on the true residual (the solve stops at
            ``max(rtol ||b||, atol)``), ``>= 0``; ``rtol`` and ``atol`` cannot both be 0.
        max_it: iteration cap (Arnoldi steps) per solve, ``>= 1``.
        pc_side: ``"right"`` (default) or ``"left"``, see the module docstring.
        comm: PETSc communicator of the matrices (default ``PETSc.COMM_SELF``).
        options_prefix: prefix of this solver's PC options in the PETSc options database
            (``-<prefix>pc_type ilu`` ...). The PC is created and configured on first use.
        reorthogonalize: classical Gram-Schmidt refinement: ``"never"`` (default, one CGS pass,
            the same policy as PETSc's GMRES default ``KSP_GMRES_CGS_REFINE_NEVER``, so the
            baseline comparison is like for like), ``"ifneeded"`` (a second pass when the norm
            drops below ``1/sqrt(2)`` of its value; in practice this fires at almost every
            Arnoldi step of a converging GMRES and costs as much as ``"always"``), ``"always"``
            (CGS2). The start vector is always projected twice against ``C``.
        update_last_cycle: also update the recycled space after the cycle that converges
            (default ``True``: its Ritz information is the freshest for the next system).
        update_interval: update the recycled space after every this many cycles of a solve
            (default 1, Parks et al.). 2 cost ~11% more iterations on smooth Darcy sequences
            and stalled the first system of an indefinite Helmholtz sequence.
        divtol: divergence tolerance, as PETSc's default test: the solve stops with
            ``DIVERGED_DTOL`` once a reported residual norm (the initial one, an in-cycle
            estimate or a cycle-end true residual) is ``>= divtol ||b||``; ``None`` (default)
            never tests it, ``>= 1`` otherwise.
        update_rank_tol: low-rank update threshold, in ``[0, 1)``. After each cycle the new
            harmonic Ritz space is compared with the old one (principal angles, from small
            matrices only); only the ``r`` directions whose sine exceeds this value are
            rewritten, as a rank-``r`` change of the stored ``C`` and ``U~`` (the rest stay
            in the old space), and nothing is written when ``r = 0``. The relation
            ``Op U~ = C Lambda`` stays exact. On sorted Darcy / Helmholtz sequences at
            ``256^2``, ``r`` averaged ~3 of ``k = 20`` at 0.1, with the same iterations as the
            full update (+-1%). ``0`` runs the full update of Parks et al. every time.

    Example::

        solver = GCRODR(restart=40, recycle=20, rtol=1e-8, options_prefix="skr_")
        for A, b, x in systems:                 # petsc4py Mat, Vec, Vec (x: initial guess)
            res = solver.solve(A, b, x)         # x now holds the solution
            assert res.converged, res.reason
    """

    def __init__(
        self,
        restart: int = 40,
        recycle: int = 20,
        rtol: float = 1e-8,
        atol: float = 0.0,
        max_it: int = 10000,
        pc_side: str = "right",
        comm=None,
        options_prefix: str | None = None,
        reorthogonalize: str = "never",
        update_last_cycle: bool = True,
        update_interval: int = 1,
        update_rank_tol: float = 0.1,
        divtol: float | None = None,
    ):
        if not isinstance(restart, (int, np.integer)) or isinstance(restart, bool) or restart < 1:
            raise ValueError(f"restart (m) must be an integer >= 1, got {restart!r}")
        if not isinstance(recycle, (int, np.integer)) or isinstance(recycle, bool) or not 0 <= recycle < restart:
            raise ValueError(f"recycle (k) must be an integer with 0 <= k < restart={restart}, got {recycle!r}")
        if not isinstance(max_it, (int, np.integer)) or isinstance(max_it, bool) or max_it < 1:
            raise ValueError(f"max_it must be an integer >= 1, got {max_it!r}")
        rtol, atol = float(rtol), float(atol)
        if not (0.0 <= rtol < 1.0) or math.isnan(rtol):
            raise ValueError(f"rtol must be in [0, 1), got {rtol!r}")
        if not atol >= 0.0:
            raise ValueError(f"atol must be >= 0, got {atol!r}")
        if rtol == 0.0 and atol == 0.0:
            raise ValueError("rtol and atol are both 0: the solve could never stop; give rtol > 0 or atol > 0")
        if pc_side not in PC_SIDES:
            raise ValueError(f"pc_side must be one of {PC_SIDES}, got {pc_side!r}")
        if divtol is not None:
            divtol = float(divtol)
            if not divtol >= 1.0:
                raise ValueError(f"divtol must be >= 1 (or None: no divergence test), got {divtol!r}")
        if reorthogonalize not in REORTHOGONALIZE:
            raise ValueError(f"reorthogonalize must be one of {REORTHOGONALIZE}, got {reorthogonalize!r}")
        PETSc = _petsc()
        self.restart = int(restart)
        self.recycle = int(recycle)
        self.rtol = rtol
        self.atol = atol
        self.max_it = int(max_it)
        self.pc_side = pc_side
        self.reorthogonalize = reorthogonalize
        self.update_last_cycle = bool(update_last_cycle)
        if isinstance(update_interval, bool) or not isinstance(update_interval, int) or update_interval < 1:
            raise ValueError(f"update_interval must be an integer >= 1, got {update_interval!r}")
        self.update_interval = update_interval
        update_rank_tol = float(update_rank_tol)
        if not 0.0 <= update_rank_tol < 1.0:
            raise ValueError(f"update_rank_tol must be in [0, 1), got {update_rank_tol!r}")
        self.update_rank_tol = update_rank_tol
        self.divtol = divtol
        #: how the recycled-space updates went: ``full`` (Parks et al.), ``low_rank`` (only the
        #: directions that moved were rewritten; ``rank_sum`` of them), ``unchanged`` (nothing
        #: moved by more than ``update_rank_tol``), ``skipped`` (the harmonic Ritz problem failed
        #: or gave a degenerate basis: the previous space was kept), ``dropped`` (the space became
        #: numerically dependent on a new operator and was discarded). Per solve, the last two are
        #: also in :class:`SolveResult` (``updates_skipped``, ``space_dropped``).
        self.update_stats = dict(full=0, low_rank=0, rank_sum=0, unchanged=0, skipped=0, dropped=0)
        self._solve_skipped = 0
        self._solve_dropped = False
        self.comm = comm if comm is not None else PETSc.COMM_SELF
        self.options_prefix = options_prefix
        self._mpi = None if self.comm.getSize() == 1 else self.comm.tompi4py()
        self._own_pc = None
        self._pc_reuse = PCReusePolicy()
        self._pc_builds = 0
        self._n = None  # local size the buffers were allocated for
        self._store_z = False  # keep Z = M^{-1} [U~; V] (right PC reused across systems)
        self._ev = _events()
        self._live = None  # the _Cycle running now, for build_solution
        self._solving_x = None
        #: cumulative seconds per phase, for profiling: wall clock (``perf_counter``, cheap enough
        #: to read twice per Arnoldi step), except ``pc_setup`` in CPU seconds
        self.timers = dict.fromkeys(("op", "ortho", "update", "refresh", "residual", "pc_setup"), 0.0)
        self.reset()

    # ------------------------------------------------------------------ public API
    def reset(self) -> None:
        """Forget the recycled space: the next solve starts like GMRES(m) and rebuilds the PC
        (a resumed or split run starts here, so it reproduces an uninterrupted one's chunk).
        Keeps the buffers."""
        self._recycle_dim = 0
        self._ctu = np.zeros((0, 0))  # C^T U~
        self._utu = np.zeros((0, 0))  # U~^T U~
        self._lam = np.zeros((0, 0))  # Op U~ = C Lambda (k x k; diagonal after a full update)
        self._op_key = None  # identity of the operator C was built for
        self._z_pc_key = None  # the PC that Z = M^{-1} U~ was computed with
        self._pc_reuse.forget()

    def destroy(self) -> None:
        """Free the PETSc objects this solver created (its PC and the Vec wrappers) and the
        blocks; the solver can be used again afterwards (it starts empty)."""
        if self._own_pc is not None:
            self._own_pc.destroy()
            self._own_pc = None
        for name in ("_W_vecs", "_W_alt_vecs", "_Z_vecs", "_Z_alt_vecs"):
            for v in getattr(self, name, None) or []:
                v.destroy()
        for name in ("_t_vec", "_r_vec", "_z_vec", "_x0_vec"):
            if getattr(self, name, None) is not None:
                getattr(self, name).destroy()
        for name in (
            "_W",
            "_W_alt",
            "_Z",
            "_Z_alt",
            "_W_vecs",
            "_W_alt_vecs",
            "_Z_vecs",
            "_Z_alt_vecs",
            "_t_vec",
            "_r_vec",
            "_z_vec",
            "_x0_vec",
        ):
            setattr(self, name, None)
        self._pc = None
        self._A = None
        self._n = None
        self.reset()

    @property
    def recycle_dim(self) -> int:
        """Current dimension of the recycled space (0 after ``reset``, at most ``recycle``)."""
        return self._recycle_dim

    def recycled_space(self):
        """Copies of the recycled space: ``(U, C, Lam)`` with ``U`` and ``C`` of shape
        ``(recycle_dim, n_local)`` (one vector per row) and ``Op U^T = C^T Lam``, i.e.
        ``Op u_j = sum_i Lam[i, j] c_i`` for the operator of the last solve; ``C`` has
        orthonormal rows. Empty arrays before the first update."""
        k, k0 = self._recycle_dim, self.recycle
        if self._n is None or k == 0:
            return np.zeros((0, self._n or 0)), np.zeros((0, self._n or 0)), np.zeros((0, 0))
        return self._W[k0 - k : k0].copy(), self._W[k0 : k0 + k].copy(), self._lam.copy()

    def set_pc_reuse(self, max_systems: int = 1, iteration_growth: float = 1.5, min_baseline: int = 10) -> None:
        """Reuse one preconditioner for a run of consecutive (sorted) systems.

        The PC built for system ``i`` is kept for at most ``max_systems`` systems, and rebuilt
        sooner once a solve with the kept PC needs more than ``iteration_growth`` times the
        iterations of the first solve with it (counted as at least ``min_baseline``). The
        recycled space absorbs the mismatch between
        the new matrix and the old preconditioner. ``max_systems = 1`` (default) rebuilds for
        every new matrix (SKR as published). Only affects the PC this solver owns (the
        ``solve(..., pc=None)`` route). With right preconditioning, reuse also makes the solver
        keep ``Z = M^{-1} U~`` (twice the block memory) so that moving the recycled space to
        the next matrix under the kept PC costs ``k`` products with ``A`` instead of ``k`` PC
        applications; switching that storage on or off drops the current recycled space.
        """
        self._pc_reuse = PCReusePolicy(
            max_systems=max_systems, iteration_growth=iteration_growth, min_baseline=min_baseline
        )
        store = self._pc_reuse.active and self.pc_side == "right" and self.recycle > 0
        if store != self._store_z:
            # Z = M^{-1} U~ makes the re-map onto a new matrix under a kept PC cost k products
            # with A instead of k PC applications; it needs its own blocks (reallocated now)
            self._store_z = store
            self._n = None

    @property
    def pc(self):
        """The PETSc PC this solver owns (``None`` until the first solve)."""
        return self._own_pc

    def solve(
        self,
        A,
        b,
        x,
        pc=None,
        P=None,
        initial_guess_nonzero: bool = True,
        monitor=None,
        pc_reused: bool = False,
        convergence_test=None,
    ) -> SolveResult:
        """Solve ``A x = b``; ``x`` holds the initial guess on entry, the solution on exit.

        Args:
            A: assembled PETSc ``Mat`` (square).
            b: right-hand side ``Vec``.
            x: initial guess / solution ``Vec`` (same layout as ``b``).
            pc: an external, already configured PETSc ``PC`` (the KSP route passes the KSP's);
                ``None``: use this solver's own PC, built from the options database.
            P: matrix to build the own PC from (default ``A``).
            initial_guess_nonzero: ``False`` zeroes ``x`` first.
            monitor: optional callable ``monitor(iteration, relative_residual)``, called for
                every reported residual: the initial true one (iteration 0), the GMRES estimate
                after each Arnoldi step and the recomputed true one at each cycle end (the same
                iteration number as the cycle's last step, as PETSc's GMRES does at a restart).
                With left preconditioning the in-cycle value is the preconditioned estimate
                times ``||r|| / ||M^{-1} r||`` at the cycle start (what the stopping test uses).
                During the call :meth:`build_solution` gives the current iterate.
            convergence_test: optional callable ``test(iteration, residual_norm) -> reason``
                (absolute norm, called right after ``monitor`` for every reported residual)
                that *replaces* the built-in rtol/atol/divtol test, as ``KSPSetConvergenceTest``
                does: a reason name from :data:`~datagen.krylov.result.CONVERGED_REASONS` or
                ``DIVERGED_REASONS`` stops the solve at that iteration (mid-cycle: ``x`` becomes
                that iterate), ``None`` or ``""`` continues. ``max_it`` still applies.
            pc_reused: with an external ``pc``: the caller kept it unchanged since the previous
                solve (``PCSetReusePreconditioner``) although its matrix changed. With
                ``set_pc_reuse(max_systems > 1)`` called once (it switches on the stored
                ``Z = M^{-1} U~``), the re-map then costs ``k`` products with ``A`` only.

        Returns:
            :class:`SolveResult` with the explicitly recomputed true relative residual.
        """
        start = time.perf_counter()
        self._pc_applications = 0
        n_rows, n_cols = A.getSize()
        if n_rows != n_cols:
            raise ValueError(f"A must be square, got global size {n_rows} x {n_cols}")
        if b.getSize() != n_rows or x.getSize() != n_rows:
            raise ValueError(f"size mismatch: A is {n_rows} x {n_cols}, b has {b.getSize()}, x has {x.getSize()}")
        if self._store_z and self.pc_side != "right":
            self._store_z, self._n = False, None  # Z = M^{-1} U~ only exists for right PC
        self._solve_skipped = 0
        self._solve_dropped = False
        self._ensure_buffers(A, b)
        self._A = A
        tick = time.process_time()
        pc_rebuilt = self._prepare_pc(A, P, pc)
        self.timers["pc_setup"] += time.process_time() - tick
        if not initial_guess_nonzero:
            x.zeroEntries()
        # PETSc object ids are never reused (handles are, once an object is freed); the state
        # counter changes whenever values are set in place
        previous_pc_key = getattr(self, "_current_pc_key", None)
        self._current_pc_key = self._pc_key(pc)
        if (
            pc_reused
            and pc is not None
            and previous_pc_key is not None
            and previous_pc_key[0] == self._current_pc_key[0]
        ):
            self._current_pc_key = previous_pc_key  # same M: Z = M^{-1} U~ stays valid
        op_key = (A.getId(), A.stateGet(), self._current_pc_key, self.pc_side)
        applications = 0
        if self._recycle_dim > 0 and op_key != self._op_key:
            tick = time.perf_counter()
            applications += self._refresh_recycled_space()  # logs GCRODRRemap after its k products
            self.timers["refresh"] += time.perf_counter() - tick
        self._op_key = op_key

        bnorm = b.norm()
        run = _Solve(
            bnorm=bnorm,
            target=max(self.rtol * bnorm, self.atol),
            monitor=monitor,
            convergence_test=convergence_test,
            applications=applications,
        )
        if bnorm == 0.0:
            x.zeroEntries()
            return self._finish(start, run, 0.0, "CONVERGED_ZERO_RHS", pc_rebuilt)
        self._solving_x = x
        try:
            rnorm, reason = self._iterate(b, x, run)
        finally:
            self._solving_x = None
            self._live = None
        return self._finish(start, run, rnorm / bnorm, reason, pc_rebuilt)

    def _iterate(self, b, x, run: _Solve):
        """Restart cycles from ``x`` until a stopping test fires (module docstring: every test
        but the user's and divtol's is made on the true residual recomputed after each cycle).
        Returns ``(||b - A x||, reason)``."""
        target = run.target
        rnorm = self._true_residual(b, x)
        run.applications += 1
        stop = self._report(run, 0, rnorm)
        idle_cycle = False
        while True:
            if not math.isfinite(rnorm):
                return rnorm, "DIVERGED_NANORINF"
            if stop:
                return rnorm, stop
            if run.convergence_test is None and rnorm <= target:
                return rnorm, self._converged_reason(run, rnorm)
            if run.iterations >= self.max_it:
                return rnorm, "DIVERGED_MAX_IT"
            cycle = self._cycle(x, rnorm, run)
            steps = cycle.steps
            run.iterations += steps
            run.applications += steps
            run.cycles += 1
            rnorm = self._true_residual(b, x)
            run.applications += 1
            if cycle.stop_reason:
                # the test stopped the solve inside the cycle; x is that iterate (its true
                # residual is what the result reports, no further report is made)
                return rnorm, cycle.stop_reason
            stop = self._report(run, run.iterations, rnorm)
            if cycle.nonfinite and not rnorm <= target:
                return rnorm, "DIVERGED_NANORINF"  # the operator or the PC gave NaN/inf
            if cycle.breakdown or (steps == 0 and idle_cycle):
                # an exact invariant subspace that does not contain the solution (A or M is
                # singular on it), or cycles that cannot take a step: more would repeat them
                if rnorm > target:
                    return rnorm, "DIVERGED_BREAKDOWN"
                if run.convergence_test is not None and not stop:
                    # nothing left to iterate on: stop on the built-in test
                    return rnorm, self._converged_reason(run, rnorm)
            idle_cycle = steps == 0

    def _converged_reason(self, run: _Solve, rnorm: float) -> str:
        return "CONVERGED_RTOL" if rnorm <= self.rtol * run.bnorm else "CONVERGED_ATOL"

    def _report(self, run: _Solve, iteration, norm):
        """Record one residual norm (absolute): history, monitor, then the convergence test.
        Returns the reason to stop now, or ``None``."""
        bnorm = run.bnorm
        run.history.append(norm / bnorm)
        if run.monitor is not None:
            run.monitor(iteration, norm / bnorm)
        test = run.convergence_test
        if test is not None:
            reason = test(iteration, norm)
            if not reason:
                return None
            if reason not in CONVERGED_REASONS + DIVERGED_REASONS:
                raise ValueError(
                    f"the convergence test returned {reason!r}; allowed: None (go on) or "
                    f"one of {CONVERGED_REASONS + DIVERGED_REASONS}"
                )
            return reason
        # PETSc's KSPConvergedDefault: rnorm >= divtol * rnorm0, with rnorm0 = ||b||
        if self.divtol is not None and norm >= self.divtol * bnorm:
            return "DIVERGED_DTOL"
        return None

    def build_solution(self, out) -> None:
        """Write the current iterate into the ``Vec`` ``out`` (``KSPBuildSolution``).

        Inside a cycle (from a monitor or convergence test called after Arnoldi step ``j``)
        that is ``x_0 + (M^{-1}) [U~, V_j] [y_u; y_j]`` with the least-squares solution of the
        steps so far: what the solve would return if it stopped now (``x`` itself is only
        updated at the cycle end; ``out`` may be ``x``). Outside a cycle it is ``x``.
        Raises ``RuntimeError`` outside a solve.
        """
        if self._solving_x is None:
            raise RuntimeError(
                "build_solution is only available during a solve (from a monitor or "
                "a convergence test); after it the solution is the solve's x"
            )
        if self._live is None:
            if out.handle != self._solving_x.handle:
                self._solving_x.copy(out)
            return
        self._apply_correction(self._live, out)

    def _apply_correction(self, cycle: _Cycle, out) -> None:
        """``out = x_0 + (M^{-1}) [U~, V_s] [y_u; y]`` for the first ``steps`` Arnoldi steps of
        the current cycle: ``y = R^{-1} g`` (Givens-rotated Hbar), ``y_u = Lambda^{-1}(c - B y)``
        (zeroes the ``C`` component). ``x_0`` (the cycle's start) is kept in ``self._x0``."""
        steps, rot, g = cycle.steps, cycle.rot, cycle.g
        W = self._W
        k0 = self.recycle
        k_act = self._recycle_dim
        v0 = k0 + k_act
        t = self._t
        event = self._ev["GCRODRLstSq"]
        event.begin()
        # with stored Z the combination is already M^{-1} [U~ V] [y_u; y]: no PC application
        basis_x = self._Z if self._store_z else W
        if steps:
            y = scipy.linalg.solve_triangular(rot[:steps, :steps], g[:steps])
            blas.dgemv(1.0, basis_x[v0 : v0 + steps].T, y, beta=0.0, y=t, overwrite_y=1)
        else:
            y = np.zeros(0)
            t[:] = 0.0
        if k_act:
            y_u = np.linalg.solve(self._lam, cycle.c_top - cycle.coupling[:, :steps] @ y)
            blas.dgemv(1.0, basis_x[k0 - k_act : k0].T, y_u, beta=1.0, y=t, overwrite_y=1)
        _log_flops(2 * (steps + k_act) * self._n + steps * steps + 2 * k_act * (steps + k_act * k_act))
        event.end()
        if not (steps or k_act):
            self._x0_vec.copy(out)
        elif self._store_z or self.pc_side == "left":
            out.waxpy(1.0, self._t_vec, self._x0_vec)
        else:
            self._apply_pc(self._t_vec, self._z_vec)
            out.waxpy(1.0, self._z_vec, self._x0_vec)

    # ------------------------------------------------------------------ set-up
    def _ensure_buffers(self, A, b) -> None:
        """Allocate the two row blocks for a local size ``n`` (once per problem size).

        Each block ``W`` has ``k + m + 1`` rows laid out as ``[U~ | C | V]``: ``U~`` in rows
        ``[k - k_act, k)``, ``C`` in ``[k, k + k_act)``, the Arnoldi basis from ``k + k_act`` on
        (at most ``m - k_act + 1`` rows, so it ends by row ``k + m + 1``). ``[C; V]`` is
        contiguous for the orthogonalisation; the recycled-space update and the re-map write
        the new ``[U~; C]`` into the other block with GEMMs, then the blocks swap (no copies).
        Memory: ``16 (k + m + 1) n`` bytes (twice that with stored ``Z``).
        """
        n = b.getLocalSize()
        if self._n == n:
            return
        for name in ("_W_vecs", "_W_alt_vecs", "_Z_vecs", "_Z_alt_vecs"):
            for v in getattr(self, name, None) or []:
                v.destroy()  # wrappers of the blocks of the previous size
            setattr(self, name, None)
        m, k = self.restart, self.recycle
        self._n = n
        self._global_n = b.getSize()
        self._W = np.zeros((k + m + 1, n))
        self._W_alt = np.zeros((k + m + 1, n)) if k else self._W
        self._t = np.zeros(n)  # combination [U~, V] y before x += (M^{-1}) t
        self._r = np.zeros(n)  # residual
        self._z = np.zeros(n)  # PC / operator intermediate
        self._x0 = np.zeros(n)  # x at the start of the current cycle
        wrap = self._wrap
        self._W_vecs = [wrap(row) for row in self._W]
        self._W_alt_vecs = [wrap(row) for row in self._W_alt] if k else self._W_vecs
        if self._store_z:
            # row i of Z is M^{-1} (row i of W) for the U~ and V rows (C rows unused)
            self._Z, self._Z_alt = np.zeros_like(self._W), np.zeros_like(self._W)
            self._Z_vecs = [wrap(row) for row in self._Z]
            self._Z_alt_vecs = [wrap(row) for row in self._Z_alt]
        self._t_vec, self._r_vec, self._z_vec = wrap(self._t), wrap(self._r), wrap(self._z)
        self._x0_vec = wrap(self._x0)
        # a new size means new systems: the old space cannot be reused
        self.reset()

    def _swap_blocks(self) -> None:
        self._W, self._W_alt = self._W_alt, self._W
        self._W_vecs, self._W_alt_vecs = self._W_alt_vecs, self._W_vecs
        if self._store_z:
            self._Z, self._Z_alt = self._Z_alt, self._Z
            self._Z_vecs, self._Z_alt_vecs = self._Z_alt_vecs, self._Z_vecs

    def _wrap(self, row: np.ndarray):
        PETSc = _petsc()
        return PETSc.Vec().createWithArray(row, size=(self._n, self._global_n), comm=self.comm)

    def _prepare_pc(self, A, P, pc) -> bool:
        """Set ``self._pc`` for this solve; returns whether it was (re)built now."""
        PETSc = _petsc()
        if pc is not None:
            self._pc = pc
            pc.setUp()  # a no-op when it is current or told to reuse; else it is built now
            return True
        if self._own_pc is None:
            self._own_pc = PETSc.PC().create(self.comm)
            if self.options_prefix:
                self._own_pc.setOptionsPrefix(self.options_prefix)
            self._own_pc.setOperators(A, P if P is not None else A)
            try:
                self._own_pc.setFromOptions()
            except PETSc.Error as exc:
                prefix = self.options_prefix or ""
                given = PETSc.Options(prefix).getString("pc_type", "(unset)")
                pc, self._own_pc = self._own_pc, None
                pc.destroy()
                detail = str(exc).splitlines()[-1].removeprefix("[0] ").strip()
                raise ValueError(
                    f"PETSc rejected the preconditioner options with prefix "
                    f"{prefix!r} (-{prefix}pc_type {given}): {detail}; "
                    f"allowed: any PCType of this PETSc build (ilu, gamg, "
                    f"jacobi, sor, asm, lu, hypre if installed, ...)"
                ) from exc
        self._pc = self._own_pc
        operator_key = (A.getId(), A.stateGet())
        if self._pc_reuse.needs_rebuild(operator_key):
            self._own_pc.setReusePreconditioner(False)
            self._own_pc.setOperators(A, P if P is not None else A)
            self._own_pc.setUp()
            # PCApply would otherwise rebuild silently once the same Mat is refilled in place
            self._own_pc.setReusePreconditioner(self._pc_reuse.max_systems > 1)
            self._pc_builds += 1
            self._pc_reuse.built(operator_key)
            return True
        return False

    def _pc_key(self, external_pc):
        if external_pc is not None:
            _, pmat = external_pc.getOperators()
            return (external_pc.getId(), pmat.getId(), pmat.stateGet())
        return ("own", self._pc_builds)

    # ------------------------------------------------------------------ kernels
    def _sum(self, values):
        """Sum partial inner products over ranks (no-op on one rank)."""
        if self._mpi is not None:
            from mpi4py import MPI

            values = np.ascontiguousarray(values)
            self._mpi.Allreduce(MPI.IN_PLACE, values, op=MPI.SUM)
        return values

    def _inner(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """``left @ right.T`` for two row blocks (inner products of their rows), summed over
        ranks. Accumulated over column chunks that fit in L2: for these short, very wide
        operands that is ~1.5x faster than one BLAS call, which streams both from memory."""
        out = np.zeros((left.shape[0], right.shape[0]))
        n = left.shape[1]
        for lo in range(0, n, _INNER_CHUNK):
            hi = min(lo + _INNER_CHUNK, n)
            out += left[:, lo:hi] @ right[:, lo:hi].T
        return self._sum(out)

    @staticmethod
    def _combine_rows(first, second, coef, out) -> None:
        """``out = coef^T [first; second]`` for two row blocks (``coef`` has a row per row;
        ``first`` may be empty)."""
        split = first.shape[0]
        if split:
            np.matmul(coef[:split].T, first, out=out)
        else:
            out[:] = 0.0
        blas.dgemm(1.0, second.T, coef[split:], beta=1.0, c=out.T, overwrite_c=1)

    def _norm(self, row: np.ndarray) -> float:
        return math.sqrt(float(self._sum(np.array([row @ row]))[0]))

    def _apply_pc(self, vec_in, vec_out) -> None:
        """``vec_out = M^{-1} vec_in`` (counted: PC applications are the expensive part for
        strong preconditioners)."""
        self._pc_applications += 1
        self._pc.apply(vec_in, vec_out)

    def _apply_op(self, vec_in, vec_out) -> None:
        """``vec_out = Op vec_in`` (``A M^{-1}`` or ``M^{-1} A``)."""
        if self.pc_side == "right":
            self._apply_pc(vec_in, self._z_vec)
            self._A.mult(self._z_vec, vec_out)
        else:
            self._A.mult(vec_in, self._z_vec)
            self._apply_pc(self._z_vec, vec_out)

    def _true_residual(self, b, x) -> float:
        """``r = b - A x`` into ``self._r``; returns ``||r||``."""
        tick = time.perf_counter()
        self._A.mult(x, self._r_vec)
        self._r_vec.aypx(-1.0, b)
        rnorm = self._r_vec.norm()
        self.timers["residual"] += time.perf_counter() - tick
        return rnorm

    # ------------------------------------------------------------------ one cycle
    def _cycle(self, x, rnorm, run: _Solve) -> _Cycle:
        """One restart cycle from the residual in ``self._r`` (norm ``rnorm``); updates ``x``
        in place: start (projection against ``C``), Arnoldi steps with Givens rotations until
        the estimate, the budget, a breakdown or the user's test stops them, then the solution
        update and the recycled-space update. Returns the cycle's state (``steps``,
        ``breakdown``, ``nonfinite``, ``stop_reason``)."""
        cycle = self._start_cycle(x, rnorm, run)
        if cycle.beta > (cycle.inner_target if run.convergence_test is None else 0.0):
            self._W[self.recycle + cycle.k_act] *= 1.0 / cycle.beta
            for j in range(cycle.hess.shape[1]):
                if not self._arnoldi_step(cycle, j, run):
                    break
        # y = argmin ||beta e1 - Hbar y||,  y_u = D^{-1}(c - B y),  x = x_0 + (M^{-1}) [U~ V] [y_u; y]
        self._live = None
        self._apply_correction(cycle, x)
        self._end_cycle(cycle, run.cycles)
        return cycle

    def _start_cycle(self, x, rnorm, run: _Solve) -> _Cycle:
        """Step 1's start: ``x_0 = x``; the start vector (``r``, or ``M^{-1} r`` for left
        preconditioning) split into its ``C`` component ``c`` and ``beta v_1`` (written
        unnormalised into the first ``V`` row); the cycle's arrays for ``s = min(m - k_act,
        budget)`` steps."""
        W = self._W
        k0 = self.recycle  # first row of C
        k_act = self._recycle_dim
        v0 = k0 + k_act  # first row of V
        if self.pc_side == "left":
            self._apply_pc(self._r_vec, self._z_vec)
            start_vec = self._z
            start_norm = self._norm(self._z)
            inner_target = run.target * start_norm / rnorm
        else:
            start_vec = self._r
            start_norm = rnorm
            inner_target = run.target
        x.copy(self._x0_vec)  # x_0 of this cycle: x = x_0 + correction at its end
        self._live = None
        ev_orth = self._ev["GCRODROrthog"]
        n = self._n
        ev_orth.begin()
        first = W[v0]
        first[:] = start_vec
        if k_act:
            c_block = W[k0:v0]
            c_top = self._sum(c_block @ first)
            blas.dgemv(-1.0, c_block.T, c_top, beta=1.0, y=first, overwrite_y=1)
            # a second pass only when the projection cancelled much of the vector (DGKS): the
            # first cycle after a new matrix; later residuals are already orthogonal to C
            c_norm = float(np.linalg.norm(c_top))
            passes = 1
            if c_norm * c_norm > (1.0 - _REORTH_ETA**2) * start_norm * start_norm:
                c_fix = self._sum(c_block @ first)
                blas.dgemv(-1.0, c_block.T, c_fix, beta=1.0, y=first, overwrite_y=1)
                c_top += c_fix
                passes = 2
            _log_flops(4 * passes * k_act * n)
        else:
            c_top = np.zeros(0)
        beta = self._norm(first)
        _log_flops(2 * n)
        ev_orth.end()
        steps_max = min(self.restart - k_act, self.max_it - run.iterations)
        g = np.zeros(steps_max + 1)
        g[0] = beta
        return _Cycle(
            k_act=k_act,
            inner_target=inner_target,
            c_top=c_top,
            beta=beta,
            g=g,
            # in-cycle residuals are reported as unpreconditioned estimates (the stopping test's scale)
            report_scale=rnorm / start_norm if self.pc_side == "left" and start_norm > 0 else 1.0,
            hess=np.zeros((steps_max + 1, steps_max)),
            coupling=np.zeros((k_act, steps_max)),
            rot=np.zeros((steps_max + 1, steps_max)),
        )

    def _arnoldi_step(self, cycle: _Cycle, j: int, run: _Solve) -> bool:
        """Arnoldi step ``j`` (builds ``v_{j+2}``), its Givens rotation and its report.
        Returns whether the cycle goes on."""
        k0 = self.recycle
        row = k0 + cycle.k_act + j + 1  # v_{j+2} is built in this row
        tick = time.perf_counter()
        vecs = self._W_vecs
        if self._store_z:  # keep z_j = M^{-1} v_j: x and Z = M^{-1} U~ are built from it
            zvecs = self._Z_vecs
            self._apply_pc(vecs[row - 1], zvecs[row - 1])
            self._A.mult(zvecs[row - 1], vecs[row])
        else:
            self._apply_op(vecs[row - 1], vecs[row])
        tock = time.perf_counter()
        self.timers["op"] += tock - tick
        h, hnorm = self._orthogonalise(row)
        self.timers["ortho"] += time.perf_counter() - tock
        if not (math.isfinite(hnorm) and np.isfinite(h).all()):
            # the operator or the PC produced NaN/inf (e.g. a failed factorisation): the
            # steps so far are still usable, no further step is
            cycle.nonfinite = True
            cycle.breakdown = True
            return False
        if not self._givens(cycle, j, h, hnorm):
            cycle.breakdown = True
            return False
        cycle.steps = j + 1
        estimate = abs(cycle.g[j + 1])
        self._live = cycle  # for build_solution
        stop = self._report(run, run.iterations + cycle.steps, estimate * cycle.report_scale)
        if hnorm == 0.0 or hnorm <= _BREAKDOWN * float(np.abs(h).max(initial=0.0)):
            cycle.breakdown = True  # lucky (or unlucky) breakdown: Op V_j is invariant
            cycle.stop_reason = stop
            return False
        w = self._W[row]
        w *= 1.0 / hnorm
        if stop:
            cycle.stop_reason = stop
            return False
        return not (run.convergence_test is None and estimate <= cycle.inner_target)

    def _orthogonalise(self, row: int):
        """Classical Gram-Schmidt of ``W[row]`` against ``[C; V]`` (rows ``k`` to ``row``), a
        second pass as ``reorthogonalize`` says. Returns ``(h, ||w||)``, ``w`` unnormalised."""
        W = self._W
        k0 = self.recycle
        n = self._n
        vecs = self._W_vecs
        mpi = self._mpi is not None
        reorth = self.reorthogonalize
        ev_orth = self._ev["GCRODROrthog"]
        ev_orth.begin()
        w = W[row]
        basis = W[k0:row]  # C and v_1..v_{j+1}
        # CGS: h = [C; V]^T w (one BLAS gemv over the contiguous block), then
        # w -= [C; V] h with PETSc's VecMAXPY (measured 10-25% faster than dgemv 'N')
        h = basis @ w
        if mpi:
            h = self._sum(h)
        w_vec = vecs[row]
        w_vec.maxpy(-h, vecs[k0:row])
        hnorm = self._norm(w) if mpi else math.sqrt(w @ w)
        # ||w_before||^2 = ||h||^2 + ||w_after||^2 (Pythagoras): no extra pass over w
        if reorth == "always" or (
            reorth == "ifneeded" and hnorm < _REORTH_ETA * math.hypot(hnorm, float(np.linalg.norm(h)))
        ):
            h2 = self._sum(basis @ w)
            w_vec.maxpy(-h2, vecs[k0:row])
            h += h2
            hnorm = self._norm(w)
            _log_flops(2 * (row - k0) * n + 2 * n)  # (its VecMAXPY logs its own flops)
        # the gemv and the norm (VecMAXPY, nested in this event, logs its own flops)
        _log_flops(2 * (row - k0) * n + 2 * n)
        ev_orth.end()
        return h, hnorm

    def _givens(self, cycle: _Cycle, j: int, h, hnorm: float) -> bool:
        """Store column ``j`` of ``B`` and ``Hbar`` and rotate it (Givens) so that ``|g_{j+1}|``
        is the least-squares residual. Returns ``False`` on a zero column (breakdown)."""
        k_act = cycle.k_act
        cosines, sines, g = cycle.cosines, cycle.sines, cycle.g
        ev_lsq = self._ev["GCRODRLstSq"]
        ev_lsq.begin()
        cycle.coupling[:, j] = h[:k_act]
        cycle.hess[: j + 1, j] = h[k_act:]
        cycle.hess[j + 1, j] = hnorm
        # Givens rotations keep the least-squares residual |g_{j+1}| current (on Python
        # floats: for these short columns cheaper than NumPy element access)
        col = h[k_act:].tolist()
        col.append(hnorm)
        for i in range(j):
            ci, si = cosines[i], sines[i]
            a, c = col[i], col[i + 1]
            col[i] = ci * a + si * c
            col[i + 1] = ci * c - si * a
        denom = math.hypot(col[j], col[j + 1])
        if denom == 0.0:
            ev_lsq.end()
            return False
        cosines.append(col[j] / denom)
        sines.append(col[j + 1] / denom)
        col[j], col[j + 1] = denom, 0.0
        cycle.rot[: j + 2, j] = col
        g[j + 1] = -sines[j] * g[j]
        g[j] *= cosines[j]
        _log_flops(6 * j + 8)
        ev_lsq.end()
        return True

    def _end_cycle(self, cycle: _Cycle, cycle_index: int) -> None:
        """Step 3: the recycled-space update, when this cycle is one that updates
        (``update_interval``, ``update_last_cycle``) and took steps without a breakdown."""
        steps = cycle.steps
        converging = steps > 0 and (abs(cycle.g[steps]) <= cycle.inner_target or bool(cycle.stop_reason))
        if converging:
            wanted = self.update_last_cycle
        else:
            wanted = cycle.k_act == 0 or (cycle_index + 1) % self.update_interval == 0
        if self.recycle and steps and not cycle.breakdown and wanted:
            tick = time.perf_counter()
            event = self._ev["GCRODRUpdate"]
            event.begin()
            try:
                self._update_recycled_space(steps, cycle.hess[: steps + 1, :steps], cycle.coupling[:, :steps])
            finally:
                event.end()
            self.timers["update"] += time.perf_counter() - tick

    # ------------------------------------------------------------------ recycled space
    def _update_recycled_space(self, steps, hess, coupling) -> None:
        """Harmonic Ritz update after a cycle of ``steps`` Arnoldi steps (module docstring, 3)."""
        W = self._W
        k0 = self.recycle
        k_act = self._recycle_dim
        v0 = k0 + k_act
        p = k_act + steps
        k_new = min(self.recycle, p)
        gbar = np.zeros((p + 1, p))
        gram = np.zeros((p + 1, p))
        vtu = None
        if k_act:
            gbar[:k_act, :k_act] = self._lam
            gbar[:k_act, k_act:] = coupling
            # V_{s+1}^T U~: the only n-length inner products of the update (one GEMM)
            vtu = self._inner(W[v0 : v0 + steps + 1], W[k0 - k_act : k0])
            gram[:k_act, :k_act] = self._ctu
            gram[k_act:, :k_act] = vtu
        gbar[k_act:, k_act:] = hess
        gram[k_act:, k_act:] = np.eye(steps + 1, steps)
        _log_flops(2 * (steps + 1) * k_act * self._n + _dense_flops(p))
        try:
            least_squares = LeastSquares(gbar)  # one QR of Gbar for both least-squares solves
            coeffs = harmonic_ritz_basis(gbar, gram, k_new, least_squares=least_squares)
            q, r = small_qr(gbar @ coeffs)
            s = scipy.linalg.solve_triangular(r, coeffs.T, trans="T").T  # P R^{-1}
        except (np.linalg.LinAlgError, ValueError):
            self._skip_update()  # keep the previous space: it still satisfies Op U~ = C Lambda
            return
        if not (np.isfinite(q).all() and np.isfinite(s).all()):
            self._skip_update()
            return
        # Vhat^T Vhat from the carried U~^T U~ and the GEMM above: column norms of Vhat S
        vhat_gram = np.eye(p)
        if k_act:
            vhat_gram[:k_act, :k_act] = self._utu
            vhat_gram[k_act:, :k_act] = vtu[:steps]
            vhat_gram[:k_act, k_act:] = vtu[:steps].T
        if (
            k_act == k_new
            and self.update_rank_tol > 0.0
            and self._low_rank_update(steps, gbar, gram, vhat_gram, q, least_squares)
        ):
            return
        new_gram = s.T @ vhat_gram @ s
        norms = np.sqrt(np.maximum(np.diag(new_gram), 0.0))
        if not (norms > 0).all():
            self._skip_update()
            return
        s_unit = s / norms
        # C_new = What Q and U~_new = Vhat S diag(1/norms), written into the other block
        out = self._W_alt
        np.matmul(q.T, W[k0 : v0 + steps + 1], out=out[k0 : k0 + k_new])
        self._combine_rows(W[k0 - k_act : k0], W[v0 : v0 + steps], s_unit, out[k0 - k_new : k0])
        _log_flops(2 * k_new * (k_act + steps + 1 + (2 if self._store_z else 1) * p) * self._n)
        if self._store_z:  # M^{-1} U~_new = [M^{-1} U~, M^{-1} V_s] S diag(1/norms)
            Z = self._Z
            self._combine_rows(Z[k0 - k_act : k0], Z[v0 : v0 + steps], s_unit, self._Z_alt[k0 - k_new : k0])
            self._z_pc_key = self._current_pc_key
        self._swap_blocks()
        self._recycle_dim = k_new
        self._lam = np.diag(1.0 / norms)
        self.update_stats["full"] += 1
        self._ctu = q.T @ gram @ s_unit
        self._utu = new_gram / np.outer(norms, norms)

    def _low_rank_update(self, steps, gbar, gram, vhat_gram, q, least_squares) -> bool:
        """Move only the recycled directions that changed (module docstring, 3b).

        ``q`` holds the coefficients of the new ``C`` in ``What = [C, V_{s+1}]``. The sines of
        the principal angles between the new and the old space are the singular values of its
        ``V`` part ``q_v = Y Sigma Z^T``. Directions with a sine ``<= update_rank_tol`` are
        kept inside the old space (their ``V`` components are dropped), the ``r`` others are
        written as a rank-``r`` change of the stored rows:

        ``C <- C + E A_perp^T``, ``U~ <- U~ + F A_perp^T Lambda`` with ``E = What Delta``,
        ``F = Vhat Gbar^+ Delta`` (so ``Op F = E`` exactly and ``Op U~ = C Lambda`` still holds),
        where ``A_perp`` spans the old directions that are replaced. Cost: ``~2 r (k + s)``
        instead of ``~2 k (k + s)`` row operations, and no block swap. Returns ``False`` when
        the change is not low-rank enough to pay (then the full update runs).
        """
        k = self._recycle_dim
        k0 = self.recycle
        v0 = k0 + k
        q_c, q_v = q[:k], q[k:]
        if self.update_rank_tol >= 1e-6:
            # singular values / right vectors of q_v from the k x k eigenproblem of q_v^T q_v
            # (cheaper than the SVD; resolves sines down to ~1e-8, far below the threshold)
            squares, z = np.linalg.eigh(q_v.T @ q_v)
            sines = np.sqrt(np.maximum(squares[::-1], 0.0))
            z = z[:, ::-1]
        else:
            _, sines, z_t = np.linalg.svd(q_v, full_matrices=True)
            z = z_t.T
        rank = int(np.count_nonzero(sines > self.update_rank_tol))
        if rank == 0:
            # every new direction lies within update_rank_tol of the old space: keep it
            self.update_stats["unchanged"] += 1
            return True
        if 2 * rank > k:
            return False  # most of the space moved: the full update is as cheap and exact
        # old directions that stay (orthonormal a_stay) and the ones replaced (a_perp)
        basis, _ = small_qr(q_c @ z[:, rank:], complete=True)
        a_stay, a_perp = basis[:, : k - rank], basis[:, k - rank :]
        moving = q @ z[:, :rank]
        moving[:k] -= a_stay @ (a_stay.T @ moving[:k])
        moving, r_moving = small_qr(moving)
        if np.abs(np.diag(r_moving)).min() <= 0.5 * self.update_rank_tol:
            return False
        delta = moving
        delta[:k] -= a_perp
        # Delta lies in range(Gbar) ([a; 0] does since Lambda is invertible, and so does q)
        s_f = least_squares.solve(delta)
        misfit = np.linalg.norm(gbar @ s_f - delta)
        if not (np.isfinite(misfit) and misfit <= 1e-10 * (1.0 + np.linalg.norm(delta))):
            return False
        lam = self._lam
        mix = a_perp.T @ lam  # r x k: U~ += F mix
        # thin products (rank r), memory bound: [E; F] = coef^T [U~; C; V_{s+1}] is one GEMM
        # over the contiguous rows (zero coefficients where a block does not enter), then
        # C += E A_perp^T and U~ += F mix in place (the transposed row blocks are
        # F-contiguous, so dgemm writes into them)
        W = self._W
        width = 2 * k + steps + 1
        coef = np.zeros((width, 2 * rank))
        coef[k:, :rank] = delta  # E = What Delta
        coef[:k, rank:] = s_f[:k]  # F = Vhat s_F
        coef[2 * k : width - 1, rank:] = s_f[k:]
        ef_rows = self._W_alt[: 2 * rank]
        np.matmul(coef.T, W[k0 - k : k0 - k + width], out=ef_rows)
        e_rows, f_rows = ef_rows[:rank], ef_rows[rank:]
        blas.dgemm(1.0, e_rows.T, a_perp.T, beta=1.0, c=W[k0:v0].T, overwrite_c=1)
        blas.dgemm(1.0, f_rows.T, mix, beta=1.0, c=W[k0 - k : k0].T, overwrite_c=1)
        _log_flops(
            (4 * rank * width + 4 * rank * k + (2 * rank * (k + steps) + 2 * rank * k if self._store_z else 0))
            * self._n
        )
        if self._store_z:  # M^{-1} U~ follows with the same coefficients
            Z, z_rows = self._Z, self._Z_alt[:rank]
            self._combine_rows(Z[k0 - k : k0], Z[v0 : v0 + steps], s_f, z_rows)
            blas.dgemm(1.0, z_rows.T, mix, beta=1.0, c=Z[k0 - k : k0].T, overwrite_c=1)
            self._z_pc_key = self._current_pc_key
        # the small Gram matrices follow exactly: C^T F, E^T U~, E^T F, U~^T F, F^T F
        ctf = gram[:k] @ s_f
        etu = delta.T @ gram[:, :k]
        etf = delta.T @ gram @ s_f
        utf = vhat_gram[:k] @ s_f
        ftf = s_f.T @ vhat_gram @ s_f
        self._ctu = self._ctu + ctf @ mix + a_perp @ etu + a_perp @ etf @ mix
        utu = self._utu + utf @ mix + mix.T @ utf.T + mix.T @ ftf @ mix
        self._utu = 0.5 * (utu + utu.T)
        norms = np.sqrt(np.maximum(np.diag(self._utu), 0.0))
        if not (norms > 0).all():
            self._drop_space()
            return True
        if norms.max() > 4.0 or norms.min() < 0.25:
            # keep U~ near unit columns (Op U~ N^-1 = C Lambda N^-1): conditioning of Lambda
            self._W[k0 - k : k0] /= norms[:, None]
            if self._store_z:
                self._Z[k0 - k : k0] /= norms[:, None]
            lam = lam / norms[None, :]
            self._ctu = self._ctu / norms[None, :]
            self._utu = self._utu / np.outer(norms, norms)
        self._lam = lam
        self.update_stats["low_rank"] += 1
        self.update_stats["rank_sum"] += rank
        return True

    def _refresh_recycled_space(self) -> int:
        """The operator changed: ``[Q, R] = qr(Op U~)``, ``C = Q``, ``U~ = U~ R^{-1}``.

        ``Op U~`` is written over the old ``C`` rows; Cholesky QR (one Gram GEMM) gives ``R``;
        ``[U~ R^{-1} (renormalised); R^{-T} Op U~]`` is then one GEMM into the other block.
        A second pass runs when the Gram matrix was ill-conditioned (CholQR2), Householder QR
        when Cholesky fails; numerically dependent vectors drop the space. Returns the number
        of operator applications.
        """
        k = self._recycle_dim
        k0 = self.recycle
        if self._store_z:
            z_valid = self._z_pc_key == self._current_pc_key
            for i in range(k):
                if not z_valid:  # a new PC: Z = M^{-1} U~ once more
                    self._apply_pc(self._W_vecs[k0 - k + i], self._Z_vecs[k0 - k + i])
                self._A.mult(self._Z_vecs[k0 - k + i], self._W_vecs[k0 + i])
            self._z_pc_key = self._current_pc_key
        else:
            for i in range(k):
                self._apply_op(self._W_vecs[k0 - k + i], self._W_vecs[k0 + i])
        event = self._ev["GCRODRRemap"]
        event.begin()
        try:
            return self._remap_qr(k, k0)
        finally:
            event.end()

    def _remap_qr(self, k: int, k0: int) -> int:
        """The dense part of :meth:`_refresh_recycled_space`: the ``C`` rows hold ``Op U~``."""
        n = self._n
        # pass 1: the C rows hold Op U~ exactly; pass 2 (if any): they hold C_1 with
        # Op U~_1 = C_1 diag(d_1), so the factor that maps U~ is R_2 diag(d_1)
        d_scale = np.ones(k)
        for _attempt in range(2):
            W = self._W
            images = W[k0 : k0 + k]
            gram = self._inner(images, images)
            _log_flops(2 * k * k * n + k**3 // 3 + (6 if self._store_z else 4) * k * k * n)
            try:
                chol = np.linalg.cholesky(gram).T  # upper R, gram = R^T R
                ok = bool(np.isfinite(chol).all())
            except np.linalg.LinAlgError:
                ok = False
            if ok:
                diag = np.abs(np.diag(chol))
                if not diag.min() > _DROP_RATIO * diag.max():
                    self._drop_space()
                    return k
                c_mix = scipy.linalg.solve_triangular(chol, np.eye(k), trans="T")
            else:
                if self._mpi is not None:
                    self._drop_space()
                    return k
                q, chol = np.linalg.qr(images.T)
                diag = np.abs(np.diag(chol))
                if not diag.min() > _DROP_RATIO * diag.max():
                    self._drop_space()
                    return k
                images[:] = q.T
                c_mix = np.eye(k)
            # U~ R^{-1} as rows is R^{-T} U~; renormalised with the carried Gram matrix
            r_inv_t = scipy.linalg.solve_triangular(chol * d_scale[None, :], np.eye(k), trans="T")
            new_gram = r_inv_t @ self._utu @ r_inv_t.T
            norms = np.sqrt(np.maximum(np.diag(new_gram), 0.0))
            if not (np.isfinite(norms).all() and (norms > 0).all()):
                self._drop_space()
                return k
            u_mix = r_inv_t / norms[:, None]
            np.matmul(u_mix, W[k0 - k : k0], out=self._W_alt[k0 - k : k0])
            np.matmul(c_mix, images, out=self._W_alt[k0 : k0 + k])
            if self._store_z:
                np.matmul(u_mix, self._Z[k0 - k : k0], out=self._Z_alt[k0 - k : k0])
            self._swap_blocks()
            d_scale = 1.0 / norms
            self._lam = np.diag(d_scale)
            self._utu = new_gram / np.outer(norms, norms)
            diag = np.abs(np.diag(chol))
            if not ok or diag.max() <= 1e3 * diag.min():
                break  # well conditioned: one Cholesky QR pass is orthogonal to ~eps cond^2
        W = self._W
        self._ctu = self._inner(W[k0 : k0 + k], W[k0 - k : k0])
        _log_flops(2 * k * k * n)
        return k

    def _skip_update(self) -> None:
        """Count a recycled-space update that could not be made (the old space is kept)."""
        self._solve_skipped += 1
        self.update_stats["skipped"] += 1

    def _drop_space(self) -> None:
        """Discard an ill-conditioned recycled space (counted; the solve goes on without it)."""
        self.reset()
        self._solve_dropped = True
        self.update_stats["dropped"] += 1

    # ------------------------------------------------------------------ result
    def _finish(self, start, run: _Solve, residual, reason, pc_rebuilt) -> SolveResult:
        converged = reason.startswith("CONVERGED")
        if self._pc is self._own_pc:
            self._pc_reuse.solved(run.iterations)
        return SolveResult(
            iterations=int(run.iterations),
            residual=float(residual),
            converged=converged,
            seconds=time.perf_counter() - start,
            reason=reason,
            cycles=run.cycles,
            operator_applications=run.applications,
            recycle_dim=self._recycle_dim,
            pc_rebuilt=pc_rebuilt,
            pc_applications=self._pc_applications,
            updates_skipped=self._solve_skipped,
            space_dropped=self._solve_dropped,
            residual_history=run.history,
        )
