"""Training recipes as the published scripts: loss reductions (hand-computed), coupled vs
decoupled weight decay and its batch scaling, one-cycle schedules stepped per epoch, the pointwise
normaliser of the FNO scripts, and the packaged configs' recipe blocks."""

import math
import os

import numpy as np
import pytest
import torch
import yaml

from neuralops.losses import LpLoss
from train.data.normalization import PointwiseNormalizer, RunningPointwiseStats

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "train", "configs")


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(3, 2, 1, 4, 4, generator=g, dtype=torch.float64)
    pred = target + 0.3 * torch.randn(3, 2, 1, 4, 4, generator=g, dtype=torch.float64)
    return pred, target


def test_fno3d_reduction_is_the_batch_sum_of_per_sample_relative_l2():
    # fourier_3d.py: LpLoss(size_average=False)(out.view(B, -1), y.view(B, -1))
    pred, target = _batch()
    want = 0.0
    for b in range(3):
        d, t = (pred[b] - target[b]).flatten(), target[b].flatten()
        want += math.sqrt(float((d * d).sum())) / math.sqrt(float((t * t).sum()))
    got = LpLoss(p=2, relative=True, dim=2, pool="all", reduction="sum")(pred, target)
    assert abs(float(got) - want) < 1e-12
    mean = LpLoss(p=2, relative=True, dim=2, pool="all", reduction="mean")(pred, target)
    assert abs(float(mean) - want / 3) < 1e-12


def test_fno2d_reduction_sums_per_step_errors_over_batch_and_rollout():
    # fourier_2d_time.py: loss += myloss(im.reshape(B, -1), y.reshape(B, -1)) for every step
    pred, target = _batch(1)
    want = 0.0
    for t in range(2):
        for b in range(3):
            d, y = (pred[b, t] - target[b, t]).flatten(), target[b, t].flatten()
            want += math.sqrt(float((d * d).sum())) / math.sqrt(float((y * y).sum()))
    got = LpLoss(p=2, relative=True, dim=2, pool=None, reduction="sum")(pred, target)
    assert abs(float(got) - want) < 1e-12


def _adam_step(opt_cls, reduction, wd, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(5, 3).double()
    x = torch.randn(8, 5, dtype=torch.float64)
    y = torch.randn(8, 3, dtype=torch.float64)
    opt = opt_cls(model.parameters(), lr=1e-2, weight_decay=wd, eps=1e-30)
    for _ in range(3):
        opt.zero_grad()
        per_sample = ((model(x) - y) ** 2).sum(dim=1)
        loss = per_sample.sum() if reduction == "sum" else per_sample.mean()
        loss.backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_coupled_weight_decay_with_a_summed_loss_equals_mean_loss_with_wd_over_batch():
    # torch.optim.Adam's weight_decay is coupled L2 (added to the gradient, as in the FNO/MgNO
    # scripts' Adam); with a loss summed over B = 8 samples, wd means wd / B for the batch mean
    summed = _adam_step(torch.optim.Adam, "sum", 1e-1)
    torch.testing.assert_close(_adam_step(torch.optim.Adam, "mean", 1e-1 / 8), summed, rtol=1e-10, atol=1e-12)
    assert (_adam_step(torch.optim.Adam, "mean", 1e-1) - summed).abs().max() > 1e-6  # vs 1e-10 above
    # decoupled decay (AdamW) does not depend on the reduction
    torch.testing.assert_close(
        _adam_step(torch.optim.AdamW, "mean", 1e-1), _adam_step(torch.optim.AdamW, "sum", 1e-1), rtol=1e-10, atol=1e-12
    )


def test_pointwise_normaliser_is_the_fno_unit_gaussian_normaliser():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(7, 3, 4, 5, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2, 5) + 1.0
    norm = PointwiseNormalizer((3, 4, 5)).fit(data)
    # FNO's UnitGaussianNormalizer: mean and torch.std over the samples, eps 1e-5
    mean, std = data.mean(0), data.std(0)
    torch.testing.assert_close(norm.encode(data), (data - mean) / (std + 1e-5), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(norm.decode(norm.encode(data)), data, rtol=1e-12, atol=1e-12)
    # streaming in chunks gives the same statistics
    stats = RunningPointwiseStats((3, 4, 5))
    for chunk in (data[:2], data[2:3], data[3:]):
        stats.update(chunk.numpy())
    m, s = stats.result()
    np.testing.assert_allclose(m, mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(s, std.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="bound to its grid"):
        norm.encode(torch.zeros(2, 3, 4, 6))


def _config(name):
    with open(os.path.join(CONFIG_DIR, name + ".yaml")) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize(
    "name", ["darcy_fno", "darcy_mgno", "ns_fno2d", "ns_fno3d", "ns_mgno", "ns_sfno", "ns_sinenet", "ns_mgno_ts"]
)
def test_no_config_selects_a_checkpoint_on_the_test_split(name):
    data = _config(name)["data"]["init_args"]
    val = data.get("val")
    assert val in (None, "none") or val != data.get("test"), (name, val)


def test_recipe_blocks_state_the_papers_runs():
    fno3d, fno2d = _config("ns_fno3d")["model"], _config("ns_fno2d")["model"]
    assert fno3d["loss_config"] == {"reduction": "sum", "pool": "all"} and fno3d["optimizer"] == "adam"
    assert fno2d["loss_config"] == {"reduction": "sum", "pool": "none"} and fno2d["weight_decay"] == 1e-4
    darcy = _config("darcy_mgno")["model"]
    assert darcy["scheduler_config"] == {
        "pct_start": 0.2,
        "div_factor": 2.0,
        "final_div_factor": 100.0,
        "interval": "epoch",
    }
    assert darcy["weight_decay"] == 1e-4 and darcy["loss"] == "relative_h1"
    assert _config("darcy_mgno")["data"]["init_args"]["batch_size"] == 8
    assert _config("ns_sinenet")["data"]["init_args"]["batch_size"] == 32
    sfno = _config("ns_sfno")["model"]
    assert sfno["scheduler_config"] == {"div_factor": 1e3, "final_div_factor": 1e4}
    mgno = _config("ns_mgno")["model"]
    assert mgno["model"] == "mgno_ns" and mgno["weight_decay"] == 1e-5 and mgno["lr"] == 6e-4
    assert mgno["scheduler_config"]["pct_start"] == 0.1 and mgno["scheduler_config"]["div_factor"] == 2.0


def _epoch_lrs_of_a_small_mgno(tmp_path, epochs=10, **module_kwargs):
    """``(module, data module, [lr at the start of each epoch])`` of a small MgNO fitted on a steady set."""
    import lightning.pytorch as pl
    from train_helpers import write_steady

    from train.data import SteadyDataModule
    from train.module import NeuralOperatorModule

    path = str(write_steady(tmp_path / "s.h5", n=12, res=16))
    dm = SteadyDataModule(path, train="0:8", val="none", test="8:12", batch_size=4)
    m = NeuralOperatorModule(
        "mgno",
        {"channels": 4, "num_layers": 1, "smoothing": [[1, 0], [1, 0]]},
        data_io=dm.io,
        scheduler="onecycle",
        **module_kwargs,
    )
    lrs = []

    class Record(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    t = pl.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record()],
    )
    t.fit(m, dm)
    return m, dm, t, lrs


def test_onecycle_per_epoch_schedule(tmp_path):
    m, dm, t, lrs = _epoch_lrs_of_a_small_mgno(
        tmp_path,
        lr=1e-3,
        weight_decay=1e-4,
        loss="relative_h1",
        loss_config={"reduction": "sum"},
        scheduler_config={"pct_start": 0.2, "div_factor": 2, "final_div_factor": 100, "interval": "epoch"},
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        torch.optim.Adam([torch.zeros(1, requires_grad=True)]),
        max_lr=1e-3,
        total_steps=10,
        pct_start=0.2,
        div_factor=2,
        final_div_factor=100,
    )
    want = []
    for _ in range(10):
        want.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    np.testing.assert_allclose(lrs, want, rtol=1e-12)  # constant within an epoch, one value per epoch
    assert isinstance(m.loss_fn, torch.nn.Module) and m.loss_fn.reduction == "sum"
    assert isinstance(t.optimizers[0], torch.optim.Adam) and t.optimizers[0].defaults["weight_decay"] == 1e-4


def test_loss_config_reduction_and_pool_reach_the_loss(tmp_path):
    from train_helpers import write_steady

    from train.data import SteadyDataModule
    from train.module import NeuralOperatorModule

    dm = SteadyDataModule(str(write_steady(tmp_path / "s.h5", n=6, res=16)), train="0:4", test="4:6", batch_size=2)
    cfg = {"channels": 4, "num_layers": 1, "smoothing": [[1, 0], [1, 0]]}
    m = NeuralOperatorModule("mgno", cfg, data_io=dm.io, loss_config={"reduction": "sum", "pool": "none"})
    assert (m.loss_fn.reduction, m.loss_fn.pool) == ("sum", None)
    with pytest.raises(ValueError, match="reduction must be mean or sum"):
        NeuralOperatorModule("mgno", cfg, data_io=dm.io, loss_config={"reduction": "max"})


def test_onecycle_with_a_warmup_of_exactly_one_step_runs(tmp_path):
    """ns_mgno's per-epoch one-cycle (pct_start 0.1) over 10 epochs: torch's OneCycleLR divides by the
    zero length of its warm-up phase there. The module runs the schedule's limit instead, checked
    against the one-cycle formula written out: epoch 0 at max_lr / div_factor, then the cosine annealing
    of torch's second phase (from max_lr at step 0) down to max_lr / (div_factor * final_div_factor)
    at epoch 9."""
    from train.module import NeuralOperatorModule

    _, dm, _, lrs = _epoch_lrs_of_a_small_mgno(
        tmp_path,
        lr=6e-4,
        scheduler_config={"pct_start": 0.1, "div_factor": 2.0, "final_div_factor": 100.0, "interval": "epoch"},
    )
    top, low = 6e-4, 6e-4 / 2.0 / 100.0
    # torch's phases: warm-up over steps [0, pct_start * total - 1] = [0, 0], annealing over [0, total - 1]
    want = [6e-4 / 2.0] + [low + (top - low) * (1 + math.cos(math.pi * e / 9)) / 2 for e in range(1, 10)]
    np.testing.assert_allclose(lrs, want, rtol=1e-5)
    with pytest.raises(ValueError, match=r"pct_start must be in \(0, 1\), got 1\.5"):
        NeuralOperatorModule(
            "mgno",
            {"channels": 4, "num_layers": 1},
            data_io=dm.io,
            scheduler="onecycle",
            scheduler_config={"pct_start": 1.5},
        ).configure_optimizers()
