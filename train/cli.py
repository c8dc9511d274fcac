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

import importlib.util
import os
import re
import sys
from typing import List, Optional, Sequence

if __name__ == "__main__":          # `python -m train.cli`: the allocator is set before torch is imported
    from datagen.allocator import ensure
    ensure()

from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

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

__all__ = ["NeuralOperatorCLI", "LastCheckpoint", "available_configs", "resolve_config_args", "main",
           "CONFIG_DIR", "SUBCOMMANDS"]


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
    raise SystemExit(f"neuralops-train: config {value!r} is {what}; packaged configs: "
                     f"{', '.join(available_configs())} (neuralops-train configs)")


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


# ------------------------------------------------------------------------------------------------
# YAML: split values stay strings
# ------------------------------------------------------------------------------------------------
_SPLIT_LINE = re.compile(r"^(?P<head>\s*(?:train|val|test)\s*:\s+)(?P<value>-?(?:\d+|\d*\.\d+|\d+\.)?:"
                         r"-?(?:\d+|\d*\.\d+|\d+\.)?)(?P<tail>\s*(?:#.*)?)$", re.M)


def _install_split_safe_yaml() -> None:
    """Wrap jsonargparse's YAML loader so that split values are strings: a value that is a range
    (``10:20``, ``-4:``, ``0.9:``) is returned as written, and in YAML documents the unquoted
    ``train:`` / ``val:`` / ``test:`` ranges are quoted before loading (YAML 1.1 reads ``10:20`` as
    620 and ``-4:`` as a mapping)."""
    from jsonargparse import get_loader, set_loader

    from .data.splits import SPLIT_VALUE

    base = get_loader("yaml")
    if getattr(base, "_neuralops_split_safe", False):
        return

    def load(stream, *args, **kwargs):
        if isinstance(stream, str):
            if SPLIT_VALUE.match(stream):
                return stream.strip()
            if ":" in stream and "\n" in stream:
                stream = _SPLIT_LINE.sub(lambda m: f'{m["head"]}"{m["value"]}"{m["tail"]}', stream)
        return base(stream, *args, **kwargs)

    load._neuralops_split_safe = True  # type: ignore[attr-defined]
    import yaml

    set_loader("yaml", load, exceptions=(yaml.YAMLError,))


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------
class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` after every training epoch (and at the end of training), whatever the
    monitored metric did: a ``ModelCheckpoint`` without monitor, top-1 under the fixed name
    ``last``, saved at the end of each training epoch (after validation), overwritten in place.
    Only public ``ModelCheckpoint`` arguments, so the behaviour does not depend on the Lightning
    version's ``save_last`` rules."""

    def __init__(self, dirpath: Optional[str] = None):
        super().__init__(dirpath=dirpath, filename=self.CHECKPOINT_NAME_LAST, monitor=None, save_top_k=1,
                         save_last=False, enable_version_counter=False, save_on_train_epoch_end=True)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(last=True)


class NeuralOperatorCLI(LightningCLI):
    """LightningCLI + a ModelCheckpoint group + ``last.ckpt`` every epoch + the data -> model link +
    default loggers + checks of ``--ckpt_path`` against the config."""

    def init_parser(self, **kwargs):
        _install_split_safe_yaml()   # before any value or config file is loaded
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/relative_l2", "checkpoint.mode": "min",
                             "checkpoint.save_last": True, "checkpoint.filename": "best-{epoch:03d}",
                             "checkpoint.save_top_k": 1})
        parser.link_arguments("data.io", "model.data_io", apply_on="instantiate")
        parser.add_argument("--predictions_path", type=Optional[str], default=None,
                            help="predict: where to write the predictions (default: "
                                 "<trainer.default_root_dir>/predictions.h5)")

    def _parse_ckpt_path(self) -> None:
        """Before LightningCLI replaces the config's model by the checkpoint's hyper-parameters:
        refuse a checkpoint of another model (the data layout is checked when it is loaded,
        :meth:`train.module.NeuralOperatorModule.on_load_checkpoint`)."""
        sub = self.config.get("subcommand")
        ckpt_path = self.config[sub].get("ckpt_path") if sub else None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry") and not os.path.isfile(ckpt_path):
            raise FileNotFoundError(f"checkpoint {ckpt_path!r} does not exist (--ckpt_path takes a .ckpt file, "
                                    "'last' or 'best')")
        if ckpt_path and os.path.isfile(ckpt_path):
            import torch

            from .module import CheckpointMismatchError

            hp = torch.load(ckpt_path, weights_only=False, map_location="cpu").get("hyper_parameters") or {}
            want = str(self.config[sub].get("model", {}).get("model", "")).lower()
            have = str(hp.get("model", "")).lower()
            if not have:
                raise CheckpointMismatchError(f"{ckpt_path} is not a neuralops-train checkpoint (no model "
                                              "hyper-parameters)")
            if want and have != want:
                raise CheckpointMismatchError(
                    f"{ckpt_path} holds a {have!r} model but the config builds {want!r}: pass a checkpoint of a "
                    f"{want!r} run, or the config that trained this one (model.model: {have})")
        super()._parse_ckpt_path()

    def instantiate_trainer(self, **kwargs):
        cfg = self._get(self.config_init, "trainer", default={}) or {}
        ckpt = self._get(self.config_init, "checkpoint", default=None)
        splits = getattr(self.datamodule, "splits", {})
        last = None
        if isinstance(ckpt, ModelCheckpoint):
            if ckpt.monitor and splits.get("val", True) is None:
                # without a validation split there is no "best": keep the last checkpoint only
                print("neuralops-train: no validation split (data.val); saving last.ckpt only", file=sys.stderr)
                ckpt.monitor = None
            if ckpt.save_last:
                # Lightning's save_last writes only when the monitored checkpoint is saved (2.6): our own
                # callback writes last.ckpt after every epoch
                ckpt.save_last = False
                last = LastCheckpoint(ckpt.dirpath)
        if cfg.get("logger") in (None, True) and "logger" not in kwargs:
            from lightning.pytorch.loggers import CSVLogger

            root = cfg.get("default_root_dir") or os.getcwd()
            loggers = [CSVLogger(save_dir=root, name="logs")]
            if importlib.util.find_spec("tensorboard") is not None:
                from lightning.pytorch.loggers import TensorBoardLogger

                loggers.append(TensorBoardLogger(save_dir=root, name="logs", version=loggers[0].version))
            kwargs["logger"] = loggers
        trainer = super().instantiate_trainer(**kwargs)
        if last is not None:
            trainer.callbacks.append(last)
        if self.subcommand == "predict":
            from .prediction_writer import PredictionWriter

            path = self._get(self.config, "predictions_path", default=None) or \
                os.path.join(cfg.get("default_root_dir") or os.getcwd(), "predictions.h5")
            trainer.callbacks.append(PredictionWriter(path))
        return trainer

    def before_fit(self) -> None:
        if self.trainer.global_rank != 0:
            return
        dm = self.datamodule
        if getattr(dm, "describe", None):
            print(f"neuralops-train: data: {dm.describe()}", file=sys.stderr)
        for logger in self.trainer.loggers:
            kind = type(logger).__name__.replace("Logger", "")
            hint = f" (tensorboard --logdir {os.path.dirname(os.path.abspath(logger.log_dir))})" \
                if kind == "TensorBoard" else ""
            print(f"neuralops-train: {kind} log: {os.path.abspath(logger.log_dir)}{hint}", file=sys.stderr)
        if not any(type(lg).__name__ == "TensorBoardLogger" for lg in self.trainer.loggers) and \
                importlib.util.find_spec("tensorboard") is None:
            print("neuralops-train: TensorBoard log: off (pip install tensorboard)", file=sys.stderr)
        dirs = {os.path.abspath(c.dirpath) for c in self.trainer.checkpoint_callbacks if getattr(c, "dirpath", None)}
        if dirs:
            print(f"neuralops-train: checkpoints: {', '.join(sorted(dirs))}", file=sys.stderr)


def _help() -> str:
    lines = ["usage: neuralops-train SUBCOMMAND [options]", "",
             "Train and evaluate neural operators on data-contract files (LightningCLI).", "", "subcommands:"]
    lines += [f"  {name:10s} {text}" for name, text in SUBCOMMANDS.items()]
    lines += ["", "examples:",
              "  neuralops-train configs",
              "  neuralops-train fit -c darcy_fno --data.path data/darcy.h5",
              "  neuralops-train fit -c darcy_fno --data.path train.h5 --data.val val.h5 --data.test test.h5",
              "  neuralops-train fit -c darcy_fno --data.path data/darcy.h5 --ckpt_path last      # resume",
              "  neuralops-train test -c darcy_fno --data.path data/darcy.h5 --data.test data/darcy_64.h5 "
              "--ckpt_path runs/darcy_fno/checkpoints/last.ckpt",
              "", "`neuralops-train SUBCOMMAND --help` lists a subcommand's options (with -c NAME: with the "
              "config's values)."]
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
    from datagen.dataset import DatasetError

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
        NeuralOperatorCLI(NeuralOperatorModule, LightningDataModule, subclass_mode_data=True, args=args,
                          save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False)
    except (ValueError, FileNotFoundError, DatasetError, NonFiniteLossError, OSError) as exc:
        if os.environ.get("NEURALOPS_TRACEBACK"):
            raise
        return _error(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
