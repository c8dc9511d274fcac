"""``neuralops-datagen {darcy,darcy3d,helmholtz,helmholtz3d,poisson,heat}``: SKR datasets on PETSc.

Examples::

    neuralops-datagen darcy --n 1000 --resolution 129 --out data/darcy_129.h5
    neuralops-datagen helmholtz --n 200 --resolution 129 --solver skr --pc ilu --rtol 1e-8 \\
        --restart 40 --recycle 20 --ordering greedy -- -skr_pc_factor_levels 1
    mpiexec -n 4 neuralops-datagen darcy3d --n 400 --resolution 66 --out data/darcy3d.h5

PETSc options go to the options database: everything after ``--`` or the ``--petsc "..."`` string.
The Krylov methods (skr, gmres) read ``-skr_*`` (e.g. ``-skr_pc_type``; skr is a KSP of type python,
so ``-skr_ksp_monitor``, ``-skr_ksp_view``, ``-skr_ksp_gcrodr_*`` apply too), the direct solver
``-skrlu_*``, CG + GAMG ``-skrcg_*``. They are given to PETSc when it starts, as on any PETSc
program's command line, so ``-log_view``, ``-options_left``, ``-info`` work. An option the solver
does not read (a misspelling, the wrong prefix) gets a one-line warning (an error with
``--strict-petsc-options``) and is left out of the spec's ``petsc_options``, which records only
the options PETSc used (the others are listed in ``petsc_options_unused``).

``--set KEY=VALUE`` (repeatable; VALUE is JSON, or a bare string) sets any documented family option
(:data:`FAMILY_OPTIONS`, e.g. Poisson's ``boundary_alpha``, which has no flag) or solver setting
(:data:`datagen.elliptic.generator.CONFIG_KEYS`, dashes or underscores); an unknown key is an error
that lists the allowed ones with the closest match.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from datagen.elliptic.backends import INITIAL_GUESSES
from datagen.elliptic.generator import CONFIG_KEYS, DEFAULT_BLOCK, SOLVERS, GenerationConfig
from datagen.sorting import ORDERINGS
from datagen.spec import ELLIPTIC_OPTIONS, build_spec, settable_keys
from datagen.spec_keys import check_keys

FAMILIES = ("darcy", "darcy3d", "helmholtz", "helmholtz3d", "poisson", "heat")
DEFAULT_RESOLUTION = {"darcy": 129, "darcy3d": 34, "helmholtz": 129, "helmholtz3d": 34, "poisson": 129, "heat": 65}
#: the documented options of each family (keyword arguments of its class; ``steps`` is Heat's ``n_steps``),
#: from the spec schema, which also says where each one lands in the spec (:data:`datagen.spec.ELLIPTIC_OPTIONS`)
FAMILY_OPTIONS = {base: tuple(options) for base, options in ELLIPTIC_OPTIONS.items()}
#: solver settings --set may change: the schema's settable solver keys (the GenerationConfig fields that
#: are not dataset-level flags)
SET_SOLVER_KEYS = tuple(k for k in CONFIG_KEYS if k in settable_keys("darcy", "solver"))


def _base(family: str) -> str:
    return family.replace("3d", "")


def build_family(family: str, resolution: int, options: dict):
    """The family ``family`` (``darcy``, ``darcy3d``, ...) at ``resolution`` from a mapping of its
    documented options (:data:`FAMILY_OPTIONS`); an unknown option is a ValueError naming the allowed ones."""
    from datagen.elliptic.darcy import Darcy
    from datagen.elliptic.heat import Heat
    from datagen.elliptic.helmholtz import Helmholtz
    from datagen.elliptic.poisson import Poisson

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; allowed: {', '.join(FAMILIES)}")
    base = _base(family)
    check_keys(options, FAMILY_OPTIONS[base], f"{family} options")
    dim = 3 if family.endswith("3d") else 2
    opts = dict(options)
    if base == "darcy":
        return Darcy(resolution, dim, **opts)
    if base == "helmholtz":
        return Helmholtz(resolution, dim, **opts)
    if base == "poisson":
        return Poisson(resolution, **opts)
    if "steps" in opts:
        opts["n_steps"] = opts.pop("steps")
    return Heat(resolution, **opts)


def parse_set(items: list, family: str) -> dict:
    """``{key: value}`` from ``--set KEY=VALUE`` items; keys are checked against the family's options
    and the solver settings (ValueError with the allowed keys and a close match)."""
    out = {}
    for item in items or []:
        key, sep, text = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text  # a bare string: --set bc=neumann
        out[key] = value
    check_keys(out, FAMILY_OPTIONS[_base(family)] + SET_SOLVER_KEYS, f"--set for {family}")
    return out


def add_arguments(parser: argparse.ArgumentParser, family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; allowed: {', '.join(FAMILIES)}")
    parser.set_defaults(family=family)
    g = parser.add_argument_group("dataset")
    g.add_argument("--n", type=int, default=100, help="number of samples (default 100)")
    g.add_argument(
        "--resolution",
        type=int,
        default=DEFAULT_RESOLUTION[family],
        help="grid points per axis including the boundary (default %(default)s)",
    )
    g.add_argument("--out", default=None, help="output HDF5 file (default data/<family>_<resolution>_n<N>.h5)")
    g.add_argument("--seed", type=int, default=0, help="run seed: sample i depends only on (seed, i)")
    g.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="storage dtype of the fields (float64 keeps the solver tolerance)",
    )
    g.add_argument("--resume", action="store_true", help="continue an interrupted run with the same settings")
    g.add_argument("--overwrite", action="store_true", help="replace an existing dataset or partial run")
    g.add_argument(
        "--max-new", type=int, default=None, help="stop after this many new samples, leaving a resumable partial run"
    )
    g.add_argument("--no-progress", action="store_true", help="no progress line")
    g.add_argument(
        "--print-spec",
        action="store_true",
        help="print the resolved generation spec (family laws, solver settings with the method "
        "--solver auto picks, defaults included) as JSON and exit without generating",
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any documented family option or solver setting, e.g. --set boundary_alpha=2 "
        "(VALUE is JSON or a bare string; unknown keys are refused)",
    )
    s = parser.add_argument_group("solver")
    s.add_argument(
        "--solver",
        choices=SOLVERS,
        default="auto",
        help="skr = sorted GCRO-DR recycling, gmres = PETSc GMRES(m), lu = sparse LU through PETSc "
        "(pivoting UMFPACK/SuperLU when the build has them), cg-gamg = CG + algebraic multigrid (SPD "
        "families); auto = times the candidates on the first sorted samples and keeps the fastest",
    )
    s.add_argument(
        "--pc",
        default=None,
        help="preconditioner of skr/gmres (any PETSc -pc_type, default ilu; "
        "with --solver auto it limits auto to skr/gmres with this PC)",
    )
    s.add_argument("--rtol", type=float, default=1e-8, help="relative tolerance on the true residual (default 1e-8)")
    s.add_argument("--restart", type=int, default=40, help="Krylov restart length m (default 40)")
    s.add_argument("--recycle", type=int, default=20, help="recycled subspace dimension k of skr (default 20)")
    s.add_argument("--max-it", type=int, default=10000, help="iteration cap of one solve")
    s.add_argument(
        "--ordering",
        choices=ORDERINGS,
        default="auto",
        help="solve order: greedy nearest-neighbour, grouped (scalable), none, auto",
    )
    s.add_argument("--group-size", type=int, default=512, help="group size of the grouped ordering")
    s.add_argument(
        "--initial-guess",
        choices=INITIAL_GUESSES,
        default="previous",
        help="previous solution along the order, or zero",
    )
    s.add_argument(
        "--pc-reuse",
        type=int,
        default=1,
        help="systems served by one preconditioner before it is rebuilt (skr/gmres; 1 = every system); "
        "cg-gamg: matrices sharing one GAMG interpolation (auto: 16)",
    )
    s.add_argument(
        "--block",
        type=int,
        default=DEFAULT_BLOCK,
        help="reset the recycled space every BLOCK systems of the sorted order, so resumed and MPI runs "
        "give bit-identical files (0 = never; default %(default)s)",
    )
    s.add_argument("--petsc", default="", help='PETSc options string, e.g. "-skr_pc_factor_levels 1"')
    s.add_argument(
        "--strict-petsc-options",
        action="store_true",
        help="a PETSc option the solver does not read (misspelled, wrong prefix) is an error "
        "(default: a one-line warning; unused options are never recorded as applied)",
    )
    s.add_argument(
        "petsc_args", nargs="*", metavar="-- PETSC_OPTIONS", help="PETSc options after --, e.g. -- -skr_pc_type gamg"
    )
    p = parser.add_argument_group(f"{family} problem")
    base = family.replace("3d", "")
    if base == "darcy":
        p.add_argument(
            "--coefficient",
            choices=("lognormal", "piecewise"),
            default="lognormal",
            help="a = exp(GRF) or the FNO piecewise-constant 12/3 field",
        )
        p.add_argument("--alpha", type=float, default=None, help="GRF smoothness (default 2.5 lognormal, 2 piecewise)")
        p.add_argument("--tau", type=float, default=None, help="GRF inverse length (default 7 lognormal, 3 piecewise)")
        p.add_argument("--forcing", type=float, default=1.0, help="constant source f (default 1)")
    elif base == "helmholtz":
        p.add_argument(
            "--wavenumber",
            type=float,
            default=4 * 3.141592653589793,
            help="mean wavenumber k0 (default 4 pi: two wavelengths across the domain)",
        )
        p.add_argument("--contrast", type=float, default=0.1, help="k = k0 exp(contrast g), g unit-variance GRF")
        p.add_argument("--spread", type=float, default=0.0, help="k0 varies uniformly by +-spread (relative)")
        p.add_argument("--bc", choices=("dirichlet", "neumann"), default="dirichlet", help="boundary condition")
        p.add_argument("--alpha", type=float, default=2.5, help="GRF smoothness")
        p.add_argument("--tau", type=float, default=7.0, help="GRF inverse length")
    elif base == "poisson":
        p.add_argument("--alpha", type=float, default=2.5, help="GRF smoothness")
        p.add_argument("--tau", type=float, default=7.0, help="GRF inverse length")
    else:
        p.add_argument("--steps", type=int, default=10, help="time steps stored per sample")
        p.add_argument("--dt", type=float, default=0.005, help="time step")
        p.add_argument("--theta", type=float, default=1.0, help="1 = backward Euler, 0.5 = Crank-Nicolson")
        p.add_argument("--alpha", type=float, default=2.5, help="GRF smoothness")
        p.add_argument("--tau", type=float, default=7.0, help="GRF inverse length")
        p.add_argument("--forcing", type=float, default=0.0, help="constant source f")
    from datagen.elliptic.user_fields import add_arguments as add_user_fields

    add_user_fields(p, family)


def make_family(args):
    """The family object for parsed ``args`` (flags, then ``--set``; ValueError on bad settings)."""
    fam = args.family
    if fam not in FAMILIES:
        raise ValueError(f"unknown family {fam!r}; allowed: {', '.join(FAMILIES)}")
    keys = FAMILY_OPTIONS[_base(fam)]
    options = {k: getattr(args, k) for k in keys if hasattr(args, k)}
    options.update({k: v for k, v in parse_set(getattr(args, "set", []), fam).items() if k in keys})
    return build_family(fam, args.resolution, options)


def make_config(args) -> GenerationConfig:
    petsc = " ".join(x for x in [args.petsc, " ".join(args.petsc_args)] if x).strip()
    values = dict(
        n_samples=args.n,
        seed=args.seed,
        solver=args.solver,
        pc=args.pc,
        rtol=args.rtol,
        restart=args.restart,
        recycle=args.recycle,
        max_it=args.max_it,
        ordering=args.ordering,
        group_size=args.group_size,
        initial_guess=args.initial_guess,
        pc_reuse=args.pc_reuse,
        petsc_options=petsc,
        dtype=args.dtype,
        block=getattr(args, "block", DEFAULT_BLOCK),
    )
    values.update({k: v for k, v in parse_set(getattr(args, "set", []), args.family).items() if k in SET_SOLVER_KEYS})
    return GenerationConfig.from_dict(values)


def resolved_spec(family, config: GenerationConfig, out: str) -> dict:
    """What ``--print-spec`` prints: the dataset spec the run would write (the family's equation,
    scheme and parameter laws, or ``user_fields``; the solver settings with defaults and the method
    ``--solver auto`` picks and why), plus the run's sample count, seed and output. The options
    PETSc actually reads and the float32 storage check are known only once PETSc has built the
    solver, so ``petsc_options`` is what was asked for."""
    from dataclasses import asdict

    from datagen.elliptic.generator import AUTO_MIN_SAMPLES, auto_choice, table_decision

    solver = asdict(config)
    n, seed = solver.pop("n_samples"), solver.pop("seed")
    if config.solver == "auto":
        if n >= AUTO_MIN_SAMPLES:
            # decided by timing the candidates on the run's first samples: known only when it runs
            choice = auto_choice(family, config)
            solver.update(
                method="auto",
                auto_reason=f"measured on the run's first sorted samples (the table's "
                f"guess, timed first: {choice.method}, {choice.reason})",
            )
        else:
            method, pc, pc_reuse, reason = table_decision(family, config, config.pc)
            solver.update(method=method, auto_reason=reason)
            if pc is not None:
                solver["pc_used"] = pc
            if pc_reuse is not None:
                solver["pc_reuse_used"] = pc_reuse
    else:
        solver["method"] = config.solver
    return {
        "family": family.name,
        "n_samples": n,
        "seed": seed,
        "out": out,
        "spec": build_spec(family.name, {**family.spec(), **solver}),
    }


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _world():
    """mpi4py's COMM_WORLD when started under mpiexec with more than one process, else None."""
    launcher_vars = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "HYDRA_CONTROL_FD")
    if not any(k in os.environ for k in launcher_vars):
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def run(args) -> int:
    from datagen.dataset import DatasetError
    from datagen.elliptic.generator import generate, merge_summaries

    prog = f"neuralops-datagen {args.family}"
    comm = _world()
    rank = comm.Get_rank() if comm is not None else 0
    try:
        if args.n is None or args.n < 1:
            raise ValueError(f"--n must be a positive number of samples, got {args.n}")
        if args.max_new is not None and args.max_new < 0:
            raise ValueError(f"--max-new must be >= 0, got {args.max_new}")
        from datagen.elliptic.user_fields import from_args

        family = from_args(make_family(args), args)  # --coefficient-file etc.: fields read from a file
        config = make_config(args)
        config.validate()
        out = args.out or os.path.join("data", f"{args.family}_{args.resolution}_n{args.n}.h5")
        if getattr(args, "print_spec", False):
            if rank == 0:
                print(json.dumps(resolved_spec(family, config, out), indent=1, default=_json_default))
            return 0
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    except (ValueError, DatasetError, RuntimeError) as err:
        # argument errors are raised identically on every rank: each returns, none waits
        if rank == 0 or comm is None:
            print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    try:
        summary = generate(
            family,
            out,
            config,
            resume=args.resume,
            overwrite=args.overwrite,
            comm=comm,
            progress=not args.no_progress,
            max_new=args.max_new,
            unused_options="error" if getattr(args, "strict_petsc_options", False) else "warn",
        )
    except (ValueError, DatasetError, RuntimeError) as err:
        if comm is not None and comm.Get_size() > 1 and not getattr(err, "collective", False):
            # An error on one rank would leave the others waiting in a collective forever: say
            # which rank failed and abort the job. Written segments stay valid for --resume.
            print(f"{prog}: error on rank {rank}: {err} (aborting all ranks)", file=sys.stderr, flush=True)
            comm.Abort(2)
        if rank == 0 or comm is None:
            print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    parts = comm.gather(summary, root=0) if comm is not None else [summary]
    if rank == 0:
        print(merge_summaries(parts).text())
    return 0 if summary.complete or args.max_new is not None else 1
