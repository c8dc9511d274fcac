"""``neuralops-train``: LightningCLI with ``fit``, ``validate``, ``test`` and ``predict``.

::

    neuralops-train fit --config darcy_mgno --data.path data/darcy.h5
    neuralops-train fit --config darcy_mgno --ckpt_path runs/darcy_mgno/checkpoints/last.ckpt   # resume
    neuralops-train test --config darcy_mgno --ckpt_path runs/darcy_mgno/checkpoints/last.ckpt
    neuralops-train fit --config ns_fno3d --trainer.devices 4 --trainer.strategy ddp
    neuralops-train refine ...      # spectral refinement of an SFNO (train.refine.cli)

``--config NAME`` finds ``train/configs/NAME.yaml`` in the installed package (``neuralops-train
configs`` lists them); a path to any YAML file works too. A config holds ``trainer``, ``model``
(:class:`train.module.NeuralOperatorModule`), ``data`` (``class_path: train.data.SteadyDataModule``
or ``train.data.TrajectoryDataModule``), ``checkpoint`` (``ModelCheckpoint``: best by
``val/relative_l2`` and ``last``) and ``seed_everything``. ``model.data_io`` is linked from the data
module (channel counts, windows, grid), so the model always matches the data.

Loggers: unless the config sets ``trainer.logger``, a CSV logger (always) and a TensorBoard logger
(when ``tensorboard`` is installed) write under ``trainer.default_root_dir``.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from typing import List, Optional, Sequence

if __name__ == "__main__":          # `python -m train.cli`: the allocator is set before torch is imported
    from datagen.allocator import ensure
    ensure()

from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

__all__ = ["NeuralOperatorCLI", "available_configs", "resolve_config_args", "main", "CONFIG_DIR"]


def available_configs() -> List[str]:
    """Names of the packaged configs (``train/configs/*.yaml``)."""
    return sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".yaml"))


def _resolve(value: str) -> str:
    if os.path.exists(value):
        return value
    name = value[:-5] if value.endswith(".yaml") else value
    if os.sep not in name and "/" not in name:
        candidate = os.path.join(CONFIG_DIR, name + ".yaml")
        if os.path.exists(candidate):
            return candidate
    raise SystemExit(f"neuralops-train: config {value!r} is neither a file nor a packaged config; "
                     f"packaged configs: {', '.join(available_configs())}")


def resolve_config_args(argv: Sequence[str]) -> List[str]:
    """Replace ``--config NAME`` / ``--config=NAME`` by the packaged file's path."""
    out: List[str] = []
    it = iter(range(len(argv)))
    args = list(argv)
    for i in it:
        a = args[i]
        if a == "--config" and i + 1 < len(args):
            out += [a, _resolve(args[i + 1])]
            next(it, None)
        elif a.startswith("--config="):
            out.append("--config=" + _resolve(a.split("=", 1)[1]))
        else:
            out.append(a)
    return out


class NeuralOperatorCLI(LightningCLI):
    """LightningCLI + a ModelCheckpoint group + the data -> model link + default loggers."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/relative_l2", "checkpoint.mode": "min",
                             "checkpoint.save_last": True, "checkpoint.filename": "best-{epoch:03d}",
                             "checkpoint.save_top_k": 1})
        parser.link_arguments("data.io", "model.data_io", apply_on="instantiate")
        parser.add_argument("--predictions_path", type=Optional[str], default=None,
                            help="predict: where to write the predictions (default: "
                                 "<trainer.default_root_dir>/predictions.h5)")

    def instantiate_trainer(self, **kwargs):
        cfg = self._get(self.config_init, "trainer", default={}) or {}
        ckpt = self._get(self.config_init, "checkpoint", default=None)
        splits = getattr(self.datamodule, "splits", {})
        if isinstance(ckpt, ModelCheckpoint) and ckpt.monitor and splits.get("val", True) is None:
            # without a validation split there is no "best": keep the last checkpoint only
            print("neuralops-train: no validation split (data.val); saving last.ckpt only", file=sys.stderr)
            ckpt.monitor = None
        if cfg.get("logger") in (None, True) and "logger" not in kwargs:
            from lightning.pytorch.loggers import CSVLogger

            root = cfg.get("default_root_dir") or os.getcwd()
            loggers = [CSVLogger(save_dir=root, name="logs")]
            if importlib.util.find_spec("tensorboard") is not None:
                from lightning.pytorch.loggers import TensorBoardLogger

                loggers.append(TensorBoardLogger(save_dir=root, name="logs", version=loggers[0].version))
            kwargs["logger"] = loggers
        trainer = super().instantiate_trainer(**kwargs)
        if self.subcommand == "predict":
            from .prediction_writer import PredictionWriter

            path = self._get(self.config, "predictions_path", default=None) or \
                os.path.join(cfg.get("default_root_dir") or os.getcwd(), "predictions.h5")
            trainer.callbacks.append(PredictionWriter(path))
        return trainer


def main(argv: Optional[Sequence[str]] = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "refine":
        from train.refine.cli import main as refine_main

        return int(refine_main(argv[1:]) or 0)
    if argv and argv[0] == "configs":
        for name in available_configs():
            print(f"{name:16s} {os.path.join(CONFIG_DIR, name + '.yaml')}")
        return 0
    from .module import NeuralOperatorModule

    args = resolve_config_args(argv)
    if from_command_line:
        # LightningCLI reads sys.argv itself (and warns when given both): hand it the resolved one
        sys.argv[1:] = args
        args = None
    NeuralOperatorCLI(NeuralOperatorModule, LightningDataModule, subclass_mode_data=True, args=args,
                      save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
