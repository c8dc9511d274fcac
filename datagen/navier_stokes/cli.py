"""``neuralops-datagen navier-stokes``: batched pseudo-spectral Navier-Stokes datasets.

Examples::

    neuralops-datagen navier-stokes --recipe fno --viscosity 1e-3 --n 1200 --out data/ns_v1e-3.h5 \\
        --device cuda --batch-size 100 --dtype float32
    neuralops-datagen navier-stokes --recipe mcwilliams --n 100 --out data/mcw.h5 --resume
    neuralops-datagen navier-stokes --recipe fno --viscosity 1e-3 --n 4 --resolution 64 \\
        --store-resolution 32 --t-end 2 --dt 1e-3 --out /tmp/tiny.h5          # a quick look

Every recipe key can be overridden by its flag; ``--set key=value`` (JSON value) reaches the rest.
"""

from __future__ import annotations

import argparse
import json
import sys

from .recipes import OPTIONAL_FIELDS, RECIPES, recipe
from .resample import RESAMPLE_METHODS
from .solver import DT_MODES
from .steppers import STEPPERS

__all__ = ["add_arguments", "run", "spec_from_args", "resolved_spec"]


def _recipe_in(argv) -> str:
    """The ``--recipe`` named in ``argv`` (the default ``fno`` when absent or unknown)."""
    argv = list(argv or [])
    for i, a in enumerate(argv):
        name = argv[i + 1] if a == "--recipe" and i + 1 < len(argv) else (a[9:] if a.startswith("--recipe=") else None)
        if name in RECIPES:
            return name
    return "fno"


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return value.get("type", json.dumps(value))
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return str(value)


def add_arguments(parser: argparse.ArgumentParser, argv=None) -> None:
    """Arguments of the ``navier-stokes`` subcommand. The recipe overrides show the values of the
    recipe named in ``argv`` (``--recipe NAME``; default ``fno``) as their defaults."""
    name = _recipe_in(argv)
    base = recipe(name)

    def d(key, text=""):
        value = (
            base.get(key)
            if key != "t_end"
            else base["t_start"]
            + base["snapshot_interval"] * (base["n_snapshots"] - (1 if base["include_initial"] else 0))
        )
        return f"{text} (default: {_shown(value)}, recipe {name})".strip()

    p = parser
    p.add_argument(
        "--recipe",
        default="fno",
        help=f"one of: {', '.join(RECIPES)} (default fno); "
        "`--recipe NAME --help` shows NAME's values as the defaults below",
    )
    p.add_argument("--n", type=int, required=True, help="number of trajectories")
    p.add_argument("--out", required=True, help="output dataset (.h5)")
    p.add_argument("--seed", type=int, default=0, help="run seed (sample i uses sample_rng(seed, i))")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument("--batch-size", type=int, default=8, help="trajectories solved together (default 8)")
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="compute precision (default float32, as the FNO data were made; about 2x the "
        "throughput of float64, see the README for the difference on a stored trajectory)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (by batch)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset or partial run")
    p.add_argument("--no-progress", action="store_true", help="no progress line")
    p.add_argument(
        "--print-spec",
        action="store_true",
        help="print the resolved spec (recipe, then the flags and --set below, defaults included) "
        "as JSON and exit without generating",
    )
    g = p.add_argument_group(f"recipe overrides (defaults: recipe {name}'s values)")
    g.add_argument("--viscosity", type=float, help=d("viscosity", "kinematic viscosity nu"))
    g.add_argument("--box", type=float, help=d("box", "side L of the periodic box"))
    g.add_argument("--resolution", type=int, help=d("resolution", "solver grid n"))
    g.add_argument("--store-resolution", type=int, help=d("store_resolution", "stored grid m"))
    g.add_argument("--resample", choices=RESAMPLE_METHODS, help=d("resample", "solver grid -> stored grid"))
    g.add_argument("--stepper", choices=STEPPERS, help=d("stepper"))
    g.add_argument("--dt-mode", choices=DT_MODES, help=d("dt_mode"))
    g.add_argument("--dt", type=float, help=d("dt", "fixed step, or the step cap in cfl mode"))
    g.add_argument("--cfl", type=float, help=d("cfl", "target CFL number in cfl mode"))
    g.add_argument("--t-start", type=float, help=d("t_start", "first stored time (warm-up before it)"))
    g.add_argument("--t-end", type=float, help=d("t_end", "last stored time"))
    g.add_argument("--snapshot-interval", type=float, help=d("snapshot_interval"))
    g.add_argument("--n-snapshots", type=int, help=d("n_snapshots"))
    g.add_argument(
        "--include-initial",
        action="store_true",
        default=None,
        help=d("include_initial", "store the state at t_start as the first frame"),
    )
    g.add_argument("--drag", type=float, help=d("drag", "linear drag alpha"))
    g.add_argument("--forcing", choices=("none", "fno", "kolmogorov"), help=d("forcing"))
    g.add_argument(
        "--initial",
        metavar="FILE",
        help=f"user-supplied initial vorticities (.npy (N, m, m), .npz, .h5) (default: "
        f"{_shown(base['initial'])} draws, recipe {name})",
    )
    g.add_argument("--initial-key", help="array name inside an .npz/.h5 --initial file")
    g.add_argument(
        "--fields",
        nargs="+",
        choices=("vorticity",) + OPTIONAL_FIELDS,
        help=d("fields", "stored fields (vorticity always)"),
    )
    g.add_argument("--store-dtype", choices=("float32", "float64"), help=d("store_dtype"))
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help='any other spec key, e.g. --set \'initial={"type": "mcwilliams", "peak_wavenumber": 6}\'',
    )


def spec_from_args(args: argparse.Namespace) -> dict:
    """The checked spec: recipe, then flags, then ``--set`` entries."""
    over = {
        "viscosity": args.viscosity,
        "box": args.box,
        "resolution": args.resolution,
        "store_resolution": args.store_resolution,
        "resample": args.resample,
        "stepper": args.stepper,
        "dt_mode": args.dt_mode,
        "dt": args.dt,
        "cfl": args.cfl,
        "t_start": args.t_start,
        "t_end": args.t_end,
        "snapshot_interval": args.snapshot_interval,
        "n_snapshots": args.n_snapshots,
        "include_initial": args.include_initial,
        "drag": args.drag,
        "store_dtype": args.store_dtype,
    }
    if args.forcing is not None:
        over["forcing"] = {"type": args.forcing}
    if args.initial is not None:
        over["initial"] = {"type": "file", "path": args.initial}
        if args.initial_key:
            over["initial"]["key"] = args.initial_key
    if args.fields is not None:
        over["fields"] = ["vorticity"] + [f for f in args.fields if f != "vorticity"]
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=JSON, got {item!r}")
        try:
            over[key.strip()] = json.loads(value)
        except ValueError:
            over[key.strip()] = value
    return recipe(args.recipe, over)


def resolved_spec(spec: dict, args: argparse.Namespace) -> dict:
    """What ``--print-spec`` prints: the spec the run writes (recipe, overrides, compute dtype,
    seeding rule and grid record) and the run's sample count, seed, output, device and batch size."""
    from datagen.spec import build_spec

    from .generator import PDE_NAME, SEEDING, SPEC_KEY, grid_record

    return {
        "family": "navier-stokes",
        "n_samples": args.n,
        "seed": args.seed,
        "out": args.out,
        "device": args.device,
        "batch_size": args.batch_size,
        "spec": build_spec(
            PDE_NAME, {**spec, "compute_dtype": args.dtype, "seeding": SEEDING, SPEC_KEY: grid_record(spec)}
        ),
    }


def run(args: argparse.Namespace) -> int:
    from datagen.dataset import DatasetError

    from .generator import generate

    try:
        spec = spec_from_args(args)
        if getattr(args, "print_spec", False):
            print(json.dumps(resolved_spec(spec, args), indent=1))
            return 0
        generate(
            spec,
            args.out,
            args.n,
            seed=args.seed,
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (ValueError, DatasetError) as exc:  # as the elliptic families: one line, exit status 2
        print(f"neuralops-datagen navier-stokes: error: {exc}", file=sys.stderr)
        return 2
    return 0
