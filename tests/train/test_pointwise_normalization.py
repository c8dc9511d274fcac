"""``normalization: pointwise``: the FNO scripts' per-grid-point unit-Gaussian normaliser, wired from
the data module (statistics of the training split) through the LightningModule (one normaliser for
inputs, one for outputs) into checkpoints and the FNO-3D config."""

import os

import h5py
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml
from train_helpers import write_steady, write_trajectories

from train.cli import CONFIG_DIR
from train.data import SteadyDataModule, TrajectoryDataModule
from train.data.normalization import PointwiseNormalizer
from train.module import NeuralOperatorModule


@pytest.fixture(scope="module")
def traj_file(tmp_path_factory):
    return str(write_trajectories(tmp_path_factory.mktemp("p") / "traj.h5", n=12, frames=8, res=8, invalid=(5,)))


def raw(path, name):
    with h5py.File(path, "r") as f:
        return f["fields"][name][()].astype(np.float64)


def test_direct_window_statistics_are_torch_mean_and_std_per_point(traj_file):
    dm = TrajectoryDataModule(
        traj_file,
        train="0:8",
        test="-2:",
        mode="direct",
        t_in=3,
        t_out=2,
        start=1,
        normalization="pointwise",
        stats_chunk=3,
    )  # chunks of 3: the streaming merge
    st = dm.normalization_statistics()
    w = torch.as_tensor(raw(traj_file, "vorticity"))[[0, 1, 2, 3, 4, 6, 7]]  # 5 is invalid
    x, y = w[:, 1:4, None], w[:, 4:6, None]  # (N, T, C, X, Y) of the protocol window
    for group, v in (("input", x), ("output", y)):
        mean, std = st[group]
        assert mean.shape == tuple(v.shape[1:])
        # the FNO scripts' UnitGaussianNormalizer: torch.mean(x, 0), torch.std(x, 0) (N - 1)
        np.testing.assert_allclose(mean, v.mean(0).numpy(), rtol=1e-12)
        np.testing.assert_allclose(std, v.std(0).numpy(), rtol=1e-10)
    assert dm.io["normalization"] == "pointwise"


def test_steady_statistics_per_point_of_each_group(tmp_path):
    path = str(write_steady(tmp_path / "s.h5", n=12, res=8, extra_output=True))
    dm = SteadyDataModule(
        path, train="0:10", test="10:12", outputs=["u", "v"], normalization="pointwise", stats_chunk=4
    )
    st = dm.normalization_statistics()
    a, u, v = (raw(path, k)[:10] for k in ("a", "u", "v"))
    out = np.concatenate([u[:, None], v], axis=1)  # (N, 3, X, Y)
    np.testing.assert_allclose(st["input"][0], a.mean(0)[None], rtol=1e-12)
    np.testing.assert_allclose(st["input"][1], a.std(0, ddof=1)[None], rtol=1e-10)
    np.testing.assert_allclose(st["output"][1], out.std(0, ddof=1), rtol=1e-10)


def test_rollouts_refuse_pointwise_statistics(traj_file):
    with pytest.raises(ValueError, match="pointwise' needs mode 'direct'"):
        TrajectoryDataModule(
            traj_file, train="0:8", mode="autoregressive", t_in=3, history=2, normalization="pointwise"
        )
    with pytest.raises(ValueError, match="normalization must be one of gaussian, none, pointwise"):
        TrajectoryDataModule(traj_file, train="0:8", mode="direct", t_in=3, normalization="per-point")


def test_module_fits_uses_and_checkpoints_pointwise_normalisers(traj_file, tmp_path):
    dm = TrajectoryDataModule(
        traj_file, train="0:8", test="-2:", mode="direct", t_in=3, t_out=2, normalization="pointwise", batch_size=4
    )
    torch.manual_seed(0)
    module = NeuralOperatorModule(
        "fno3d", {"modes": 2, "width": 4, "projection_channels": 8}, data_io=dm.io, loss_config={"reduction": "sum"}
    )
    assert isinstance(module.norm_in, PointwiseNormalizer) and module.norm_in is not module.norm_out
    assert tuple(module.norm_in.mean.shape) == (3, 1, 8, 8) and tuple(module.norm_out.mean.shape) == (2, 1, 8, 8)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, dm)
    st = dm.normalization_statistics()
    np.testing.assert_array_equal(module.norm_in.mean.numpy(), st["input"][0])
    np.testing.assert_array_equal(module.norm_out.std.numpy(), st["output"][1])
    # encoded training inputs: zero mean and unit (sample) deviation at every point
    x = torch.stack([dm.make_dataset("train")[k][0] for k in range(7)]).double()
    enc = module.norm_in.encode(x)
    assert enc.mean(0).abs().max() < 1e-9 and (enc.std(0) - 1).abs().max() < 1e-4  # eps = 1e-5 in (std + eps)
    # the prediction is decoded with the output statistics: physical units of the target frames
    module.eval()
    with torch.no_grad():
        pred = module(x[:2].float())
        want = module.norm_out.decode(module.forward_normalized(x[:2].float()).float())
    assert pred.shape == (2, 2, 1, 8, 8)
    torch.testing.assert_close(pred, want)
    ckpt = str(tmp_path / "m.ckpt")
    trainer.save_checkpoint(ckpt)
    back = NeuralOperatorModule.load_from_checkpoint(ckpt).eval()
    assert isinstance(back.norm_out, PointwiseNormalizer)
    torch.testing.assert_close(back.norm_out.mean, module.norm_out.mean)
    with torch.no_grad():
        torch.testing.assert_close(back(x[:2].float()), pred)


def test_fno3d_config_normalises_per_point_as_its_script():
    with open(os.path.join(CONFIG_DIR, "ns_fno3d.yaml")) as fh:
        cfg = yaml.safe_load(fh)
    assert cfg["data"]["init_args"]["normalization"] == "pointwise"
