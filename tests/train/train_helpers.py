"""Small synthetic data-contract files for the training tests (written with DatasetWriter)."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch

from datagen.dataset import DatasetWriter, FieldSpec, Grid


def write_steady(path, n=24, res=16, seed=0, boundary="dirichlet", extra_output=False):
    """Darcy-like pairs: ``a`` (input) and ``u`` = a smooth linear functional of ``a`` (output),
    zero on the boundary ring. Node grid ``j / (res - 1)`` including the walls."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, res)
    fields = {"a": FieldSpec((res, res), "input"), "u": FieldSpec((res, res), "output")}
    if extra_output:
        fields["v"] = FieldSpec((2, res, res), "output")
    bump = np.outer(np.sin(np.pi * x), np.sin(np.pi * x))
    with DatasetWriter(
        path,
        pde="darcy",
        spec={"family": "toy_darcy", "n": res, "seed": seed},
        n_samples=n,
        seed=seed,
        fields=fields,
        grid=Grid({"x": x, "y": x}, {"x": boundary, "y": boundary}),
        params=[],
        solver=["converged"],
    ) as w:
        for i in range(n):
            a = 1.0 + 0.5 * rng.standard_normal((res, res))
            u = bump * (a.mean() + 0.1 * np.roll(a, 1, axis=0))
            out = {"a": a.astype(np.float32), "u": u.astype(np.float32)}
            if extra_output:
                out["v"] = np.stack([u, -u]).astype(np.float32)
            w.write(i, out, solver={"converged": True})
    return path


def write_trajectories(path, n=12, frames=8, res=8, seed=0, channels=None, invalid=()):
    """Trajectories whose values encode where they came from: frame ``t`` of sample ``i`` is
    ``100 i + t + 0.01 * pattern`` (so a window's indices can be read back off its values).
    ``channels=C`` writes ``(T, C, X, Y)`` with channel ``c`` offset by ``10 c``."""
    rng = np.random.default_rng(seed)
    x = np.arange(res) / res
    t = np.arange(frames, dtype=np.float64)
    shape = (frames, res, res) if channels is None else (frames, channels, res, res)
    with DatasetWriter(
        path,
        pde="navier_stokes_2d",
        spec={"family": "toy_ns", "n": res, "seed": seed},
        n_samples=n,
        seed=seed,
        fields={"vorticity": FieldSpec(shape, "state")},
        grid=Grid({"x": x, "y": x, "t": t}, {"x": "periodic", "y": "periodic"}),
        params=["viscosity"],
        solver=["converged"],
    ) as w:
        for i in range(n):
            pattern = rng.standard_normal((res, res))
            v = 100.0 * i + t[:, None, None] + 0.01 * pattern
            if channels is not None:
                v = np.stack([v + 10.0 * c for c in range(channels)], axis=1)
            w.write(
                i,
                {"vorticity": v.astype(np.float32)},
                params={"viscosity": 1e-3},
                solver={"converged": i not in invalid},
                **({"invalid_reason": "blew up"} if i in invalid else {}),
            )
    return path


def write_advection(path, n=16, frames=12, res=16, seed=0):
    """Learnable trajectories: a random smooth periodic field translated by one cell per frame."""
    rng = np.random.default_rng(seed)
    x = np.arange(res) / res
    k = np.fft.fftfreq(res) * res
    filt = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / 8.0)
    with DatasetWriter(
        path,
        pde="navier_stokes_2d",
        spec={"family": "toy_advection", "n": res, "seed": seed},
        n_samples=n,
        seed=seed,
        fields={"vorticity": FieldSpec((frames, res, res), "state")},
        grid=Grid({"x": x, "y": x, "t": np.arange(frames, dtype=float)}, {"x": "periodic", "y": "periodic"}),
        params=[],
        solver=["converged"],
    ) as w:
        for i in range(n):
            f0 = np.fft.ifft2(np.fft.fft2(rng.standard_normal((res, res))) * filt).real * 5
            traj = np.stack([np.roll(f0, s, axis=0) for s in range(frames)])
            w.write(i, {"vorticity": traj.astype(np.float32)}, solver={"converged": True})
    return path


class RecordTraining(pl.Callback):
    """A Lightning callback for CLI tests (``--trainer.callbacks+=train_helpers.RecordTraining``):
    writes ``{"start_epoch", "start_step", "end_epoch", "end_step", "state_dict"}`` to ``path``
    (``torch.save``) when training ends, so a test can compare a checkpoint with the final model."""

    def __init__(self, path: str):
        self.path, self.info = path, {}

    def on_train_start(self, trainer, pl_module):
        self.info.update(start_epoch=trainer.current_epoch, start_step=trainer.global_step)

    def on_train_end(self, trainer, pl_module):
        self.info.update(
            end_epoch=trainer.current_epoch,
            end_step=trainer.global_step,
            state_dict={k: v.detach().clone() for k, v in pl_module.state_dict().items()},
        )
        torch.save(self.info, self.path)


def fit_tiny(data, root, model, model_config, t_in, t_out):
    """``neuralops-train fit -c ns_sfno`` with ``model``/``model_config`` on ``data`` (samples 0:2 to
    train, 2:4 to validate and test), two steps on the CPU; returns the ``last.ckpt`` path."""
    import json

    from train.cli import main as train_main

    args = [
        "fit",
        "--config",
        "ns_sfno",
        "--model.model",
        model,
        "--model.model_config",
        json.dumps(model_config),
        "--data.init_args.path",
        data,
        "--data.init_args.train",
        "0:2",
        "--data.init_args.val",
        "2:4",
        "--data.init_args.test",
        "2:4",
        "--data.init_args.t_in",
        str(t_in),
        "--data.init_args.t_out",
        str(t_out),
        "--data.init_args.batch_size",
        "2",
        "--trainer.max_steps",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.accelerator",
        "cpu",
        "--trainer.default_root_dir",
        root,
        "--checkpoint.dirpath",
        root + "/ckpt",
        "--trainer.enable_progress_bar",
        "false",
    ]
    assert train_main(args) == 0
    return root + "/ckpt/last.ckpt"
