"""Navier-Stokes datasets through the data contract (``datagen.dataset``).

Layout of a dataset (``pde = "navier_stokes_2d"``), ``m`` the stored resolution, ``T`` snapshots:

``fields/vorticity``  ``(N, T, m, m)``, role ``state``
``fields/velocity``   ``(N, T, 2, m, m)`` (``u``, ``v``), role ``output``, if asked for
``fields/stream``     ``(N, T, m, m)``, role ``output``, if asked for
``grid/x``, ``grid/y`` ``i L / m`` (periodic; shifted by ``L / (2m) - L / (2n)`` for bilinear
                      resampling, :func:`datagen.navier_stokes.resample.grid_offset`), ``grid/t`` the
                      snapshot times
``spec``              the full recipe (:mod:`.recipes`) plus the compute dtype, the seeding rule and the
                      grid record, in the sections of :mod:`datagen.spec` (family ``navier_stokes_2d``)
``solver/*``          per sample: ``steps`` (time steps), ``max_cfl`` (largest CFL number seen at the
                      snapshots), ``seconds`` (the batch's wall time / batch size), ``order`` (position in
                      the run), ``converged`` (False for a trajectory that blew up)

Sample ``i`` draws its initial field from ``datagen.seeding.sample_rng(seed, i)`` (the rule of every
generator), and every per-sample choice of the solver depends on that sample only, so sample ``i`` is
the same whatever the batch size, the device (to round-off), the number of samples, or how often the
run was interrupted and resumed. Resume works by batch: samples already written are skipped.

A trajectory that produces non-finite values or exceeds the stepper's CFL limit is written with
``invalid_reason`` (the snapshots from the failure on are NaN) and ``converged = False``: it is
recorded, never stored as valid.
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional

import numpy as np
import torch

from datagen.contract import SPEC_KEY, Axis
from datagen.contract import Grid as ContractGrid
from datagen.dataset import DatasetWriter, FieldSpec, Grid
from datagen.spec import NS_FAMILY, build_spec

from .initial import initial_vorticity
from .recipes import check_spec, snapshot_times
from .resample import bilinear, grid_offset, spectral_truncation, subsample
from .solver import NavierStokesSolver
from .spectral import stream_function_hat, velocity_hat

__all__ = ["PDE_NAME", "SOLVER_RECORDS", "dataset_layout", "generate", "make_solver", "StoredFields"]

PDE_NAME = NS_FAMILY  # the pde attribute and the spec family
SOLVER_RECORDS = ("steps", "max_cfl", "seconds", "order", "converged")
SEEDING = "initial field of sample i from datagen.seeding.sample_rng(seed, i)"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def dataset_layout(spec: Mapping) -> tuple:
    """``(fields, grid)`` of the data contract for a checked spec."""
    m, box = spec["store_resolution"], float(spec["box"])
    times = snapshot_times(spec)
    T, dtype = len(times), spec["store_dtype"]
    fields = {"vorticity": FieldSpec(shape=(T, m, m), role="state", dtype=dtype)}
    if "velocity" in spec["fields"]:
        fields["velocity"] = FieldSpec(shape=(T, 2, m, m), role="output", dtype=dtype)
    if "stream" in spec["fields"]:
        fields["stream"] = FieldSpec(shape=(T, m, m), role="output", dtype=dtype)
    # bilinear downsampling samples the fine field between its points: the grid says where
    x = np.arange(m, dtype=np.float64) * (box / m) + grid_offset(spec["resample"], spec["resolution"], m, box)
    grid = Grid(coords={"x": x, "y": x.copy(), "t": times}, boundary={"x": "periodic", "y": "periodic"})
    return fields, grid


def grid_record(spec: Mapping) -> dict:
    """The spec's typed grid record (:mod:`datagen.contract`): ``m`` nodes ``x_j = x_0 + j L / m`` per
    axis on the periodic box, ``x_0`` the resampling offset."""
    m, box = spec["store_resolution"], float(spec["box"])
    x0 = grid_offset(spec["resample"], spec["resolution"], m, box)
    return ContractGrid(
        tuple(Axis(ax, m, x0, x0 + box, "nodes-without-far-wall", "periodic") for ax in ("x", "y"))
    ).to_spec()


def make_solver(spec: Mapping, device="cpu", dtype: torch.dtype = torch.float64) -> NavierStokesSolver:
    """The solver a spec describes."""
    return NavierStokesSolver(
        spec["resolution"],
        spec["viscosity"],
        box=spec["box"],
        forcing=spec["forcing"],
        drag=spec["drag"],
        stepper=spec["stepper"],
        dt=spec.get("dt"),
        dt_mode=spec["dt_mode"],
        cfl=spec["cfl"],
        cfl_recheck=spec.get("cfl_recheck", 0.1),
        device=device,
        dtype=dtype,
    )


class StoredFields:
    """``on_snapshot`` hook: the stored fields of each snapshot on the host, resampled to ``m x m``.

    Keeps ``arrays[name]`` of shape ``(B, T, ...)`` in the store dtype; frames of samples that are no
    longer valid are NaN.
    """

    def __init__(self, spec: Mapping, batch: int, n: int):
        self.n, self.m = n, spec["store_resolution"]
        self.method, self.names = spec["resample"], list(spec["fields"])
        T = spec["n_snapshots"]
        np_dtype = np.dtype(spec["store_dtype"])
        shapes = {"vorticity": (self.m, self.m), "stream": (self.m, self.m), "velocity": (2, self.m, self.m)}
        self.arrays = {k: np.empty((batch, T) + shapes[k], dtype=np_dtype) for k in self.names}

    def _stored(self, a_hat: torch.Tensor) -> torch.Tensor:
        """Spectrum ``(..., n, n//2+1)`` -> stored physical field ``(..., m, m)``."""
        if self.method == "spectral":
            return spectral_truncation(a_hat, self.n, self.m)
        if self.method == "bilinear":
            return bilinear(torch.fft.irfft2(a_hat, s=(self.n, self.n)), self.m)
        return subsample(torch.fft.irfft2(a_hat, s=(self.n, self.n)), self.m)

    def __call__(self, k: int, t: float, w_hat: torch.Tensor, valid: np.ndarray, grid) -> None:
        out = {"vorticity": self._stored(w_hat)}
        if "velocity" in self.names:
            u_hat, v_hat = velocity_hat(w_hat, grid)
            out["velocity"] = self._stored(torch.stack([u_hat, v_hat], dim=-3))
        if "stream" in self.names:
            out["stream"] = self._stored(stream_function_hat(w_hat, grid))
        for name, val in out.items():
            arr = val.cpu().numpy()
            arr[~valid] = np.nan
            self.arrays[name][:, k] = arr


def generate(
    spec: Mapping,
    out: str,
    n_samples: int,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float64",
    batch_size: int = 8,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Optional[Callable[[str], None]] = print,
) -> Dict[str, int]:
    """Generate ``n_samples`` trajectories of ``spec`` into the dataset ``out``.

    Args:
        spec: a recipe (:func:`datagen.navier_stokes.recipes.recipe`).
        out: dataset path (``.h5``).
        n_samples, seed: number of samples and the run's seed.
        device: ``cpu`` / ``cuda`` / ...; dtype: compute precision ``float32`` / ``float64`` (recorded in
            the spec: a different precision is a different dataset).
        batch_size: trajectories solved together (does not change the data).
        resume / overwrite: see :class:`datagen.dataset.DatasetWriter`.
        progress: show a tqdm bar in simulated time units (ETA from the simulation rate).
    Returns:
        ``{"written": ..., "invalid": ..., "skipped": ...}`` for this call.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"number of samples must be a positive integer, got {n_samples!r}")
    spec = dict(spec)
    check_spec(spec)
    spec["compute_dtype"] = dtype
    spec["seeding"] = SEEDING
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available")
    solver = make_solver(spec, device=device, dtype=_DTYPES[dtype])
    fields, grid = dataset_layout(spec)
    spec[SPEC_KEY] = grid_record(spec)
    stored = build_spec(PDE_NAME, spec)  # the schema's sections (datagen.spec)
    times = snapshot_times(spec)
    t_total = float(times[-1])
    stats = {"written": 0, "invalid": 0, "skipped": 0}
    with DatasetWriter(
        out,
        pde=PDE_NAME,
        spec=stored,
        n_samples=n_samples,
        seed=seed,
        fields=fields,
        grid=grid,
        params=[],
        solver=list(SOLVER_RECORDS),
        resume=resume,
        overwrite=overwrite,
    ) as writer:
        if writer.already_complete:
            if log:
                log(f"{out} is already complete")
            stats["skipped"] = n_samples
            return stats
        todo = [int(i) for i in writer.pending()]
        stats["skipped"] = n_samples - len(todo)
        batches = [todo[a : a + batch_size] for a in range(0, len(todo), batch_size)]
        bar = None
        if progress and batches:
            from datagen.progress import progress_bar  # in place on a terminal, periodic lines in a log

            bar = progress_bar(
                total=round(len(batches) * t_total, 6),
                unit="t",
                unit_scale=False,
                desc=f"navier-stokes {spec['recipe']} ({len(todo)} trajectories, {len(batches)} batches)",
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} simulated time "
                "[{elapsed}<{remaining}, {rate_fmt}]{postfix}",
            )
        position = stats["skipped"]
        try:
            for b, indices in enumerate(batches):
                w0 = initial_vorticity(spec["initial"], spec["resolution"], spec["box"], seed, indices)
                store = StoredFields(spec, len(indices), spec["resolution"])
                tick = None
                if bar is not None:
                    # float steps may overshoot the bar's total by round-off: clamp
                    def tick(dt, bar=bar):
                        bar.update(max(0.0, min(dt, bar.total - bar.n)))

                result = solver.run(
                    w0,
                    times,
                    t0=0.0,
                    on_snapshot=lambda k, t, w_hat, valid: store(k, t, w_hat, valid, solver.grid),
                    progress=tick,
                )
                per_sample = result.seconds / len(indices)
                for j, i in enumerate(indices):
                    ok = bool(result.valid[j])
                    writer.write(
                        i,
                        {name: store.arrays[name][j] for name in fields},
                        solver={
                            "steps": int(result.steps[j]),
                            "max_cfl": float(result.max_cfl[j]),
                            "seconds": float(per_sample),
                            "order": int(position),
                            "converged": ok,
                        },
                        invalid_reason="" if ok else result.reasons[j],
                    )
                    position += 1
                    stats["written"] += 1
                    stats["invalid"] += 0 if ok else 1
                writer.flush()  # resume granularity: one batch
                if bar is not None:
                    bar.set_postfix(batch=f"{b + 1}/{len(batches)}", invalid=stats["invalid"])
        finally:
            if bar is not None:
                bar.close()
    if log:
        log(
            f"wrote {stats['written']} trajectories to {out} ({stats['invalid']} invalid, "
            f"{stats['skipped']} already there)"
        )
    return stats
