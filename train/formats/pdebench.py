"""Boundary conditions of PDEBench files, which the files themselves do not store.

PDEBench (Takamoto et al. 2022) writes the boundary condition only into its generator code and,
for the compressible-flow files, into the file name. :func:`pdebench_boundary` returns the
condition of a file from those sources, or raises asking for ``--boundary``:

* shallow water (radial dam break, ``2D_rdb_NA_NA.h5``): homogeneous Neumann -- the generator sets
  pyclaw's ``extrap`` condition on all sides, documented there as "homogeneous Neumann boundary
  conditions" (``pdebench/data_gen/src/sim_radial_dam_break.py``); *not* periodic;
* 2-D diffusion-reaction (``2D_diff-react_NA_NA.h5``): no-flux Neumann;
* 2-D Darcy (``2D_DarcyFlow_beta*.hdf5``, keys ``nu``/``tensor``): Dirichlet, ``u = 0``;
* compressible Navier-Stokes: the name states it (``..._periodic_...``).

The grids of these files are cell centres (finite volumes): the importer keeps the file's own
``x-coordinate``/``grid/x`` arrays, e.g. ``(j + 1/2)/128`` for Darcy and ``-2.5 + (j + 1/2) 5/128``
for shallow water, so the coordinates carry the convention.
"""

from __future__ import annotations

import os
from typing import Optional

import h5py

__all__ = ["pdebench_boundary"]


def pdebench_boundary(src: str, stated: Optional[str] = None) -> str:
    """The boundary condition of the PDEBench file ``src`` (``stated`` wins when given)."""
    if stated:
        return stated
    name = os.path.basename(src).lower()
    if "rdb" in name or "shallow" in name or "swe" in name:
        return "neumann"
    if "diff-react" in name or "diff_react" in name or "reacdiff" in name:
        return "neumann"
    if "periodic" in name:
        return "periodic"
    if "darcy" in name:
        return "dirichlet"
    try:
        with h5py.File(src, "r") as f:
            if "nu" in f and "tensor" in f:
                return "dirichlet"
    except OSError:
        pass
    raise ValueError(
        f"PDEBench files do not store their boundary condition and {os.path.basename(src)!r} does not "
        f"name it; pass --boundary (periodic, dirichlet, neumann, open, ...)"
    )
