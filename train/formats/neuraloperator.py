"""neuraloperator ``.pt`` files -> neuralops datasets (``neuralops-data import neuraloperator``).

::

    neuralops-data import neuraloperator darcy_train_16.pt data/darcy_16.h5 --mask-values 3,12
    neuralops-data import neuraloperator nsforcing_train_128.pt data/ns_128.h5 --problem navier-stokes \\
        --viscosity 1e-3 --box 1 --forcing fno

Layout read: a ``torch.save``-d dict with tensors ``'x'`` (inputs) and ``'y'`` (outputs) of shape
``(N, s, s)`` (a singleton channel axis ``(N, 1, s, s)`` is dropped), as neuraloperator's ``PTDataset``
loads them (``data["x"]``, ``data["y"]``; ``neuralop/data/datasets/pt_dataset.py``).

Grid convention: neuraloperator gives its models the coordinates of ``regular_grid_2d`` with the
default ``grid_boundaries=[[0, 1], [0, 1]]`` of ``DarcyDataset``/``PTDataset``, i.e.
``torch.linspace(0, 1, s + 1)[:-1]`` = ``j / s`` (``neuralop/layers/embeddings.py``): the first row
lies on the wall ``x = 0`` and the last one spacing inside the far wall. That is the default
``--node-convention nodes-without-far-wall``; another convention must be stated.

Physics written (the same keys as the generators' specs):

* ``darcy``: ``a`` (input) = ``x``, ``u`` (output) = ``y``; ``-div(a grad u) = f`` with ``u = 0`` on
  the boundary (Dirichlet axes) and ``f = --source-term`` (default 1, the FNO Darcy data, Li et al.
  2020). A coefficient must be positive and finite: a file whose ``x`` is a 0/1 mask of a two-valued
  coefficient is refused unless ``--mask-values LOW,HIGH`` says which values the mask stands for
  (the FNO piecewise-constant data: ``3,12``). ``u`` on grid rows that lie on a wall is checked to
  be ~0 (a warning names another convention when it is not).
* ``navier-stokes``: ``initial_vorticity`` (input) = ``x``, ``vorticity`` (output) = ``y`` on the
  periodic box ``[0, box)^2``; viscosity, box and forcing are not in the file and must be given
  (``--viscosity``, ``--box``, ``--forcing none|fno|kolmogorov``).
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Optional, Tuple

import numpy as np

from datagen.contract import Grid as ContractGrid
from datagen.dataset import FieldSpec, Grid
from datagen.spec import build_spec

from .grid import check_node_convention, node_coordinates
from .progress_writer import ImportWriter

__all__ = ["import_neuraloperator", "PROBLEMS", "NEURALOPERATOR_CONVENTION", "sha256"]

PROBLEMS = ("darcy", "navier-stokes")
NEURALOPERATOR_CONVENTION = "nodes-without-far-wall"
CONVENTION_SOURCE = (
    "neuraloperator regular_grid_2d (neuralop/layers/embeddings.py): "
    "linspace(0, 1, s + 1)[:-1], grid_boundaries [[0, 1], [0, 1]]"
)
NS_EQUATION = "w_t + u.grad w = nu Lap w - drag w + f, u = (psi_y, -psi_x), -Lap psi = w"
NS_FORCINGS = ("none", "fno", "kolmogorov")


def _grid_record(grid: Grid, convention: str) -> dict:
    """The typed grid record (``discretisation.grid`` of :mod:`datagen.spec`) of the stored coordinates."""
    return ContractGrid.from_coordinates(grid.coords, grid.boundary, {ax: convention for ax in grid.coords}).to_spec()


def sha256(path: str, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def _problem_from_name(path: str) -> Optional[str]:
    name = os.path.basename(path).lower()
    if "darcy" in name:
        return "darcy"
    if any(k in name for k in ("nsforcing", "navier", "ns_")):
        return "navier-stokes"
    return None


def _load(path: str) -> Tuple[np.ndarray, np.ndarray]:
    import torch

    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors come in many types
        raise ValueError(f"{path} is not a torch.save file of tensors ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or "x" not in data or "y" not in data:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: expected neuraloperator's dict with tensors 'x' and 'y', found {keys}")
    out = []
    for k in ("x", "y"):
        a = data[k]
        a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        if a.ndim == 4 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim != 3:
            raise ValueError(f"{path}: '{k}' has shape {tuple(a.shape)}; expected (N, s, s) or (N, 1, s, s)")
        out.append(a)
    x, y = out
    if x.shape != y.shape:
        raise ValueError(f"{path}: 'x' has shape {x.shape} but 'y' {y.shape}; both must be (N, s, s)")
    return x, y


def _parse_mask_values(mask_values) -> Optional[Tuple[float, float]]:
    if mask_values is None:
        return None
    if isinstance(mask_values, str):
        parts = mask_values.split(",")
        try:
            vals = tuple(float(p) for p in parts)
        except ValueError:
            vals = ()
    else:
        vals = tuple(float(v) for v in mask_values)
    if len(vals) != 2 or not all(np.isfinite(v) and v > 0 for v in vals):
        raise ValueError(f"--mask-values must be two positive numbers LOW,HIGH (e.g. 3,12), got {mask_values!r}")
    return vals


def _wall_rows(convention: str, s: int):
    """Indices of the grid lines that lie on a wall, per axis."""
    if convention == "nodes-with-walls":
        return [0, s - 1]
    if convention == "nodes-without-far-wall":
        return [0]
    return []


def import_neuraloperator(
    src: str,
    out: str,
    problem: Optional[str] = None,
    node_convention: Optional[str] = None,
    mask_values=None,
    source_term: float = 1.0,
    viscosity: Optional[float] = None,
    box: Optional[float] = None,
    forcing: Optional[str] = None,
    limit: Optional[int] = None,
    dtype: str = "float32",
    overwrite: bool = False,
    chunk: int = 256,
) -> str:
    """neuraloperator ``.pt`` -> data contract (see the module docstring)."""
    problem = problem or _problem_from_name(src)
    if problem not in PROBLEMS:
        raise ValueError(
            f"cannot tell the problem of {os.path.basename(src)!r} from its name; "
            f"pass --problem ({', '.join(PROBLEMS)})"
        )
    convention = check_node_convention(node_convention or NEURALOPERATOR_CONVENTION)
    x, y = _load(src)
    n = min(len(x), limit) if limit else len(x)
    s1, s2 = x.shape[1:]
    base = {
        "source": "neuraloperator_pt",
        "file": os.path.basename(src),
        "sha256": sha256(src),
        "n": int(n),
        "resolution": [int(s1), int(s2)],
        "node_convention": convention,
        "node_convention_source": CONVENTION_SOURCE
        if node_convention in (None, NEURALOPERATOR_CONVENTION)
        else "stated by the user (--node-convention)",
    }
    if problem == "darcy":
        return _darcy(
            src,
            out,
            x[:n],
            y[:n],
            convention,
            base,
            _parse_mask_values(mask_values),
            float(source_term),
            dtype,
            overwrite,
            chunk,
        )
    return _navier_stokes(src, out, x[:n], y[:n], convention, base, viscosity, box, forcing, dtype, overwrite, chunk)


def _darcy(src, out, x, y, convention, base, mask, f, dtype, overwrite, chunk):
    if not np.isfinite(f):
        raise ValueError(f"--source-term must be a finite number, got {f}")
    if mask is not None:
        values = np.unique(x)
        if not np.all(np.isin(values, (0.0, 1.0))):
            raise ValueError(
                f"{src}: --mask-values needs 'x' to be a 0/1 mask, but it holds {values[:6].tolist()}"
                f"{'...' if values.size > 6 else ''}"
            )
        x = np.where(x > 0.5, mask[1], mask[0])
    bad = ~(np.isfinite(x) & (x > 0))
    if bad.any():
        i, j, k = (int(v[0]) for v in np.nonzero(bad))
        raise ValueError(
            f"{src}: 'x'[{i}, {j}, {k}] = {x[i, j, k]:g} is not a valid Darcy coefficient (must be > 0 "
            f"and finite); if 'x' is a 0/1 mask pass --mask-values LOW,HIGH (FNO data: 3,12)"
        )
    if not np.all(np.isfinite(y)):
        i = int(np.nonzero(~np.isfinite(y).reshape(len(y), -1).all(axis=1))[0][0])
        raise ValueError(f"{src}: 'y'[{i}] has non-finite values")
    s1, s2 = x.shape[1:]
    walls = _wall_rows(convention, s1)
    scale = float(np.max(np.abs(y))) or 1.0
    on_wall = (
        max(
            [float(np.max(np.abs(y[:, r, :]))) for r in walls]
            + [float(np.max(np.abs(y[:, :, r]))) for r in _wall_rows(convention, s2)]
            + [0.0]
        )
        / scale
    )
    if walls and on_wall > 1e-3:
        print(
            f"neuralops-data import: warning: u reaches {on_wall:.2g} of its maximum on grid lines that "
            f"{convention} puts on a wall, where u = 0; if the file uses another grid, pass "
            f"--node-convention (one of cell-centres, nodes-with-walls, nodes-without-far-wall)",
            file=sys.stderr,
        )
    grid = Grid(
        {"x": node_coordinates(convention, s1), "y": node_coordinates(convention, s2)},
        {"x": "dirichlet", "y": "dirichlet"},
    )
    spec = build_spec(
        "darcy",
        dict(
            base,
            dim=2,
            layout="x -> a (input), y -> u (output)",
            grid=_grid_record(grid, convention),
            equation="-div(a grad u) = f, u = 0 on the boundary",
            forcing=f,
            coefficient="file" if mask is None else f"0/1 mask -> {mask[0]:g}/{mask[1]:g}",
            coefficient_law="read from the file",
            u_on_wall_relative=on_wall,
        ),
    )
    fields = {"a": FieldSpec((s1, s2), "input", dtype), "u": FieldSpec((s1, s2), "output", dtype)}
    with ImportWriter(
        out,
        pde="darcy",
        spec=spec,
        n_samples=len(x),
        seed=0,
        fields=fields,
        grid=grid,
        params=[],
        solver=["converged"],
        overwrite=overwrite,
        flush_every=chunk,
    ) as w:
        for i in range(len(x)):
            w.write(i, {"a": x[i], "u": y[i]}, solver={"converged": True})
    return out


def _navier_stokes(src, out, x, y, convention, base, viscosity, box, forcing, dtype, overwrite, chunk):
    missing = [flag for flag, v in (("--viscosity", viscosity), ("--box", box), ("--forcing", forcing)) if v is None]
    if missing:
        raise ValueError(
            f"{os.path.basename(src)}: a neuraloperator Navier-Stokes file does not store its physics; "
            f"pass {', '.join(missing)} (e.g. --viscosity 1e-3 --box 1 --forcing fno)"
        )
    if not (np.isfinite(viscosity) and viscosity >= 0):
        raise ValueError(f"--viscosity must be a number >= 0, got {viscosity}")
    if not (np.isfinite(box) and box > 0):
        raise ValueError(f"--box must be a positive length, got {box}")
    if forcing not in NS_FORCINGS:
        raise ValueError(f"--forcing {forcing!r} is not known; use one of {', '.join(NS_FORCINGS)}")
    if convention == "nodes-with-walls":
        raise ValueError(
            "a periodic grid does not hold both ends of the period; use --node-convention "
            "nodes-without-far-wall (neuraloperator's) or cell-centres"
        )
    for k, a in (("x", x), ("y", y)):
        if not np.all(np.isfinite(a)):
            i = int(np.nonzero(~np.isfinite(a).reshape(len(a), -1).all(axis=1))[0][0])
            raise ValueError(f"{src}: '{k}'[{i}] has non-finite values")
    s1, s2 = x.shape[1:]
    grid = Grid(
        {"x": node_coordinates(convention, s1, 0.0, box), "y": node_coordinates(convention, s2, 0.0, box)},
        {"x": "periodic", "y": "periodic"},
    )
    spec = build_spec(
        "navier_stokes_2d",
        dict(
            base,
            layout="x -> initial_vorticity (input), y -> vorticity (output)",
            equation=NS_EQUATION,
            viscosity=float(viscosity),
            box=float(box),
            forcing={"type": forcing},
            domain="periodic box",
            grid=_grid_record(grid, convention),
        ),
    )
    fields = {
        "initial_vorticity": FieldSpec((s1, s2), "input", dtype),
        "vorticity": FieldSpec((s1, s2), "output", dtype),
    }
    with ImportWriter(
        out,
        pde="navier_stokes_2d",
        spec=spec,
        n_samples=len(x),
        seed=0,
        fields=fields,
        grid=grid,
        params=["viscosity"],
        solver=["converged"],
        overwrite=overwrite,
        flush_every=chunk,
    ) as w:
        for i in range(len(x)):
            w.write(
                i,
                {"initial_vorticity": x[i], "vorticity": y[i]},
                params={"viscosity": float(viscosity)},
                solver={"converged": True},
            )
    return out
