"""Linear solvers the generator can use, all on PETSc objects, behind one small interface.

``set_operator(A)`` hands a SciPy CSR matrix to PETSc (one ``Mat`` per backend; when the sparsity
pattern is unchanged its values are overwritten in place, so PETSc keeps symbolic work such as the
LU ordering/fill and knows the operator changed); ``solve(b, x0)`` returns the solution and a
:class:`SolveStats` whose ``residual`` is the true relative residual ``||b - A x|| / ||b||``, computed
after the solve, never the solver's own estimate.

Methods (``METHODS``):
- ``skr``      GCRO-DR(m, k) from :mod:`datagen.krylov` (recycled space kept across solves), right PC,
               run as a PETSc KSP of type ``python`` (:class:`datagen.krylov.ksp_python.GCRODRKSP`), so
               ``-skr_ksp_monitor``, ``-skr_ksp_converged_reason``, ``-skr_ksp_view``, ``-skr_ksp_rtol``,
               ``-skr_ksp_gcrodr_*`` work as for any KSP.
- ``gmres``    PETSc KSPGMRES(m), right PC, unpreconditioned-norm stopping (the fair baseline).
- ``lu``       sparse LU through PETSc (``-pc_type lu``) with a pivoting factorisation package by default
               (:func:`lu_packages`: UMFPACK or SuperLU when this PETSc build has them, see
               ``scripts/setup_env.sh``; PETSc's native LU, which does not pivot, with nested-dissection
               ordering otherwise); ``factor`` or ``-skrlu_pc_factor_mat_solver_type`` picks another.
               The symbolic factorisation is reused while the sparsity pattern is unchanged.
- ``cg-gamg``  PETSc CG + GAMG, unpreconditioned-norm stopping; only for symmetric positive definite families.
               GAMG starts from tuned defaults (:data:`GAMG_DEFAULTS`, see :func:`gamg_default_options`);
               every ``-skrcg_pc_gamg_*`` / ``-skrcg_mg_*`` option given by the user wins over them.

Option prefixes: ``skr_`` (skr and gmres: the same PC for the fair comparison), ``skrlu_``, ``skrcg_``.

The preconditioner of ``skr``, ``gmres`` comes from the options database under ``options_prefix``
(``-skr_pc_type ilu``); ``pc`` (if not None) sets ``-<prefix>pc_type``.
Convergence: ``||b - A x|| <= rtol ||b||`` (absolute tolerance 0). A solve whose true residual exceeds
``rtol`` is reported as not converged; :mod:`datagen.elliptic.generator` then retries with a pivoting
direct solver (SciPy ``splu``).
PC reuse (``pc_reuse = K``): for skr and gmres a preconditioner built for one matrix serves up to
``K`` consecutive (sorted) matrices before it is rebuilt (``1``: rebuilt for every matrix, SKR as
published); for cg-gamg ``K > 1`` keeps GAMG's interpolation (aggregates and smoothed prolongators) for
``K`` consecutive matrices and recomputes only the Galerkin coarse operators ``P^T A P`` and the smoothers
(``-pc_gamg_reuse_interpolation``), then builds a new hierarchy on the next matrix. The PC is the KSP's
for every method (for ``skr`` the GCRO-DR context applies the KSP's PC).
Initial guess (``initial_guess``): ``zero``, or ``previous`` (the last solution of this backend, the
natural choice along a sorted order); an explicit ``x0`` (a heat step's previous state) wins.
"""

from __future__ import annotations

import functools
import shlex
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from datagen.contract import check_rtol
from datagen.krylov.pc_reuse import PCReusePolicy

METHODS = ("skr", "gmres", "lu", "cg-gamg")
INITIAL_GUESSES = ("previous", "zero")
#: sparse LU packages PETSc can call (``MatSolverType``), in the order of preference of :func:`default_lu_package`;
#: every one but ``petsc`` pivots (``petsc``: PETSc's native LU, no pivoting); which ones a build has is
#: asked at run time (:func:`lu_packages`)
LU_PACKAGES = ("umfpack", "superlu", "mumps", "petsc")
#: the PETSc configure package that provides each MatSolverType
_PROVIDER = {"umfpack": "umfpack", "superlu": "superlu", "mumps": "mumps", "petsc": None}


def lu_packages() -> tuple:
    """The LU packages of :data:`LU_PACKAGES` this PETSc build has (``PETSc.Sys.hasExternalPackage``),
    in preference order; always ends with ``"petsc"`` (native, non-pivoting)."""
    from petsc4py import PETSc

    return tuple(p for p in LU_PACKAGES if _PROVIDER[p] is None or PETSc.Sys.hasExternalPackage(_PROVIDER[p]))


def default_lu_package() -> str:
    """The factorisation ``lu`` uses unless told otherwise: the first pivoting package of
    :func:`lu_packages` (see the README's solver table for the measurement behind the order), else
    ``"petsc"``."""
    return lu_packages()[0]


def check_lu_package(name: str) -> None:
    """Raise ValueError naming what this build has if ``name`` is not an LU package it can use."""
    have = lu_packages()
    if name not in have:
        what = "not a sparse LU package PETSc knows" if name not in LU_PACKAGES else "not in this PETSc build"
        raise ValueError(
            f"LU package {name!r} is {what}; this build has: {', '.join(have)} "
            f"(scripts/setup_env.sh builds PETSc with SuperLU/UMFPACK when their Debian packages "
            f"are installed)"
        )


@dataclass
class SolveStats:
    iterations: int
    residual: float
    seconds: float
    converged: bool
    reason: str
    method: str
    #: GCRO-DR (``skr``) only: recycled-space updates skipped in this solve (the harmonic Ritz
    #: problem failed; the previous space was kept) and whether the recycled space was dropped
    #: (ill-conditioned on the new operator; the solve went on as GMRES from an empty space)
    updates_skipped: int = 0
    space_dropped: bool = False


def parse_petsc_options(text: str | list | None) -> list:
    """``[(name, value or None)]`` from ``"-a 1 -b -c x"`` (or a token list); ValueError if it does not parse.

    A value may start with '-' only when it is a number (``-ksp_atol -1`` is not allowed, but
    ``-x -3`` is read as x = -3).
    """
    if not text:
        return []
    try:
        tokens = shlex.split(text) if isinstance(text, str) else list(text)
    except ValueError as err:
        raise ValueError(f"PETSc options {text!r} do not parse: {err}") from None
    out, i = [], 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("-") or tok in ("-", "--") or _is_number(tok):
            raise ValueError(
                f"PETSc options {text!r} do not parse: expected an option name starting with '-' at {tok!r}"
            )
        name = tok.lstrip("-")
        value = None
        if i + 1 < len(tokens) and (not tokens[i + 1].startswith("-") or _is_number(tokens[i + 1])):
            value = tokens[i + 1]
            i += 1
        out.append((name, value))
        i += 1
    return out


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def insert_petsc_options(pairs: list) -> list:
    """Put ``pairs`` into the options database; returns the names it added (for :func:`remove_petsc_options`).

    An option already in the database with the same value (given on the command line when PETSc
    was initialised, see :func:`datagen.cli._init_petsc`) is left as it is: it belongs to the
    process, keeps PETSc's record of whether it was used (``-options_left``) and is not removed.
    """
    from petsc4py import PETSc

    opts = PETSc.Options()
    present = opts.getAll()  # getAll does not mark options as used (hasName would)
    added = []
    for name, value in pairs:
        if name in present and (present[name] or "") == (value or ""):
            continue
        opts.setValue(name, "" if value is None else value)
        added.append(name)
    return added


def remove_petsc_options(names: list) -> None:
    """Take a run's options out of the (process-global) database so the next run starts clean."""
    from petsc4py import PETSc

    opts = PETSc.Options()
    present = opts.getAll()
    for name in names:
        if name in present:
            opts.delValue(name)


#: options PETSc itself reads only when it finishes (PetscFinalize); never reported as unused here
FINALIZE_OPTIONS = ("options_left", "options_view", "malloc_dump", "malloc_view", "memory_view", "objects_dump")


def unused_petsc_options(names: list) -> list:
    """The option names of ``names`` (without ``-``) that PETSc has not read, in order.

    PETSc marks an option *used* when a solver object queries it (``KSPSetFromOptions``,
    ``PCSetUp``, ...; ``PETSc.Options().used``); options PETSc reads only when it finishes
    (:data:`FINALIZE_OPTIONS`) are not counted as unused.
    """
    from petsc4py import PETSc

    opts = PETSc.Options()
    out = []
    for name in names:
        if name not in FINALIZE_OPTIONS and not opts.used(name) and name not in out:
            out.append(name)
    return out


def _reason_name(code: int) -> str:
    """PETSc's name of a ``KSPConvergedReason`` code (``-11`` -> ``DIVERGED_PC_FAILED``)."""
    return _reason_names().get(int(code), str(code))


@functools.lru_cache(maxsize=1)
def _reason_names() -> dict:
    from petsc4py import PETSc

    return {v: k for k, v in vars(PETSc.KSP.ConvergedReason).items() if isinstance(v, int) and not k.startswith("_")}


def check_pc_type(pc: str) -> None:
    """Raise ValueError naming the allowed types if PETSc does not know ``pc``."""
    from petsc4py import PETSc

    test = PETSc.PC().create(comm=PETSc.COMM_SELF)
    try:
        test.setType(pc)
    except PETSc.Error:
        known = sorted(v for k, v in vars(PETSc.PC.Type).items() if not k.startswith("_") and isinstance(v, str))
        raise ValueError(
            f"unknown preconditioner {pc!r} for this PETSc build; known types: {', '.join(known)}"
        ) from None
    finally:
        test.destroy()


#: CG + GAMG defaults for the SPD diffusion families (darcy, poisson, heat; one process per solver), chosen
#: by ``benchmarks/amg.py`` against PETSc's defaults (Chebyshev(2)/Jacobi smoothing, threshold -1, 10
#: eigenvalue-estimate iterations); loaded 2-core machine, rtol 1e-8, zero initial guess, records in
#: ``benchmarks/results/amg*.json``:
#:
#: - smoother: one symmetric SOR sweep (``richardson`` + ``sor``, PETSc's local symmetric Gauss-Seidel)
#:   before and after each coarse correction instead of Chebyshev(2)/Jacobi: the same or fewer CG
#:   iterations (Darcy 257^2: 12 vs 14) at half the flops per V-cycle, and no eigenvalue estimates,
#:   which Chebyshev repeats on every level at every set-up (with reused interpolation they are most
#:   of what is left of the set-up). The V-cycle with a symmetric convergent smoother stays a
#:   symmetric positive definite preconditioner, as CG needs;
#: - ``pc_gamg_threshold 0.01``: drop graph edges below 1% of the diagonal scale when aggregating
#:   (one iteration fewer at 257^2, same set-up cost);
#: - ``pc_gamg_esteig_ksp_max_it 5``: 5 instead of 10 Krylov steps for the largest eigenvalue of
#:   ``D^-1 A`` that scales the prolongator smoothing (half the set-up flops, same iterations).
GAMG_SMOOTHER_DEFAULTS = (
    ("mg_levels_ksp_type", "richardson"),
    ("mg_levels_pc_type", "sor"),
    ("mg_levels_ksp_max_it", "1"),
)
GAMG_SETUP_DEFAULTS = (("pc_gamg_threshold", "0.01"), ("pc_gamg_esteig_ksp_max_it", "5"))
GAMG_DEFAULTS = GAMG_SMOOTHER_DEFAULTS + GAMG_SETUP_DEFAULTS


def gamg_default_options(prefix: str = "skrcg_", present: dict | None = None) -> list:
    """``[(name, value)]``: the :data:`GAMG_DEFAULTS` under ``prefix`` that the user has not set.

    ``present`` is the options database (``PETSc.Options().getAll()``, names without ``-``); an
    option in it wins over the default of the same name. The smoother settings go together: if the
    user sets any ``-<prefix>mg_levels_ksp_type``, ``-<prefix>mg_levels_pc_type`` or
    ``-<prefix>mg_levels_ksp_max_it``, none of the smoother defaults is applied
    (``-skrcg_mg_levels_ksp_type chebyshev`` gets PETSc's Jacobi, not SOR).
    """
    present = {} if present is None else present
    out = []
    if not any(prefix + name in present for name, _ in GAMG_SMOOTHER_DEFAULTS):
        out += [(prefix + name, value) for name, value in GAMG_SMOOTHER_DEFAULTS]
    out += [(prefix + name, value) for name, value in GAMG_SETUP_DEFAULTS if prefix + name not in present]
    return out


class _DefaultsInDatabase:
    """``with _DefaultsInDatabase(pairs):`` the options ``pairs`` are in PETSc's (process-global) options
    database while PETSc reads them (``KSPSetFromOptions``, ``PCSetUp`` inside ``KSPSolve``) and gone
    after, so that they never reach another solver; an option present on entry is left alone."""

    def __init__(self, pairs: list):
        self.pairs, self.added = pairs, []

    def __enter__(self):
        if self.pairs:
            from petsc4py import PETSc

            opts = PETSc.Options()
            present = opts.getAll()
            for name, value in self.pairs:
                if name not in present:
                    opts.setValue(name, value)
                    self.added.append(name)
        return self

    def __exit__(self, *exc):
        if self.added:
            from petsc4py import PETSc

            opts = PETSc.Options()
            for name in self.added:
                if opts.hasName(name):
                    opts.delValue(name)
            self.added = []
        return False


class PetscBackend:
    """One linear-solver method on one PETSc ``Mat`` (see the module docstring)."""

    def __init__(
        self,
        method: str,
        *,
        rtol: float = 1e-8,
        restart: int = 40,
        recycle: int = 20,
        pc: str | None = "ilu",
        max_it: int = 10000,
        initial_guess: str = "previous",
        options_prefix: str = "skr_",
        pc_reuse: int = 1,
        comm=None,
        gamg_defaults: bool = True,
        factor: str | None = None,
    ):
        from petsc4py import PETSc

        if method not in METHODS:
            raise ValueError(f"unknown solver {method!r}; allowed: {', '.join(METHODS)}")
        check_rtol(rtol)
        for name, v, lo in (("restart", restart, 1), ("recycle", recycle, 0), ("max_it", max_it, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if method == "skr" and recycle >= restart:
            raise ValueError(f"recycle ({recycle}) must be smaller than restart ({restart})")
        if initial_guess not in INITIAL_GUESSES:
            raise ValueError(f"unknown initial guess policy {initial_guess!r}; allowed: {', '.join(INITIAL_GUESSES)}")
        self.method, self.rtol, self.restart, self.recycle = method, float(rtol), int(restart), int(recycle)
        self.max_it, self.initial_guess, self.prefix = int(max_it), initial_guess, options_prefix
        #: the prefix under which this method reads its -<prefix>ksp_* / -<prefix>pc_* options
        self.options_prefix = {"lu": "skrlu_", "cg-gamg": "skrcg_"}.get(method, options_prefix)
        #: whether the backend put -<prefix>pc_type (from ``pc``) into the options database itself
        self.set_pc_type = bool(pc and method in ("skr", "gmres"))
        if isinstance(pc_reuse, bool) or not isinstance(pc_reuse, (int, np.integer)) or pc_reuse < 1:
            raise ValueError(f"pc_reuse must be an integer >= 1 (systems per preconditioner), got {pc_reuse!r}")
        self.pc_reuse = int(pc_reuse)
        # the one PC-reuse policy (datagen.krylov.pc_reuse), counting matrices only: a PC (GAMG: its
        # interpolation) serves pc_reuse consecutive matrices of one sparsity pattern
        self._pc_policy = PCReusePolicy(self.pc_reuse, iteration_growth=None)
        self._operators_set = 0
        if factor is not None:
            check_lu_package(factor)
        #: the LU package of ``lu`` and of an LU preconditioner (None: :func:`default_lu_package`, unless
        #: ``-<prefix>pc_factor_mat_solver_type`` says otherwise); after set-up, :attr:`factor_used` is the
        #: package PETSc actually factors with
        self.factor = factor
        self.comm = comm or PETSc.COMM_SELF
        opts = PETSc.Options()
        if pc and method in ("skr", "gmres"):
            check_pc_type(pc)
            opts.setValue(f"{options_prefix}pc_type", pc)
        self._PETSc = PETSc
        self._mat = None
        self._pattern = None
        self._source_pattern = None  # the caller's index arrays of the current pattern (see set_operator)
        self._diag_slots = None
        self._values = None
        self._last_x = None
        self._ksp = None
        self._not_spd = None
        #: cg-gamg: the tuned GAMG defaults the user did not override, put into the options database only
        #: while PETSc reads it for this backend (``gamg_defaults=False``: PETSc's own defaults, the baseline
        #: of benchmarks/amg.py)
        self.gamg_defaults = (
            gamg_default_options(self.options_prefix, opts.getAll()) if method == "cg-gamg" and gamg_defaults else []
        )
        self._ksp = self._make_ksp(method)

    # -- set-up -----------------------------------------------------------------------------------
    def _make_ksp(self, method: str):
        PETSc = self._PETSc
        ksp = PETSc.KSP().create(comm=self.comm)
        if method == "skr":
            # GCRO-DR as a KSP of type python under the skr_ prefix: PETSc's -skr_ksp_monitor,
            # -skr_ksp_converged_reason, -skr_ksp_view, -skr_ksp_rtol, ... apply; the recycled space
            # lives in the context across solves (datagen.krylov.ksp_python)
            try:
                from datagen.krylov.ksp_python import GCRODRKSP
            except ImportError as err:
                raise ValueError(
                    f"solver 'skr' needs datagen.krylov.GCRODR, which cannot be imported ({err})"
                ) from None
            ksp.setOptionsPrefix(self.prefix)
            ksp.setType("python")
            ksp.setPythonContext(GCRODRKSP(restart=self.restart, recycle=self.recycle))
            ksp.setPCSide(PETSc.PC.Side.RIGHT)
            ksp.setTolerances(rtol=self.rtol, atol=0.0, max_it=self.max_it)
        elif method == "lu":
            ksp.setOptionsPrefix("skrlu_")
            ksp.setType("preonly")
            ksp.getPC().setType("lu")
        else:
            # cg-gamg has its own prefix so that -skr_pc_type (the Krylov methods' PC) does not replace GAMG
            ksp.setOptionsPrefix(self.prefix if method == "gmres" else "skrcg_")
            if method == "gmres":
                ksp.setType("gmres")
                ksp.setGMRESRestart(self.restart)
                ksp.setPCSide(PETSc.PC.Side.RIGHT)
            else:
                ksp.setType("cg")
                ksp.getPC().setType("gamg")
            ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
            ksp.setTolerances(rtol=self.rtol, atol=0.0, max_it=self.max_it)
        if method == "cg-gamg":
            self._gamg_set_from_options(ksp)
        else:
            ksp.setFromOptions()
        self._set_factor_package(ksp)
        if method == "skr" and (ksp.getType() != "python" or not hasattr(ksp.getPythonContext(), "last_result")):
            raise ValueError(
                f"options {self.prefix}ksp_type/{self.prefix}ksp_python_type changed the skr solver "
                f"(GCRO-DR) to {ksp.getType()!r}; use --solver gmres etc. for other methods"
            )
        ksp_rtol = ksp.getTolerances()[0]
        if method != "lu" and ksp_rtol > self.rtol * (1 + 1e-12):
            raise ValueError(
                f"-{ksp.getOptionsPrefix()}ksp_rtol {ksp_rtol:g} is looser than the run's tolerance "
                f"{self.rtol:g}, which every stored sample's true residual must meet (each solve would "
                f"end in the direct fallback); set --rtol {ksp_rtol:g} instead"
            )
        if method == "gmres" and ksp.getType() != "gmres":
            raise ValueError(f"options {self.prefix}ksp_type changed the GMRES baseline to {ksp.getType()!r}")
        return ksp

    def _gamg_set_from_options(self, ksp) -> None:
        """``KSPSetFromOptions`` for cg-gamg, with ``-skrcg_pc_gamg_reuse_interpolation`` set to whether
        ``pc_reuse > 1`` (GAMG reads it here; a value the user gave wins) and taken out again after.

        PETSc 3.26 reuses the interpolation by default whenever the same ``Mat`` gets new values of the
        same pattern (as :meth:`set_operator` hands them over), so ``pc_reuse = 1`` must say ``false``
        for the hierarchy to be rebuilt for every matrix (and at every :meth:`reset`)."""
        opts = self._PETSc.Options()
        name = f"{self.options_prefix}pc_gamg_reuse_interpolation"
        added = name not in opts.getAll()
        if added:
            # reuse: keep GAMG's interpolation (the expensive part of its set-up) and recompute only the
            # Galerkin coarse operators and smoothers; freezing the whole hierarchy (setReusePreconditioner)
            # leaves Chebyshev smoothers with stale eigenvalue bounds (indefinite PC) and costs ~2x the
            # iterations with SOR (coarse operators of another matrix)
            opts.setValue(name, "true" if self.pc_reuse > 1 else "false")
        try:
            with _DefaultsInDatabase(self.gamg_defaults):
                ksp.setFromOptions()
        finally:
            if added:
                opts.delValue(name)

    def _set_factor_package(self, ksp) -> None:
        """An LU (or Cholesky) PC factors with ``self.factor`` (default :func:`default_lu_package`) unless
        ``-<prefix>pc_factor_mat_solver_type`` is in the options database (it wins); PETSc's native LU
        gets a nested-dissection ordering (the external packages order by themselves)."""
        pc = ksp.getPC()
        if pc.getType() not in ("lu", "cholesky"):
            return
        prefix = ksp.getOptionsPrefix() or ""
        present = self._PETSc.Options().getAll()  # getAll does not mark options as used
        if f"{prefix}pc_factor_mat_solver_type" not in present:
            package = self.factor or default_lu_package()
            if pc.getType() == "cholesky" and package in ("umfpack", "superlu"):
                package = "cholmod" if package == "umfpack" else "petsc"
            pc.setFactorSolverType(package)
        if pc.getFactorSolverType() == "petsc" and f"{prefix}pc_factor_mat_ordering_type" not in present:
            pc.setFactorOrdering("nd")

    @property
    def factor_used(self) -> str | None:
        """The ``MatSolverType`` of this backend's LU/Cholesky PC (``"umfpack"``, ``"petsc"``, ...), None
        when its PC does not factor."""
        if self._ksp is None or self._ksp.getPC().getType() not in ("lu", "cholesky"):
            return None
        return self._ksp.getPC().getFactorSolverType()

    def set_operator(self, A: sp.csr_matrix) -> None:
        """Make ``A`` (SciPy CSR, float64) the operator of the following solves.

        ``A`` may have any size: when it differs from the previous operator's, the KSP (or the
        PC of ``skr``) is rebuilt and the recycled space and previous solution are dropped, since
        PETSc cannot hand a Mat of another size to a KSP/PC that was set up (error 60).
        """
        PETSc = self._PETSc
        # the caller's own index arrays (SciPy's conversion below may wrap them in new views)
        given = (
            (getattr(A, "indptr", None), getattr(A, "indices", None))
            if sp.issparse(A) and A.format == "csr"
            else (None, None)
        )
        A = sp.csr_matrix(A, dtype=np.float64)
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"the operator must be square, got shape {A.shape}")
        A.sort_indices()
        if self._mat is not None and tuple(self._mat.getSize()) != tuple(A.shape):
            self._resize()
        # the stencil assembly hands every matrix its pattern's read-only index arrays
        # (datagen.elliptic.assembly.StencilPattern.matrix): the same objects as last time are the same pattern
        # without converting and comparing them (one process; with MPI the Mat is rebuilt below anyway)
        known = self._source_pattern
        if (
            known is not None
            and self._mat is not None
            and given[0] is known[0]
            and given[1] is known[1]
            and not given[0].flags.writeable
            and not given[1].flags.writeable
        ):
            indptr, indices = self._pattern
            same = True
        else:
            indptr = np.asarray(A.indptr, dtype=PETSc.IntType)
            indices = np.asarray(A.indices, dtype=PETSc.IntType)
            same = (
                self._mat is not None
                and self._pattern[0].shape == indptr.shape
                and self._pattern[1].shape == indices.shape
                and np.array_equal(self._pattern[0], indptr)
                and np.array_equal(self._pattern[1], indices)
            )
            if indptr is A.indptr or indices is A.indices:
                # PETSc keeps these arrays (createAIJWithArrays): a copy the caller cannot change
                indptr, indices = indptr.copy(), indices.copy()
            # the Mat has this pattern from here on
            self._source_pattern = given if given[0] is not None else None
        if same and self._values is not None:
            # one process: the Mat's value array is self._values (createAIJWithArrays), refilled in place
            # (1/30 of setValuesCSR's time at 129^2); assembling raises the Mat's state, so the KSP/PC
            # see a changed operator
            self._values[:] = A.data
            self._mat.assemble()
        elif same:
            self._mat.zeroEntries()
            self._mat.setValuesCSR(indptr, indices, A.data)
            self._mat.assemble()
        else:
            if self._mat is not None:
                self._mat.destroy()
            if self.comm.getSize() == 1:
                self._values = np.array(A.data, dtype=PETSc.ScalarType)
                self._mat = PETSc.Mat().createAIJWithArrays(
                    size=A.shape, csr=(indptr, indices, self._values), comm=self.comm
                )
            else:
                self._values = None
                self._mat = PETSc.Mat().createAIJ(size=A.shape, csr=(indptr, indices, A.data), comm=self.comm)
            self._mat.assemble()
            self._pattern = (indptr, indices)
            self._last_x = None
            # where each row's diagonal entry sits in the values (None: a row without one)
            n = A.shape[0]
            rows = np.repeat(np.arange(n, dtype=indices.dtype), np.diff(indptr))
            slots = np.flatnonzero(indices == rows)
            self._diag_slots = slots if slots.size == n and np.array_equal(rows[slots], np.arange(n)) else None
        # keep the PC of an earlier matrix for up to pc_reuse systems (ILU etc. for skr and gmres; LU must be
        # exact; GAMG keeps its interpolation instead, see _make_ksp)
        # CG + GAMG needs an SPD operator; a diagonal entry <= 0 (or NaN) shows it is not, and GAMG's SOR
        # smoother crashes PETSc (SEGV) on a zero diagonal: such a matrix is not handed to the KSP (see solve)
        self._not_spd = None
        if self.method == "cg-gamg":
            diag = A.data[self._diag_slots] if self._diag_slots is not None else A.diagonal()
            bad = np.flatnonzero(~(diag > 0))
            if bad.size:
                self._not_spd = f"diagonal entry {diag[bad[0]]:g} in row {bad[0]}"
        self._operators_set += 1
        policy = self._pc_policy
        reuse = same and not policy.needs_rebuild(self._operators_set)
        if self.method == "cg-gamg" and self.pc_reuse > 1 and not reuse and policy.has_pc:
            # a new GAMG hierarchy (interpolation) after pc_reuse matrices, or for a new sparsity pattern
            self._ksp.destroy()
            self._ksp = self._make_ksp(self.method)
        reuse = reuse and self.method in ("skr", "gmres", "cg-gamg")
        if not reuse:
            policy.built(self._operators_set)
        policy.solved()  # one more matrix served by the current PC
        self._ksp.setOperators(self._mat)
        if self.method == "cg-gamg":
            return  # GAMG's reuse is its kept interpolation; the PC is always set up on the new values
        self._ksp.getPC().setReusePreconditioner(reuse)

    def _resize(self) -> None:
        """Drop every object tied to the old operator size: Mat, KSP or PC, recycled space."""
        self._mat.destroy()
        self._mat = None
        self._pattern = None
        self._last_x = None
        self._pc_policy.forget()
        self._ksp.destroy()
        self._ksp = self._make_ksp(self.method)  # skr: a new context, an empty recycled space

    def setup(self) -> None:
        """Set the solver up on the current operator (``KSPSetUp``, or ``PCSetUp`` for ``skr``)
        without solving, so that every option the solver reads has been queried (see
        :func:`unused_petsc_options`). Call :meth:`reset` afterwards to start the solves afresh."""
        if self._mat is None:
            raise RuntimeError("set_operator must be called before setup")
        with _DefaultsInDatabase(self.gamg_defaults):
            self._ksp.setUp()

    @property
    def mat(self):
        return self._mat

    @property
    def ksp(self):
        """The PETSc KSP (for monitors etc.; replaced when the operator size changes)."""
        return self._ksp

    def reset(self) -> None:
        """Start an independent block of solves: forget the recycled space and the previous
        solution, and rebuild the preconditioner for the next operator (also under PC reuse, and
        GAMG's kept interpolation for ``cg-gamg``), so that the following solves do not depend on
        anything solved before the reset (bit-for-bit reproducible blocks)."""
        if self.method == "skr":
            self._ksp.getPythonContext().reset(self._ksp)  # the recycled space
        self._last_x = None
        # the next set_operator rebuilds the PC whatever pc_reuse says (cg-gamg: on a fresh KSP, below)
        self._pc_policy.forget()
        if self.method == "cg-gamg":
            if self._ksp is not None:
                self._ksp.destroy()
                self._ksp = self._make_ksp(self.method)
                if self._mat is not None:
                    self._ksp.setOperators(self._mat)

    # -- solving ----------------------------------------------------------------------------------
    def solve(self, b: np.ndarray, x0: np.ndarray | None = None):
        """``(x, SolveStats)`` for the current operator."""
        if self._mat is None:
            raise RuntimeError("set_operator must be called before solve")
        b = np.ascontiguousarray(b, dtype=np.float64)
        if self._not_spd:
            # not solved: x = 0, whose true residual ||b|| / ||b|| is 1 (the caller's direct fallback decides)
            nb = float(np.linalg.norm(b))
            return np.zeros_like(b), SolveStats(
                0,
                1.0 if nb > 0 else 0.0,
                0.0,
                nb == 0,
                f"DIVERGED_INDEFINITE_MAT (not SPD: {self._not_spd}; CG + GAMG "
                f"needs a symmetric positive definite operator)",
                self.method,
            )
        bv = self._mat.createVecLeft()
        bv.setArray(b)
        xv = self._mat.createVecRight()
        if x0 is None and self.initial_guess == "previous" and self._last_x is not None:
            x0 = self._last_x
        if x0 is not None:
            xv.setArray(np.asarray(x0, dtype=np.float64))
        else:
            xv.set(0.0)
        t0 = time.perf_counter()
        skipped, dropped = 0, False
        self._ksp.setInitialGuessNonzero(x0 is not None and self.method != "lu")
        with _DefaultsInDatabase(self.gamg_defaults):  # GAMG builds its levels' smoothers in here
            self._ksp.solve(bv, xv)
        iterations, reason = int(self._ksp.getIterationNumber()), _reason_name(self._ksp.getConvergedReason())
        if self.method == "lu":
            iterations = 1
        elif self.method == "skr":
            res = self._ksp.getPythonContext().last_result
            iterations, reason = int(res.iterations), str(res.reason)
            skipped, dropped = int(res.updates_skipped), bool(res.space_dropped)
        seconds = time.perf_counter() - t0
        residual = self.true_residual(bv, xv)
        x = xv.getArray().copy()
        bv.destroy()
        xv.destroy()
        converged = bool(np.isfinite(residual) and residual <= self.rtol)
        if converged:
            self._last_x = x
        return x, SolveStats(iterations, residual, seconds, converged, reason, self.method, skipped, dropped)

    def true_residual(self, bv, xv) -> float:
        r = bv.duplicate()
        self._mat.mult(xv, r)
        r.aypx(-1.0, bv)
        nb = bv.norm()
        out = r.norm() / nb if nb > 0 else r.norm()
        r.destroy()
        return float(out)

    def destroy(self) -> None:
        if self.method == "skr" and self._ksp is not None and self._ksp.getPythonContext().solver is not None:
            self._ksp.getPythonContext().solver.destroy()  # its Vec wrappers and blocks
        for obj in (self._ksp, self._mat):
            if obj is not None:
                obj.destroy()
        self._ksp = self._mat = None
