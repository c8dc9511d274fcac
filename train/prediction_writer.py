"""Write what ``neuralops-train predict`` predicts as a neuralops dataset.

The file holds ``prediction`` and ``target`` in physical units in the evaluation layout
``(N, T, C, X, Y)`` (steady data: T = 1), the source sample index of each row (``params/index``),
and a spec naming the checkpoint's model, the source file and split; ``neuralops-data info`` and
``validate`` read it like any other dataset.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from datagen.dataset import DatasetWriter, FieldSpec, Grid


class PredictionWriter(BasePredictionWriter):
    """Collect the predictions of one ``predict`` run and write them to ``path`` at its end."""

    def __init__(self, path: str, overwrite: bool = True):
        super().__init__(write_interval="epoch")
        self.path = path
        self.overwrite = overwrite

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        if trainer.world_size > 1:
            raise ValueError(
                "neuralops-train predict writes one file from one process; run it with "
                f"--trainer.devices 1 (got world size {trainer.world_size})"
            )
        dm = trainer.datamodule
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        pred = torch.cat([pl_module._canonical(p.float().cpu()) for p in batches]).numpy()
        targets = [pl_module._canonical(y.float().cpu()) for _, y in dm.predict_dataloader()]
        target = torch.cat(targets).numpy()
        split = dm.splits["test"]
        source = dm.dataset_of("test")
        indices = np.asarray(split.indices, dtype=np.int64)
        if len(indices) != pred.shape[0] or target.shape != pred.shape:
            raise ValueError(
                f"predict produced {pred.shape[0]} rows for {len(indices)} test samples "
                f"(prediction {pred.shape}, target {target.shape})"
            )
        spatial = {a: c for a, c in source.grid.coords.items() if a != "t"}
        grid = Grid(spatial, {a: source.grid.boundary[a] for a in spatial})
        spec = {
            "kind": "predictions",
            "model": pl_module.model_name,
            "source": str(split.path),
            "split": "test",
            "source_pde": source.pde,
            "layout": "(N, T, C, X, Y)",
            "checkpoint": str(getattr(trainer, "ckpt_path", None) or ""),
        }
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        shape = tuple(pred.shape[1:])
        with DatasetWriter(
            self.path,
            pde=source.pde,
            spec=spec,
            n_samples=len(indices),
            seed=0,
            fields={"prediction": FieldSpec(shape, "output"), "target": FieldSpec(shape, "output")},
            grid=grid,
            params=["index"],
            solver=[],
            overwrite=self.overwrite,
            flush_every=max(1, len(indices)),
        ) as writer:
            for row, index in enumerate(indices):
                writer.write(row, {"prediction": pred[row], "target": target[row]}, params={"index": int(index)})
        print(f"neuralops-train predict: wrote {len(indices)} predictions to {self.path}")
