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

import functools

import numpy as np
import scipy.sparse as sp


def check_resolution(resolution: int, dim: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 3:
        raise ValueError(
            f"resolution must be an integer >= 3 (grid points per axis including the boundary), got {resolution!r}"
        )
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


def _face_slices(ax: int, d: int):
    """``(lo, hi)`` index tuples selecting the lower and upper node of every face normal to axis ``ax``."""
    lo = [slice(None)] * d
    hi = [slice(None)] * d
    lo[ax] = slice(0, -1)
    hi[ax] = slice(1, None)
    return tuple(lo), tuple(hi)


def face_weights(a: np.ndarray) -> list:
    """Per-axis face weights ``w_f = a_pq * (1/2 per shared boundary axis) / h^2`` of ``K / h^d``.

    ``a`` is the nodal coefficient ``(s,)*d``; entry ``ax`` of the result has shape ``(s,)*d`` with
    axis ``ax`` shortened by one: the face between nodes ``[.., j, ..]`` and ``[.., j + 1, ..]``.
    """
    a = np.asarray(a, dtype=np.float64)
    shape = a.shape
    d = a.ndim
    lo_, hi_ = (a.min(), a.max()) if a.size else (1.0, 1.0)
    if not (lo_ > 0 and hi_ < np.inf):  # a NaN fails the first test
        raise ValueError("diffusion coefficient must be finite and positive everywhere")
    h2 = (1.0 / (shape[0] - 1)) ** 2
    half = [np.ones(n) for n in shape]
    for w in half:
        w[0] = w[-1] = 0.5
    weights = []
    for ax in range(d):
        lo, hi = _face_slices(ax, d)
        # harmonic_mean(a[lo], a[hi]) / h^2 = ((2 a_lo) a_hi) / (a_lo + a_hi) / h^2, the same operations in
        # the same order (bit for bit), with two buffers instead of five temporaries
        w = np.multiply(a[lo], 2.0)
        w *= a[hi]
        w /= np.add(a[lo], a[hi])
        w /= h2
        for other in range(d):
            if other != ax:
                w *= half[other].reshape(tuple(-1 if b == other else 1 for b in range(d)))
        weights.append(w)
    return weights


class StencilPattern:
    """The fixed CSR sparsity pattern of the 5-point (7-point) operator on a grid, and where each value goes.

    ``indptr``/``indices`` are the pattern of ``K`` (all nodes) or of ``K_II`` (``dirichlet``: interior
    nodes only), rows in C order of the grid. A matrix with this pattern is filled by one gather,
    ``data = source[gather]``, from ``source = [-w_faces(axis 0), ..., -w_faces(axis d-1), diagonal]``
    (faces and nodes raveled in C order): no COO conversion, duplicate summing or submatrix extraction
    per sample. Built once per ``(shape, dirichlet)`` (:func:`stencil_pattern`) by assembling integer
    labels through the general sparse route, so the pattern is the same one that route produces.
    """

    def __init__(self, shape: tuple, dirichlet: bool):
        self.shape, self.dirichlet = tuple(int(n) for n in shape), bool(dirichlet)
        d = len(self.shape)
        n = int(np.prod(self.shape))
        index = np.arange(n).reshape(self.shape)
        rows, cols, labels = [], [], []
        offset = 0
        for ax in range(d):
            lo, hi = _face_slices(ax, d)
            p, q = index[lo].ravel(), index[hi].ravel()
            lab = offset + np.arange(p.size)
            rows += [p, q]
            cols += [q, p]
            labels += [lab, lab]
            offset += p.size
        self.n_faces = offset
        rows.append(index.ravel())
        cols.append(index.ravel())
        labels.append(offset + np.arange(n))
        # labels are shifted by one so that none is an (implicit) zero; all are exact in float64
        M = sp.coo_matrix(
            (np.concatenate(labels) + 1.0, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        ).tocsr()
        if self.dirichlet:
            inner = interior_mask(self.shape).ravel()
            M = M[inner][:, inner].tocsr()
        M.sort_indices()
        self.size = M.shape[0]
        self.indptr, self.indices = M.indptr.copy(), M.indices.copy()
        self.gather = (M.data - 1.0).astype(np.intp)
        for arr in (self.indptr, self.indices, self.gather):
            arr.flags.writeable = False

    def matrix(self, weights: list, scale: float = 1.0, diagonal=None) -> sp.csr_matrix:
        """``scale * K_UU + diag(diagonal_U)`` for face ``weights`` (:func:`face_weights` layout), ``U`` the
        unknowns (interior nodes for ``dirichlet``, else all); ``diagonal`` is a scalar or a full-grid
        ``(s,)*d`` array (None: zero). Values agree with the general sparse assembly to the last bit.
        The matrix's ``indptr``/``indices`` are this pattern's read-only arrays (copy the matrix to change
        its pattern in place)."""
        d = len(self.shape)
        n = int(np.prod(self.shape))
        if sum(int(np.size(w)) for w in weights) != self.n_faces:
            raise ValueError(f"face weights do not match the grid {self.shape}")
        # source = [-w_0, ..., -w_{d-1}, diagonal] written in place (values as by the general route)
        source = np.empty(self.n_faces + n)
        diag_p = np.zeros(self.shape)
        diag_q = source[self.n_faces :].reshape(self.shape)
        diag_q[...] = 0.0
        offset = 0
        for ax, w in enumerate(weights):
            lo, hi = _face_slices(ax, d)
            diag_p[lo] += w
            diag_q[hi] += w
            off = source[offset : offset + w.size]
            np.negative(w.ravel(), out=off)
            if scale != 1.0:
                off *= scale
            offset += w.size
        diag = diag_q
        diag += diag_p  # = diag_p + diag_q, the summation order of np.bincount over (p..., q...)
        if scale != 1.0:
            diag *= scale
        if diagonal is not None:
            diag += diagonal
        # the pattern arrays are shared, read-only (an in-place change of the pattern raises instead of
        # corrupting every later matrix), so a backend recognises the pattern by identity
        # (datagen.elliptic.backends.PetscBackend.set_operator) instead of comparing it; fancy indexing, not
        # np.take: the same values, and take is 5-8x slower here when its output is a fresh mmap'ed block
        A = sp.csr_matrix((source[self.gather], self.indices, self.indptr), shape=(self.size, self.size))
        A.indices, A.indptr = self.indices, self.indptr  # the arrays themselves (the constructor makes views)
        A.has_sorted_indices = True
        return A


@functools.lru_cache(maxsize=16)
def stencil_pattern(shape: tuple, dirichlet: bool) -> StencilPattern:
    """The cached :class:`StencilPattern` of a grid (interior unknowns for ``dirichlet``, else all nodes)."""
    return StencilPattern(tuple(shape), dirichlet)


def diffusion_graph_laplacian(a: np.ndarray) -> sp.csr_matrix:
    """``K / h^d`` on all nodes of the grid for the nodal coefficient ``a`` of shape ``(s,)*d``.

    Returns the symmetric ``(s^d, s^d)`` CSR matrix ``sum_faces w_f (e_p - e_q)(e_p - e_q)^T`` with
    ``w_f = a_pq area_pq / (h * h^d) = a_pq * (1/2 per shared boundary axis) / h^2``.
    """
    a = np.asarray(a, dtype=np.float64)
    return stencil_pattern(a.shape, False).matrix(face_weights(a))


def dirichlet_lift(weights: list, g: np.ndarray) -> np.ndarray:
    """``-K_IB g_B`` (interior nodes, C order) for face ``weights`` and full-grid Dirichlet data ``g``
    (only its boundary values are used): ``sum_q w_pq g_q`` over the boundary neighbours ``q`` of ``p``."""
    g = np.asarray(g, dtype=np.float64)
    shape = g.shape
    d = g.ndim
    inner = (slice(1, -1),) * d
    gb = g.copy()
    gb[inner] = 0.0
    acc = np.zeros(shape)
    for ax, w in enumerate(weights):
        lo, hi = _face_slices(ax, d)
        acc[lo] += w * gb[hi]
        acc[hi] += w * gb[lo]
    return acc[inner].ravel()


def diffusion_system(a: np.ndarray, g: np.ndarray | None = None):
    """``(A, lift)`` of ``-div(a grad u)`` with Dirichlet data ``g`` straight from the nodal ``a``:
    ``A = K_II`` (CSR, fixed pattern filled in place of an assembly) and ``lift = -K_IB g_B`` (zeros
    for ``g = None``); the same as ``dirichlet_system(diffusion_graph_laplacian(a), a.shape, g)``."""
    a = np.asarray(a, dtype=np.float64)
    weights = face_weights(a)
    A = stencil_pattern(a.shape, True).matrix(weights)
    lift = np.zeros(A.shape[0]) if g is None else dirichlet_lift(weights, g)
    return A, lift


def dirichlet_system(K: sp.csr_matrix, shape: tuple, g: np.ndarray | None = None):
    """Restrict the graph Laplacian to the interior nodes (any matrix ``K`` on the full grid).

    Returns ``(A, lift)`` with ``A = K_II`` (CSR) and ``lift = -K_IB g_B`` (the right-hand side
    contribution of the boundary data; zeros for ``g = None``). The families use the faster
    :func:`diffusion_system` for the diffusion operator itself.
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


def scale_and_shift(A: sp.spmatrix, scale: float, shift: float) -> sp.csr_matrix:
    """``scale * A + shift * I`` (CSR). When ``A`` stores its whole diagonal (the stencil operators do) the
    result keeps ``A``'s pattern and is computed on its values alone; otherwise by general sparse addition."""
    A = sp.csr_matrix(A)
    n = A.shape[0]
    if A.shape[0] == A.shape[1]:
        rows = np.repeat(np.arange(n), np.diff(A.indptr))
        slots = np.flatnonzero(A.indices == rows)
        if slots.size == n and np.array_equal(rows[slots], np.arange(n)):
            data = scale * A.data
            data[slots] += shift
            return sp.csr_matrix((data, A.indices.copy(), A.indptr.copy()), shape=A.shape)
    out = (shift * sp.identity(n, format="csr") + scale * A).tocsr()
    out.sort_indices()
    return out


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
        owner = np.minimum((np.arange(n) * c) // n, c - 1)  # non-decreasing: cells are contiguous runs
        starts = np.searchsorted(owner, np.arange(c))
        counts = np.diff(np.append(starts, n)).astype(np.float64)
        summed = np.add.reduceat(out, starts, axis=ax)
        out = summed / counts.reshape(tuple(c if b == ax else 1 for b in range(field.ndim)))
    return out
