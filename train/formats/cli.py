"""``neuralops-data import`` (all formats) and ``neuralops-data export``.

The FNO ``.mat`` and PDEBench importers live in :mod:`train.importers`; this module adds the
``neuraloperator`` and ``the-well`` formats and their options to that command, gives PDEBench files
their boundary condition (:mod:`.pdebench`) and provides ``export --format the-well``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from datagen.dataset import DatasetError
from train import importers

from .grid import NODE_CONVENTIONS
from .progress_writer import summary_line

NEW_FORMATS = ("neuraloperator", "the-well")
EXPORT_FORMATS = ("the-well",)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of :func:`train.importers.add_arguments` plus the new formats and options."""
    importers.add_arguments(parser)
    for action in parser._actions:
        if action.dest == "format":
            action.choices = tuple(action.choices) + tuple(f for f in NEW_FORMATS if f not in action.choices)
            action.help = "layout of the source file: " + ", ".join(action.choices)
        if action.dest == "viscosity":
            action.help = "fno-ns: viscosity (default: from the file name); neuraloperator navier-stokes: required"
        if action.dest == "boundary":
            action.help = (
                "pdebench: boundary condition of both axes (default: PDEBench's for the file); "
                "the-well: the condition at a WALL"
            )
        if action.dest == "source":
            action.help = "the file to import (.mat v5/v7.3, PDEBench .h5/.hdf5, neuraloperator .pt, The Well .hdf5)"
    g = parser.add_argument_group("neuraloperator / The Well")
    g.add_argument(
        "--node-convention",
        choices=NODE_CONVENTIONS,
        default=None,
        help="grid points: nodes-with-walls x_j = j/(s-1); nodes-without-far-wall x_j = j/s; "
        "cell-centres x_j = (j+1/2)/s (default: read from the file or its format)",
    )
    g.add_argument(
        "--problem",
        choices=("darcy", "navier-stokes"),
        default=None,
        help="neuraloperator: the problem of the .pt file (default: from the file name)",
    )
    g.add_argument(
        "--mask-values",
        default=None,
        metavar="LOW,HIGH",
        help="neuraloperator darcy: 'x' is a 0/1 mask of a coefficient with these values (FNO: 3,12)",
    )
    g.add_argument("--source-term", type=float, default=1.0, help="neuraloperator darcy: constant f (default 1)")
    g.add_argument("--box", type=float, default=None, help="neuraloperator navier-stokes: side of the periodic box")
    g.add_argument(
        "--forcing",
        choices=("none", "fno", "kolmogorov"),
        default=None,
        help="neuraloperator navier-stokes: the forcing of the data",
    )
    return parser


def run(args) -> int:
    from .neuraloperator import import_neuraloperator
    from .pdebench import pdebench_boundary
    from .the_well import import_the_well

    try:
        if args.format not in NEW_FORMATS and args.node_convention is not None:
            raise ValueError(
                f"{args.format} files fix their grid (fno-*: nodes x_j = j/(s-1) with both walls for "
                f"Darcy, j/s periodic for Navier-Stokes; pdebench: the file's own coordinates); "
                f"--node-convention applies to neuraloperator and the-well"
            )
        if args.format == "neuraloperator":
            out = import_neuraloperator(
                args.source,
                args.out,
                problem=args.problem,
                node_convention=args.node_convention,
                mask_values=args.mask_values,
                source_term=args.source_term,
                viscosity=args.viscosity,
                box=args.box,
                forcing=args.forcing,
                limit=args.limit,
                dtype=args.dtype,
                overwrite=args.overwrite,
            )
        elif args.format == "the-well":
            out = import_the_well(
                args.source,
                args.out,
                node_convention=args.node_convention,
                boundary=args.boundary,
                limit=args.limit,
                overwrite=args.overwrite,
            )
        else:
            if args.format == "pdebench":
                args.boundary = pdebench_boundary(args.source, args.boundary)
            return importers.run(args)
    except (OSError, KeyError, ValueError, DatasetError) as exc:
        print(f"neuralops-data import: {exc}", file=sys.stderr)
        return 1
    print(summary_line(out))
    return 0


def add_export_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="layout to write")
    parser.add_argument("source", help="a neuralops dataset (.h5)")
    parser.add_argument("out", help="the file to write (The Well: <dir>/data/<split>/<name>.hdf5 for its loaders)")
    parser.add_argument("--name", default=None, help="The Well dataset_name (default: the dataset's pde)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser


def run_export(args) -> int:
    from .the_well import export_the_well

    try:
        out = export_the_well(args.source, args.out, dataset_name=args.name, overwrite=args.overwrite)
    except (OSError, KeyError, ValueError, DatasetError) as exc:
        print(f"neuralops-data export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="neuralops-data import"))
    return run(parser.parse_args(argv))
