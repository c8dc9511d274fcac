"""``neuralops-train``: LightningCLI with ``fit``, ``validate``, ``test`` and ``predict``, plus
``configs`` (list the packaged configs) and ``refine`` (spectral refinement, :mod:`train.refine.cli`).

::

    neuralops-train fit --config darcy_mgno --data.path data/darcy.h5
    neuralops-train fit -c darcy_fno --data.path train.h5 --data.val val.h5 --data.test test.h5
    neuralops-train fit --config darcy_mgno --data.path data/darcy.h5 --ckpt_path last        # resume
    neuralops-train test --config darcy_mgno --data.path data/darcy.h5 --ckpt_path runs/darcy_mgno/checkpoints/last.ckpt
    neuralops-train fit --config ns_fno3d --trainer.devices 4 --trainer.strategy ddp
    neuralops-train refine ...      # spectral refinement of an SFNO (train.refine.cli)

``--config NAME`` / ``-c NAME`` finds ``train/configs/NAME.yaml`` in the installed package
(``neuralops-train configs`` lists them); a path to a YAML file works too (an existing file wins
over a packaged name; a folder of the same name never does). A config holds ``trainer``,
``model`` (:class:`train.module.NeuralOperatorModule`), ``data`` (``class_path:
train.data.SteadyDataModule`` or ``train.data.TrajectoryDataModule``), ``checkpoint``
(``ModelCheckpoint``: the best by ``val/relative_l2``) and ``seed_everything``. ``model.data_io``
is linked from the data module (channel counts, windows, grid), so the model always matches the
data.

Checkpoints: ``last.ckpt`` holds the weights after the last finished epoch, written after every
epoch by its own callback (:class:`LastCheckpoint`), whatever the monitored metric did (Lightning
>= 2.6 writes ``save_last`` only when a new best is saved); ``best-<epoch>.ckpt`` the best by the
monitored metric. ``--ckpt_path last`` resumes from it. A checkpoint of another model or data
layout is refused with a message naming both.

Splits (``--data.train`` / ``--data.val`` / ``--data.test``) are always read as strings, in every
spelling (``0:20``, ``-4:``, ``0.9:``, ``--data.test -4:``), on the command line and in YAML files:
YAML 1.1 would read ``10:20`` as the base-60 number 620.

Loggers: unless the config sets ``trainer.logger``, a CSV logger (always) and a TensorBoard logger
(when ``tensorboard`` is installed) write under ``<trainer.default_root_dir>/logs/version_N``; the
paths are printed when training starts.

Errors in the configuration, the data or the run (a non-finite loss, a foreign checkpoint) end
with one line ``neuralops-train: error: ...`` and exit status 2 (1 for a diverged run); set
``NEURALOPS_TRACEBACK=1`` for the traceback.
"""

from __future__ import annotations

import os
import re
import sys
from typing import List, Optional, Sequence

if __name__ == "__main__":  # `python -m train.cli`: the allocator is set before torch is imported
    from datagen.allocator import ensure

    ensure()

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
SUBCOMMANDS = {
    "fit": "train a model (LightningCLI)",
    "validate": "evaluate on the validation split (LightningCLI)",
    "test": "evaluate on the test split, e.g. of a file at another resolution (LightningCLI)",
    "predict": "write the predictions of the test split to a data-contract file (LightningCLI)",
    "configs": "list the packaged configs (names for --config / -c)",
    "refine": "spectral refinement of a trajectory model's predictions (neuralops-train refine --help)",
}
SPLIT_KEYS = ("train", "val", "test")

__all__ = ["available_configs", "resolve_config_args", "main", "CONFIG_DIR", "SUBCOMMANDS"]


def available_configs() -> List[str]:
    """Names of the packaged configs (``train/configs/*.yaml``)."""
    return sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".yaml"))


def _resolve(value: str) -> str:
    """A config argument -> a file: an existing file as given, else a packaged config by name
    (``darcy_mgno`` or ``darcy_mgno.yaml``). Folders are never configs, so a folder named like a
    packaged config in the working directory does not shadow it."""
    if os.path.isfile(value):
        return value
    name = value[:-5] if value.endswith(".yaml") else value
    if os.sep not in name and "/" not in name:
        candidate = os.path.join(CONFIG_DIR, name + ".yaml")
        if os.path.exists(candidate):
            return candidate
    what = "a folder, not a config file" if os.path.isdir(value) else "neither a file nor a packaged config"
    raise SystemExit(
        f"neuralops-train: config {value!r} is {what}; packaged configs: "
        f"{', '.join(available_configs())} (neuralops-train configs)"
    )


_SPLIT_OPTION = re.compile(r"^--data\.(?:init_args\.)?(train|val|test)$")


def resolve_config_args(argv: Sequence[str]) -> List[str]:
    """Prepare the arguments for LightningCLI: ``--config NAME`` / ``-c NAME`` / ``--config=NAME``
    -> the packaged file's path; ``--data.test -4:`` -> ``--data.test=-4:`` (argparse would take a
    value starting with ``-`` for an option)."""
    out: List[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--config", "-c") and i + 1 < len(args):
            out += [a, _resolve(args[i + 1])]
            i += 2
            continue
        if a.startswith("--config="):
            out.append("--config=" + _resolve(a.split("=", 1)[1]))
        elif _SPLIT_OPTION.match(a) and i + 1 < len(args):
            out.append(f"{a}={args[i + 1]}")
            i += 2
            continue
        else:
            out.append(a)
        i += 1
    return out


def __getattr__(name: str):
    """``NeuralOperatorCLI``, ``LastCheckpoint`` and ``_install_split_safe_yaml`` live in
    :mod:`train.lightning_cli`, imported on first use: ``--help``, ``configs`` and ``refine`` then
    start without importing Lightning (which takes seconds)."""
    if name in ("NeuralOperatorCLI", "LastCheckpoint", "_install_split_safe_yaml"):
        from . import lightning_cli

        return getattr(lightning_cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _help() -> str:
    lines = [
        "usage: neuralops-train SUBCOMMAND [options]",
        "",
        "Train and evaluate neural operators on data-contract files (LightningCLI).",
        "",
        "subcommands:",
    ]
    lines += [f"  {name:10s} {text}" for name, text in SUBCOMMANDS.items()]
    lines += [
        "",
        "examples:",
        "  neuralops-train configs",
        "  neuralops-train fit -c darcy_fno --data.path data/darcy.h5",
        "  neuralops-train fit -c darcy_fno --data.path train.h5 --data.val val.h5 --data.test test.h5",
        "  neuralops-train fit -c darcy_fno --data.path data/darcy.h5 --ckpt_path last      # resume",
        "  neuralops-train test -c darcy_fno --data.path data/darcy.h5 --data.test data/darcy_64.h5 "
        "--ckpt_path runs/darcy_fno/checkpoints/last.ckpt",
        "",
        "`neuralops-train SUBCOMMAND --help` lists a subcommand's options (with -c NAME: with the config's values).",
    ]
    return "\n".join(lines)


_WRAPPERS = ("Does not validate against any of the Union subtypes", "Problem with given class_path")


def _user_error(exc: BaseException) -> BaseException:
    """The error to show: jsonargparse wraps a data module's ``ValueError`` in its own (listing the
    Union's subtypes and the whole namespace); the original is in the exception chain."""
    x, seen = exc, set()
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        if not str(x).startswith(_WRAPPERS):
            return x
        x = x.__cause__ or x.__context__
    return exc


def _error(exc: BaseException) -> int:
    from .module import NonFiniteLossError

    exc = _user_error(exc)
    text = " ".join(str(exc).split())  # one line, whatever the message
    print(f"neuralops-train: error: {text}", file=sys.stderr)
    return 1 if isinstance(exc, NonFiniteLossError) else 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_help())
        return 0 if argv else 2
    if argv[0] == "refine":
        from train.refine.cli import main as refine_main

        return int(refine_main(argv[1:]) or 0)
    if argv[0] == "configs":
        for name in available_configs():
            print(f"{name:16s} {os.path.join(CONFIG_DIR, name + '.yaml')}")
        return 0
    from lightning.pytorch import LightningDataModule

    from datagen.dataset import DatasetError

    from .lightning_cli import NeuralOperatorCLI, _install_split_safe_yaml
    from .module import NeuralOperatorModule, NonFiniteLossError

    _install_split_safe_yaml()
    try:
        args = resolve_config_args(argv)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    if from_command_line:
        # LightningCLI reads sys.argv itself (and warns when given both): hand it the resolved one
        sys.argv[1:] = args
        args = None
    try:
        NeuralOperatorCLI(
            NeuralOperatorModule,
            LightningDataModule,
            subclass_mode_data=True,
            args=args,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
        )
    except (ValueError, FileNotFoundError, DatasetError, NonFiniteLossError, OSError) as exc:
        if os.environ.get("NEURALOPS_TRACEBACK"):
            raise
        return _error(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
