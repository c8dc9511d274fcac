"""Per-epoch overhead of the LightningModule over a bare PyTorch loop (same model, data, process).

Both loops train the same registry model (MgNO, the paper's Darcy configuration by default) on
the same data loader (:class:`train.data.SteadyDataModule` over a data-contract file written here),
with the same normalisation, loss (relative H1) and optimiser (Adam); the Lightning run has what a
user gets from ``neuralops-train fit`` minus validation: CSV logger, checkpointing (last), logging
of the loss every step. The two are interleaved (bare, lightning, bare, lightning, ...) so that
load drift on a shared machine hits both, and each epoch is timed separately, by the wall clock and
by the process CPU time (``time.process_time``; with one torch thread it counts this process's own
work, so other jobs on a shared machine disturb it far less than the wall clock); the first epoch
of each run is a warm-up and dropped. The headline overhead is that of the median CPU times.
Reported: seconds per epoch of each loop (minimum and median) and the
overhead ``lightning / bare - 1`` of the fastest (least-disturbed) epochs, and of the medians.

    OMP_NUM_THREADS=1 python benchmarks/training.py [--n 64 --res 64 --epochs 4 --repeats 3]

``--config darcy_fno`` (a steady config of ``train/configs``): the config's model, model settings, loss
and batch size instead of MgNO (``--res`` is then the grid, e.g. 85 as the FNO Darcy data), and the
result also as samples per second (``n / epoch time``) of each loop: the throughput a user gets from
``neuralops-train fit -c darcy_fno`` at the config's batch. Run it under two allocator settings
(``NEURALOPS_ALLOCATOR=system`` / the default) to compare them; the record names the setting.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import conditions  # benchmarks/conditions.py: records the load at the start
import numpy as np
import torch


def write_data(path: str, n: int, res: int) -> None:
    from datagen.dataset import DatasetWriter, FieldSpec, Grid

    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 1.0, res)
    bump = np.outer(np.sin(np.pi * x), np.sin(np.pi * x))
    with DatasetWriter(
        path,
        pde="darcy",
        spec={"family": "benchmark", "n": res},
        n_samples=n,
        seed=0,
        fields={"a": FieldSpec((res, res), "input"), "u": FieldSpec((res, res), "output")},
        grid=Grid({"x": x, "y": x}, {"x": "dirichlet", "y": "dirichlet"}),
        params=[],
        solver=["converged"],
        overwrite=True,
    ) as w:
        for i in range(n):
            a = np.exp(rng.standard_normal((res, res)))
            w.write(
                i, {"a": a.astype(np.float32), "u": (bump * a.mean()).astype(np.float32)}, solver={"converged": True}
            )


MODEL = {"model": "mgno", "loss": "relative_h1", "loss_config": None}


def build(path: str, batch: int, model_config: dict):
    from train.data import SteadyDataModule
    from train.module import NeuralOperatorModule

    dm = SteadyDataModule(path, train=":", batch_size=batch, seed=0)
    torch.manual_seed(0)
    module = NeuralOperatorModule(
        MODEL["model"],
        model_config,
        data_io=dm.io,
        loss=MODEL["loss"],
        loss_config=MODEL["loss_config"],
        lr=5e-4,
        check_model=False,
    )
    stats = dm.normalization_statistics()
    module.norm_in.set_statistics(*stats["input"])
    module.norm_out.set_statistics(*stats["output"])
    return dm, module


def bare_epochs(path: str, batch: int, epochs: int, model_config: dict) -> list:
    """The loop a user would write by hand around the same pieces."""
    dm, module = build(path, batch, model_config)
    model, loss_fn = module.model, module.loss_fn
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    loader = dm.train_dataloader()
    times = []
    model.train()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        t0, c0 = time.perf_counter(), time.process_time()
        for x, y in loader:
            out = module.norm_out.decode(model(module.norm_in.encode(x, 1)), 1)
            loss = loss_fn(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times


class EpochTimer:
    def __init__(self):
        import lightning.pytorch as pl

        class _T(pl.Callback):
            def __init__(self):
                self.times, self._t0 = [], None

            def on_train_epoch_start(self, trainer, module):
                self._t0 = (time.perf_counter(), time.process_time())

            def on_train_epoch_end(self, trainer, module):
                self.times.append((time.perf_counter() - self._t0[0], time.process_time() - self._t0[1]))

        self.cb = _T()


def lightning_epochs(path: str, batch: int, epochs: int, model_config: dict, root: str, extras: bool = True) -> list:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    dm, module = build(path, batch, model_config)
    timer = EpochTimer().cb
    callbacks = [timer]
    if extras:
        callbacks.append(pl.callbacks.ModelCheckpoint(dirpath=os.path.join(root, "ckpt"), save_last=True, save_top_k=0))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=CSVLogger(root, name="bench") if extras else False,
        enable_checkpointing=extras,
        callbacks=callbacks,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, dm)
    return timer.times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=64, help="training samples")
    p.add_argument("--res", type=int, default=64, help="grid size")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is a warm-up)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved (bare, lightning) pairs of runs")
    p.add_argument("--channels", type=int, default=24)
    p.add_argument(
        "--bare-lightning",
        action="store_true",
        help="Lightning without logger and checkpoints (attributes the overhead)",
    )
    p.add_argument("--config", default=None, help="a steady train/configs name (darcy_fno): its model, loss, batch")
    p.add_argument("--out", default=os.path.join("benchmarks", "results", "training.json"))
    args = p.parse_args(argv)
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    cfg = {"channels": args.channels}
    if args.config:
        import yaml

        path = os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train", "configs", f"{args.config}.yaml"
        )
        if not os.path.exists(path):
            raise SystemExit(f"training.py: error: no config {args.config!r} in train/configs")
        with open(path) as fh:
            conf = yaml.safe_load(fh)
        if conf["data"]["class_path"] != "train.data.SteadyDataModule":
            raise SystemExit(f"training.py: error: --config {args.config} is not a steady (SteadyDataModule) config")
        MODEL.update(
            model=conf["model"]["model"],
            loss=conf["model"].get("loss", "relative_l2"),
            loss_config=conf["model"].get("loss_config"),
        )
        cfg = dict(conf["model"].get("model_config") or {})
        args.batch = int(conf["data"]["init_args"]["batch_size"])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "darcy.h5")
        write_data(path, args.n, args.res)
        bare, light = [], []
        for r in range(args.repeats):
            # ABBA order: a slow phase of the shared machine does not always hit the same loop first
            runs = [("bare", None), ("lightning", os.path.join(tmp, f"run{r}"))]
            for kind, root in runs if r % 2 == 0 else runs[::-1]:
                if kind == "bare":
                    bare += bare_epochs(path, args.batch, args.epochs, cfg)[1:]
                else:
                    light += lightning_epochs(path, args.batch, args.epochs, cfg, root, not args.bare_lightning)[1:]
    summary = {}
    for clock, k in (("cpu", 1), ("wall", 0)):
        bt, lt = [e[k] for e in bare], [e[k] for e in light]
        # the minimum is the least-disturbed epoch (other jobs only ever add time); the median too
        summary[clock] = {
            "bare_min": min(bt),
            "lightning_min": min(lt),
            "overhead_min": min(lt) / min(bt) - 1,
            "bare_median": statistics.median(bt),
            "lightning_median": statistics.median(lt),
            "overhead_median": statistics.median(lt) / statistics.median(bt) - 1,
            "bare_epochs": bt,
            "lightning_epochs": lt,
        }
    result = {
        "benchmark": "training loop overhead (LightningModule vs bare PyTorch, same process)",
        "model": MODEL["model"],
        "config": args.config,
        "model_config": cfg,
        "lightning_logger_and_checkpoints": not args.bare_lightning,
        "samples_per_s": {
            clock: {
                "bare": args.n / summary[clock]["bare_median"],
                "lightning": args.n / summary[clock]["lightning_median"],
            }
            for clock in summary
        },
        "n_train": args.n,
        "resolution": args.res,
        "batch": args.batch,
        "steps_per_epoch": -(-args.n // args.batch),
        "epochs_timed": len(bare),
        "overhead": summary["cpu"]["overhead_median"],
        "seconds_per_epoch": summary,
    }
    for clock, r in summary.items():
        print(
            f"{clock:4s} s/epoch  bare {r['bare_min']:.3f} min {r['bare_median']:.3f} median | lightning "
            f"{r['lightning_min']:.3f} min {r['lightning_median']:.3f} median | overhead "
            f"{100 * r['overhead_min']:+.1f}% (minima) {100 * r['overhead_median']:+.1f}% (medians)"
        )
    print(f"overhead (process CPU time, medians): {100 * result['overhead']:+.1f}% (target <= 5%)")
    sps = result["samples_per_s"]
    print(
        f"samples/s ({MODEL['model']}, batch {args.batch}, medians): CPU-time bare {sps['cpu']['bare']:.2f} "
        f"lightning {sps['cpu']['lightning']:.2f}; wall bare {sps['wall']['bare']:.2f} "
        f"lightning {sps['wall']['lightning']:.2f}"
    )
    conditions.write_record(result, args.out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
