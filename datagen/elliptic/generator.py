"""The SKR dataset generator: sample -> features -> sort -> (per rank) assemble -> solve in order -> store.

1. Every sample's random inputs depend only on ``(seed, index)`` (:mod:`datagen.seeding`); the
   sorting features of all ``N`` samples are computed (split over the MPI ranks and gathered), so
   every rank knows the same solve order.
2. The order (:mod:`datagen.sorting`) is cut into ``P`` contiguous chunks, one per rank; each rank
   solves its chunk in order with one backend (:mod:`datagen.elliptic.backends`), so GCRO-DR
   recycles between neighbours, and the initial guess is the previous solution of the chunk.
3. A solve whose true relative residual exceeds ``rtol`` is retried with a pivoting sparse direct
   solver (SciPy's ``splu``, SuperLU with partial pivoting: PETSc's native LU does not pivot, which
   matters for indefinite Helmholtz) and marked ``fallback``. A sample that even the fallback cannot
   bring below ``rtol`` (a singular or inconsistent system) is stored *invalid* with its reason
   (``samples/valid`` False, ``samples/reason``, ``converged`` False, the best solution found); the
   run goes on and the summary lists it.
4. Blocks (``block`` = B > 0, recorded in the spec): at every position ``p`` of the sorted order with
   ``p % B == 0`` the backend is reset (recycled space, previous solution, preconditioner), so the
   solution of a sample depends only on the samples of its block. MPI chunks are whole blocks, and a
   resumed run re-solves the already written samples of every block it has to finish (without
   writing them again), so a resumed, an MPI-split and an uninterrupted run give bit-identical
   files (up to wall-clock fields such as ``seconds``). ``block = 0``: no resets (chunks and resumes
   then agree with an uninterrupted run only up to the tolerance).
5. Storage precision: with ``dtype = float32`` the input fields are rounded to float32 *before*
   assembly (the system solved is the one the stored inputs define), every solution is rounded to
   float32 and its true residual is recomputed in float64 from the rounded values, so the stored
   residual is that of the stored data. The Krylov solve then aims at ``rtol / 4``. Before anything
   is written, the first sample of the order is solved and the residual of the float32 rounding
   alone, ``||A (x32 - x)|| / ||b||``, is measured: above ``rtol / 2`` the run is refused with the
   smallest rtol float32 can hold for this operator.
6. Samples are stored by their original index through :class:`datagen.dataset.DatasetWriter`,
   which makes the run crash-safe and resumable; with MPI each rank writes a shard and rank 0 the
   virtual top file.

Per-sample provenance (``solver/``): ``iterations`` (summed over the sample's systems),
``residual`` (largest true relative residual of its systems, of the stored values), ``seconds``
(solve time), ``setup_seconds`` (assembly and hand-over to PETSc), ``order`` (position in the global
solve order), ``converged`` (False only for invalid samples), ``fallback`` (a direct solve was
needed), ``rank``, ``updates_skipped`` (GCRO-DR recycled-space updates skipped because the harmonic
Ritz problem failed, summed over the sample's systems), ``space_dropped`` (GCRO-DR discarded an
ill-conditioned recycled space while solving the sample).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Mapping, Optional

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from datagen.contract import check_rtol
from datagen.elliptic.backends import (
    INITIAL_GUESSES,
    METHODS,
    PetscBackend,
    SolveStats,
    insert_petsc_options,
    lu_packages,
    parse_petsc_options,
    remove_petsc_options,
    unused_petsc_options,
)
from datagen.elliptic.family import EllipticFamily
from datagen.sorting import AUTO_GREEDY_MAX, ORDERINGS, sort_order
from datagen.spec import Spec, build_spec
from datagen.spec_keys import check_keys

SOLVERS = ("auto",) + METHODS
SOLVER_FIELDS = [
    "iterations",
    "residual",
    "seconds",
    "setup_seconds",
    "order",
    "converged",
    "fallback",
    "rank",
    "updates_skipped",
    "space_dropped",
]
STORAGE_DTYPES = ("float32", "float64")
#: float32 storage: the Krylov solve aims at CAST_SOLVE_FRACTION * rtol, and the residual of the rounding
#: alone (measured on the first sample) may use at most CAST_MARGIN * rtol
CAST_SOLVE_FRACTION = 0.25
CAST_MARGIN = 0.5
#: recycled-space reset interval along the sorted order (see the module docstring, 4, and the README's
#: SKR section for the measurement it was chosen by)
DEFAULT_BLOCK = 32
#: ``--solver auto`` (see :func:`auto_trial`): samples of the sorted order each candidate solves in the
#: trial, the smallest run (samples per rank) for which it measures at all (below, the table of
#: :func:`auto_choice` decides), and when a candidate leaves the trial early: after the first sample when it
#: took AUTO_DROP_FIRST times the fastest first sample, after later ones when its projected total exceeds
#: AUTO_DROP times the best projection
AUTO_TRIAL_SAMPLES = 3
#: after AUTO_TRIAL_SAMPLES, the candidates whose projections lie within AUTO_CLOSE of the best go on being
#: timed on the following samples (at most AUTO_TRIAL_MAX in all) until one is ahead by more than that
AUTO_CLOSE = 1.1
AUTO_TRIAL_MAX = 8
AUTO_MIN_SAMPLES = 24
AUTO_DROP_FIRST = 3.0
AUTO_DROP = 1.5


@dataclass
class GenerationConfig:
    """Everything that determines how a dataset is solved (written into the dataset spec)."""

    n_samples: int
    seed: int = 0
    solver: str = "auto"
    #: preconditioner of skr/gmres; None: ILU(0) for them, and ``auto`` is free to choose (an explicit pc
    #: limits ``auto`` to the methods that use it)
    pc: Optional[str] = None
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
    block: int = DEFAULT_BLOCK

    @classmethod
    def from_dict(cls, values: Mapping) -> "GenerationConfig":
        """A config from a mapping of its documented keys (ValueError naming an unknown key)."""
        check_keys(values, CONFIG_KEYS, "elliptic solver settings")
        config = cls(**dict(values))
        config.validate()
        return config

    def validate(self) -> None:
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, (int, np.integer)) or self.n_samples < 1:
            raise ValueError(f"number of samples must be a positive integer, got {self.n_samples!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; allowed: {', '.join(SOLVERS)}")
        check_rtol(self.rtol)
        if self.ordering not in ORDERINGS:
            raise ValueError(f"unknown ordering {self.ordering!r}; allowed: {', '.join(ORDERINGS)}")
        if self.initial_guess not in INITIAL_GUESSES:
            raise ValueError(f"unknown initial guess {self.initial_guess!r}; allowed: {', '.join(INITIAL_GUESSES)}")
        if self.dtype not in STORAGE_DTYPES:
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if isinstance(self.block, bool) or not isinstance(self.block, (int, np.integer)) or self.block < 0:
            raise ValueError(
                f"block must be an integer >= 0 (systems between recycled-space resets; 0 = never), got {self.block!r}"
            )
        parse_petsc_options(self.petsc_options)


CONFIG_KEYS = tuple(f.name for f in fields(GenerationConfig))


SPD_FAMILIES = ("darcy", "darcy3d", "poisson", "heat")


@dataclass
class AutoChoice:
    """What ``--solver auto`` runs: a method, and for Krylov methods the PC and its reuse."""

    method: str
    pc: Optional[str] = None  # None: the user's --pc
    pc_reuse: Optional[int] = None  # None: the user's --pc-reuse
    reason: str = ""


def unknowns(family: EllipticFamily) -> int:
    interior = family.resolution - 2 if "dirichlet" in family.boundary().values() else family.resolution
    return int(interior**family.dim)


#: matrices per GAMG interpolation when ``auto`` picks CG + GAMG (benchmarks/amg.py: Darcy 129^2, 16 sorted
#: samples, loaded 2-core machine: 2.3-2.5x less CPU per solve than a new hierarchy per matrix; 8, 16 or the
#: whole run within 3% of each other)
AUTO_GAMG_REUSE = 16


def auto_choice(family: EllipticFamily, config: GenerationConfig) -> AutoChoice:
    """The table ``--solver auto`` falls back on when it does not measure (fewer than AUTO_MIN_SAMPLES
    samples per rank; :func:`auto_trial` otherwise), and whose guess the trial times first: the fastest
    measured by benchmarks/datagen_skr.py (2-core machine, 1 thread, rtol 1e-8, solve seconds per sample,
    N = 8-16; records in benchmarks/results/, 2026-11-26).

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
    lu_reuse = AutoChoice(
        "gmres",
        pc="lu",
        pc_reuse=8,
        reason=f"indefinite, {n} unknowns: GMRES preconditioned by a sorted neighbour's LU, kept for up to 8 systems",
    )
    if name in ("poisson", "heat"):
        return AutoChoice("lu", reason="one matrix, many right-hand sides: factor once")
    if name == "darcy":
        if n < 12_000:
            return AutoChoice("lu", reason=f"2D SPD, {n} unknowns < 12k: sparse LU")
        return AutoChoice(
            "cg-gamg",
            pc_reuse=AUTO_GAMG_REUSE,
            reason=f"2D SPD, {n} unknowns >= 12k: CG + GAMG, interpolation kept for "
            f"{AUTO_GAMG_REUSE} sorted neighbours",
        )
    if name == "darcy3d":
        if n < 64_000:
            return AutoChoice("gmres", pc="ilu", pc_reuse=1, reason=f"3D SPD, {n} unknowns < 64k: GMRES + ILU(0)")
        return AutoChoice(
            "cg-gamg",
            pc_reuse=AUTO_GAMG_REUSE,
            reason=f"3D SPD, {n} unknowns >= 64k: CG + GAMG, interpolation kept for "
            f"{AUTO_GAMG_REUSE} sorted neighbours",
        )
    if name == "helmholtz3d":
        if n >= 12_000:
            return AutoChoice(
                "skr",
                pc="ilu",
                pc_reuse=1,
                reason=f"3D indefinite, {n} unknowns >= 12k: sorted GCRO-DR (SKR) with ILU(0)",
            )
        return AutoChoice("lu", reason=f"3D indefinite, {n} unknowns, < 4 samples: sparse LU") if few else lu_reuse
    if n >= 10_000 and not few:
        return lu_reuse
    return AutoChoice("lu", reason=f"indefinite, {n} unknowns: sparse LU")


def table_decision(family: EllipticFamily, config: GenerationConfig, pc_given: Optional[str]):
    """``(method, pc, pc_reuse, reason)`` of ``--solver auto`` when it does not measure (fewer than
    AUTO_MIN_SAMPLES samples per rank): the :func:`auto_choice` table; ``pc`` / ``pc_reuse`` are None
    where the table leaves the run's own. An explicit preconditioner (``pc_given``) is never replaced:
    the table's Krylov method, or GMRES, with it."""
    choice = auto_choice(family, config)
    reason = f"table (fewer than {AUTO_MIN_SAMPLES} samples per rank to measure on): {choice.reason}"
    if pc_given is not None:
        method = choice.method if choice.method in ("skr", "gmres") else "gmres"
        return method, None, None, reason + f"; with the explicit pc {pc_given!r}: {method}"
    return choice.method, choice.pc, choice.pc_reuse, reason


@dataclass
class AutoCandidate:
    """One solver configuration ``--solver auto`` can time (:func:`auto_trial`)."""

    name: str
    method: str
    pc: Optional[str] = None  # skr/gmres: the PC (None: from the options database)
    pc_reuse: int = 1
    factor: Optional[str] = None  # lu and an LU PC: the package (None: the default pivoting one)
    prefix: str = "skr_"

    def backend(self, config: "GenerationConfig", rtol: float) -> PetscBackend:
        return PetscBackend(
            self.method,
            rtol=rtol,
            restart=config.restart,
            recycle=config.recycle,
            pc=self.pc,
            max_it=config.max_it,
            initial_guess=config.initial_guess,
            pc_reuse=self.pc_reuse,
            factor=self.factor,
            options_prefix=self.prefix,
        )

    def first_like(self, n: int, block: int) -> int:
        """How many of ``n`` consecutive samples (from a block start) pay what the first sample of the
        trial paid: every block start for skr (empty recycled space), every PC rebuild for GMRES with a
        reused PC, only the very first for the others (symbolic factorisation; a per-sample PC set-up is
        in every sample's time)."""
        if n <= 0:
            return 0
        if self.method == "skr":
            return -(-n // block) if block else 1
        if self.method == "gmres" and self.pc_reuse > 1:
            count, since = 0, self.pc_reuse
            for p in range(n):
                if (block and p % block == 0) or since >= self.pc_reuse:
                    count, since = count + 1, 0
                since += 1
            return count
        return 1

    def projected(self, seconds: list, n: int, block: int) -> float:
        """Projected seconds for ``n`` samples from the trial's per-sample ``seconds``:
        ``f t_0 + (n - f) min(t_1..)`` with ``f`` = :meth:`first_like` (``n t_0`` from one sample)."""
        if n <= 0:
            return 0.0
        if not seconds:
            return math.inf
        f = self.first_like(n, block)
        # the steady cost: the smallest of the later samples (a timing is never too small by chance, only too
        # large, when the machine is busy)
        rest = float(np.min(seconds[1:])) if len(seconds) > 1 else float(seconds[0])
        return f * float(seconds[0]) + (n - f) * rest


def auto_candidates(
    family: EllipticFamily, config: GenerationConfig, pc_given: Optional[str], pc_from_options: bool = False
) -> list:
    """The configurations :func:`auto_trial` times, from what this PETSc build has.

    With an explicit preconditioner (``pc_given``: ``--pc`` or ``-skr_pc_type``) only the methods that use
    it (skr and gmres with that PC, ``config.pc_reuse``): it is never replaced. Otherwise the build's default
    LU package and PETSc's native LU (:func:`datagen.elliptic.backends.lu_packages`), CG + GAMG (SPD families),
    GMRES preconditioned by a sorted neighbour's LU kept for 8 samples (prefix ``skrlr_``), SKR and GMRES
    with ILU(0).
    """
    reuse = config.pc_reuse
    if pc_given is not None:
        pc = None if pc_from_options else pc_given
        return [
            AutoCandidate(f"skr+{pc_given}", "skr", pc, reuse),
            AutoCandidate(f"gmres+{pc_given}", "gmres", pc, reuse),
        ]
    # the default (pivoting) LU package and PETSc's native LU: the other packages of the build were slower on
    # every case of benchmarks/datagen_skr.py (SuperLU 1.1-3x UMFPACK's time on Darcy and Helmholtz), and an
    # LU factorisation cannot be stopped early, so they would only make the trial dearer
    lus = dict.fromkeys((lu_packages()[0], "petsc"))
    out = [AutoCandidate(f"lu:{p}", "lu", factor=p, prefix="skrlu_") for p in lus]
    if family.name in SPD_FAMILIES:
        # CG + GAMG keeps its interpolation along the sorted order unless the user set --pc-reuse
        out.append(
            AutoCandidate("cg-gamg", "cg-gamg", pc_reuse=AUTO_GAMG_REUSE if reuse == 1 else reuse, prefix="skrcg_")
        )
    out.append(AutoCandidate("gmres+lu-reuse8", "gmres", "lu", 8, prefix="skrlr_"))
    out += [AutoCandidate("skr+ilu", "skr", "ilu", reuse), AutoCandidate("gmres+ilu", "gmres", "ilu", reuse)]
    # the table's guess (auto_choice) first: its first-sample time bounds the others' (see auto_trial)
    table = auto_choice(family, config)
    guess = {"lu": out[0].name, "cg-gamg": "cg-gamg", "skr": "skr+ilu"}.get(table.method)
    if table.method == "gmres":
        guess = "gmres+lu-reuse8" if table.pc == "lu" else "gmres+ilu"
    return sorted(out, key=lambda c: c.name != guess)


@dataclass
class _Trial:
    """What :func:`auto_trial` hands back: the chosen candidate, its backend and solver (state as after
    the trial samples), its solved samples ``{index: (sample, outputs, SampleRecord, setup_seconds)}``,
    the last matrix it was given, the spec record and the trial's wall time."""

    index: int
    candidate: AutoCandidate
    backend: PetscBackend
    solver: "_SampleSolver"
    results: dict
    last_matrix: object
    record: dict
    seconds: float


def auto_trial(
    family: EllipticFamily,
    config: GenerationConfig,
    candidates: list,
    backends: list,
    solvers: list,
    work: list,
    position: np.ndarray,
    drawn: dict,
    comm=None,
) -> _Trial:
    """Time every candidate on the first :data:`AUTO_TRIAL_SAMPLES` samples of this rank's solve order (the
    close contenders on up to :data:`AUTO_TRIAL_MAX`) and keep the one with the fastest projected total.

    Every candidate solves the same samples in order, from the state the run would start in (block resets
    as in the run), with its own backend; each sample is assembled once for all. A sample's time is the
    hand-over to PETSc plus all systems of the sample (fallbacks included). After each sample the ranks
    share their timings (collective); a rank's projection is :meth:`AutoCandidate.projected` for its
    number of samples, the run's the slowest rank's. A candidate leaves the trial after the first sample
    when it took more than AUTO_DROP_FIRST times the fastest, after later ones when its projection
    exceeds AUTO_DROP times the best. A Krylov candidate's first sample is stopped (by a KSP monitor) once
    it has run AUTO_DROP_FIRST times the fastest first sample so far, so a slow method costs the trial
    little. The winner's backend goes on with the run from where its trial ended and its trial solutions
    are the stored ones, so the data are those of the chosen method alone.
    """
    from petsc4py import PETSc

    t_start = time.perf_counter()
    k = max(AUTO_TRIAL_SAMPLES, AUTO_TRIAL_MAX)
    trial = [int(i) for i in work[:k]]
    n_mine = len(work)
    block = int(config.block)
    m = len(candidates)
    seconds = [[] for _ in range(m)]
    errors = [""] * m
    alive = [True] * m
    dropped = [None] * m
    results = [dict() for _ in range(m)]
    last = [None] * m
    budget, started = [math.inf], [0.0]

    class _Stop(Exception):
        pass

    def monitor(ksp, its, rnorm):
        if time.perf_counter() - started[0] > budget[0]:
            raise _Stop

    for be, sv in zip(backends, solvers):
        sv.raise_errors = True  # a failing candidate leaves the trial (no fallback solve)
        if be.method != "lu":
            be.ksp.setMonitor(monitor)

    def gather(item):
        return comm.allgather(item) if comm is not None and comm.Get_size() > 1 else [item]

    def projections(per_rank):
        return [
            max(
                (candidates[c].projected(sec[c], n, block) if not err[c] else math.inf for sec, n, err, _ in per_rank),
                default=math.inf,
            )
            for c in range(m)
        ]

    per_rank = [([list(x) for x in seconds], n_mine, list(errors), list(alive))]
    for j in range(k):
        if j < len(trial):
            i = trial[j]
            t0 = time.perf_counter()
            sample = drawn.get(i) or family.sample(config.seed, i)
            solved = _stored_inputs(family, sample, config.dtype)
            matrix = family.operator(solved)
            assembly = time.perf_counter() - t0
            for c in range(m):
                if not alive[c]:
                    continue
                t1 = started[0] = time.perf_counter()
                budget[0] = (
                    AUTO_DROP_FIRST * min((sec[0] for sec in seconds if sec), default=math.inf) if j == 0 else math.inf
                )
                try:
                    if block > 0 and position[i] % block == 0:
                        backends[c].reset()
                    if matrix is not last[c]:
                        backends[c].set_operator(matrix)
                        last[c] = matrix
                    hand = time.perf_counter() - t1
                    outputs, rec = solvers[c].run(family, solved, matrix)
                except Exception as err:  # noqa: BLE001 -- _Stop arrives wrapped in a PETSc.Error
                    if time.perf_counter() - t1 > budget[0]:
                        seconds[c].append(time.perf_counter() - t1)  # stopped: at least this long
                        alive[c], dropped[c] = False, j
                        continue
                    if not isinstance(err, PETSc.Error):
                        raise
                    errors[c] = (str(err).strip().splitlines() or [repr(err)])[-1]
                    alive[c] = False
                    continue
                seconds[c].append(time.perf_counter() - t1)
                results[c][i] = (sample, outputs, rec, assembly + hand)
        per_rank = gather(([list(x) for x in seconds], n_mine, list(errors), list(alive)))
        for c in range(m):
            if any(err[c] for _, _, err, _ in per_rank):
                alive[c] = False
            elif alive[c] and not all(a[c] for *_, a in per_rank):
                alive[c], dropped[c] = False, j  # stopped on another rank
        live = [c for c in range(m) if alive[c]]
        if not live:
            break
        if j >= AUTO_TRIAL_SAMPLES - 1:
            # the trial proper is over: only close contenders go on, until one is clearly ahead
            proj = projections(per_rank)
            best = min(proj[c] for c in live)
            for c in live:
                if proj[c] > AUTO_CLOSE * best:
                    alive[c], dropped[c] = False, j
            if sum(alive) <= 1:
                break
        elif j == 0:
            first = [max((sec[c][0] for sec, *_ in per_rank if sec[c]), default=0.0) for c in range(m)]
            best = min(first[c] for c in live)
            for c in live:
                if first[c] > AUTO_DROP_FIRST * best:
                    alive[c], dropped[c] = False, j
        else:
            proj = projections(per_rank)
            best = min(proj[c] for c in live)
            for c in live:
                if proj[c] > AUTO_DROP * best:
                    alive[c], dropped[c] = False, j
    proj = projections(per_rank)
    live = [c for c in range(m) if alive[c] and math.isfinite(proj[c])]
    if not live:
        raise ValueError(
            "--solver auto: every candidate failed on the first samples ("
            + "; ".join(f"{candidates[c].name}: {errors[c]}" for c in range(m) if errors[c])
            + "); choose a --solver explicitly"
        )
    win = min(live, key=lambda c: proj[c])
    elapsed = max(gather(time.perf_counter() - t_start))
    runner = sorted((proj[c], candidates[c].name) for c in range(m) if c != win and math.isfinite(proj[c]))
    n_total = sum(n for _, n, *_ in per_rank)
    reason = (
        f"measured: fastest projected total {proj[win]:.3g} s ({n_total} samples, {len(per_rank)} rank(s): "
        f"the slowest rank's)" + (f" (next: {runner[0][1]} {runner[0][0]:.3g} s)" if runner else "")
    )
    rank0 = per_rank[0][0]
    record = {
        "rule": "measured",
        "trial_samples": AUTO_TRIAL_SAMPLES,
        "trial_samples_max": k,
        "choice": candidates[win].name,
        "reason": reason,
        "trial_seconds": float(elapsed),
        "chosen": {f: getattr(candidates[win], f) for f in ("name", "method", "pc", "pc_reuse", "factor", "prefix")},
        "candidates": [
            {
                "name": cand.name,
                "method": cand.method,
                "pc": cand.pc,
                "pc_reuse": cand.pc_reuse,
                "factor": cand.factor,
                "seconds": [float(x) for x in rank0[c]],
                "projected_seconds": float(proj[c]) if math.isfinite(proj[c]) else None,
                "dropped_after_sample": dropped[c],
                **(
                    {"error": next(e[c] for _, _, e, _ in per_rank if e[c])}
                    if any(e[c] for _, _, e, _ in per_rank)
                    else {}
                ),
            }
            for c, cand in enumerate(candidates)
        ],
    }
    for c in range(m):
        if c != win:
            backends[c].destroy()
    budget[0] = math.inf  # the winner's monitor never stops it again
    solvers[win].raise_errors = False
    return _Trial(win, candidates[win], backends[win], solvers[win], results[win], last[win], record, elapsed)


def _recorded_auto(path) -> Optional[dict]:
    """The ``spec.solver.auto`` record of an unfinished run at ``path`` (its manifest) or of a finished file,
    so that a resumed ``auto`` run goes on with the method it chose (None when there is none)."""
    import json
    import os

    manifest = str(path) + ".partial/manifest.json"
    try:
        if os.path.isfile(manifest):
            with open(manifest) as fh:
                spec = json.load(fh).get("spec") or {}
        elif os.path.isfile(str(path)):
            import h5py

            with h5py.File(str(path), "r") as f:
                spec = json.loads(f.attrs["spec"])
        else:
            return None
        record = Spec.from_stored(spec).solver.get("auto")
        return record if isinstance(record, dict) and "chosen" in record else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
    invalid: dict = field(default_factory=dict)  # {index: reason} of the samples stored invalid
    updates_skipped: int = 0  # GCRO-DR recycled-space updates skipped (all samples)
    spaces_dropped: int = 0  # samples during which GCRO-DR dropped its space
    resolved: int = 0  # already written samples solved again (block starts)
    trial_seconds: float = 0.0  # --solver auto: the trial (all candidates), in total_seconds
    _iterations_sum: int = field(default=0, repr=False)  # running sum and max of `iterations` (postfix)
    _iterations_max: int = field(default=0, repr=False)

    def add(self, index: int, rec: "SampleRecord", setup: float) -> None:
        """Count one written sample ``index`` solved as ``rec`` after ``setup`` seconds of set-up."""
        self.setup_seconds += setup
        self.solve_seconds += rec.seconds
        self.iterations.append(rec.iterations)
        self._iterations_sum += rec.iterations
        self._iterations_max = max(self._iterations_max, rec.iterations)
        if rec.valid:
            self.max_residual = max(self.max_residual, rec.residual)
        else:
            self.invalid[index] = rec.reason
        self.fallbacks += int(rec.fallback)
        self.updates_skipped += rec.updates_skipped
        self.spaces_dropped += int(rec.space_dropped)
        self.solved += 1

    def postfix(self, rec: "SampleRecord") -> str:
        """The progress bar's line after sample ``rec`` (O(1): running sum and max, not the whole list)."""
        mean = self._iterations_sum / max(len(self.iterations), 1)
        return (
            f"its {rec.iterations} mean {mean:.1f} max {self._iterations_max} "
            f"res {self.max_residual:.1e}"
            f"{' fallbacks ' + str(self.fallbacks) if self.fallbacks else ''}"
            f"{' INVALID ' + str(len(self.invalid)) if self.invalid else ''}"
        )

    def text(self) -> str:
        its = np.array(self.iterations) if self.iterations else np.zeros(1)
        lines = [
            f"{self.path}: {'complete' if self.complete else 'partial (resume with --resume)'}; "
            f"{self.solved} solved this run, {self.skipped} already written"
            f"{f' ({self.resolved} of them solved again to restart their blocks)' if self.resolved else ''}, "
            f"solver {self.solver}, ordering {self.ordering}",
            f"  iterations/sample mean {its.mean():.1f} median {np.median(its):.0f} max {its.max():.0f}; "
            f"max true relative residual {self.max_residual:.2e} (valid samples); "
            f"direct-solve fallbacks {self.fallbacks}",
        ]
        if self.solver == "skr":
            lines.append(
                f"  GCRO-DR: recycled-space updates skipped {self.updates_skipped}, "
                f"recycled space dropped in {self.spaces_dropped} samples"
            )
        if self.invalid:
            first = sorted(self.invalid)[:3]
            lines.append(
                f"  INVALID samples {len(self.invalid)} (stored with valid=False; first: "
                + "; ".join(f"{i}: {self.invalid[i]}" for i in first)
                + ")"
            )
        trial = f"auto trial {self.trial_seconds:.2f} (the chosen method's share counted above too), "
        lines.append(
            f"  seconds: features {self.feature_seconds:.2f}, sort {self.sort_seconds:.2f}, "
            f"assembly {self.setup_seconds:.2f}, solve {self.solve_seconds:.2f}, "
            f"write {self.write_seconds:.2f}, "
            f"{trial if self.trial_seconds else ''}"
            f"total {self.total_seconds:.2f} "
            f"({self.total_seconds / max(self.solved, 1):.4f} s/sample)"
        )
        return "\n".join(lines)


# samples drawn for the features are kept for the solve loop up to this many bytes of inputs per rank
KEEP_SAMPLES_BYTES = 256 * 2**20


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


def chunk_of(order: np.ndarray, rank: int, size: int, block: int = 0) -> np.ndarray:
    """The contiguous piece of the solve order that ``rank`` of ``size`` solves.

    With ``block > 0`` every piece is made of whole blocks (positions ``[j B, (j + 1) B)`` of the
    order), the blocks split as evenly as ``np.array_split`` splits them, so that no block is
    shared between ranks (the recycled space restarts at block starts only).
    """
    order = np.asarray(order)
    if block <= 0:
        return np.array_split(order, size)[rank]
    n_blocks = -(-len(order) // block)
    mine = np.array_split(np.arange(n_blocks), size)[rank]
    if mine.size == 0:
        return order[:0]
    return order[mine[0] * block : min((mine[-1] + 1) * block, len(order))]


class _FallbackSolver:
    """Retries a failed solve with a pivoting sparse direct solver: SciPy's ``splu`` (SuperLU, partial
    pivoting with threshold 1, COLAMD column ordering), factorised once per matrix; the true residual
    ``||b - A x|| / ||b||`` of its solution is computed in float64 and decides convergence."""

    method = "splu"

    def __init__(self, rtol: float):
        self.rtol = rtol
        self._matrix = None
        self._lu = None
        self._error = ""

    def solve(self, matrix, b):
        t0 = time.perf_counter()
        if self._matrix is not matrix:
            self._matrix = matrix
            try:
                self._lu, self._error = spla.splu(sp.csc_matrix(matrix), permc_spec="COLAMD"), ""
            except (RuntimeError, ValueError) as err:  # "Factor is exactly singular"
                self._lu, self._error = None, str(err)
        if self._lu is None:
            return None, SolveStats(0, math.inf, time.perf_counter() - t0, False, f"failed: {self._error}", self.method)
        x = self._lu.solve(np.asarray(b, dtype=np.float64))
        residual = relative_residual(matrix, b, x)
        converged = bool(np.isfinite(residual) and residual <= self.rtol)
        return x, SolveStats(
            1,
            residual,
            time.perf_counter() - t0,
            converged,
            "CONVERGED_DIRECT" if converged else "DIVERGED_DIRECT_RESIDUAL",
            self.method,
        )


def relative_residual(matrix, b, x) -> float:
    """``||b - A x|| / ||b||`` in float64 (``||b - A x||`` when ``b = 0``; inf for non-finite ``x``)."""
    if x is None or not np.all(np.isfinite(x)):
        return math.inf
    b = np.asarray(b, dtype=np.float64)
    r = float(np.linalg.norm(b - matrix @ np.asarray(x, dtype=np.float64)))
    nb = float(np.linalg.norm(b))
    return r / nb if nb > 0 else r


@dataclass
class SampleRecord:
    """How the systems of one sample were solved (what goes into its ``solver/`` provenance)."""

    iterations: int = 0
    residual: float = 0.0
    seconds: float = 0.0
    fallback: bool = False
    updates_skipped: int = 0
    space_dropped: bool = False
    cast_residual: float = 0.0  # largest ||A (x32 - x)|| / ||b|| (float32 storage only)
    reason: str = ""  # why the sample is invalid ("" when valid)

    @property
    def valid(self) -> bool:
        return not self.reason


class _SampleSolver:
    """Solves all systems of one sample: backend, then the pivoting fallback, then (float32 storage) the
    rounding of the solution and its recomputed residual; never raises for a system it cannot solve:
    the sample's record gets the reason instead."""

    def __init__(self, backend: PetscBackend, rtol: float, dtype: str):
        self.backend = backend
        self.rtol = rtol
        self.cast = dtype == "float32"
        self.fallback = _FallbackSolver(rtol * CAST_SOLVE_FRACTION if self.cast else rtol)
        #: a PETSc error in a solve propagates instead of going to the fallback (the auto trial)
        self.raise_errors = False

    def run(self, family: EllipticFamily, sample, matrix):
        """``(outputs, SampleRecord)``."""
        from petsc4py import PETSc

        rec = SampleRecord()
        count = [0]
        method = self.backend.method

        def linear_solve(b, x0):
            j = count[0]
            count[0] += 1
            try:
                x, st = self.backend.solve(b, x0)
            except PETSc.Error as err:
                if self.raise_errors:
                    raise
                detail = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
                x, st = None, SolveStats(0, math.inf, 0.0, False, f"PETSc error: {detail}", method)
            rec.updates_skipped += st.updates_skipped
            rec.space_dropped |= st.space_dropped
            rec.iterations += st.iterations
            rec.seconds += st.seconds
            if not st.converged:
                x2, st2 = self.fallback.solve(matrix, b)
                rec.seconds += st2.seconds
                rec.fallback = True
                if not st2.converged and not rec.reason:
                    direct = f"reached {st2.residual:.3e}" if x2 is not None else st2.reason
                    rec.reason = (
                        f"system {j}: {method} stopped at true residual {st.residual:.3e} ({st.reason}) "
                        f"and the pivoting direct fallback (splu) {direct}; rtol {self.rtol:g}"
                    )
                if st2.converged or x is None or (x2 is not None and st2.residual < st.residual):
                    x, st = x2, st2  # the better of the two is kept (and stored if invalid)
            if x is None:
                x = np.full(len(b), np.nan)
            residual = st.residual
            if self.cast:
                x32 = x.astype(np.float32).astype(np.float64)
                nb = float(np.linalg.norm(b)) or 1.0
                rec.cast_residual = max(
                    rec.cast_residual,
                    float(np.linalg.norm(matrix @ (x32 - x))) / nb if np.all(np.isfinite(x)) else math.inf,
                )
                residual = relative_residual(matrix, b, x32)
                if st.converged and not residual <= self.rtol and not rec.reason:
                    rec.reason = (
                        f"system {j}: the float32-rounded solution has true residual {residual:.3e} > rtol "
                        f"{self.rtol:g} (the float64 solve reached {st.residual:.3e}); store float64 "
                        f"(--dtype float64) or raise --rtol"
                    )
                x = x32
            rec.residual = max(rec.residual, residual) if np.isfinite(residual) else math.inf
            return x

        outputs = family.solve(sample, matrix, linear_solve)
        return outputs, rec


def _stored_inputs(family: EllipticFamily, sample, dtype: str):
    """The sample with its input fields rounded to the storage dtype (float32: the system is assembled
    from exactly the values that are stored)."""
    if dtype == "float64":
        return sample
    roles = family.field_roles()
    inputs = {
        k: (v.astype(np.float32).astype(np.float64) if roles.get(k, (None, ""))[1] == "input" else v)
        for k, v in sample.inputs.items()
    }
    return type(sample)(sample.index, inputs, dict(sample.params))


def _significant_ceil(x: float) -> float:
    """``x`` rounded up to one significant digit (4.2e-5 -> 5e-5)."""
    if not (np.isfinite(x) and x > 0):
        return x
    e = math.floor(math.log10(x))
    return math.ceil(x / 10**e) * 10**e


def check_storage_precision(
    family: EllipticFamily, config: GenerationConfig, solver: "_SampleSolver", index: int
) -> dict:
    """Refuse float32 storage when its rounding alone breaks ``rtol`` (module docstring, 5).

    Solves sample ``index`` (the first of the order) and measures ``||A (x32 - x)|| / ||b||`` over its
    systems; raises ValueError with the numbers when that exceeds ``CAST_MARGIN * rtol``. Returns
    what is recorded in the spec. The backend is reset afterwards (the run starts as if fresh).
    """
    sample = _stored_inputs(family, family.sample(config.seed, index), config.dtype)
    matrix = family.operator(sample)
    solver.backend.set_operator(matrix)
    _, rec = solver.run(family, sample, matrix)
    solver.backend.reset()
    smallest = _significant_ceil(rec.cast_residual / CAST_MARGIN)
    if not rec.cast_residual <= CAST_MARGIN * config.rtol:
        raise ValueError(
            f"--dtype float32 cannot hold rtol {config.rtol:g} for this operator: rounding the "
            f"solution of sample {index} to float32 (unit roundoff {2.0**-24:.1e}) alone gives a "
            f"true relative residual of {rec.cast_residual:.2e}; the smallest rtol float32 can hold "
            f"here is about {smallest:.0e} (--rtol {smallest:.0e}), or store --dtype float64"
        )
    return {
        "cast_residual_probe": float(rec.cast_residual),
        "probe_sample": int(index),
        "smallest_rtol_estimate": float(smallest),
    }


def generate(
    family: EllipticFamily,
    path: str,
    config: GenerationConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    comm=None,
    progress: bool = True,
    max_new: Optional[int] = None,
    stream=None,
    unused_options: str = "warn",
) -> GenerationSummary:
    """Generate (or resume) the dataset at ``path``; returns this rank's summary.

    ``max_new`` stops after that many newly written samples without finalizing (a resumable partial
    run; used for time-limited jobs and the resume tests).
    ``unused_options``: what a PETSc option of ``config.petsc_options`` that the solver did not read
    (see :func:`check_petsc_options`) does: ``"warn"`` (one-line warning) or ``"error"`` (ValueError
    before anything is written).
    """

    config.validate()
    if unused_options not in ("warn", "error"):
        raise ValueError(f"unused_options must be 'warn' or 'error', got {unused_options!r}")
    user_options = parse_petsc_options(config.petsc_options)
    inserted = insert_petsc_options(user_options)
    try:
        return _generate(
            family,
            path,
            config,
            user_options,
            resume=resume,
            overwrite=overwrite,
            comm=comm,
            progress=progress,
            max_new=max_new,
            stream=stream,
            unused_options=unused_options,
        )
    finally:
        # -skr_pc_type is the backend's (from --pc; -skrlr_pc_type: auto's LU-reuse GMRES) unless the user gave it
        given = {n for n, _ in user_options}
        remove_petsc_options(inserted + [n for n in ("skr_pc_type", "skrlr_pc_type") if n not in given])


def check_petsc_options(
    family: EllipticFamily,
    config: GenerationConfig,
    backend,
    index: int,
    user_options: list,
    unused_options: str = "warn",
    warn: bool = True,
):
    """``(applied, unused)``: the user's PETSc options (``[(name, value)]``) that the solver read, as the
    options string recorded in the spec, and the names of those it did not read.

    The backend is set up (``KSPSetUp``/``PCSetUp``, no solve) on the operator of sample ``index`` (the
    first of the order, the same on every rank), which queries every option its KSP and PC read,
    monitors and viewers included; PETSc's record of what was used decides; ``backend`` may be a list (the
    candidates of ``--solver auto``: an option is used when any of them read it)
    (:func:`datagen.elliptic.backends.unused_petsc_options`). The backend is reset afterwards. Unused
    options raise ValueError (``unused_options="error"``) or give a one-line warning.
    """
    import shlex
    import warnings

    if not user_options:
        return "", []
    sample = _stored_inputs(family, family.sample(config.seed, index), config.dtype)
    backends = list(backend) if isinstance(backend, (list, tuple)) else [backend]
    operator = family.operator(sample)
    from petsc4py import PETSc

    for be in backends:
        be.set_operator(operator)
        try:
            be.setup()
        except PETSc.Error:
            # e.g. PETSc's native LU on a zero diagonal: the solves meet it again and fall back (pivoting
            # splu); the options were read when the solver was configured
            pass
        be.reset()
    unused = unused_petsc_options([name for name, _ in user_options])
    applied = " ".join(
        f"-{name}" + ("" if value is None else f" {shlex.quote(str(value))}")
        for name, value in user_options
        if name not in unused
    )
    if unused:
        names = ", ".join(f"-{n}" for n in unused)
        if len(backends) == 1:
            solver = f"the {backends[0].method} solver (it reads"
        else:
            solver = f"any of the {len(backends)} methods --solver auto timed (they read"
        prefixes = dict.fromkeys(be.options_prefix for be in backends)
        what = (
            f"PETSc option{'s' if len(unused) > 1 else ''} {names} not used by {solver} "
            + " and ".join(f"-{p}ksp_* and -{p}pc_*" for p in prefixes)
            + " options); check the spelling and the prefix"
        )
        if unused_options == "error":
            raise ValueError(f"{what}, or drop --strict-petsc-options to run with a warning")
        if warn:
            warnings.warn(f"{what}; they are not recorded in the dataset spec as applied", stacklevel=2)
    return applied, unused


def _generate(
    family, path, config, user_options, *, resume, overwrite, comm, progress, max_new, stream, unused_options="warn"
):
    from datagen.dataset import DatasetWriter, FieldSpec, Grid

    t_start = time.perf_counter()
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    # an explicit -skr_pc_type among the PETSc options wins over --pc
    pc_option = next((value for name, value in user_options if name == "skr_pc_type"), None)
    pc = None if pc_option is not None else (config.pc or "ilu")
    pc_given = pc_option if pc_option is not None else config.pc  # None: nobody asked for a PC
    pc_reuse = config.pc_reuse
    auto_reason = ""
    auto_record = None
    factor = None
    prefix = "skr_"
    candidates = []
    if config.solver == "auto":
        auto_record = _recorded_auto(path) if resume else None
        if auto_record is not None:
            # a resumed auto run goes on with the method it chose (and records the same trial)
            chosen = AutoCandidate(**auto_record["chosen"])
            method, pc_reuse, factor, prefix = chosen.method, chosen.pc_reuse, chosen.factor, chosen.prefix
            pc = chosen.pc if pc_option is None else None
            auto_reason = auto_record.get("reason", "")
        elif config.n_samples / size >= AUTO_MIN_SAMPLES:
            candidates = auto_candidates(family, config, pc_given, pc_from_options=pc_option is not None)
            method = "auto"
        else:
            method, table_pc, table_reuse, auto_reason = table_decision(family, config, pc_given)
            pc = table_pc if table_pc is not None else pc
            pc_reuse = table_reuse if table_reuse is not None else pc_reuse
            auto_record = {
                "rule": "table",
                "choice": method,
                "reason": auto_reason,
                "chosen": {
                    "name": method,
                    "method": method,
                    "pc": pc,
                    "pc_reuse": pc_reuse,
                    "factor": None,
                    "prefix": "skr_",
                },
                "candidates": [],
            }
    else:
        method = config.solver
    if method == "cg-gamg" and family.name not in SPD_FAMILIES:
        raise ValueError(
            f"solver cg-gamg needs a symmetric positive definite family ({', '.join(SPD_FAMILIES)}); "
            f"{family.name} is indefinite: use skr, gmres or lu"
        )
    cast = config.dtype == "float32"
    solve_rtol = config.rtol * CAST_SOLVE_FRACTION if cast else config.rtol
    # the backend(s) are built before any file is touched: a bad PC or option fails here
    if candidates:
        backends = [c.backend(config, solve_rtol) for c in candidates]
        solvers = [_SampleSolver(b, config.rtol, config.dtype) for b in backends]
        backend, solver = backends[0], solvers[0]
    else:
        backend = PetscBackend(
            method,
            rtol=solve_rtol,
            restart=config.restart,
            recycle=config.recycle,
            pc=pc,
            max_it=config.max_it,
            initial_guess=config.initial_guess,
            pc_reuse=pc_reuse,
            factor=factor,
            options_prefix=prefix,
        )
        backends, solver = [backend], _SampleSolver(backend, config.rtol, config.dtype)
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

    storage = {"dtype": config.dtype}
    if cast:
        # every rank probes the same sample: the same decision everywhere, before any file is touched
        storage.update(check_storage_precision(family, config, solver, int(order[0])))
        storage.update(
            {
                "inputs": "rounded to float32 before assembly (the solved system is the stored one)",
                "residual": "of the float32-rounded solution, computed in float64",
                "solve_rtol": solve_rtol,
            }
        )

    applied, unused = check_petsc_options(
        family, config, backends if candidates else backend, int(order[0]), user_options, unused_options, warn=rank == 0
    )
    block = int(config.block)
    trial = None
    if candidates:
        # --solver auto: time the candidates on this rank's first samples (a fresh run: all of them are to
        # be solved); the winner goes on from there and its trial solutions are the stored ones
        trial = auto_trial(
            family,
            config,
            candidates,
            backends,
            solvers,
            [int(i) for i in chunk_of(order, rank, size, block)],
            position,
            drawn,
            comm,
        )
        if comm is not None and size > 1:
            trial.record = comm.bcast(trial.record, root=0)
        backend, solver = trial.backend, trial.solver
        method, pc, pc_reuse = trial.candidate.method, trial.candidate.pc, trial.candidate.pc_reuse
        auto_record, auto_reason = trial.record, trial.record["reason"]
        summary.solver = method
        summary.trial_seconds = trial.seconds
    roles = family.field_roles()
    fields_ = {name: FieldSpec(shape=shape, role=role, dtype=config.dtype) for name, (shape, role) in roles.items()}
    spec = _dataset_spec(
        family,
        config,
        method,
        auto_reason,
        applied,
        unused,
        pc,
        pc_reuse,
        ordering,
        storage,
        pc_defaults=" ".join(f"-{n} {v}" for n, v in backend.gamg_defaults),
        auto_record=auto_record,
        factor_used=_factor_used(backend),
    )
    if size > 1 and rank == 0:
        _note_idle_ranks(order, size, config, stream)
    grid = Grid(coords=family.coordinates(), boundary=family.boundary())
    writer = DatasetWriter(
        path,
        pde=family.name,
        spec=spec,
        n_samples=config.n_samples,
        seed=config.seed,
        fields=fields_,
        grid=grid,
        params=family.param_names,
        solver=SOLVER_FIELDS,
        resume=resume,
        overwrite=overwrite,
        comm=comm,
    )
    mine, pending, work = _work_list(writer, order, position, rank, size, block)
    summary.skipped = len(mine) - len(pending)
    drawn = {i: drawn[i] for i in work if i in drawn}  # other ranks' and already written samples go

    bar = _progress_bar(family, len(work), rank, size, stream) if progress else None
    stopped_early = False
    last_matrix = trial.last_matrix if trial is not None else None
    tried = trial.results if trial is not None else {}
    written = 0
    try:
        for i in work:
            new = i in pending
            if new and max_new is not None and written >= max_new:
                stopped_early = True
                break
            if i in tried:  # solved by the auto trial with the chosen method
                sample, outputs, rec, setup = tried.pop(i)
                drawn.pop(i, None)
            else:
                if block > 0 and position[i] % block == 0:
                    backend.reset()
                t0 = time.perf_counter()
                sample = drawn.pop(i, None) or family.sample(config.seed, i)
                solved = _stored_inputs(family, sample, config.dtype)
                matrix = family.operator(solved)
                if matrix is not last_matrix:  # a fixed operator (poisson) is handed over once
                    backend.set_operator(matrix)
                    last_matrix = matrix
                setup = time.perf_counter() - t0
                outputs, rec = solver.run(family, solved, matrix)
            if not new:
                summary.resolved += 1
                if bar is not None:
                    bar.update(1)
                continue
            t1 = time.perf_counter()
            writer.write(
                i,
                {**sample.inputs, **outputs},
                params=sample.params,
                solver={
                    "iterations": rec.iterations,
                    "residual": rec.residual,
                    "seconds": rec.seconds,
                    "setup_seconds": setup,
                    "order": int(position[i]),
                    "converged": rec.valid,
                    "fallback": rec.fallback,
                    "rank": rank,
                    "updates_skipped": rec.updates_skipped,
                    "space_dropped": rec.space_dropped,
                },
                invalid_reason=rec.reason,
            )
            written += 1
            summary.write_seconds += time.perf_counter() - t1
            summary.add(i, rec, setup)
            if bar is not None:
                bar.set_postfix_str(summary.postfix(rec), refresh=False)
                bar.update(1)
    except BaseException:
        writer.close()  # keep what was written for --resume; no file appears at `path`
        raise
    finally:
        if bar is not None:
            bar.close()
    if comm is not None and size > 1:
        # finalizing is collective: if any rank stopped early, every rank leaves a resumable partial run
        stopped_early = any(comm.allgather(stopped_early))
    _close_output(writer, summary, stopped_early)
    backend.destroy()
    summary.total_seconds = time.perf_counter() - t_start
    return summary


def _dataset_spec(
    family,
    config: GenerationConfig,
    method,
    auto_reason,
    applied,
    unused,
    pc,
    pc_reuse,
    ordering,
    storage,
    pc_defaults: str = "",
    auto_record: Optional[dict] = None,
    factor_used: Optional[str] = None,
) -> dict:
    """The spec stored in the file (:func:`datagen.spec.build_spec`): the family's settings, plus the
    solver section (the configuration, what was used, the stopping rule, the fallback, the block resets
    and the storage precision)."""
    solver = {
        **asdict(config),
        "method": method,
        "auto_reason": auto_reason,
        **({"auto": auto_record} if auto_record is not None else {}),
        "factor_used": factor_used,
        "petsc_options": applied,
        **({"petsc_options_unused": [f"-{n}" for n in unused]} if unused else {}),
        "pc_used": pc if method in ("skr", "gmres") else None,
        "pc_defaults": pc_defaults,
        "pc_reuse_used": pc_reuse,
        "ordering_used": ordering,
        "pc_side": "right",
        "stopping": "||b - A x|| <= rtol ||b|| (true residual)",
        "fallback": "SciPy splu (SuperLU, partial pivoting) when the true residual exceeds rtol; a sample it "
        "cannot bring below rtol is stored invalid with its reason",
        "block_reset": "backend reset (recycled space, previous solution, PC) at every position p of the sorted "
        "order with p % block == 0; MPI chunks and resumes start on block boundaries"
        if config.block
        else "none (block = 0)",
        "storage": storage,
    }
    solver.pop("n_samples")
    solver.pop("seed")
    return build_spec(family.name, {**family.spec(), **solver})


def _note_idle_ranks(order, size: int, config: GenerationConfig, stream) -> None:
    """Say which ranks get no samples (ranks take whole blocks) and the ``--block`` that uses all."""
    block = int(config.block)
    idle = [r for r in range(size) if len(chunk_of(order, r, size, block)) == 0]
    if idle:
        n_blocks = -(-config.n_samples // block) if block else config.n_samples
        print(
            f"note: {size} ranks for {config.n_samples} samples in {n_blocks} block(s) of {block}: rank(s) "
            f"{', '.join(map(str, idle))} get no samples (ranks take whole blocks); --block "
            f"{max(1, config.n_samples // size)} or less uses every rank",
            file=stream or sys.stderr,
        )


def _work_list(writer, order, position, rank: int, size: int, block: int):
    """``(mine, pending, work)``: this rank's samples, those not yet written, and those to solve.

    With blocks, a block with anything left to write is solved from its start: the already written
    samples before the first missing one are solved again (not written) so the recycled space is the
    uninterrupted one.
    """
    mine = chunk_of(order, rank, size, block)
    pending = {int(i) for i in mine if not writer.is_written(int(i))}
    if block > 0:
        open_blocks = {int(position[i]) // block for i in pending}
        work = [int(i) for i in mine if int(position[i]) // block in open_blocks]
    else:
        work = [int(i) for i in mine if int(i) in pending]
    return mine, pending, work


def _progress_bar(family, total: int, rank: int, size: int, stream):
    """One line redrawn in place on a terminal, periodic lines in a log (:mod:`datagen.progress`)."""
    from datagen.progress import progress_bar

    return progress_bar(
        total=total,
        desc=f"{family.name}[{rank}/{size}]" if size > 1 else family.name,
        unit="sample",
        file=stream or sys.stderr,
        position=rank if size > 1 else None,
        dynamic_ncols=True,
        smoothing=0.1,
    )


def _close_output(writer, summary: GenerationSummary, stopped_early: bool) -> None:
    """Finalize the file (complete run), or flush it for ``--resume`` (a run stopped early)."""
    if stopped_early:
        writer.flush()
        summary.complete = False
    else:
        t1 = time.perf_counter()
        writer.finalize()
        summary.write_seconds += time.perf_counter() - t1
        summary.complete = True


def _factor_used(backend: PetscBackend) -> Optional[str]:
    """The LU package the backend factors with (None when it does not factor)."""
    try:
        return backend.factor_used
    except Exception:  # noqa: BLE001 -- provenance only, never fatal
        return None


def merge_summaries(parts: list) -> GenerationSummary:
    """One summary for all ranks (times are the slowest rank's, counts add up)."""
    out = GenerationSummary(
        path=parts[0].path,
        n_samples=parts[0].n_samples,
        solver=parts[0].solver,
        ordering=parts[0].ordering,
        complete=all(p.complete for p in parts),
    )
    for p in parts:
        out.solved += p.solved
        out.skipped += p.skipped
        out.resolved += p.resolved
        out.iterations += p.iterations
        out.max_residual = max(out.max_residual, p.max_residual)
        out.fallbacks += p.fallbacks
        out.invalid.update(p.invalid)
        out.updates_skipped += p.updates_skipped
        out.spaces_dropped += p.spaces_dropped
        for k in (
            "sort_seconds",
            "feature_seconds",
            "setup_seconds",
            "solve_seconds",
            "write_seconds",
            "total_seconds",
            "trial_seconds",
        ):
            setattr(out, k, max(getattr(out, k), getattr(p, k)))
    return out
