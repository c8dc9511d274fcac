"""Train a small model on CPU with 1 process or with 2 DDP processes (gloo) on the same global
batch; rank 0 writes the validation metrics and the final weights. Used by tests/train/test_ddp.py:

    python tests/train/ddp_job.py WORLD DATA OUTDIR
"""

import json
import os
import sys

import lightning.pytorch as pl
import torch

from train.data import SteadyDataModule
from train.module import NeuralOperatorModule

GLOBAL_BATCH = 8


def main(world: int, data: str, out: str) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    dm = SteadyDataModule(
        data,
        train="0:24",
        val="24:31",  # 7: uneven over 2 ranks
        batch_size=GLOBAL_BATCH // world,
        eval_batch_size=4 // world,
        seed=11,
    )
    model = NeuralOperatorModule(
        "mgno",
        {"channels": 6, "num_layers": 2, "smoothing": [[1, 0], [1, 0], [2, 0]]},
        data_io=dm.io,
        lr=3e-3,
        optimizer="adam",
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=world,
        strategy="ddp" if world > 1 else "auto",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    trainer.fit(model, dm)
    metrics = trainer.validate(model, dm, verbose=False)[0]
    if trainer.global_rank == 0:
        os.makedirs(out, exist_ok=True)
        torch.save(model.model.state_dict(), os.path.join(out, "weights.pt"))
        with open(os.path.join(out, "metrics.json"), "w") as fh:
            json.dump({"world": trainer.world_size, "steps": trainer.global_step, **metrics}, fh)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
