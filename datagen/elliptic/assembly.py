"""Finite-volume assembly on a uniform node grid of the unit box (2D or 3D), shared by the families.

Grid: ``s`` points per axis including both boundary points, ``x_j = j h``, ``h = 1 / (s - 1)``; arrays
are indexed ``[i, j(, l)]`` with axis 0 = x. Every node ``p`` owns the dual cell of volume
``V_p = h^d prod_axes (1/2 if p is on that axis' boundary)``; neighbours along an axis share a face
of area ``h^(d-1) prod_other_axes (1/2 if both nodes lie on that other axis' boundary)``.

The diffusion operator ``-div(a grad u)`` becomes, per node,

    sum_{q ~ p} a_pq area_pq (u_p - u_q) / h,     a_pq = 2 a_p a_q / (a_p + a_q)  (harmonic mean),

a weighted graph Laplacian ``K`` (symmetric, positive semi-definite). Everything is divided by
``h^d``, so interior rows are the classical conservative 5-point (7-point in 3D) stencil
``(1/h^2) sum_q a_pq (u_p - u_q)`` and ``V / h^d`` is 1 inside, 1/2 on faces, 1/4 on edges, 1/8 at corners.

- Dirichlet data ``u = g`` on the boundary: the unknowns are the interior nodes, ``A = K_II`` and the
  right-hand side gains ``-K_IB g_B`` (second order, symmetric).
- Homogeneous Neumann data: all nodes are unknowns, ``A = K`` and right-hand sides and mass terms are
  weighted by the dual volumes ``V``, which keeps ``A`` symmetric (second order globally).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def check_resolution(resolution: int, dim: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 3:
        raise ValueError(f"resolution must be an integer >= 3 (grid points per axis including the boundary), "
                         f"got {resolution!r}")
    if dim not in (2, 3):
        raise ValueError(f"dimension must be 2 or 3, got {dim!r}")
    return int(resolution)


def node_coordinates(resolution: int) -> np.ndarray:
    """``(s,)`` coordinates ``j / (s - 1)``."""
    return np.linspace(0.0, 1.0, resolution)


def interior_mask(shape: tuple) -> np.ndarray:
    """Boolean array, True at nodes not on the boundary."""
    m = np.zeros(shape, dtype=bool)
    m[(slice(1, -1),) * len(shape)] = True
    return m


def dual_volumes(shape: tuple) -> np.ndarray:
    """``V_p / h^d``: 1 inside, halved once per axis on whose boundary the node lies."""
    v = np.ones(shape)
    for ax, n in enumerate(shape):
        w = np.ones(n)
        w[0] = w[-1] = 0.5
        v = v * w.reshape(tuple(n if a == ax else 1 for a in range(len(shape))))
    return v


def harmonic_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 2.0 * a * b / (a + b)


def diffusion_graph_laplacian(a: np.ndarray) -> sp.csr_matrix:
    """``K / h^d`` on all nodes of the grid for the nodal coefficient ``a`` of shape ``(s,)*d``.

    Returns the symmetric ``(s^d, s^d)`` CSR matrix ``sum_faces w_f (e_p - e_q)(e_p - e_q)^T`` with
    ``w_f = a_pq area_pq / (h * h^d) = a_pq * (1/2 per shared boundary axis) / h^2``.
    """
    a = np.asarray(a, dtype=np.float64)
    shape = a.shape
    d = a.ndim
    s = shape[0]
    if np.any(~np.isfinite(a)) or np.any(a <= 0):
        raise ValueError("diffusion coefficient must be finite and positive everywhere")
    h = 1.0 / (s - 1)
    index = np.arange(a.size).reshape(shape)
    half = [np.ones(n) for n in shape]
    for w in half:
        w[0] = w[-1] = 0.5
    rows, cols, weights = [], [], []
    for ax in range(d):
        lo = [slice(None)] * d
        hi = [slice(None)] * d
        lo[ax] = slice(0, -1)
        hi[ax] = slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        w = harmonic_mean(a[lo], a[hi]) / h ** 2
        for other in range(d):
            if other != ax:
                w = w * half[other].reshape(tuple(-1 if b == other else 1 for b in range(d)))
        rows.append(index[lo].ravel())
        cols.append(index[hi].ravel())
        weights.append(w.ravel())
    p = np.concatenate(rows)
    q = np.concatenate(cols)
    w = np.concatenate(weights)
    n = a.size
    off = sp.coo_matrix((-w, (p, q)), shape=(n, n))
    diag = np.bincount(p, weights=w, minlength=n) + np.bincount(q, weights=w, minlength=n)
    K = (off + off.T + sp.diags(diag)).tocsr()
    K.sum_duplicates()
    K.sort_indices()
    return K


def dirichlet_system(K: sp.csr_matrix, shape: tuple, g: np.ndarray | None = None):
    """Restrict the graph Laplacian to the interior nodes.

    Returns ``(A, lift)`` with ``A = K_II`` (CSR) and ``lift = -K_IB g_B`` (the right-hand side
    contribution of the boundary data; zeros for ``g = None``).
    """
    inner = interior_mask(shape).ravel()
    A = K[inner][:, inner].tocsr()
    A.sort_indices()
    if g is None:
        lift = np.zeros(A.shape[0])
    else:
        gb = np.where(inner, 0.0, np.asarray(g, dtype=np.float64).ravel())
        lift = -(K[inner] @ gb)
    return A, lift


def embed_interior(x: np.ndarray, shape: tuple, boundary_values: np.ndarray | None = None) -> np.ndarray:
    """Full-grid array from interior values ``x`` (boundary from ``boundary_values`` or zero)."""
    out = np.zeros(shape) if boundary_values is None else np.array(boundary_values, dtype=np.float64, copy=True)
    out[(slice(1, -1),) * len(shape)] = np.asarray(x).reshape(tuple(n - 2 for n in shape))
    return out


def block_average(field: np.ndarray, cells: int) -> np.ndarray:
    """Average of ``field`` over a ``cells^d`` partition of the grid (a cheap low-pass for sorting features).

    Nodes are assigned to cells by position, so the result is ``(cells,)*d`` for any resolution >= cells.
    """
    field = np.asarray(field, dtype=np.float64)
    out = field
    for ax, n in enumerate(field.shape):
        c = min(cells, n)
        owner = np.minimum((np.arange(n) * c) // n, c - 1)
        counts = np.bincount(owner, minlength=c).astype(np.float64)
        moved = np.moveaxis(out, ax, 0)
        summed = np.zeros((c,) + moved.shape[1:])
        np.add.at(summed, owner, moved)
        out = np.moveaxis(summed / counts.reshape((c,) + (1,) * (moved.ndim - 1)), 0, ax)
    return out
