"""``neuralops-datagen``: one command, one subcommand per PDE family or generator.

Each generator module exposes ``add_arguments(parser)`` and ``run(args) -> int``; this file only
dispatches, so generators stay independent of each other. Only the chosen subcommand's module is
imported (the elliptic generators never import torch, which the navier-stokes one needs).
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "darcy": ("datagen.elliptic.cli", "Darcy flow -div(a grad u) = f (SKR on PETSc)"),
    "darcy3d": ("datagen.elliptic.cli", "3D Darcy flow (SKR on PETSc)"),
    "helmholtz": ("datagen.elliptic.cli", "Helmholtz -Lap u - k(x)^2 u = f (SKR on PETSc)"),
    "helmholtz3d": ("datagen.elliptic.cli", "3D Helmholtz (SKR on PETSc)"),
    "poisson": ("datagen.elliptic.cli", "Poisson with random source and boundary data (SKR on PETSc)"),
    "heat": ("datagen.elliptic.cli", "transient heat equation, implicit steps (SKR on PETSc)"),
    "navier-stokes": ("datagen.navier_stokes.cli", "2D incompressible Navier-Stokes, batched pseudo-spectral"),
}


def build_parser(families=None) -> argparse.ArgumentParser:
    """The CLI parser; only the subcommands in ``families`` (None: all) import their module and get
    their arguments, the others are listed with their help line."""
    parser = argparse.ArgumentParser(
        prog="neuralops-datagen",
        description="Generate PDE datasets in the neuralops HDF5 format.",
    )
    sub = parser.add_subparsers(dest="family", metavar="FAMILY")
    sub.required = True
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if families is not None and name not in families:
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            # The generator's own dependency is missing (e.g. petsc4py): say so when it is used.
            p.set_defaults(_import_error=err)
            continue
        mod.add_arguments(p, name) if _takes_family(mod) else mod.add_arguments(p)
    return parser


def _takes_family(mod) -> bool:
    import inspect

    return len(inspect.signature(mod.add_arguments).parameters) >= 2


def chosen_family(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first argument that is not an option), or None."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: list[str] | None = None) -> int:
    if argv is None:                       # the program itself (not a call from Python): set the allocator
        from datagen.allocator import ensure

        ensure()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(families=(chosen_family(argv),))
    args = parser.parse_args(argv)
    err = getattr(args, "_import_error", None)
    if err is not None:
        parser.exit(2, f"neuralops-datagen {args.family}: cannot import {args._module}: {err}\n"
                       "Run `make env` (or scripts/setup_env.sh) to install PETSc/petsc4py and the rest.\n")
    mod = importlib.import_module(args._module)
    return int(mod.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
