"""The LightningModule: rollout identities, pushforward gradients, normalisation in checkpoints,
losses against the metrics, exact resume, evaluation helpers, bad configs."""

import os

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from train_helpers import write_advection, write_steady

from train import metrics as M
from train.data import SteadyDataModule, TrajectoryDataModule
from train.module import NeuralOperatorModule, load_for_refinement, predict_split

SMALL_FNO = {"width": 8, "modes": 4, "projection_channels": 16}
SMALL_MGNO = {"channels": 6, "num_layers": 2, "smoothing": [[1, 0], [1, 0], [2, 0]]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    return {
        "steady": str(write_steady(d / "s.h5", n=40, res=16)),
        "adv": str(write_advection(d / "a.h5", n=16, frames=10, res=16)),
    }


def trainer(tmp_path=None, **kw):
    args = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    if tmp_path is not None:
        args["default_root_dir"] = str(tmp_path)
    args.update(kw)
    return pl.Trainer(**args)


def test_steady_training_learns_and_stores_normalisation(files, tmp_path):
    pl.seed_everything(0)
    dm = SteadyDataModule(files["steady"], train="0:32", val="32:40", test="32:40", batch_size=8)
    m = NeuralOperatorModule("mgno", SMALL_MGNO, data_io=dm.io, loss="relative_h1", lr=5e-3, scheduler="onecycle")
    stats = dm.normalization_statistics()
    m.norm_in.set_statistics(*stats["input"])
    m.norm_out.set_statistics(*stats["output"])
    t = trainer()
    first = t.validate(m, dm, verbose=False)[0]["val/relative_l2"]
    ckpt_cb = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    t = trainer(tmp_path, max_epochs=15, enable_checkpointing=True, callbacks=[ckpt_cb])
    t.fit(m, dm)
    last = t.callback_metrics["val/relative_l2"].item()
    assert last < 0.5 * first, (first, last)  # it learns the (linear) map
    # statistics: training split only, restored from the checkpoint with the weights
    mean, std = dm.normalization_statistics()["input"]
    np.testing.assert_allclose(m.norm_in.mean.numpy(), mean)
    loaded = NeuralOperatorModule.load_from_checkpoint(os.path.join(tmp_path, "last.ckpt"))
    assert bool(loaded.norm_out.fitted)
    torch.testing.assert_close(loaded.norm_out.std, m.norm_out.std)
    x, y = next(iter(dm.test_dataloader()))
    torch.testing.assert_close(loaded.eval()(x), m.eval()(x))
    # the module's test metric is the per-sample FNO relative L2 of its physical predictions
    res = trainer().test(loaded, dm, verbose=False)[0]
    out = predict_split(os.path.join(tmp_path, "last.ckpt"))
    assert out["prediction"].shape == (8, 1, 1, 16, 16) and out["indices"].tolist() == list(range(32, 40))
    assert abs(M.fno_relative_l2(out["prediction"], out["target"]).item() - res["test/relative_l2"]) < 1e-5
    # the relative H1 training loss is the evaluation's relative H1 (independent box conventions)
    assert abs(res["test/loss"] - res["test/relative_h1"]) < 1e-5


def test_autoregressive_rollout_is_the_repeated_step(files):
    dm = TrajectoryDataModule(
        files["adv"], train="0:12", test="12:16", mode="autoregressive", t_in=4, t_out=5, history=3
    )
    m = NeuralOperatorModule("fno2d", dict(SMALL_FNO, norm="none"), data_io=dm.io)
    m.norm_in.set_statistics([0.3], [2.0])
    x, y = dm.make_dataset("test")[0]
    x = x[None]
    with torch.no_grad():
        pred = m(x)  # (1, 5, 1, X, Y), physical
        frames = list(((x - 0.3) / 2.0)[:, :, 0].unbind(1))  # normalised frames
        for _ in range(5):
            frames.append(m.model(torch.stack(frames[-3:], 1))[:, 0])
        manual = torch.stack(frames[4:], 1)[:, :, None] * 2.0 + 0.3
    assert pred.shape == (1, 5, 1, 16, 16)
    torch.testing.assert_close(pred, manual)


def test_pushforward_gradient_flows_only_through_the_last_steps(files):
    dm = TrajectoryDataModule(files["adv"], train="0:4", mode="autoregressive", t_in=3, history=2, unroll=3)
    torch.manual_seed(0)
    m = NeuralOperatorModule(
        "fno2d", dict(SMALL_FNO, norm="none"), data_io=dm.io, pushforward_steps=2, loss_space="normalized"
    )
    m.norm_in.set_statistics([0.0], [1.0])
    x, y = (t[None] for t in dm.make_dataset("train")[0])
    loss = m.training_step((x, y), 0)
    loss.backward()
    g = [p.grad.clone() for p in m.model.parameters()]
    m.zero_grad()
    # by hand: two steps without gradient from the true history, then one step with gradient
    with torch.no_grad():
        h = x[:, :, 0]
        for _ in range(2):
            h = torch.cat([h[:, 1:], m.model(h)], 1)
    ref = m.loss_fn(m.model(h)[:, None], y[:, 2:])
    ref.backward()
    torch.testing.assert_close(loss, ref)
    for a, p in zip(g, m.model.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_direct_mode_and_refinement_hooks(files, tmp_path):
    pl.seed_everything(1)
    dm = TrajectoryDataModule(
        files["adv"], train="0:12", val="12:16", test="12:16", mode="direct", t_in=4, t_out=6, batch_size=4
    )
    m = NeuralOperatorModule(
        "sfno",
        {"modes_x": 4, "modes_y": 4, "modes_t": 2, "width": 6, "mlp_channels": 8, "latent_steps": 4},
        data_io=dm.io,
    )
    cb = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer(tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[cb]).fit(m, dm)
    model, info = load_for_refinement(os.path.join(tmp_path, "last.ckpt"))
    assert info["t_in"] == 4 and info["t_out"] == 6 and info["model_name"] == "sfno"
    assert info["test_indices"] == [12, 13, 14, 15]
    x, y = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        via_info = info["decode"](model(info["encode"](x[:, :, 0]), 6))
        torch.testing.assert_close(via_info, m.eval()(x)[:, :, 0])


class StopAfter(pl.Callback):
    """Simulates an interrupted run: the configured run is 4 epochs, it stops after `epochs`."""

    def __init__(self, epochs):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def _fit_weights(files, tmp_path, epochs, interrupt_after=None):
    def build():
        dm = SteadyDataModule(files["steady"], train="0:24", val="32:40", batch_size=6, seed=5)
        return dm, NeuralOperatorModule("fno2d", SMALL_FNO, data_io=dm.io, lr=3e-3, scheduler="onecycle")

    pl.seed_everything(7)
    dm, m = build()
    cbs = [pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)]
    if interrupt_after:
        cbs.append(StopAfter(interrupt_after))
    trainer(tmp_path, max_epochs=epochs, enable_checkpointing=True, callbacks=cbs).fit(m, dm)
    if interrupt_after:
        assert m.current_epoch == interrupt_after
        pl.seed_everything(123)  # a different global RNG state before resuming
        dm, m = build()
        cb = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
        trainer(tmp_path, max_epochs=epochs, enable_checkpointing=True, callbacks=[cb]).fit(
            m, dm, ckpt_path=os.path.join(tmp_path, "last.ckpt")
        )
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_resume_gives_the_weights_of_an_uninterrupted_run(files, tmp_path):
    full = _fit_weights(files, tmp_path / "a", 4)
    resumed = _fit_weights(files, tmp_path / "b", 4, interrupt_after=2)
    for k in full:
        torch.testing.assert_close(resumed[k], full[k], rtol=0, atol=0, msg=k)


def test_bad_module_configs(files):
    sdm = SteadyDataModule(files["steady"], train="0:8", batch_size=4)
    tdm = TrajectoryDataModule(files["adv"], train="0:8", mode="direct", t_in=4)
    with pytest.raises(ValueError, match="unknown model 'fno4d'; available models: .*mgno"):
        NeuralOperatorModule("fno4d", data_io=sdm.io)
    with pytest.raises(ValueError, match="set data.mode: autoregressive"):
        NeuralOperatorModule("fno2d", data_io=tdm.io)
    with pytest.raises(ValueError, match="bad model_config for 'mgno'.*channels"):
        NeuralOperatorModule("mgno", {"chanels": 4}, data_io=sdm.io)
    with pytest.raises(ValueError, match="loss must be one of"):
        NeuralOperatorModule("mgno", data_io=sdm.io, loss="mse")
    with pytest.raises(ValueError, match="negative_sobolev needs s < 0"):
        NeuralOperatorModule("mgno", data_io=sdm.io, loss="negative_sobolev", loss_config={"s": 1})
    with pytest.raises(ValueError, match="pushforward_steps=1 must be >= 0 and < data.unroll=1"):
        adm = TrajectoryDataModule(files["adv"], train="0:8", mode="autoregressive", t_in=4)
        NeuralOperatorModule("fno2d", SMALL_FNO, data_io=adm.io, pushforward_steps=1)
    with pytest.raises(ValueError, match="data_io is missing"):
        NeuralOperatorModule("mgno")
    # a model that cannot take the data stops in setup, before the first training step
    m = NeuralOperatorModule(
        "sinenet",
        {"num_waves": 2, "hidden_channels": 4, "num_levels": 5},
        data_io=TrajectoryDataModule(files["adv"], train="0:8", mode="autoregressive", t_in=4).io,
    )
    with pytest.raises(ValueError, match="does not accept the data.*divisible"):
        trainer(max_epochs=1).fit(m, TrajectoryDataModule(files["adv"], train="0:8", mode="autoregressive", t_in=4))
    # evaluating a module that was never trained
    with pytest.raises(ValueError, match="never fitted"):
        trainer().test(
            NeuralOperatorModule("mgno", SMALL_MGNO, data_io=sdm.io),
            SteadyDataModule(files["steady"], train="0:8", test="8:12"),
        )


# the constructor arguments the module derived from the data before the model contract (by the model's
# name and constructor signature): the contract must build the very same networks
_TINY = {
    "fno2d": SMALL_FNO,
    "fno3d": SMALL_FNO,
    "mgno": SMALL_MGNO,
    "mgno_ts": SMALL_MGNO,
    "mgno_ns": {"channels": 4, "num_layers": 1, "smoothing": [[1, 0], [1, 0]], "resolution": 16},
    "sfno": {"modes_x": 3, "modes_y": 3, "modes_t": 2, "width": 6, "latent_steps": 4},
    "sinenet": {"num_waves": 2, "hidden_channels": 4, "num_levels": 2},
    "unet": {"hidden_channels": 4, "channel_multipliers": [1, 2]},
    "unet_mod": {"hidden_channels": 8, "channel_multipliers": [1, 2]},
}
_BEFORE = {  # (data mode, the former data-derived keywords)
    ("steady", "fno2d"): {"in_channels": 1, "out_channels": 1, "endpoint": True},
    ("steady", "mgno"): {"in_channels": 1, "out_channels": 1, "padding_mode": "zeros"},
    ("steady", "unet"): {"in_channels": 1, "out_channels": 1, "padding_mode": "zeros"},
    ("direct", "fno3d"): {"in_steps": 4, "out_steps": 6},
    ("direct", "sfno"): {"out_steps": 6},
    ("autoregressive", "fno2d"): {"in_channels": 4, "out_channels": 1},
    ("autoregressive", "mgno"): {"in_channels": 4, "out_channels": 1, "padding_mode": "circular"},
    ("autoregressive", "mgno_ts"): {"time_history": 4, "fields": 1, "padding_mode": "circular"},
    ("autoregressive", "mgno_ns"): {"time_history": 4, "fields": 1, "padding_mode": "circular"},
    ("autoregressive", "sinenet"): {
        "in_channels": 4,
        "out_channels": 1,
        "time_history": 4,
        "in_fields": 1,
        "out_fields": 1,
        "time_future": 1,
        "padding_mode": "circular",
    },
    ("autoregressive", "unet_mod"): {
        "in_channels": 4,
        "out_channels": 1,
        "time_history": 4,
        "in_fields": 1,
        "out_fields": 1,
        "time_future": 1,
        "padding_mode": "circular",
    },
}


@pytest.mark.parametrize("mode,name", sorted(_BEFORE))
def test_the_model_contract_builds_the_networks_of_before(files, mode, name):
    """Same seed, same weights: the module asks the model's contract (kinds, build) and gets exactly
    the network the former name lists and signature inspection built, so checkpoints still load."""
    from neuralops import models

    if mode == "steady":
        io = SteadyDataModule(files["steady"], train="0:8").io
    else:
        io = TrajectoryDataModule(files["adv"], train="0:8", mode=mode, t_in=4, t_out=6).io
    torch.manual_seed(0)
    built = NeuralOperatorModule(name, _TINY[name], data_io=io, check_model=False).model
    torch.manual_seed(0)
    before = models.get(name, **{**_BEFORE[mode, name], **_TINY[name]})
    a, b = built.state_dict(), before.state_dict()
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_the_module_asks_the_model_what_it_serves(files):
    from neuralops import models

    for n in models.available():
        cls = models.constructor(n)
        assert cls.kinds and set(cls.kinds) <= set(models.KINDS), n
        assert set(cls.geometry) <= {"padding_mode", "endpoint"}, n
    sdm = SteadyDataModule(files["steady"], train="0:8")
    adm = TrajectoryDataModule(files["adv"], train="0:8", mode="autoregressive", t_in=4)
    with pytest.raises(ValueError, match="'mgno_ts' serves autoregressive data; steady data needs one of fno2d"):
        NeuralOperatorModule("mgno_ts", data_io=sdm.io)
    with pytest.raises(ValueError, match="predicts a whole trajectory at once .direct.; set data.mode: direct"):
        NeuralOperatorModule("sfno", data_io=adm.io)
    with pytest.raises(ValueError, match="fno3d predicts one scalar field"):
        models.constructor("fno3d").build("direct", in_channels=2, out_channels=2, t_in=3, t_out=2)


def test_checkpoints_of_the_former_io_form_still_build_and_match(files):
    """Checkpoints written before the typed layout hold ``grid: {axis: {n, boundary, length,
    includes_boundary}}``: they still build the module, and compare equal to the data's layout."""
    from train.module import as_layout

    for dm in (
        SteadyDataModule(files["steady"], train="0:8"),
        TrajectoryDataModule(files["adv"], train="0:8", mode="autoregressive", t_in=4),
    ):
        old = dict(dm.io)
        old["grid"] = {
            ax: {
                "n": g["n"],
                "boundary": g["boundary"],
                "length": g["length"],
                "includes_boundary": g["includes_boundary"],
            }
            for ax, g in dm.io["grid"].items()
        }
        module = NeuralOperatorModule("fno2d", SMALL_FNO, data_io=old, check_model=False)
        assert module.layout.differences(dm.layout) == {}
        assert module.layout.grid.lengths() == pytest.approx(dm.layout.grid.lengths())
        assert module.layout.grid.padding_mode() == dm.layout.grid.padding_mode()
        assert as_layout(module.io).differences(as_layout(old)) == {}


def test_a_bad_schedule_is_refused_at_construction(files):
    """scheduler_config is checked where it enters (the module), not when the trainer first asks."""
    sdm = SteadyDataModule(files["steady"], train="0:8")
    with pytest.raises(ValueError, match=r"unknown scheduler_config keys \['gama'\] for scheduler 'step'"):
        NeuralOperatorModule("mgno", SMALL_MGNO, data_io=sdm.io, scheduler="step", scheduler_config={"gama": 0.5})
    with pytest.raises(ValueError, match="interval must be 'step' or 'epoch', got 'batch'"):
        NeuralOperatorModule(
            "mgno", SMALL_MGNO, data_io=sdm.io, scheduler="onecycle", scheduler_config={"interval": "batch"}
        )
