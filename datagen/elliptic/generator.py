"""The SKR dataset generator: sample -> features -> sort -> (per rank) assemble -> solve in order -> store.

1. Every sample's random inputs depend only on ``(seed, index)`` (:mod:`datagen.seeding`); the
   sorting features of all ``N`` samples are computed (split over the MPI ranks and gathered), so
   every rank knows the same solve order.
2. The order (:mod:`datagen.sorting`) is cut into ``P`` contiguous chunks, one per rank; each rank
   solves its chunk in order with one backend (:mod:`datagen.elliptic.backends`), so GCRO-DR
   recycles between neighbours, and the initial guess is the previous solution of the chunk.
3. A solve whose true relative residual exceeds ``rtol`` is retried with the sparse direct solver
   and marked ``fallback``; a sample that cannot be brought below ``rtol`` stops the run with an
   error (nothing unconverged is ever stored).
4. Samples are stored by their original index through :class:`datagen.dataset.DatasetWriter`,
   which makes the run crash-safe and resumable; with MPI each rank writes a shard and rank 0 the
   virtual top file. A resumed run (or another rank count) starts each chunk with an empty recycled
   space, so outputs agree with an uninterrupted run up to the solver tolerance; inputs are
   bit-identical.

Per-sample provenance (``solver/``): ``iterations`` (summed over the sample's systems),
``residual`` (largest true relative residual of its systems), ``seconds`` (solve time),
``setup_seconds`` (assembly and hand-over to PETSc), ``order`` (position in the global solve order),
``converged`` (always True when stored), ``fallback`` (a direct solve was needed), ``rank``.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from datagen.elliptic.backends import (INITIAL_GUESSES, METHODS, PetscBackend, SolveStats, insert_petsc_options,
                                       parse_petsc_options, remove_petsc_options)
from datagen.elliptic.family import EllipticFamily
from datagen.sorting import AUTO_GREEDY_MAX, ORDERINGS, sort_order

SOLVERS = ("auto",) + METHODS
SOLVER_FIELDS = ["iterations", "residual", "seconds", "setup_seconds", "order", "converged", "fallback", "rank"]


@dataclass
class GenerationConfig:
    """Everything that determines how a dataset is solved (written into the dataset spec)."""

    n_samples: int
    seed: int = 0
    solver: str = "auto"
    pc: str = "ilu"
    rtol: float = 1e-8
    restart: int = 40
    recycle: int = 20
    max_it: int = 10000
    ordering: str = "auto"
    group_size: int = 512
    initial_guess: str = "previous"
    pc_reuse: int = 1
    petsc_options: str = ""
    # float64 by default: a float32 copy of u would no longer meet rtol = 1e-8 (rounding ~6e-8)
    dtype: str = "float64"

    def validate(self) -> None:
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, (int, np.integer)) or self.n_samples < 1:
            raise ValueError(f"number of samples must be a positive integer, got {self.n_samples!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; allowed: {', '.join(SOLVERS)}")
        if not (isinstance(self.rtol, (int, float)) and math.isfinite(self.rtol) and 0 < self.rtol < 1):
            raise ValueError(f"tolerance rtol must be a number in (0, 1), got {self.rtol!r}")
        if self.ordering not in ORDERINGS:
            raise ValueError(f"unknown ordering {self.ordering!r}; allowed: {', '.join(ORDERINGS)}")
        if self.initial_guess not in INITIAL_GUESSES:
            raise ValueError(f"unknown initial guess {self.initial_guess!r}; allowed: {', '.join(INITIAL_GUESSES)}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        parse_petsc_options(self.petsc_options)


SPD_FAMILIES = ("darcy", "darcy3d", "poisson", "heat")


@dataclass
class AutoChoice:
    """What ``--solver auto`` runs: a method, and for Krylov methods the PC and its reuse."""

    method: str
    pc: Optional[str] = None          # None: the user's --pc
    pc_reuse: Optional[int] = None    # None: the user's --pc-reuse
    reason: str = ""


def unknowns(family: EllipticFamily) -> int:
    interior = family.resolution - 2 if "dirichlet" in family.boundary().values() else family.resolution
    return int(interior ** family.dim)


def auto_choice(family: EllipticFamily, config: GenerationConfig) -> AutoChoice:
    """The method ``--solver auto`` uses: the fastest measured by benchmarks/datagen_skr.py (2-core machine,
    1 thread, rtol 1e-8, solve seconds per sample, N = 8-16; records in benchmarks/results/, 2026-11-26).

    - poisson, heat: one matrix for many right-hand sides (all samples / all time steps of a sample), so one
      sparse LU factorisation plus triangular solves beats every iterative method (Poisson 129^2: LU 0.0020 s,
      GMRES with a reused LU 0.0029, CG+GAMG 0.0075, SKR 0.031; heat 65^2 x 10 steps: LU 0.0029, CG+GAMG 0.012).
    - darcy 2D: LU below ~12k unknowns, CG+GAMG above (256^2: 0.062 s vs GMRES with a neighbour's LU 0.109,
      LU 0.144, SKR 0.54, GMRES+ILU 0.90).
    - darcy3d: GMRES+ILU(0) below ~64k unknowns (16^3: 0.0016 s vs CG+GAMG 0.0043; 32^3: 0.029 vs CG+GAMG
      0.045, SKR 0.046, LU 2.5), CG+GAMG above (64^3: 1.83 vs GMRES 2.44, SKR 4.0).
    - helmholtz 2D (indefinite; CG/GAMG do not apply, GMRES(40)+ILU stalls): LU below ~10k unknowns (63^2:
      0.0022 s vs GMRES with a neighbour's LU 0.0029), then GMRES preconditioned by the exact LU of a
      sorted neighbour, kept for up to 8 systems (127^2: 0.0158 vs LU 0.0172; 255^2: 0.099 vs LU 0.145,
      SKR 1.0).
    - helmholtz3d: GMRES with a neighbour's LU below ~12k unknowns (16^3: 0.020 s vs LU 0.028, SKR 0.040),
      SKR (sorted GCRO-DR + ILU(0)) above, where LU fill makes factorisations expensive and GMRES(40)+ILU
      stalls (24^3: SKR 0.137 vs GMRES + neighbour LU 0.155, LU 0.32; 32^3: SKR 0.39 vs 0.64, LU 2.55,
      GMRES+ILU 5.7 with 3 of 8 stalls; 48^3 (shared machine): SKR 7.8 vs 14.6, LU 93).
    - A reused LU needs neighbours to pay for its factorisation: with fewer than 4 samples LU is used instead.
    """
    n = unknowns(family)
    name = family.name
    few = config.n_samples < 4
    lu_reuse = AutoChoice("gmres", pc="lu", pc_reuse=8,
                          reason=f"indefinite, {n} unknowns: GMRES preconditioned by a sorted neighbour's "
                                 f"LU, kept for up to 8 systems")
    if name in ("poisson", "heat"):
        return AutoChoice("lu", reason="one matrix, many right-hand sides: factor once")
    if name == "darcy":
        if n < 12_000:
            return AutoChoice("lu", reason=f"2D SPD, {n} unknowns < 12k: sparse LU")
        return AutoChoice("cg-gamg", reason=f"2D SPD, {n} unknowns >= 12k: CG + GAMG")
    if name == "darcy3d":
        if n < 64_000:
            return AutoChoice("gmres", pc="ilu", pc_reuse=1, reason=f"3D SPD, {n} unknowns < 64k: GMRES + ILU(0)")
        return AutoChoice("cg-gamg", reason=f"3D SPD, {n} unknowns >= 64k: CG + GAMG")
    if name == "helmholtz3d":
        if n >= 12_000:
            return AutoChoice("skr", pc="ilu", pc_reuse=1,
                              reason=f"3D indefinite, {n} unknowns >= 12k: sorted GCRO-DR (SKR) with ILU(0)")
        return AutoChoice("lu", reason=f"3D indefinite, {n} unknowns, < 4 samples: sparse LU") if few else lu_reuse
    if n >= 10_000 and not few:
        return lu_reuse
    return AutoChoice("lu", reason=f"indefinite, {n} unknowns: sparse LU")


def auto_solver(family: EllipticFamily, config: GenerationConfig) -> str:
    """The method name of :func:`auto_choice`."""
    return auto_choice(family, config).method


@dataclass
class GenerationSummary:
    path: str
    n_samples: int
    solved: int = 0
    skipped: int = 0
    complete: bool = False
    solver: str = ""
    ordering: str = ""
    sort_seconds: float = 0.0
    feature_seconds: float = 0.0
    setup_seconds: float = 0.0
    solve_seconds: float = 0.0
    write_seconds: float = 0.0
    total_seconds: float = 0.0
    iterations: list = field(default_factory=list)
    max_residual: float = 0.0
    fallbacks: int = 0

    def text(self) -> str:
        its = np.array(self.iterations) if self.iterations else np.zeros(1)
        return (f"{self.path}: {'complete' if self.complete else 'partial (resume with --resume)'}; "
                f"{self.solved} solved this run, {self.skipped} already written, solver {self.solver}, "
                f"ordering {self.ordering}\n"
                f"  iterations/sample mean {its.mean():.1f} median {np.median(its):.0f} max {its.max():.0f}; "
                f"max true relative residual {self.max_residual:.2e}; direct-solve fallbacks {self.fallbacks}\n"
                f"  seconds: features {self.feature_seconds:.2f}, sort {self.sort_seconds:.2f}, "
                f"assembly {self.setup_seconds:.2f}, solve {self.solve_seconds:.2f}, write {self.write_seconds:.2f}, "
                f"total {self.total_seconds:.2f} ({self.total_seconds / max(self.solved, 1):.4f} s/sample)")


# samples drawn for the features are kept for the solve loop up to this many bytes of inputs per rank
KEEP_SAMPLES_BYTES = 256 * 2 ** 20


def compute_features(family: EllipticFamily, seed: int, n: int, comm=None, keep: Optional[dict] = None) -> np.ndarray:
    """``(n, F)`` sorting features; ranks compute interleaved shares and gather them. ``keep``, if given,
    receives ``{index: sample}`` of the drawn samples while their inputs fit in KEEP_SAMPLES_BYTES, so the
    solve loop does not draw them again."""
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    mine, kept = {}, 0
    for i in range(rank, n, size):
        sample = family.sample(seed, i)
        mine[i] = family.features(sample)
        if keep is not None:
            kept += sum(v.nbytes for v in sample.inputs.values())
            if kept <= KEEP_SAMPLES_BYTES:
                keep[i] = sample
    if comm is not None and size > 1:
        parts = comm.allgather(mine)
        mine = {k: v for p in parts for k, v in p.items()}
    return np.stack([mine[i] for i in range(n)])


def chunk_of(order: np.ndarray, rank: int, size: int) -> np.ndarray:
    """The contiguous piece of the solve order that ``rank`` of ``size`` solves."""
    return np.array_split(order, size)[rank]


class _FallbackSolver:
    """Retries a failed solve with the sparse direct method on the same matrix (created on first use)."""

    def __init__(self, rtol: float):
        self.rtol = rtol
        self.backend: Optional[PetscBackend] = None
        self.matrix = None

    def solve(self, matrix, b):
        if self.backend is None:
            self.backend = PetscBackend("lu", rtol=self.rtol, initial_guess="zero")
        if self.matrix is not matrix:
            self.backend.set_operator(matrix)
            self.matrix = matrix
        return self.backend.solve(b, None)


def generate(family: EllipticFamily, path: str, config: GenerationConfig, *, resume: bool = False,
             overwrite: bool = False, comm=None, progress: bool = True, max_new: Optional[int] = None,
             stream=None) -> GenerationSummary:
    """Generate (or resume) the dataset at ``path``; returns this rank's summary.

    ``max_new`` stops after that many newly written samples without finalizing (a resumable partial
    run; used for time-limited jobs and the resume tests).
    """

    config.validate()
    user_options = parse_petsc_options(config.petsc_options)
    inserted = insert_petsc_options(user_options)
    try:
        return _generate(family, path, config, user_options, resume=resume, overwrite=overwrite, comm=comm,
                         progress=progress, max_new=max_new, stream=stream)
    finally:
        remove_petsc_options(inserted + ["skr_pc_type"])


def _generate(family, path, config, user_options, *, resume, overwrite, comm, progress, max_new, stream):
    from datagen.dataset import DatasetWriter, FieldSpec, Grid

    t_start = time.perf_counter()
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    # an explicit -skr_pc_type among the PETSc options wins over --pc
    pc = None if any(name == "skr_pc_type" for name, _ in user_options) else config.pc
    pc_reuse = config.pc_reuse
    auto_reason = ""
    if config.solver == "auto":
        choice = auto_choice(family, config)
        method, auto_reason = choice.method, choice.reason
        if choice.pc is not None and pc is not None:
            pc = choice.pc
        if choice.pc_reuse is not None:
            pc_reuse = choice.pc_reuse
    else:
        method = config.solver
    if method == "cg-gamg" and family.name not in SPD_FAMILIES:
        raise ValueError(f"solver cg-gamg needs a symmetric positive definite family ({', '.join(SPD_FAMILIES)}); "
                         f"{family.name} is indefinite: use skr, gmres or lu")
    # the backend is built before any file is touched: a bad PC or option fails here
    backend = PetscBackend(method, rtol=config.rtol, restart=config.restart, recycle=config.recycle, pc=pc,
                           max_it=config.max_it, initial_guess=config.initial_guess, pc_reuse=pc_reuse)
    summary = GenerationSummary(path=str(path), n_samples=config.n_samples, solver=method)

    t0 = time.perf_counter()
    drawn: dict = {}
    features = compute_features(family, config.seed, config.n_samples, comm, keep=drawn)
    summary.feature_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    ordering = config.ordering
    order = sort_order(features, ordering, group_size=config.group_size)
    summary.sort_seconds = time.perf_counter() - t0
    if ordering == "auto":
        ordering = "greedy" if config.n_samples <= AUTO_GREEDY_MAX else "grouped"
    summary.ordering = ordering
    position = np.empty(config.n_samples, dtype=np.int64)
    position[order] = np.arange(config.n_samples)

    roles = family.field_roles()
    fields = {name: FieldSpec(shape=shape, role=role, dtype=config.dtype) for name, (shape, role) in roles.items()}
    spec = {**family.spec(), "solver": {**asdict(config), "method": method, "auto_reason": auto_reason,
                                        "pc_used": pc if method in ("skr", "gmres") else None,
                                        "pc_reuse_used": pc_reuse, "ordering_used": ordering, "pc_side": "right",
                                        "stopping": "||b - A x|| <= rtol ||b|| (true residual)",
                                        "fallback": "PETSc LU when the true residual exceeds rtol"}}
    spec["solver"].pop("n_samples")
    spec["solver"].pop("seed")
    grid = Grid(coords=family.coordinates(), boundary=family.boundary())
    writer = DatasetWriter(path, pde=family.name, spec=spec, n_samples=config.n_samples, seed=config.seed,
                           fields=fields, grid=grid, params=family.param_names, solver=SOLVER_FIELDS,
                           resume=resume, overwrite=overwrite, comm=comm)
    mine = chunk_of(order, rank, size)
    todo = [int(i) for i in mine if not writer.is_written(int(i))]
    summary.skipped = len(mine) - len(todo)
    drawn = {i: drawn[i] for i in todo if i in drawn}      # other ranks' and already written samples go
    fallback = _FallbackSolver(config.rtol)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"{family.name}[{rank}/{size}]" if size > 1 else family.name,
                   unit="sample", file=stream or sys.stderr, position=rank if size > 1 else None,
                   dynamic_ncols=True, smoothing=0.1)
    stopped_early = False
    last_matrix = None
    try:
        for count, i in enumerate(todo):
            if max_new is not None and count >= max_new:
                stopped_early = True
                break
            t0 = time.perf_counter()
            sample = drawn.pop(i, None) or family.sample(config.seed, i)
            matrix = family.operator(sample)
            if matrix is not last_matrix:              # a fixed operator (poisson) is handed over once
                backend.set_operator(matrix)
                last_matrix = matrix
            setup = time.perf_counter() - t0
            stats: list[SolveStats] = []
            used_fallback = [False]

            def linear_solve(b, x0):
                x, st = backend.solve(b, x0)
                if not st.converged:
                    x2, st2 = fallback.solve(matrix, b)
                    if not st2.converged:
                        raise RuntimeError(f"sample {i}: {method} stopped at true residual {st.residual:.3e} "
                                           f"({st.reason}) and the direct fallback reached {st2.residual:.3e} > "
                                           f"rtol {config.rtol:g}; the sample is not stored")
                    used_fallback[0] = True
                    st2.iterations += st.iterations
                    st2.seconds += st.seconds
                    x, st = x2, st2
                stats.append(st)
                return x

            outputs = family.solve(sample, matrix, linear_solve)
            t1 = time.perf_counter()
            its = int(sum(s.iterations for s in stats))
            res = float(max(s.residual for s in stats))
            secs = float(sum(s.seconds for s in stats))
            writer.write(i, {**sample.inputs, **outputs}, params=sample.params,
                         solver={"iterations": its, "residual": res, "seconds": secs, "setup_seconds": setup,
                                 "order": int(position[i]), "converged": True, "fallback": used_fallback[0],
                                 "rank": rank})
            summary.write_seconds += time.perf_counter() - t1
            summary.setup_seconds += setup
            summary.solve_seconds += secs
            summary.iterations.append(its)
            summary.max_residual = max(summary.max_residual, res)
            summary.fallbacks += int(used_fallback[0])
            summary.solved += 1
            if bar is not None:
                arr = summary.iterations
                bar.set_postfix_str(f"its {its} mean {np.mean(arr):.1f} max {max(arr)} res {summary.max_residual:.1e}"
                                    f"{' fallbacks ' + str(summary.fallbacks) if summary.fallbacks else ''}",
                                    refresh=False)
                bar.update(1)
    except BaseException:
        writer.close()        # keep what was written for --resume; no file appears at `path`
        raise
    finally:
        if bar is not None:
            bar.close()
    if comm is not None and size > 1:
        # finalizing is collective: if any rank stopped early, every rank leaves a resumable partial run
        stopped_early = any(comm.allgather(stopped_early))
    if stopped_early:
        writer.flush()
        summary.complete = False
    else:
        t1 = time.perf_counter()
        writer.finalize()
        summary.write_seconds += time.perf_counter() - t1
        summary.complete = True
    backend.destroy()
    summary.total_seconds = time.perf_counter() - t_start
    return summary


def merge_summaries(parts: list) -> GenerationSummary:
    """One summary for all ranks (times are the slowest rank's, counts add up)."""
    out = GenerationSummary(path=parts[0].path, n_samples=parts[0].n_samples, solver=parts[0].solver,
                            ordering=parts[0].ordering, complete=all(p.complete for p in parts))
    for p in parts:
        out.solved += p.solved
        out.skipped += p.skipped
        out.iterations += p.iterations
        out.max_residual = max(out.max_residual, p.max_residual)
        out.fallbacks += p.fallbacks
        for k in ("sort_seconds", "feature_seconds", "setup_seconds", "solve_seconds", "write_seconds",
                  "total_seconds"):
            setattr(out, k, max(getattr(out, k), getattr(p, k)))
    return out
