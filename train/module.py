"""One LightningModule for every model and data layout: :class:`NeuralOperatorModule`.

It owns a registry model, built by the model's own contract (``neuralops.models.constructor(name).build``:
the model declares the layouts it serves and takes the same arguments whatever it is; the module asks
it, never its name or signature), the per-channel
normalisation (buffers, fitted on the training split by the data module, saved in every
checkpoint), the training loss, validation/test metrics and the rollout. Three modes, set by the
data module's :class:`~datagen.contract.DataLayout` (``data_io`` here, or its plain form ``dm.io``):

* ``steady``: ``x (B, C_in, X, Y) -> y (B, C_out, X, Y)`` (Darcy).
* ``direct`` (fno3d, sfno): ``x (B, T_in, X, Y) -> y (B, T_out, X, Y)``, one forward pass.
* ``autoregressive`` (fno2d, sinenet, mgno_ts, unet): ``(B, H*C, X, Y)`` (the last ``H`` frames,
  time-major) ``-> (B, C, X, Y)`` (the next frame). Training windows hold ``U = unroll`` target
  frames: the first ``pushforward_steps`` of them are predicted without gradient (the pushforward
  trick: the model learns from its own, slightly wrong, inputs), the remaining ones with gradient
  through the unrolled steps (``U = 1, pushforward_steps = 0``: one-step teacher forcing;
  ``U = 40``: the FNO-2D paper's backpropagation through the whole rollout). Evaluation rolls out
  autoregressively from the last ``H`` of the ``T_in`` protocol input frames for ``T_out`` steps.

Everything inside the model is in normalised variables; predictions are decoded to physical
units before metrics. The loss is taken in physical units (``loss_space="physical"``, as the FNO
code does) or on normalised variables (``"normalized"``, as SineNet does).

Losses (``neuralops.losses``, one norm per sample over all predicted (t, c, x, y), mean over the
batch): ``relative_l2``; ``relative_h1``; ``relative_sobolev`` (``loss_config.s``, any real s);
``negative_sobolev`` (``s < 0``, default ``-1``). Sobolev losses use the data's boundary condition
(periodic: Fourier series; Dirichlet: sine series) and box, both from the layout's
:class:`~datagen.contract.Grid` (the only place geometry is derived).

Mixed precision: the model runs under Lightning's autocast (``precision="bf16-mixed"``); losses and
metrics are computed in float32/float64 with autocast off, because FFTs have no bfloat16 kernels.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import lightning.pytorch as pl
import torch
import torch.nn as nn

from datagen.contract import DataLayout
from neuralops import models
from neuralops.losses import LpLoss, SobolevLoss

from .data.normalization import ChannelNormalizer, PointwiseNormalizer

__all__ = [
    "NeuralOperatorModule",
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULERS",
    "model_arguments",
    "load_for_refinement",
    "predict_split",
    "NonFiniteLossError",
    "CheckpointMismatchError",
    "layout_differences",
    "describe_layout",
    "load_module",
    "as_layout",
]

LOSSES = ("relative_l2", "relative_h1", "relative_sobolev", "negative_sobolev")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "step", "onecycle", "cosine", "warmup_cosine")
LOSS_SPACES = ("physical", "normalized")


class NonFiniteLossError(RuntimeError):
    """The training loss became nan or inf (the message names the epoch and batch)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint of another model or data layout than the run's (the message names both)."""


def as_layout(data_io: Union[DataLayout, Mapping[str, Any]]) -> DataLayout:
    """A :class:`DataLayout` from itself or its plain form (a data module's ``io``, a checkpoint's copy)."""
    return data_io if isinstance(data_io, DataLayout) else DataLayout.from_dict(data_io)


def layout_differences(a, b) -> Dict[str, Tuple[Any, Any]]:
    """``{key: (value in a, value in b)}`` where two data layouts (or their plain ``io`` forms) differ in
    what a model depends on (:meth:`DataLayout.model_keys`)."""
    return as_layout(a).differences(as_layout(b))


def describe_layout(io) -> str:
    """One line (:meth:`DataLayout.describe`)."""
    return as_layout(io).describe()


#: checkpoint key holding the data module's ``io`` the model was built for (independent of how the
#: Lightning version saves hyper-parameters)
DATA_IO_KEY = "neuralops_data_io"


def model_arguments(layout: DataLayout) -> Dict[str, Any]:
    """The contract's arguments the data determine (:meth:`neuralops.models.ModelContract.build`):
    the layout's kind, channels per frame (steady: per field map), windows and geometry."""
    out: Dict[str, Any] = {
        "kind": layout.mode,
        "in_channels": layout.in_channels,
        "out_channels": layout.out_channels,
        "padding_mode": layout.grid.padding_mode(),
        "endpoint": layout.grid.includes_walls,
    }
    if layout.mode == "autoregressive":
        out.update(t_in=layout.history, t_out=1)
    elif layout.mode == "direct":
        out.update(t_in=layout.t_in, t_out=layout.t_out)
    return out


def _serving(kind: str) -> str:
    return ", ".join(n for n in models.available() if kind in models.constructor(n).kinds)


def _kind_mismatch(model: str, kinds: Tuple[str, ...], mode: str) -> str:
    """Why model ``model`` (serving ``kinds``) cannot take data of layout ``mode``, and the fix."""
    served = " and ".join(kinds)
    if mode == "direct" and "autoregressive" in kinds:
        return (
            f"model {model!r} maps frames to the next frame ({served}); the data module is in 'direct' mode "
            f"(T_in -> T_out in one pass, for {_serving('direct')}): set data.mode: autoregressive"
        )
    if mode == "autoregressive" and "direct" in kinds:
        return f"model {model!r} predicts a whole trajectory at once (direct); set data.mode: direct"
    return f"model {model!r} serves {served} data; {mode} data needs one of {_serving(mode)}"


class NeuralOperatorModule(pl.LightningModule):
    """Model + normalisation + loss + metrics + rollout (see the module docstring).

    Args:
        model: registry name (``neuralops.models.available()``).
        model_config: keyword arguments of the model constructor; channel counts, windows and the
            padding mode are filled in from ``data_io`` where the constructor takes them.
        data_io: the data module's :class:`~datagen.contract.DataLayout` or its plain form ``dm.io``
            (``neuralops-train`` links ``dm.io``; checkpoints of earlier versions hold an older plain form,
            which :meth:`DataLayout.from_dict` reads).
        loss, loss_config: training loss (``LOSSES``) and its options (``s`` for Sobolev losses).
        loss_space: "physical" or "normalized".
        pushforward_steps: autoregressive only: leading target frames predicted without gradient.
        optimizer, lr, weight_decay, betas, momentum: the optimiser (``OPTIMIZERS``).
        scheduler, scheduler_config: learning-rate schedule (``SCHEDULERS``):
            ``step`` {step_size (epochs), gamma}; ``onecycle`` {pct_start, div_factor,
            final_div_factor} with peak ``lr`` over all training steps; ``cosine`` {eta_min} to the
            last step; ``warmup_cosine`` {warmup_epochs, eta_min}: linear warm-up then cosine.
        check_model: run one sample through the model when training/evaluation starts, so a model
            that does not fit the data fails before the first step with a clear message.
    """

    def __init__(
        self,
        model: str,
        model_config: Optional[Dict[str, Any]] = None,
        data_io: Optional[Dict[str, Any]] = None,
        loss: str = "relative_l2",
        loss_config: Optional[Dict[str, Any]] = None,
        loss_space: str = "physical",
        pushforward_steps: int = 0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        betas: Tuple[float, float] = (0.9, 0.999),
        momentum: float = 0.9,
        scheduler: str = "none",
        scheduler_config: Optional[Dict[str, Any]] = None,
        check_model: bool = True,
    ):
        super().__init__()
        if isinstance(data_io, DataLayout):
            data_io = data_io.to_dict()  # hyper-parameters hold the plain form (save_hyperparameters reads it)
        self.save_hyperparameters()
        if data_io is None:
            raise ValueError(
                "data_io is missing: neuralops-train links it from the data module; in Python "
                "pass data_io=datamodule.io"
            )
        for name, value, allowed in (
            ("loss", loss, LOSSES),
            ("loss_space", loss_space, LOSS_SPACES),
            ("optimizer", optimizer, OPTIMIZERS),
            ("scheduler", scheduler, SCHEDULERS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        _check_scheduler_config(scheduler, dict(scheduler_config or {}))
        self.layout = as_layout(data_io)
        self.io = self.layout.to_dict()  # the plain form (checkpoints, reports)
        self.mode = self.layout.mode
        self.model_name = str(model).lower()
        if self.model_name not in models.available():
            raise ValueError(f"unknown model {model!r}; available models: {', '.join(models.available())}")
        cls = models.constructor(self.model_name)
        if self.mode not in cls.kinds:
            raise ValueError(_kind_mismatch(self.model_name, cls.kinds, self.mode))
        self.model_config = dict(model_config or {})
        try:
            self.model = cls.build(**model_arguments(self.layout), config=self.model_config)
        except TypeError as exc:
            raise ValueError(
                f"bad model_config for {model!r}: {exc}; the constructor takes {', '.join(cls.config_keys())}"
            ) from exc
        self.pushforward_steps = int(pushforward_steps)
        if self.mode == "autoregressive" and not 0 <= self.pushforward_steps < self.layout.unroll:
            raise ValueError(
                f"pushforward_steps={pushforward_steps} must be >= 0 and < data.unroll="
                f"{self.layout.unroll} (at least one step must carry a gradient)"
            )
        if self.mode != "autoregressive" and self.pushforward_steps:
            raise ValueError("pushforward_steps applies to autoregressive training only")
        kind = self.layout.normalization
        if kind == "pointwise":
            self.norm_in, self.norm_out = self._pointwise_normalizers()
        elif self.mode == "steady":
            self.norm_in = ChannelNormalizer(self.layout.in_channels, kind)
            self.norm_out = ChannelNormalizer(self.layout.out_channels, kind)
        else:
            self.norm_in = ChannelNormalizer(self.layout.channels, kind)
            self.norm_out = self.norm_in  # one state: inputs and outputs share the statistics
        self.loss_fn = self._build_loss(loss, dict(loss_config or {}))
        self._h1 = self.layout.grid.sobolev_boundary()
        self._sums: Dict[str, torch.Tensor] = {}

    # -- construction -------------------------------------------------------------------------
    def _pointwise_normalizers(self) -> Tuple[PointwiseNormalizer, PointwiseNormalizer]:
        """Per-grid-point normalisers of inputs and outputs (``normalization: pointwise``, the FNO
        scripts' ``UnitGaussianNormalizer``): steady ``(C, X, Y)``; direct ``(T_in | T_out, C, X, Y)``."""
        grid, lay = self.layout.grid.shape, self.layout
        if self.mode == "steady":
            return (PointwiseNormalizer((lay.in_channels,) + grid), PointwiseNormalizer((lay.out_channels,) + grid))
        if self.mode != "direct":
            raise ValueError("normalization 'pointwise' needs steady data or data.mode: direct")
        c = lay.channels
        return (PointwiseNormalizer((lay.t_in, c) + grid), PointwiseNormalizer((lay.t_out, c) + grid))

    def _build_loss(self, loss: str, cfg: Dict[str, Any]) -> nn.Module:
        # reduction (mean | sum over the batch) and pool (all: one norm per sample over (t, c, x, y);
        # none: one per frame and channel) -- the FNO scripts sum over the batch (FNO-2D also per step)
        red, pool = cfg.pop("reduction", "mean"), cfg.pop("pool", "all")
        if red not in ("mean", "sum") or pool not in ("all", "none"):
            raise ValueError(f"loss_config reduction must be mean or sum and pool all or none, got {red!r}, {pool!r}")
        pool = None if pool == "none" else pool
        if loss == "relative_l2":
            if cfg:
                raise ValueError(f"relative_l2 takes only reduction and pool in loss_config, got {cfg}")
            return LpLoss(p=2, relative=True, dim=2, pool=pool, reduction=red)
        s = {"relative_h1": 1.0, "relative_sobolev": cfg.get("s", 1.0), "negative_sobolev": cfg.get("s", -1.0)}[loss]
        unknown = set(cfg) - {"s", "k_max"}
        if unknown or (loss == "relative_h1" and "s" in cfg):
            raise ValueError(
                f"unknown loss_config keys {sorted(unknown) or ['s']} for {loss}; allowed: "
                f"{'k_max' if loss == 'relative_h1' else 's, k_max'}, reduction, pool"
            )
        if loss == "negative_sobolev" and not float(s) < 0:
            raise ValueError(f"negative_sobolev needs s < 0, got s={s}")
        grid = self.layout.grid
        boundary = grid.sobolev_boundary()
        if boundary is None:
            raise ValueError(
                f"Sobolev losses need periodic or Dirichlet data on every axis; the grid has "
                f"{grid.boundaries}: use loss: relative_l2"
            )
        return SobolevLoss(
            s=float(s),
            relative=True,
            dim=2,
            box=grid.lengths(),
            boundary=boundary,
            k_max=cfg.get("k_max"),
            includes_boundary=grid.includes_walls,
            pool=pool,
            reduction=red,
        )

    # -- normalised forward passes ------------------------------------------------------------
    def _step(self, hist_n: torch.Tensor) -> torch.Tensor:
        """Autoregressive step, normalised: ``(B, H, C, X, Y) -> (B, C, X, Y)``."""
        return self.model(hist_n.flatten(1, 2))

    def _rollout_n(self, hist_n: torch.Tensor, steps: int, grad_from: int = 0) -> torch.Tensor:
        """Roll out ``steps`` frames from ``hist_n`` ``(B, H, C, X, Y)``; the first ``grad_from``
        without gradient. Returns the frames from ``grad_from`` on: ``(B, steps - grad_from, C, X, Y)``."""
        out = []
        for k in range(steps):
            with torch.set_grad_enabled(torch.is_grad_enabled() and k >= grad_from):
                nxt = self._step(hist_n)
            if k >= grad_from:
                out.append(nxt)
            hist_n = torch.cat([hist_n[:, 1:], nxt.unsqueeze(1)], dim=1)
        return torch.stack(out, dim=1)

    def forward_normalized(self, x: torch.Tensor, t_out: Optional[int] = None) -> torch.Tensor:
        """Prediction in normalised variables from physical inputs (layouts of the data module)."""
        if self.mode == "steady":
            return self.model(self.norm_in.encode(x, 1))
        x_n = self.norm_in.encode(x, 2)
        t_out = int(t_out or self.layout.t_out)
        if self.mode == "direct":
            return self.model(x_n, t_out)  # direct models take and give the data layout (B, T, 1, X, Y)
        return self._rollout_n(x_n[:, -self.layout.history :], t_out)

    def forward(self, x: torch.Tensor, t_out: Optional[int] = None) -> torch.Tensor:
        """Physical prediction: steady ``(B, C_in, X, Y) -> (B, C_out, X, Y)``; trajectories
        ``(B, T_in, C, X, Y) -> (B, t_out, C, X, Y)`` (direct pass or autoregressive rollout)."""
        out_n = self.forward_normalized(x, t_out)
        return self.norm_out.decode(out_n.float(), 1 if self.mode == "steady" else 2)

    # -- loss and metrics ---------------------------------------------------------------------
    def _loss(self, out_n: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cdim = 1 if self.mode == "steady" else 2
        with torch.autocast(device_type=self.device.type, enabled=False):
            out_n = out_n.float()
            if self.hparams.loss_space == "physical":
                return self.loss_fn(self.norm_out.decode(out_n, cdim), y.float())
            return self.loss_fn(out_n, self.norm_out.encode(y.float(), cdim))

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.mode == "autoregressive":
            p = self.pushforward_steps
            out_n = self._rollout_n(self.norm_in.encode(x, 2), y.shape[1], grad_from=p)
            loss = self._loss(out_n, y[:, p:])
        else:
            loss = self._loss(self.forward_normalized(x, y.shape[1] if y.dim() == 5 else None), y)
        if not bool(torch.isfinite(loss.detach())):
            epoch = self.current_epoch if self._trainer is not None else 0
            step = self.global_step if self._trainer is not None else 0
            raise NonFiniteLossError(
                f"the training loss is {float(loss.detach())} at epoch {epoch}, batch {batch_idx} (global step "
                f"{step}); the run stops here. Causes: a learning rate too high for this model (lower model.lr), "
                "data with nan/inf or near-zero targets (neuralops-data validate --deep), or bf16 overflow "
                "(trainer.precision 32-true)"
            )
        if self._trainer is not None:
            self.log(
                "train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=x.shape[0], sync_dist=True
            )
        return loss

    def _canonical(self, t: torch.Tensor) -> torch.Tensor:
        return t.unsqueeze(1) if self.mode == "steady" else t

    def _accumulate(self, name: str, per_sample: torch.Tensor) -> None:
        """Add per-sample values to the epoch's (sum, count) of metric ``name``."""
        acc = self._sums.setdefault(name, torch.zeros(2, dtype=torch.float64, device=per_sample.device))
        self._sums[name] = acc + torch.stack(
            [per_sample.double().sum(), per_sample.new_tensor(per_sample.numel(), dtype=torch.float64)]
        )

    def _evaluate(self, batch) -> None:
        from . import metrics as M

        x, y = batch
        out_n = self.forward_normalized(x, None if self.mode == "steady" else y.shape[1])
        loss = self._loss(out_n, y)
        with torch.autocast(device_type=self.device.type, enabled=False):
            pred = self.norm_out.decode(out_n.float(), 1 if self.mode == "steady" else 2)
            p, t = self._canonical(pred), self._canonical(y.float())
            self._accumulate("relative_l2", M.relative_l2_per_sample(p, t))
            if self._h1:  # evaluation files may have another resolution: the same domain and nodes
                grid = self.layout.grid.resized(p.shape[-2:])
                self._accumulate("relative_h1", M.relative_h1_per_sample(p, t, grid))
        self._accumulate("loss", loss.detach().expand(x.shape[0]))

    def _log_epoch(self, prefix: str) -> None:
        """Mean over every evaluated sample of all processes: sums and counts are all-reduced, so
        the value does not depend on how the samples were split over processes or batches."""
        for name, acc in sorted(self._sums.items()):
            total = self.trainer.strategy.reduce(acc, reduce_op="sum") if self._trainer is not None else acc
            self.log(
                f"{prefix}/{name}",
                (total[0] / total[1]).float(),
                prog_bar=name == "relative_l2",
                sync_dist=False,
                rank_zero_only=False,
            )
        self._sums = {}

    def on_validation_epoch_start(self) -> None:
        self._sums = {}

    def on_test_epoch_start(self) -> None:
        self._sums = {}

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch)

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, y = batch
        return self(x, None if self.mode == "steady" else y.shape[1])

    # -- set-up hooks -------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and not bool(self.norm_in.fitted):
            if dm is None or not hasattr(dm, "normalization_statistics"):
                raise ValueError("the normalisation is not fitted and there is no neuralops data module to fit it")
            stats = dm.normalization_statistics()
            if "input" in stats:  # steady pairs, or pointwise statistics of a window
                self.norm_in.set_statistics(*stats["input"])
                self.norm_out.set_statistics(*stats["output"])
            else:
                self.norm_in.set_statistics(*stats["state"])
        if self.hparams.check_model and dm is not None:
            split = {"fit": "train", "validate": "val", "test": "test", "predict": "test"}.get(stage, "train")
            if split != "train" and getattr(dm, "splits", {}).get(split) is None:
                split = "train"
            self._check_model(dm, split)

    def _require_fitted(self) -> None:
        # runs after Lightning restored the checkpoint (setup() runs before the restore)
        if not bool(self.norm_in.fitted):
            raise ValueError(
                "this module's normalisation was never fitted: evaluate the checkpoint of a trained "
                "model (--ckpt_path) rather than a fresh module"
            )

    def on_test_start(self) -> None:
        self._require_fitted()

    def on_predict_start(self) -> None:
        self._require_fitted()

    def on_validation_start(self) -> None:
        if not self.trainer.sanity_checking and self.trainer.state.fn != "fit":
            self._require_fitted()

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        checkpoint[DATA_IO_KEY] = self.layout.to_dict()

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Refuse a checkpoint of another model or data layout (before its weights are loaded)."""
        hp = checkpoint.get("hyper_parameters") or {}
        theirs = str(hp.get("model", "")).lower()
        if theirs and theirs != self.model_name:
            raise CheckpointMismatchError(
                f"the checkpoint holds a {theirs!r} model but this run builds {self.model_name!r}: use a checkpoint "
                f"of a {self.model_name!r} run, or the config that trained it (model.model: {theirs})"
            )
        io = checkpoint.get(DATA_IO_KEY) or hp.get("data_io")
        if io:
            theirs_layout = as_layout(io)
            diff = theirs_layout.differences(self.layout)
            if diff:
                listing = "; ".join(f"{k} {a!r} vs {b!r}" for k, a, b in ((k,) + v for k, v in diff.items()))
                raise CheckpointMismatchError(
                    f"the checkpoint was trained on {theirs_layout.describe()} but the data give "
                    f"{self.layout.describe()} "
                    f"(checkpoint vs data: {listing}); use data of the layout the model was trained on"
                )

    @torch.no_grad()
    def _check_model(self, dm, split: str = "train") -> None:
        if dm.splits.get(split) is None:
            split = "train" if dm.splits.get("train") is not None else "test"
        x, y = dm.make_dataset(split)[0]
        # where the weights are now: Lightning's setup() runs before the module is moved, while
        # self.device already reports the target device
        device = next(iter(self.model.parameters()), torch.empty(0)).device
        was_training = self.model.training
        self.model.eval()
        try:
            if self.mode == "autoregressive":
                got = self._step(self.norm_in.encode(x[None, -self.layout.history :], 2).to(device))
                want = tuple(y.shape[1:])
            else:
                got = self.forward_normalized(x[None].to(device), y.shape[0] if y.dim() == 4 else None)
                want = tuple(y.shape)
        except Exception as exc:  # any failure here is a model/data mismatch worth a clear message
            trained = self.layout.grid.describe()
            here = "x".join(str(v) for v in x.shape[-2:])
            extra = f"; it was built for {trained} data and this model cannot take {here}" if here != trained else ""
            raise ValueError(
                f"model {self.model_name!r} with config {self.model_config} does not accept the data "
                f"(one {split} sample: x {tuple(x.shape)}){extra}: {exc}"
            ) from exc
        finally:
            self.model.train(was_training)
        if tuple(got.shape[1:]) != want:
            raise ValueError(
                f"model {self.model_name!r} returns shape {tuple(got.shape[1:])} per sample but the data "
                f"need {want}; check model_config"
            )

    # -- optimisation -------------------------------------------------------------------------
    def on_train_start(self) -> None:
        # a resumed one-cycle schedule keeps the length it was built for (from the checkpoint)
        for cfg in self.trainer.lr_scheduler_configs:
            total = getattr(cfg.scheduler, "total_steps", None)
            run = (
                int(self.trainer.max_epochs or 0)
                if cfg.interval == "epoch"
                else int(self.trainer.estimated_stepping_batches)
            )
            if total is not None and total != run:
                raise ValueError(
                    f"the one-cycle schedule in the checkpoint spans {total} steps but this run has "
                    f"{run}: resume with the original "
                    "trainer.max_epochs/max_steps (a one-cycle schedule cannot be extended)"
                )

    def configure_optimizers(self):
        """Optimiser and schedule.

        Weight decay: ``adam`` is ``torch.optim.Adam``, whose ``weight_decay`` is *coupled* L2 (``wd *
        theta`` is added to the gradient before the moments), as in the Adam of the FNO and MgNO
        scripts; ``adamw`` is decoupled (``lr * wd * theta`` subtracted from the weights). Adam is
        invariant to a constant factor on the objective (up to ``eps``), so with coupled decay a
        loss summed over a batch of ``B`` with ``wd`` trains exactly like the batch mean with
        ``wd / B``: the published scripts sum (``loss_config: {reduction: sum}``), and a config keeps
        their ``wd`` only together with their reduction. Decoupled decay does not depend on the
        reduction.

        Schedules (``scheduler_config``): ``step`` {step_size (epochs), gamma}; ``onecycle``
        {pct_start, div_factor, final_div_factor, interval}: torch's OneCycleLR (cosine, Adam's
        beta1 cycled 0.85-0.95) over every optimiser step (``interval: step``, default) or stepped
        once per epoch over ``max_epochs`` (``interval: epoch``, MgNO's schedules); ``cosine``
        {eta_min}; ``warmup_cosine`` {warmup_epochs, eta_min}.
        """
        opt = self._optimizer()
        return opt if self.hparams.scheduler == "none" else self._schedule(opt)

    def _optimizer(self) -> torch.optim.Optimizer:
        hp = self.hparams
        params = self.model.parameters()
        if hp.optimizer == "adam":
            return torch.optim.Adam(params, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        if hp.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)

    def _schedule_length(self, interval: str) -> int:
        """Scheduler steps of the whole run: epochs (``interval: epoch``) or optimiser steps."""
        if interval == "epoch":
            total = int(self.trainer.max_epochs or 0)
            if total < 1:
                raise ValueError("a one-cycle schedule stepped per epoch needs trainer.max_epochs")
        else:
            total = int(self.trainer.estimated_stepping_batches)
        if not 0 < total < 2**62:
            raise ValueError(
                f"scheduler {self.hparams.scheduler!r} needs a finite number of training steps "
                "(set trainer.max_epochs or trainer.max_steps)"
            )
        return total

    def _schedule(self, opt: torch.optim.Optimizer) -> Dict[str, Any]:
        """The learning-rate schedule (``scheduler_config`` was checked at construction)."""
        hp = self.hparams
        cfg = dict(hp.scheduler_config or {})
        if hp.scheduler == "step":
            sched = torch.optim.lr_scheduler.StepLR(
                opt, step_size=int(cfg.get("step_size", 100)), gamma=float(cfg.get("gamma", 0.5))
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        interval = cfg.get("interval", "step")
        total = self._schedule_length(interval)
        if hp.scheduler == "onecycle":
            pct_start = float(cfg.get("pct_start", 0.3))
            if abs(pct_start * total - 1.0) < 1e-9:
                # torch's warm-up phase ends at step pct_start * total - 1 = 0 and divides by its zero
                # length (e.g. pct_start 0.1 over 10 epochs); a hair more gives the schedule's limit
                # (step 0 at max_lr / div_factor, then the annealing phase as torch defines it)
                pct_start = (1.0 + 1e-6) / total
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt,
                max_lr=hp.lr,
                total_steps=total,
                pct_start=pct_start,
                div_factor=float(cfg.get("div_factor", 25.0)),
                final_div_factor=float(cfg.get("final_div_factor", 1e4)),
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}
        eta = float(cfg.get("eta_min", 0.0)) / hp.lr
        warm = 0
        if hp.scheduler == "warmup_cosine":
            epochs = max(1, int(self.trainer.max_epochs or 1))
            warm = int(round(float(cfg.get("warmup_epochs", 5)) * total / epochs))

        def factor(step: int, warm=warm, total=total, eta=eta) -> float:
            if step < warm:
                return (step + 1) / warm
            frac = min(1.0, (step - warm) / max(1, total - warm))
            return eta + (1 - eta) * 0.5 * (1 + math.cos(math.pi * frac))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _check_scheduler_config(scheduler: str, cfg: Mapping[str, Any]) -> None:
    """``scheduler_config`` keys and values, checked once where the value enters (the module's
    construction), so a bad schedule stops before any data is read."""
    if scheduler == "none":
        return
    allowed = {
        "step": {"step_size", "gamma"},
        "onecycle": {"pct_start", "div_factor", "final_div_factor", "interval"},
        "cosine": {"eta_min"},
        "warmup_cosine": {"warmup_epochs", "eta_min"},
    }[scheduler]
    if set(cfg) - allowed:
        raise ValueError(
            f"unknown scheduler_config keys {sorted(set(cfg) - allowed)} for scheduler "
            f"{scheduler!r}; allowed: {', '.join(sorted(allowed))}"
        )
    interval = cfg.get("interval", "step")
    if interval not in ("step", "epoch"):
        raise ValueError(f"scheduler_config interval must be 'step' or 'epoch', got {interval!r}")
    if scheduler == "onecycle" and not 0.0 < float(cfg.get("pct_start", 0.3)) < 1.0:
        raise ValueError(f"scheduler_config pct_start must be in (0, 1), got {cfg.get('pct_start')}")


# ------------------------------------------------------------------------------------------------
# checkpoints for other commands (refinement, evaluation)
# ------------------------------------------------------------------------------------------------
def load_module(path: str, map_location: str = "cpu") -> "NeuralOperatorModule":
    """:class:`NeuralOperatorModule` from a checkpoint, built from its saved hyper-parameters.
    LightningCLI checkpoints name an "instantiator" that re-parses the config; in Lightning 2.4 it
    loses the linked ``data_io`` (not in the saved hyper-parameters either), so it is bypassed
    (``_instantiator=None``) and ``data_io`` comes from the checkpoint's own copy."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    extra = {}
    if not (ckpt.get("hyper_parameters") or {}).get("data_io") and ckpt.get(DATA_IO_KEY):
        extra["data_io"] = ckpt[DATA_IO_KEY]  # Lightning 2.4's CLI does not save linked arguments
    return NeuralOperatorModule.load_from_checkpoint(path, map_location=map_location, _instantiator=None, **extra)


def load_for_refinement(path: str, map_location: str = "cpu"):
    """``(model, info)`` from a checkpoint of a trajectory model (used by ``neuralops-train refine``).

    ``info``: ``encode`` / ``decode`` (affine maps between physical ``(N, T, X, Y)`` vorticity and
    the model's normalised variables), ``t_in``, ``t_out``, ``model_name``, ``test_indices``,
    ``data_io``.
    """
    module = load_module(path, map_location)
    module.eval()
    io = module.io
    if io["layout"] != "trajectory":
        raise TypeError(f"checkpoint {path!r} holds a {io['layout']} model; refinement needs a trajectory model")
    norm = module.norm_in

    def encode(v: torch.Tensor) -> torch.Tensor:
        return norm.encode(v.unsqueeze(2), 2).squeeze(2)

    def decode(v: torch.Tensor) -> torch.Tensor:
        return module.norm_out.decode(v.unsqueeze(2), 2).squeeze(2)

    info = {
        "encode": encode,
        "decode": decode,
        "t_in": io.get("t_in"),
        "t_out": io.get("t_out"),
        "model_name": module.model_name,
        "test_indices": io.get("test_indices"),
        "data_io": io,
    }
    return module.model, info


@torch.no_grad()
def predict_split(
    ckpt_path: str,
    data: Optional[str] = None,
    split: str = "test",
    batch_size: Optional[int] = None,
    device: str = "cpu",
    progress: Optional[Callable[[int, int], None]] = None,
) -> Dict[str, Any]:
    """Predictions of a checkpoint on a split, in physical units, for ``neuralops-eval``.

    ``data``: another data-contract file to predict on (all its samples; default: the checkpoint's
    own split), at the training resolution or another one the model can take (FNO, SFNO, ...;
    fields, roles, PDE, boundary conditions, node convention and domain must match the training
    data). The data module is rebuilt from the hyper-parameters saved in the checkpoint.
    Returns ``prediction`` and ``target`` in the canonical evaluation layout ``(N, T, C, X, Y)``
    (float32, CPU), ``input`` (the model inputs in physical units: steady ``(N, C_in, X, Y)``,
    trajectories ``(N, T_in, C, X, Y)``), ``indices`` (sample indices in the file), ``path``, ``grid`` (the
    evaluated file's :class:`datagen.contract.Grid`, with its time stamps), ``io`` (the training data's layout,
    plain form), ``model_name``, ``train_resolution`` and
    ``resolution`` (``[X, Y]`` of the training and the evaluated data), ``n_train`` (training
    samples) and ``epochs`` / ``global_step`` of the checkpoint. ``progress(done, total)`` is called
    after each batch (``total`` batches).
    """
    from .data import SteadyDataModule, TrajectoryDataModule

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    module = load_module(ckpt_path, device).eval()
    io = module.io
    dm_kwargs = dict(ckpt.get("datamodule_hyper_parameters") or {})
    if not dm_kwargs:
        raise ValueError(f"checkpoint {ckpt_path!r} holds no data module hyper-parameters")
    cls = SteadyDataModule if io["layout"] == "steady" else TrajectoryDataModule
    # LightningCLI adds bookkeeping entries (``_class_path``): keep the constructor's arguments only
    accepted = inspect.signature(cls.__init__).parameters
    dm_kwargs = {k: v for k, v in dm_kwargs.items() if k in accepted and k != "self"}
    if data is not None:
        # the checkpoint's train file stays the reference for fields; the new file is the split
        # (the other evaluation split is dropped: only the train split is needed as the reference)
        dm_kwargs[split] = str(data)
        dm_kwargs["val" if split == "test" else "test"] = None
    if batch_size:
        dm_kwargs["eval_batch_size"] = int(batch_size)
    dm_kwargs["num_workers"] = 0
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    dm = cls(**dm_kwargs)
    data_layout = dm.layout
    diff = module.layout.differences(data_layout)
    if diff:
        raise CheckpointMismatchError(
            f"{ckpt_path} was trained on {module.layout.describe()} but the data give "
            f"{data_layout.describe()} (differences: {', '.join(diff)})"
        )
    module._check_model(dm, split)
    loader = dm.test_dataloader if split == "test" else dm.val_dataloader
    preds, targets, inputs = [], [], []
    batches = loader()
    if progress is not None:
        progress(0, len(batches))
    for b, (x, y) in enumerate(batches):
        inputs.append(x.float())
        x = x.to(device)
        pred = module(x, None if module.mode == "steady" else y.shape[1])
        preds.append(module._canonical(pred.float().cpu()))
        targets.append(module._canonical(y.float()))
        if progress is not None:
            progress(b + 1, len(batches))
    s = dm.splits[split]
    ds = dm.dataset_of(split)
    return {
        "prediction": torch.cat(preds),
        "target": torch.cat(targets),
        "input": torch.cat(inputs),
        "indices": s.indices,
        "path": s.path,
        "grid": dm.grid_of(ds),
        "io": io,
        "model_name": module.model_name,
        "train_resolution": list(module.layout.grid.shape),
        "resolution": dm.resolution(split),
        "n_train": int(io.get("n_train") or len(dm.splits["train"])),
        "epochs": int(ckpt.get("epoch", -1)) + 1,
        "global_step": int(ckpt.get("global_step", 0)),
    }
