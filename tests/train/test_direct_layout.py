"""Direct trajectory models (SFNO, FNO-3D) take and give the data layout ``(B, T, 1, X, Y)``: the training
module no longer drops the field axis (``x_n[:, :, 0]``) and adds it back (``unsqueeze(2)``). Same
outputs and gradients bit for bit, and the same trained weights for the same seed as the former adapter."""

import lightning.pytorch as pl
import pytest
import torch
from train_helpers import write_advection

from neuralops import models
from train.data import TrajectoryDataModule
from train.module import NeuralOperatorModule

TINY = {
    "sfno": {"modes_x": 4, "modes_y": 4, "modes_t": 2, "width": 6, "mlp_channels": 8, "latent_steps": 4},
    "fno3d": {"width": 6, "modes": 3, "n_layers": 2, "projection_channels": 8, "in_steps": 4, "out_steps": 6},
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_data_layout_gives_the_same_outputs_and_gradients(name):
    torch.manual_seed(0)
    model = models.get(name, **TINY[name])
    x = torch.randn(3, 4, 1, 16, 16)
    out5 = model(x, 6)
    out5.square().sum().backward()
    grads5 = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out4 = model(x[:, :, 0], 6)
    out4.square().sum().backward()
    assert out5.shape == (3, 6, 1, 16, 16) and out4.shape == (3, 6, 16, 16)
    assert torch.equal(out5[:, :, 0], out4)
    for g5, p in zip(grads5, model.parameters()):
        assert torch.equal(g5, p.grad)
    with pytest.raises(ValueError, match=r"\(B, T_in"):
        model(torch.randn(3, 4, 2, 16, 16), 6)  # two fields: not these models' contract


class FormerAdapter(NeuralOperatorModule):
    """The module's former direct path: drop the field axis, call the model, add it back."""

    def forward_normalized(self, x, t_out=None):
        if self.mode != "direct":
            return super().forward_normalized(x, t_out)
        x_n = self.norm_in.encode(x, 2)
        return self.model(x_n[:, :, 0], int(t_out or self.layout.t_out)).unsqueeze(2)


@pytest.mark.parametrize("name", sorted(TINY))
def test_trained_weights_are_those_of_the_former_adapter(tmp_path, name):
    path = write_advection(tmp_path / "a.h5", n=8, frames=10, res=16)
    cfg = {k: v for k, v in TINY[name].items() if k not in ("in_steps", "out_steps")}

    def fit(cls):
        pl.seed_everything(3)
        dm = TrajectoryDataModule(str(path), train="0:6", val="6:8", mode="direct", t_in=4, t_out=6, batch_size=3)
        m = cls(name, cfg, data_io=dm.io, lr=3e-3)
        pl.Trainer(
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            deterministic=True,
            max_epochs=2,
        ).fit(m, dm)
        return m.state_dict()

    new, old = fit(NeuralOperatorModule), fit(FormerAdapter)
    assert list(new) == list(old)
    for k in new:
        torch.testing.assert_close(new[k], old[k], rtol=0, atol=0, msg=k)
