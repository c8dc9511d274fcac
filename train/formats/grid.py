"""Node conventions of a uniform grid on ``[lo, hi]`` with ``s`` points per axis.

==========================  ==============================  ======================================
convention                  coordinates                     where it is used
==========================  ==============================  ======================================
``nodes-with-walls``        ``x_j = lo + j L / (s - 1)``    FNO ``.mat`` Darcy, neuralops' elliptic
                                                            families (both walls are grid points)
``nodes-without-far-wall``  ``x_j = lo + j L / s``          periodic grids; neuraloperator's ``.pt``
                                                            Darcy (``x_0`` on the wall, ``x_{s-1}`` one
                                                            spacing inside the far wall)
``cell-centres``            ``x_j = lo + (j + 1/2) L / s``  finite-volume data: PDEBench (Darcy,
                                                            shallow water), many Well datasets
``nodes-without-walls``     ``x_j = lo + (j + 1) L/(s+1)``  interior nodes of a Dirichlet problem
==========================  ==============================  ======================================

``L = hi - lo``, ``j = 0..s-1``. A file states its convention through its coordinates only when the
domain is known; :func:`infer_node_convention` says what the coordinates alone decide and returns
``None`` where they cannot (then the importer asks for ``--node-convention``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

# one definition of the conventions and their coordinates: the data contract's
from datagen.contract import NODE_CONVENTIONS, node_coordinates

__all__ = ["NODE_CONVENTIONS", "node_coordinates", "infer_node_convention", "check_node_convention"]


def check_node_convention(name: Optional[str]) -> str:
    if name not in NODE_CONVENTIONS:
        raise ValueError(
            f"node convention {name!r} is not known; use one of {', '.join(NODE_CONVENTIONS)} (--node-convention)"
        )
    return name


def infer_node_convention(
    coords: Sequence[float], lo: Optional[float] = None, hi: Optional[float] = None, tol: float = 1e-6
) -> Optional[str]:
    """The convention of uniform ``coords`` on ``[lo, hi]``; ``None`` when they do not decide it.

    With the domain given, the first and last coordinate decide. Without it, a first coordinate at a
    half-integer multiple of the spacing (``(k + 1/2) h``, e.g. ``h/2`` or ``-2.5 + h/2``) means cell
    centres; an integer multiple fits both node conventions, which only the domain separates.
    """
    c = np.asarray(coords, dtype=np.float64).reshape(-1)
    if c.size < 2:
        return None
    h = float(c[1] - c[0])
    if not (h > 0 and np.allclose(np.diff(c), h, rtol=1e-4, atol=0)):
        return None
    scale = tol * max(1.0, abs(c[0]), abs(c[-1]))
    if lo is not None and hi is not None:
        for conv in NODE_CONVENTIONS:
            ref = node_coordinates(conv, c.size, lo, hi)
            if np.max(np.abs(ref - c)) <= max(scale, 1e-4 * h):
                return conv
        return None
    frac = (c[0] / h) % 1.0
    if abs(frac - 0.5) <= 1e-4:
        return "cell-centres"
    return None
