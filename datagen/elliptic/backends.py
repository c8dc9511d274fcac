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

Option prefixes: ``skr_`` (skr and gmres: the same PC for the fair comparison), ``skrlu_``, ``skrcg_``.

The preconditioner of ``skr``, ``gmres`` comes from the options database under ``options_prefix``
(``-skr_pc_type ilu``); ``pc`` (if not None) sets ``-<prefix>pc_type``.
Convergence: ``||b - A x|| <= rtol ||b||`` (absolute tolerance 0). A solve whose true residual exceeds
``rtol`` is reported as not converged; :mod:`datagen.elliptic.generator` then retries with a pivoting
direct solver (SciPy ``splu``).
PC reuse (``pc_reuse = K``): for skr and gmres a preconditioner built for one matrix serves up to
``K`` consecutive (sorted) matrices before it is rebuilt (``1``: rebuilt for every matrix, SKR as
published); for cg-gamg ``K > 1`` keeps GAMG's interpolation for the whole run (only the coarse
operators and smoothers are recomputed). The PC is the KSP's for every method (for ``skr`` the
GCRO-DR context applies the KSP's PC).
Initial guess (``initial_guess``): ``zero``, or ``previous`` (the last solution of this backend, the
natural choice along a sorted order); an explicit ``x0`` (a heat step's previous state) wins.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

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
        raise ValueError(f"LU package {name!r} is {what}; this build has: {', '.join(have)} "
                         f"(scripts/setup_env.sh builds PETSc with SuperLU/UMFPACK when their Debian packages "
                         f"are installed)")


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
            raise ValueError(f"PETSc options {text!r} do not parse: expected an option name starting with '-' "
                             f"at {tok!r}")
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
    present = opts.getAll()          # getAll does not mark options as used (hasName would)
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
    from petsc4py import PETSc

    names = {v: k for k, v in vars(PETSc.KSP.ConvergedReason).items() if isinstance(v, int) and not k.startswith("_")}
    return names.get(int(code), str(code))


def check_pc_type(pc: str) -> None:
    """Raise ValueError naming the allowed types if PETSc does not know ``pc``."""
    from petsc4py import PETSc

    test = PETSc.PC().create(comm=PETSc.COMM_SELF)
    try:
        test.setType(pc)
    except PETSc.Error:
        known = sorted(v for k, v in vars(PETSc.PC.Type).items() if not k.startswith("_") and isinstance(v, str))
        raise ValueError(f"unknown preconditioner {pc!r} for this PETSc build; "
                         f"known types: {', '.join(known)}") from None
    finally:
        test.destroy()


class PetscBackend:
    """One linear-solver method on one PETSc ``Mat`` (see the module docstring)."""

    def __init__(self, method: str, *, rtol: float = 1e-8, restart: int = 40, recycle: int = 20, pc: str | None = "ilu",
                 max_it: int = 10000, initial_guess: str = "previous", options_prefix: str = "skr_",
                 pc_reuse: int = 1, comm=None, factor: str | None = None):
        from petsc4py import PETSc

        if method not in METHODS:
            raise ValueError(f"unknown solver {method!r}; allowed: {', '.join(METHODS)}")
        if not (np.isfinite(rtol) and 0 < rtol < 1):
            raise ValueError(f"rtol must be in (0, 1), got {rtol!r}")
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
        if factor is not None:
            check_lu_package(factor)
        #: the LU package of ``lu`` and of an LU preconditioner (None: :func:`default_lu_package`, unless
        #: ``-<prefix>pc_factor_mat_solver_type`` says otherwise); after set-up, :attr:`factor_used` is the
        #: package PETSc actually factors with
        self.factor = factor
        self._systems_on_pc = 0
        self.comm = comm or PETSc.COMM_SELF
        opts = PETSc.Options()
        if pc and method in ("skr", "gmres"):
            check_pc_type(pc)
            opts.setValue(f"{options_prefix}pc_type", pc)
        self._PETSc = PETSc
        self._mat = None
        self._pattern = None
        self._last_x = None
        self._ksp = None
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
                raise ValueError("solver 'skr' needs datagen.krylov.GCRODR, which cannot be imported "
                                 f"({err})") from None
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
                if self.pc_reuse > 1:
                    # keep GAMG's interpolation (the expensive part of its set-up) for the whole run and
                    # recompute only the Galerkin coarse operators and smoothers: freezing the whole
                    # hierarchy leaves Chebyshev smoothers with stale eigenvalue bounds (indefinite PC)
                    PETSc.Options().setValue("skrcg_pc_gamg_reuse_interpolation", "true")
            ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
            ksp.setTolerances(rtol=self.rtol, atol=0.0, max_it=self.max_it)
        ksp.setFromOptions()
        self._set_factor_package(ksp)
        if method == "skr" and (ksp.getType() != "python" or not hasattr(ksp.getPythonContext(), "last_result")):
            raise ValueError(f"options {self.prefix}ksp_type/{self.prefix}ksp_python_type changed the skr solver "
                             f"(GCRO-DR) to {ksp.getType()!r}; use --solver gmres etc. for other methods")
        ksp_rtol = ksp.getTolerances()[0]
        if method != "lu" and ksp_rtol > self.rtol * (1 + 1e-12):
            raise ValueError(f"-{ksp.getOptionsPrefix()}ksp_rtol {ksp_rtol:g} is looser than the run's tolerance "
                             f"{self.rtol:g}, which every stored sample's true residual must meet (each solve would "
                             f"end in the direct fallback); set --rtol {ksp_rtol:g} instead")
        if method == "gmres" and ksp.getType() != "gmres":
            raise ValueError(f"options {self.prefix}ksp_type changed the GMRES baseline to {ksp.getType()!r}")
        return ksp

    def _set_factor_package(self, ksp) -> None:
        """An LU (or Cholesky) PC factors with ``self.factor`` (default :func:`default_lu_package`) unless
        ``-<prefix>pc_factor_mat_solver_type`` is in the options database (it wins); PETSc's native LU
        gets a nested-dissection ordering (the external packages order by themselves)."""
        pc = ksp.getPC()
        if pc.getType() not in ("lu", "cholesky"):
            return
        prefix = ksp.getOptionsPrefix() or ""
        present = self._PETSc.Options().getAll()       # getAll does not mark options as used
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
        A = sp.csr_matrix(A, dtype=np.float64)
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"the operator must be square, got shape {A.shape}")
        A.sort_indices()
        if self._mat is not None and tuple(self._mat.getSize()) != tuple(A.shape):
            self._resize()
        indptr, indices = A.indptr.astype(PETSc.IntType), A.indices.astype(PETSc.IntType)
        same = (self._mat is not None and self._pattern[0].shape == indptr.shape
                and self._pattern[1].shape == indices.shape
                and np.array_equal(self._pattern[0], indptr) and np.array_equal(self._pattern[1], indices))
        if same:
            self._mat.zeroEntries()
            self._mat.setValuesCSR(indptr, indices, A.data)
            self._mat.assemble()
        else:
            if self._mat is not None:
                self._mat.destroy()
            self._mat = PETSc.Mat().createAIJ(size=A.shape, csr=(indptr, indices, A.data), comm=self.comm)
            self._mat.assemble()
            self._pattern = (indptr, indices)
            self._last_x = None
        # keep the PC of an earlier matrix for up to pc_reuse systems (ILU etc. for skr and gmres; LU must be
        # exact; GAMG keeps its interpolation instead, see _make_ksp)
        reuse = same and self.method in ("skr", "gmres") and self._systems_on_pc < self.pc_reuse
        self._systems_on_pc = self._systems_on_pc + 1 if reuse else 1
        self._ksp.setOperators(self._mat)
        self._ksp.getPC().setReusePreconditioner(reuse)

    def _resize(self) -> None:
        """Drop every object tied to the old operator size: Mat, KSP or PC, recycled space."""
        self._mat.destroy()
        self._mat = None
        self._pattern = None
        self._last_x = None
        self._systems_on_pc = 0
        self._ksp.destroy()
        self._ksp = self._make_ksp(self.method)   # skr: a new context, an empty recycled space

    def setup(self) -> None:
        """Set the solver up on the current operator (``KSPSetUp``, or ``PCSetUp`` for ``skr``)
        without solving, so that every option the solver reads has been queried (see
        :func:`unused_petsc_options`). Call :meth:`reset` afterwards to start the solves afresh."""
        if self._mat is None:
            raise RuntimeError("set_operator must be called before setup")
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
            self._ksp.getPythonContext().reset(self._ksp)      # the recycled space
        self._last_x = None
        # the next set_operator rebuilds the PC whatever pc_reuse says
        self._systems_on_pc = self.pc_reuse
        if self.method == "cg-gamg" and self.pc_reuse > 1 and self._ksp is not None:
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
            self._ksp.getPythonContext().solver.destroy()     # its Vec wrappers and blocks
        for obj in (self._ksp, self._mat):
            if obj is not None:
                obj.destroy()
        self._ksp = self._mat = None
        PETSc = self._PETSc
        if (self.method == "cg-gamg" and self.pc_reuse > 1
                and PETSc.Options().hasName("skrcg_pc_gamg_reuse_interpolation")):
            PETSc.Options().delValue("skrcg_pc_gamg_reuse_interpolation")
