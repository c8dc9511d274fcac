"""``neuralops-data``: info and validate (from :mod:`datagen.cli_data`) plus ``import``, which
converts published benchmark files (FNO ``.mat``, PDEBench HDF5) into the data contract."""

from __future__ import annotations

import argparse
import os
import sys

from datagen.cli_data import add_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuralops-data", description="Inspect, check and import neuralops datasets.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_commands(sub)
    import importlib

    try:
        importers = importlib.import_module("train.formats.cli")  # train.importers + neuraloperator, The Well
    except ModuleNotFoundError as err:  # importers not part of this build
        if err.name not in ("train.importers", "train.formats", "train.formats.cli"):
            raise
    else:
        p = sub.add_parser("import", help="convert a published benchmark file into a neuralops dataset")
        importers.add_arguments(p)
        p.set_defaults(_run=importers.run)
        e = sub.add_parser("export", help="write a neuralops dataset in another layout (The Well)")
        importers.add_export_arguments(e)
        e.set_defaults(_run=importers.run_export)
    from datagen.help_format import show_defaults

    return show_defaults(parser)  # every option's default in --help


def main(argv=None) -> int:
    if argv is None and __name__ == "__main__":  # `python -m train.data_cli` (the entry point sets it first)
        from datagen.allocator import ensure

        ensure()
    args = build_parser().parse_args(argv)
    from datagen.dataset import DatasetError

    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:
        # the reader stopped early (``neuralops-data info X | head``): not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except (OSError, DatasetError) as exc:  # missing input, full disk, read-only output: one line
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror and exc.filename:
            text = f"{exc.strerror}: {exc.filename}"
        print(f"neuralops-data {args.command}: error: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
