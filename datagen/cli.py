"""``neuralops-datagen``: one command, one subcommand per PDE family or generator.

Each generator module exposes ``add_arguments(parser)`` and ``run(args) -> int``; this file only
dispatches, so generators stay independent of each other. Only the chosen subcommand's module is
imported (the elliptic generators never import torch, which the navier-stokes one needs).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from datagen.help_format import show_defaults

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


def build_parser(families=None, argv=None) -> argparse.ArgumentParser:
    """The CLI parser; only the subcommands in ``families`` (None: all) import their module and get
    their arguments, the others are listed with their help line. ``argv`` reaches generators whose
    ``add_arguments`` takes it (navier-stokes shows the values of the ``--recipe`` named there as
    its overrides' defaults)."""
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
        params = _parameters(mod)
        kwargs = {"argv": argv} if "argv" in params else {}
        mod.add_arguments(p, name, **kwargs) if "family" in params else mod.add_arguments(p, **kwargs)
    return show_defaults(parser)  # every option's default in --help


def _parameters(mod) -> tuple:
    import inspect

    return tuple(inspect.signature(mod.add_arguments).parameters)


def _petsc_command_line(argv: list[str]) -> list[str]:
    """The PETSc options of a command line: the ``--petsc "..."`` string and everything after ``--``.

    They are handed to ``PetscInitialize`` as on any PETSc program's command line, so options
    PETSc reads when it starts or finishes (``-log_view``, ``-options_left``, ``-info``, ...) work.
    Returns ``[]`` when they do not parse as PETSc options (the generator then reports the error).
    """
    import shlex

    tokens = []
    for i, tok in enumerate(argv):
        if tok == "--":
            tokens += argv[i + 1 :]
            break
        if tok == "--petsc" and i + 1 < len(argv):
            tokens = shlex.split(argv[i + 1]) + tokens if argv[i + 1].strip() else tokens
        elif tok.startswith("--petsc="):
            tokens = shlex.split(tok[len("--petsc=") :]) + tokens
    if not tokens or not tokens[0].startswith("-") or any(t in ("-", "--") for t in tokens):
        return []
    return tokens


def _init_petsc(argv: list[str] | None = None) -> None:
    """Initialise PETSc without its signal handler, before anything imports ``petsc4py.PETSc``,
    with the PETSc options of the command line ``argv`` (:func:`_petsc_command_line`).

    PETSc's handler would catch SIGTERM (and crash signals) itself, print its error trace and
    abort, pre-empting the flush of finished samples; with ``-no_signal_handler`` the signals
    reach Python (see :func:`main`). Does nothing without petsc4py or once PETSc is initialised
    (options then reach the database when the generator inserts them; ``-log_view`` and
    ``-options_left`` only work when they are given at initialisation).
    """
    if "petsc4py.PETSc" in sys.modules:
        return
    try:
        import petsc4py
    except ImportError:
        return
    try:
        extra = _petsc_command_line(list(sys.argv[1:] if argv is None else argv))
    except ValueError:  # unbalanced quotes in --petsc: the generator reports it
        extra = []
    asked = " ".join(extra + [os.environ.get("PETSC_OPTIONS", "")])
    if extra and "-options_left" not in asked:
        # the generator reports an unused option in one line (datagen.elliptic.generator.check_petsc_options);
        # PETSc's own report at exit is what -options_left asks for
        extra += ["-options_left", "0"]
    petsc4py.init(["-no_signal_handler", *extra])  # petsc4py puts the program name in front itself


def chosen_family(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first argument that is not an option), or None."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the program itself (not a call from Python): set the allocator
        from datagen.allocator import ensure

        ensure()
    from datagen.dataset import Interrupted, interruptible

    argv = sys.argv[1:] if argv is None else list(argv)
    _init_petsc(argv)
    parser = build_parser(families=(chosen_family(argv),), argv=argv)
    args = parser.parse_args(argv)
    prog = f"neuralops-datagen {args.family}"
    err = getattr(args, "_import_error", None)
    if err is not None:
        parser.exit(
            2,
            f"{prog}: cannot import {args._module}: {err}\n"
            "Run `make env` (or scripts/setup_env.sh) to install PETSc/petsc4py and the rest.\n",
        )
    mod = importlib.import_module(args._module)
    formatwarning = warnings.formatwarning
    warnings.formatwarning = lambda msg, category, *a, **k: f"{prog}: warning: {msg}\n"  # one line each
    try:
        with interruptible():
            return int(mod.run(args) or 0)
    except Interrupted as exc:
        # finished samples were flushed by the writer while the exception unwound
        where = (
            f"{exc.saved} finished samples are saved in {exc.partial_dir}"
            if exc.partial_dir
            else "no samples were written yet"
        )
        print(
            f"{prog}: interrupted by {exc}: {where}; run the same command with --resume to continue",
            file=sys.stderr,
            flush=True,
        )
        return exc.exit_code
    except OSError as exc:  # full disk, read-only output, missing input: one line, no traceback
        print(f"{prog}: error: {_os_error_text(exc)}", file=sys.stderr, flush=True)
        return 1
    finally:
        warnings.formatwarning = formatwarning


def _os_error_text(exc: OSError) -> str:
    """One line for an environment error (h5py wraps errno into long messages)."""
    import errno as _errno

    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if exc.errno == _errno.ENOSPC or "No space left" in text:
        return (
            f"no space left on the device ({exc.filename or text}); free space or choose another --out, "
            "then resume with --resume"
        )
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return text


if __name__ == "__main__":
    sys.exit(main())
