"""``neuralops-data info|validate PATH``: look inside and check datasets.

(``neuralops-data import`` lives in :mod:`train.data_cli`, which extends this parser, because the
importers belong to the training side and ``datagen`` imports nothing from ``train``.)
"""

from __future__ import annotations

import json
import sys

from .dataset import describe, open_dataset, validate


def add_commands(sub) -> None:
    p = sub.add_parser("info", help="describe a dataset: fields, shapes, grid, spec, solver statistics")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print the spec and layout as JSON")
    p.set_defaults(_run=_info)
    p = sub.add_parser("validate", help="check a dataset against the data contract; exit 1 on any violation")
    p.add_argument("path")
    p.add_argument("--shallow", action="store_true", help="do not read every sample (skips checksum/NaN checks)")
    p.set_defaults(_run=_validate)


def _info(args) -> int:
    """A file that is not a dataset raises :class:`DatasetError`: the ``neuralops-data`` entry point
    (:mod:`train.data_cli`) prints it as its one-line ``neuralops-data info: error: ...`` (exit 1)."""
    if args.json:
        ds = open_dataset(args.path, include_invalid=True)
        print(
            json.dumps(
                {
                    "path": ds.path,
                    "pde": ds.pde,
                    "n_samples": ds.n_samples,
                    "seed": ds.seed,
                    "n_valid": ds.n_samples - ds.n_invalid,
                    "invalid": {str(i): r for i, r in ds.invalid_reasons.items()},
                    "fields": {
                        k: {"role": ds.role(k), "shape": list(ds.field_shape(k)), "dtype": str(ds.dtype(k))}
                        for k in ds.fields
                    },
                    "grid": {
                        a: {
                            "n": int(c.size),
                            "min": float(c.min()),
                            "max": float(c.max()),
                            "boundary": ds.grid.boundary.get(a),
                        }
                        for a, c in ds.grid.coords.items()
                    },
                    "params": ds.param_names,
                    "solver": ds.solver_names,
                    "spec": ds.spec,
                },
                indent=2,
            )
        )
    else:
        print(describe(args.path))
    return 0


def _validate(args) -> int:
    problems = validate(args.path, deep=not args.shallow)
    if problems:
        print(f"{args.path}: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"{args.path}: valid neuralops dataset")
    return 0
