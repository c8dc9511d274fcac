"""``neuralops-data``: info and validate (from :mod:`datagen.cli_data`) plus ``import``, which
converts published benchmark files (FNO ``.mat``, PDEBench HDF5) into the data contract."""
from __future__ import annotations

import argparse
import sys

from datagen.cli_data import add_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuralops-data",
                                     description="Inspect, check and import neuralops datasets.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_commands(sub)
    import importlib

    try:
        importers = importlib.import_module("train.importers")
    except ModuleNotFoundError as err:  # importers not part of this build
        if err.name != "train.importers":
            raise
    else:
        p = sub.add_parser("import", help="convert a published benchmark file into a neuralops dataset")
        importers.add_arguments(p)
        p.set_defaults(_run=importers.run)
    return parser


def main(argv=None) -> int:
    if argv is None and __name__ == "__main__":     # `python -m train.data_cli` (the entry point sets it first)
        from datagen.allocator import ensure
        ensure()
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
