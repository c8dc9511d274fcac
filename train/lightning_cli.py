"""The LightningCLI of ``neuralops-train`` (:mod:`train.cli` holds the command and imports this
module only for ``fit``/``validate``/``test``/``predict``, so ``--help``, ``configs`` and ``refine``
start without Lightning): :class:`NeuralOperatorCLI` (ModelCheckpoint group, ``last.ckpt`` every
epoch, the data -> model link, default loggers, checks of ``--ckpt_path``), :class:`LastCheckpoint`
and the split-safe YAML loader."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
from typing import Optional

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

__all__ = ["NeuralOperatorCLI", "LastCheckpoint"]


# ------------------------------------------------------------------------------------------------
# YAML: split values stay strings
# ------------------------------------------------------------------------------------------------
_SPLIT_LINE = re.compile(
    r"^(?P<head>\s*(?:train|val|test)\s*:\s+)(?P<value>-?(?:\d+|\d*\.\d+|\d+\.)?:"
    r"-?(?:\d+|\d*\.\d+|\d+\.)?)(?P<tail>\s*(?:#.*)?)$",
    re.M,
)


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
        super().__init__(
            dirpath=dirpath,
            filename=self.CHECKPOINT_NAME_LAST,
            monitor=None,
            save_top_k=1,
            save_last=False,
            enable_version_counter=False,
            save_on_train_epoch_end=True,
        )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(last=True)


class NeuralOperatorCLI(LightningCLI):
    """LightningCLI + a ModelCheckpoint group + ``last.ckpt`` every epoch + the data -> model link +
    default loggers + checks of ``--ckpt_path`` against the config."""

    def init_parser(self, **kwargs):
        _install_split_safe_yaml()  # before any value or config file is loaded
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/relative_l2",
                "checkpoint.mode": "min",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch:03d}",
                "checkpoint.save_top_k": 1,
            }
        )
        parser.link_arguments("data.io", "model.data_io", apply_on="instantiate")
        parser.add_argument(
            "--predictions_path",
            type=Optional[str],
            default=None,
            help="predict: where to write the predictions (default: <trainer.default_root_dir>/predictions.h5)",
        )

    def _parse_ckpt_path(self) -> None:
        """Before LightningCLI replaces the config's model by the checkpoint's hyper-parameters:
        refuse a checkpoint of another model (the data layout is checked when it is loaded,
        :meth:`train.module.NeuralOperatorModule.on_load_checkpoint`)."""
        sub = self.config.get("subcommand")
        ckpt_path = self.config[sub].get("ckpt_path") if sub else None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry") and not os.path.isfile(ckpt_path):
            raise FileNotFoundError(
                f"checkpoint {ckpt_path!r} does not exist (--ckpt_path takes a .ckpt file, 'last' or 'best')"
            )
        if ckpt_path and os.path.isfile(ckpt_path):
            import torch

            from .module import CheckpointMismatchError

            hp = torch.load(ckpt_path, weights_only=False, map_location="cpu").get("hyper_parameters") or {}
            want = str(self.config[sub].get("model", {}).get("model", "")).lower()
            have = str(hp.get("model", "")).lower()
            if not have:
                raise CheckpointMismatchError(
                    f"{ckpt_path} is not a neuralops-train checkpoint (no model hyper-parameters)"
                )
            if want and have != want:
                raise CheckpointMismatchError(
                    f"{ckpt_path} holds a {have!r} model but the config builds {want!r}: pass a checkpoint of a "
                    f"{want!r} run, or the config that trained this one (model.model: {have})"
                )
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

            path = self._get(self.config, "predictions_path", default=None) or os.path.join(
                cfg.get("default_root_dir") or os.getcwd(), "predictions.h5"
            )
            trainer.callbacks.append(PredictionWriter(path))
        return trainer

    def before_fit(self) -> None:
        self._fit_started = time.perf_counter()
        if self.trainer.global_rank != 0:
            return
        dm = self.datamodule
        if getattr(dm, "describe", None):
            print(f"neuralops-train: data: {dm.describe()}", file=sys.stderr)
        for logger in self.trainer.loggers:
            kind = type(logger).__name__.replace("Logger", "")
            hint = (
                f" (tensorboard --logdir {os.path.dirname(os.path.abspath(logger.log_dir))})"
                if kind == "TensorBoard"
                else ""
            )
            print(f"neuralops-train: {kind} log: {os.path.abspath(logger.log_dir)}{hint}", file=sys.stderr)
        if (
            not any(type(lg).__name__ == "TensorBoardLogger" for lg in self.trainer.loggers)
            and importlib.util.find_spec("tensorboard") is None
        ):
            print("neuralops-train: TensorBoard log: off (pip install tensorboard)", file=sys.stderr)
        dirs = {os.path.abspath(c.dirpath) for c in self.trainer.checkpoint_callbacks if getattr(c, "dirpath", None)}
        if dirs:
            print(f"neuralops-train: checkpoints: {', '.join(sorted(dirs))}", file=sys.stderr)

    def after_fit(self) -> None:
        """One summary line: epochs, steps, wall time, the last logged metrics, the last checkpoint."""
        trainer = self.trainer
        if trainer.global_rank != 0:
            return
        seconds = time.perf_counter() - getattr(self, "_fit_started", time.perf_counter())
        metrics = trainer.callback_metrics
        shown = ", ".join(f"{k} {float(metrics[k]):.4g}" for k in ("train/loss", "val/relative_l2") if k in metrics)
        # LastCheckpoint keeps last.ckpt as its top-1 (monitor None): its "best" path is the last one
        callbacks = trainer.checkpoint_callbacks
        paths = [c.best_model_path for c in callbacks if isinstance(c, LastCheckpoint)] + [
            getattr(c, "last_model_path", "") or getattr(c, "best_model_path", "") for c in callbacks
        ]
        paths = [p for p in paths if p]
        where = f"; checkpoint: {os.path.abspath(paths[0])}" if paths else ""
        print(
            f"neuralops-train: fit finished: {trainer.current_epoch} epoch(s), {trainer.global_step} steps in "
            f"{seconds:.0f} s" + (f"; {shown}" if shown else "") + where,
            file=sys.stderr,
            flush=True,
        )
