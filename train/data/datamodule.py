"""LightningDataModules over data-contract files: steady pairs and trajectory windows.

Both modules check everything they can *at construction*, from the file headers only, so a bad
config stops before any training starts: the file opens and passes the data contract's (shallow)
validation, the named fields exist with the right roles and shapes, the windows fit in the
trajectories, and the splits are non-empty, hold valid samples and are disjoint from the training
split. Index splits written for a larger file (a packaged config's ``0:1000`` / ``-100:`` on a file
of 50 samples) are replaced by the same proportions of the file, with a note on stderr and in
:attr:`split_note` (``adapt_splits=False``: an error instead). Before training (``setup("fit")``)
one pass over the training split fits the statistics and refuses degenerate data: a channel that
is constant over the split (e.g. all zeros), non-finite values, or a sample whose targets are all
zero (its relative error is undefined).

Validation and test files may have another spatial resolution than the training file (zero-shot
super-resolution for the models that take it): they must agree on what the model depends on --
field names and roles, channel and frame counts, PDE, boundary conditions, node convention (walls
included or not) and domain size -- and each error names the file and the difference.

:attr:`layout` (:class:`datagen.contract.DataLayout`) describes what a batch holds and what the
LightningModule needs to build a model for this data (channel counts, windows, the typed grid);
``neuralops-train`` links its plain form :attr:`io` into the module's ``data_io`` argument.
:meth:`normalization_statistics` fits the per-channel statistics on the training split only (the
module stores them in its checkpoint).

Sampling: the training loader uses a :class:`~torch.utils.data.DistributedSampler` built here with
this process's rank and the world size (1 without DDP). Its permutation depends only on ``seed``
and the epoch (Lightning calls ``set_epoch``), so a run resumed from a checkpoint sees the same
batches as an uninterrupted one, and ``n`` DDP processes with batch ``b`` see exactly the global
batches of one process with batch ``n * b``. Evaluation loaders shard the samples over the ranks
without padding (:class:`ShardSampler`); Lightning does not replace either sampler.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import lightning.pytorch as pl
import numpy as np
from torch.utils.data import DataLoader, DistributedSampler

from datagen.contract import DataLayout, Grid
from datagen.dataset import DatasetError, open_dataset, validate

from .normalization import NORMALIZATIONS, RunningChannelStats, pointwise_statistics
from .splits import Split, check_disjoint, check_split_type, fit_index_splits, parse_split
from .windows import SteadyPairs, TrajectoryWindows, all_windows, field_channels, protocol_windows

__all__ = ["SteadyDataModule", "TrajectoryDataModule", "TRAJECTORY_MODES", "CHECKS"]

TRAJECTORY_MODES = ("direct", "autoregressive")
CHECKS = ("shallow", "deep", "none")
SPATIAL = ("x", "y")


def _channels(block: np.ndarray, axis: int) -> np.ndarray:
    """A field read as ``(n, [T,] X, Y)`` or ``(n, [T,] C, X, Y)`` with its channel axis made explicit."""
    return block if block.ndim == axis + 3 else np.expand_dims(block, axis)


def _field_shape(ref, name: str, ranks: Tuple[int, ...], allowed: str) -> Tuple[int, ...]:
    """Per-sample shape of field ``name`` of the dataset ``ref``; a one-line error if the file has no
    such field or its rank is not in ``ranks`` (``allowed`` says what the module takes)."""
    if name not in ref.fields:
        raise ValueError(f"field {name!r} is not in {ref.path}; fields: {', '.join(ref.fields)}")
    shape = tuple(ref.field_shape(name))
    if len(shape) not in ranks:
        raise ValueError(f"field {name!r} has per-sample shape {shape}; {allowed}")
    return shape


class ShardSampler(DistributedSampler):
    """Evaluation sampler: rank ``r`` of ``w`` takes samples ``r, r + w, r + 2w, ...`` in order,
    without the padding of a plain :class:`DistributedSampler` (which repeats samples to even out
    the ranks and would bias the metrics; the module all-reduces sums and counts instead). A
    DistributedSampler subclass, so Lightning keeps it under DDP."""

    def __init__(self, dataset, rank: int, world: int):
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=False)
        self.indices = list(range(rank, len(dataset), world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class _ContractDataModule(pl.LightningDataModule):
    """Shared machinery: splits, validation, samplers, loaders, grid description."""

    def __init__(
        self,
        path: Optional[str],
        train: str,
        val: Optional[str],
        test: Optional[str],
        batch_size: int,
        eval_batch_size: Optional[int],
        num_workers: int,
        normalization: str,
        seed: int,
        check: str,
        stats_chunk: int,
        adapt_splits: bool = True,
    ):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
        if check not in CHECKS:
            raise ValueError(f"check must be one of {', '.join(CHECKS)}, got {check!r}")
        for name, value in (("batch_size", batch_size), ("stats_chunk", stats_chunk)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if int(num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.path = path
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.normalization = normalization
        self.seed = int(seed)
        self.stats_chunk = int(stats_chunk)
        self._checked: set = set()
        self._check = check
        self._datasets: Dict[str, Any] = {}
        self.splits: Dict[str, Optional[Split]] = {}
        specs = {"train": train, "val": val, "test": test}
        self.split_note: Optional[str] = None
        if path is not None:
            for name, spec in specs.items():  # a number here is a YAML-mangled range: refuse before anything
                check_split_type(name, spec)
            fitted = fit_index_splits(specs, len(self._open(path)))
            if fitted is not None:
                if not adapt_splits:
                    raise ValueError(
                        fitted[1].split("; split by fraction")[0] + f" ({path}); set data.train/val/"
                        "test to ranges that fit, or data.adapt_splits: true to split by fraction"
                    )
                specs, self.split_note = fitted
                print(f"data: {self.split_note.replace('of the file', 'of ' + str(path))}", file=sys.stderr)
        for name, spec in specs.items():
            self.splits[name] = parse_split(name, spec, path, self._open)
        if self.splits["train"] is None:
            raise ValueError("the train split is required (e.g. train: '0:1000')")
        for name in ("val", "test"):
            check_disjoint(self.splits["train"], self.splits[name])
        self._stats: Optional[Dict[str, Any]] = None

    # -- files --------------------------------------------------------------------------------
    def _open(self, path: str):
        """Open (and, once per file, validate) a data-contract file; clear errors otherwise."""
        if path not in self._checked and self._check != "none":
            problems = validate(path, deep=self._check == "deep")
            if problems:
                listing = "\n  - ".join(problems[:10])
                raise DatasetError(
                    f"dataset {path} fails the data contract's validation ({len(problems)} problem(s)):\n  - {listing}"
                )
            self._checked.add(path)
        if path not in self._datasets:
            # every row of the file: the splits drop invalid samples themselves and count them
            self._datasets[path] = open_dataset(path, include_invalid=True)
        return self._datasets[path]

    def dataset_of(self, split: str):
        s = self.splits.get(split)
        if s is None:
            raise ValueError(f"no {split} split configured")
        return self._open(s.path)

    @property
    def reference(self):
        """The training file: its fields, grid and spec describe every split."""
        return self.dataset_of("train")

    def _check_compatible(self, fields: Sequence[str], time_dependent: bool) -> None:
        """Val/test files in other files than the training file: same fields with the same roles,
        channel (and frame) counts, PDE, boundary conditions, node convention and domain size; the
        spatial resolution may differ (models that take any grid evaluate at another resolution)."""
        ref = self.reference
        ref_grid = self.grid_of()
        for name in ("val", "test"):
            s = self.splits[name]
            if s is None or s.path == self.splits["train"].path:
                continue
            other = self._open(s.path)
            where = f"the {name} file {s.path}"
            for f in fields:
                if f not in other.fields:
                    raise ValueError(f"{where} has no field {f!r} (fields: {', '.join(other.fields)})")
                role, ref_role = other.role(f), ref.role(f)
                if role != ref_role:
                    raise ValueError(f"field {f!r} is an {role} in {where} but an {ref_role} in the train file")
                a, b = tuple(other.field_shape(f)), tuple(ref.field_shape(f))
                if len(a) != len(b) or a[:-2] != b[:-2]:
                    what = "frames/channels" if time_dependent else "channels"
                    raise ValueError(
                        f"field {f!r} has per-sample shape {a} in {where} but {b} in the train file: "
                        f"the {what} must agree (only the spatial grid may differ)"
                    )
            if other.pde != ref.pde:
                raise ValueError(f"{where} holds {other.pde!r} data but the train file {ref.pde!r}")
            grid = self.grid_of(other)
            for g in ref_grid.axes:
                if g.name not in grid.names:
                    raise ValueError(f"{where} has no {g.name} axis")
                o = grid[g.name]
                for key, label in (("boundary", "boundary condition"), ("nodes", "node convention")):
                    if getattr(o, key) != getattr(g, key):
                        raise ValueError(
                            f"{where} has {label} {getattr(o, key)!r} on axis {g.name} but the train "
                            f"file {getattr(g, key)!r}"
                        )
                if abs(o.length - g.length) > 1e-6 * max(1.0, abs(g.length)):
                    raise ValueError(
                        f"{where} spans {o.length:.6g} on axis {g.name} but the train file "
                        f"{g.length:.6g}: the domain must be the same"
                    )

    def grid_of(self, ds=None) -> Grid:
        """The typed grid (:class:`datagen.contract.Grid`) of the spatial axes of a file (default: the
        training file): boundary conditions, node convention, domain."""
        g = Grid.from_dataset(ds if ds is not None else self.reference)
        return Grid(tuple(a for a in g.axes if a.name in SPATIAL), g.times)

    def resolution(self, split: str) -> List[int]:
        """Spatial grid ``[X, Y]`` of a split's file."""
        return list(self.grid_of(self.dataset_of(split)).shape)

    # -- loaders ------------------------------------------------------------------------------
    def _rank_world(self):
        t = getattr(self, "trainer", None)
        if t is None:
            return 0, 1
        return int(t.global_rank), int(t.world_size)

    def _loader(self, dataset, shuffle: bool, batch_size: int) -> DataLoader:
        rank, world = self._rank_world()
        if shuffle:
            sampler = DistributedSampler(
                dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed, drop_last=False
            )
        else:
            sampler = ShardSampler(dataset, rank, world)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.make_dataset("train"), True, self.batch_size)

    def val_dataloader(self):
        if self.splits["val"] is None:
            return []
        return self._loader(self.make_dataset("val"), False, self.eval_batch_size)

    def test_dataloader(self):
        if self.splits["test"] is None:
            raise ValueError("no test split configured (set data.test, e.g. '-200:')")
        return self._loader(self.make_dataset("test"), False, self.eval_batch_size)

    def predict_dataloader(self):
        return self.test_dataloader()

    # -- normalisation ------------------------------------------------------------------------
    def normalization_statistics(self) -> Dict[str, Any]:
        """``{group: (mean (C,), std (C,))}`` over the training split only (computed once)."""
        if self._stats is None:
            self._stats = self._fit_statistics()
        return self._stats

    def _chunks(self):
        idx = self.splits["train"].indices
        for a in range(0, idx.size, self.stats_chunk):
            yield idx[a : a + self.stats_chunk]

    def _fit_statistics(self) -> Dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> str:
        return "; ".join(s.describe() for s in self.splits.values() if s is not None)

    @property
    def layout(self) -> DataLayout:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def io(self) -> Dict[str, Any]:
        """:attr:`layout` in its plain form (``DataLayout.to_dict``): what ``neuralops-train`` links into
        the module's ``data_io`` and checkpoints store."""
        return self.layout.to_dict()

    def _split_io(self) -> Dict[str, Any]:
        """What the splits were (stored with the model, so reports can say which data they used)."""
        test = self.splits["test"]
        return {
            "train_path": self.splits["train"].path,
            "n_train": len(self.splits["train"]),
            # nested: jsonargparse YAML-loads top-level strings of a linked dict ("a: b" -> {a: b})
            "splits": {
                **{k: s.describe() for k, s in self.splits.items() if s is not None},
                "note": self.split_note or "",
            },
            "test_path": test.path if test else None,
            "test_indices": test.indices.tolist() if test else None,
        }

    def setup(self, stage: str) -> None:
        # one pass over the training split: statistics, and degenerate data refused before any step
        if stage == "fit":
            self.normalization_statistics()

    def _refuse_degenerate(
        self, group: str, names: Sequence[str], mean: np.ndarray, std: np.ndarray, zero_samples: List[int]
    ) -> None:
        s = self.splits["train"]
        where = f"the train split of {s.path} ({len(s)} samples)"
        fields = ", ".join(repr(f) for f in names)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ValueError(
                f"{group} fields {fields} hold nan or inf values in {where}; run `neuralops-data "
                "validate --deep` on the file and regenerate or drop the bad samples"
            )
        flat = np.flatnonzero(std <= 1e-10 * np.maximum(1.0, np.abs(mean)))
        if flat.size:
            c = int(flat[0])
            raise ValueError(
                f"{group} channel {c} (fields {fields}) is constant ({mean[c]:.6g}) over {where}: "
                "there is nothing to learn from it and its normalisation is undefined; check the "
                "data (all-zero or constant fields) or choose other fields"
            )
        if zero_samples:
            raise ValueError(
                f"{len(zero_samples)} sample(s) of {where} have all-zero {group} fields {fields} "
                f"(e.g. sample {zero_samples[0]}): their relative error is undefined; drop them "
                "from the split or regenerate them"
            )

    def teardown(self, stage: str) -> None:
        for ds in self._datasets.values():
            ds.close()


class SteadyDataModule(_ContractDataModule):
    """Steady pairs: the input fields of a sample -> its output fields (Darcy, Helmholtz, ...).

    Args:
        path: the data-contract file the index-range splits refer to.
        train, val, test: split strings (:mod:`train.data.splits`): ``"0:1000"``, ``"-100:"``,
            ``"0.9:"`` (a fraction), ``"other.h5"``, ``"other.h5[0:100]"``; ``val``/``test`` may be
            "none". Val/test files may have another spatial resolution than the train file.
        inputs, outputs: field names (default: the file's fields with role input / output).
        batch_size: per-process batch; eval_batch_size: for val/test (default batch_size).
        num_workers: DataLoader worker processes (lazy per-sample reads in each).
        normalization: "gaussian" (per-channel unit Gaussian, train split only), "none", or
            "pointwise" (unit Gaussian per grid point of inputs and of outputs, as the FNO scripts).
        seed: seed of the shuffling permutation (with the epoch).
        check: validation of each file before use: "shallow" (header, layout), "deep" (reads
            every chunk: checksums, NaN) or "none".
        stats_chunk: samples read at a time while fitting the statistics.
        adapt_splits: index splits that do not fit ``path`` (bounds beyond its size, or val/test
            overlapping train) are replaced by the same proportions of the file, with a note;
            ``False``: an error.
    """

    def __init__(
        self,
        path: Optional[str] = None,
        train: str = "0:1000",
        val: str = "none",
        test: str = "none",
        inputs: Optional[List[str]] = None,
        outputs: Optional[List[str]] = None,
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        normalization: str = "gaussian",
        seed: int = 0,
        check: str = "shallow",
        stats_chunk: int = 64,
        adapt_splits: bool = True,
    ):
        super().__init__(
            path,
            train,
            val,
            test,
            batch_size,
            eval_batch_size,
            num_workers,
            normalization,
            seed,
            check,
            stats_chunk,
            adapt_splits,
        )
        self.save_hyperparameters()
        ref = self.reference
        self.inputs = list(inputs) if inputs else ref.inputs
        self.outputs = list(outputs) if outputs else ref.outputs
        if not self.inputs or not self.outputs:
            raise ValueError(
                f"{ref.path} has input fields {ref.inputs} and output fields {ref.outputs}; "
                "a steady data module needs at least one of each (set data.inputs / data.outputs)"
            )
        grid = None
        for f in self.inputs + self.outputs:
            shape = _field_shape(
                ref,
                f,
                (2, 3),
                "a steady data module takes (X, Y) or (C, X, Y) fields (use TrajectoryDataModule for (T, X, Y) data)",
            )
            if grid is not None and shape[-2:] != grid:
                raise ValueError(f"field {f!r} lives on a {shape[-2:]} grid, the others on {grid}")
            grid = shape[-2:]
        self._check_compatible(self.inputs + self.outputs, False)
        self.grid_shape = grid
        self.in_channels = sum(field_channels(ref.field_shape(f), 2, False) for f in self.inputs)
        self.out_channels = sum(field_channels(ref.field_shape(f), 2, False) for f in self.outputs)

    @property
    def layout(self) -> DataLayout:
        """What a batch holds (:class:`datagen.contract.DataLayout`)."""
        return DataLayout(
            "steady",
            self.grid_of(),
            self.reference.pde,
            tuple(self.inputs),
            tuple(self.outputs),
            self.in_channels,
            self.out_channels,
            normalization=self.normalization,
            provenance=self._split_io(),
        )

    def make_dataset(self, split: str) -> SteadyPairs:
        s = self.splits[split]
        return SteadyPairs(self._open(s.path), s.indices, self.inputs, self.outputs)

    def _fit_statistics(self) -> Dict[str, Any]:
        ds = self.reference
        out: Dict[str, Any] = {}
        if self.normalization == "pointwise":  # (C, X, Y) statistics of inputs and of outputs
            return {
                g: pointwise_statistics(
                    np.concatenate([_channels(ds.read(f, c), 1) for f in names], axis=1) for c in self._chunks()
                )
                for g, names in (("input", self.inputs), ("output", self.outputs))
            }
        for group, names, n_c in (
            ("input", self.inputs, self.in_channels),
            ("output", self.outputs, self.out_channels),
        ):
            stats = RunningChannelStats(n_c)
            zero: List[int] = []
            for chunk in self._chunks():
                parts = [ds.read(f, chunk) for f in names]
                parts = [p[:, None] if p.ndim == 3 else p for p in parts]
                block = np.concatenate(parts, axis=1)
                stats.update(block, channel_axis=1)
                if group == "output":
                    zero += [int(i) for i in np.asarray(chunk)[~np.any(block.reshape(len(block), -1), axis=1)]]
            out[group] = stats.result()
            self._refuse_degenerate(group, names, np.asarray(out[group][0]), np.asarray(out[group][1]), zero)
        return out


class TrajectoryDataModule(_ContractDataModule):
    """Trajectory windows of time-dependent fields (Navier-Stokes vorticity, ...).

    ``mode="direct"`` (space-time models: fno3d, sfno): every item is the protocol window, frames
    ``start .. start + t_in - 1`` in and the next ``t_out`` out, for training and evaluation alike
    (FNO protocol: ``start = 0, t_in = 10``, ``t_out`` = the rest).

    ``mode="autoregressive"`` (fno2d, sinenet, mgno_ts, unet): training items are ``history``
    frames -> the next ``unroll`` frames at *every* start time ``s = 0, stride, ...`` of every
    training trajectory, shuffled, so batches mix random start times (``unroll > 1`` gives the
    LightningModule targets for pushforward / unrolled training). Validation and test items are
    the fixed protocol windows (``t_in`` frames from ``start``, then ``t_out`` frames), predicted
    by autoregressive rollout from the last ``history`` input frames.

    Args: as :class:`SteadyDataModule`, plus
        fields: the trajectory fields (default: the file's fields with role state), per sample
            ``(T, X, Y)`` or ``(T, C, X, Y)``; several fields are stacked as channels.
        t_in, t_out, start: the protocol window (``t_out=None``: every frame after the inputs).
        history, unroll, stride: autoregressive training windows (``history`` defaults to t_in).
    """

    def __init__(
        self,
        path: Optional[str] = None,
        train: str = "0:1000",
        val: str = "none",
        test: str = "none",
        fields: Optional[List[str]] = None,
        mode: str = "direct",
        t_in: int = 10,
        t_out: Optional[int] = None,
        start: int = 0,
        history: Optional[int] = None,
        unroll: int = 1,
        stride: int = 1,
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        normalization: str = "gaussian",
        seed: int = 0,
        check: str = "shallow",
        stats_chunk: int = 16,
        adapt_splits: bool = True,
    ):
        if mode not in TRAJECTORY_MODES:
            raise ValueError(f"mode must be one of {', '.join(TRAJECTORY_MODES)}, got {mode!r}")
        super().__init__(
            path,
            train,
            val,
            test,
            batch_size,
            eval_batch_size,
            num_workers,
            normalization,
            seed,
            check,
            stats_chunk,
            adapt_splits,
        )
        self.save_hyperparameters()
        ref = self.reference
        self.mode = mode
        self.fields = list(fields) if fields else ref.states
        if not self.fields:
            raise ValueError(
                f"{ref.path} has no field with role 'state' (fields: {', '.join(ref.fields)}); "
                "name the trajectory fields with data.fields"
            )
        frames = None
        for f in self.fields:
            shape = _field_shape(
                ref, f, (3, 4), "trajectories are (T, X, Y) or (T, C, X, Y) (use SteadyDataModule for steady data)"
            )
            if frames is not None and (shape[0], shape[-2:]) != (frames, self.grid_shape):
                raise ValueError(f"field {f!r} has shape {shape}, incompatible with the other trajectory fields")
            frames, self.grid_shape = shape[0], shape[-2:]
        self._check_compatible(self.fields, True)
        self.n_frames = int(frames)
        self.channels = sum(field_channels(ref.field_shape(f), 2, True) for f in self.fields)
        for name, value in (("t_in", t_in), ("unroll", unroll), ("stride", stride)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if int(start) < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.t_in, self.start = int(t_in), int(start)
        self.t_out = int(t_out) if t_out is not None else self.n_frames - self.start - self.t_in
        if self.t_out < 1 or self.start + self.t_in + self.t_out > self.n_frames:
            raise ValueError(
                f"window start={self.start} + t_in={self.t_in} + t_out={t_out} frames is longer than "
                f"the {self.n_frames} frames of the trajectories in {ref.path}"
            )
        self.history = int(history) if history is not None else self.t_in
        self.unroll, self.stride = int(unroll), int(stride)
        if mode == "direct" and self.channels != 1:
            raise ValueError(
                f"direct trajectory models (fno3d, sfno) take one scalar field; the fields "
                f"{self.fields} have {self.channels} channels"
            )
        if mode == "autoregressive":
            if not 1 <= self.history <= self.t_in:
                raise ValueError(
                    f"history={self.history} must be between 1 and t_in={self.t_in}: the rollout "
                    "starts from the last `history` of the t_in protocol input frames"
                )
            if normalization == "pointwise":
                raise ValueError(
                    "normalization 'pointwise' needs mode 'direct' (a rollout feeds outputs back as "
                    "inputs, which need one per-channel statistics): use 'gaussian'"
                )
            if self.history + self.unroll > self.n_frames:
                raise ValueError(
                    f"training window history={self.history} + unroll={self.unroll} frames is longer "
                    f"than the {self.n_frames} frames of the trajectories in {ref.path}"
                )

    @property
    def layout(self) -> DataLayout:
        """What a batch holds (:class:`datagen.contract.DataLayout`)."""
        f = tuple(self.fields)
        return DataLayout(
            self.mode,
            self.grid_of(),
            self.reference.pde,
            f,
            f,
            self.channels,
            self.channels,
            t_in=self.t_in,
            t_out=self.t_out,
            start=self.start,
            history=self.history,
            unroll=self.unroll,
            n_frames=self.n_frames,
            normalization=self.normalization,
            provenance=self._split_io(),
        )

    def train_frames(self) -> range:
        """Frames the training windows read (the statistics use exactly these)."""
        if self.mode == "direct":
            return range(self.start, self.start + self.t_in + self.t_out)
        return range(0, self.n_frames)

    def make_dataset(self, split: str) -> TrajectoryWindows:
        s = self.splits[split]
        ds = self._open(s.path)
        if split == "train" and self.mode == "autoregressive":
            win = all_windows(s.indices, self.n_frames, self.history + self.unroll, self.stride)
            return TrajectoryWindows(ds, win, self.fields, self.history, self.unroll)
        return TrajectoryWindows(ds, protocol_windows(s.indices, self.start), self.fields, self.t_in, self.t_out)

    def _fit_statistics(self) -> Dict[str, Any]:
        ds = self.reference
        if self.normalization == "pointwise":  # (T, C, X, Y) statistics of the window's inputs and outputs
            a, b = self.start + self.t_in, self.start + self.t_in + self.t_out
            return {
                g: pointwise_statistics(
                    np.concatenate([_channels(ds.read(f, c, frames=fr), 2) for f in self.fields], axis=2)
                    for c in self._chunks()
                )
                for g, fr in (("input", slice(self.start, a)), ("output", slice(a, b)))
            }
        fr = self.train_frames()
        stats = RunningChannelStats(self.channels)
        zero: List[int] = []
        for chunk in self._chunks():
            parts = [ds.read(f, chunk, frames=slice(fr.start, fr.stop)) for f in self.fields]
            parts = [p[:, :, None] if p.ndim == 4 else p for p in parts]
            block = np.concatenate(parts, axis=2)
            stats.update(block, channel_axis=2)
            zero += [int(i) for i in np.asarray(chunk)[~np.any(block.reshape(len(block), -1), axis=1)]]
        result = stats.result()
        self._refuse_degenerate("state", self.fields, np.asarray(result[0]), np.asarray(result[1]), zero)
        return {"state": result}
