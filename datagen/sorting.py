"""Orderings of a dataset's systems so that consecutive systems are similar (the "sorting" of SKR).

Input: a feature matrix ``X`` of shape ``(N, F)``, one row per sample (e.g. block averages of the
coefficient field plus scaled scalar parameters, see :class:`datagen.elliptic.family.EllipticFamily`);
the distance between two samples is the Euclidean distance of their rows. Output: a permutation
``order`` of ``range(N)``: position ``p`` of the solve order holds sample ``order[p]``.

- :func:`greedy_order`: nearest-neighbour path from sample ``start``: repeatedly go to the closest
  sample not yet visited (ties: lowest index). O(N^2 F) time; the pairwise distance matrix is kept
  in memory for ``N <= GREEDY_DENSE_MAX`` (``8 N^2`` bytes), otherwise rows are computed per step.
- :func:`grouped_order`: the scalable variant. A principal-direction bisection tree splits the
  samples at the median of their projection on the leading principal direction (a few power
  iterations) until groups hold at most ``group_size`` samples; groups are visited in tree order,
  each half entered from the side nearest the end of the path so far, and the greedy path is run
  inside each group starting at the sample nearest that end. O(N F log(N / G) + N G F): seconds at
  N = 10^5.
- :func:`sort_order` picks by name: ``greedy``, ``grouped``, ``none`` (identity) or ``auto``
  (greedy up to ``AUTO_GREEDY_MAX`` samples, grouped above).
"""

from __future__ import annotations

import numpy as np

GREEDY_DENSE_MAX = 6000
AUTO_GREEDY_MAX = 4000
ORDERINGS = ("auto", "greedy", "grouped", "none")


def _check_features(features) -> np.ndarray:
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"features must be a 2-D array (N samples, F features), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("features contain NaN or infinite values")
    return X


def pairwise_sq_distances(X: np.ndarray, Y: np.ndarray | None = None) -> np.ndarray:
    """``|x_i - y_j|^2`` (clipped at 0 against round-off) via one matrix product."""
    Y = X if Y is None else Y
    d = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2.0 * (X @ Y.T)
    return np.maximum(d, 0.0)


def _greedy_path(X: np.ndarray, start: int) -> np.ndarray:
    n = X.shape[0]
    order = np.empty(n, dtype=np.int64)
    visited = np.zeros(n, dtype=bool)
    dense = pairwise_sq_distances(X) if n <= GREEDY_DENSE_MAX else None
    sq = (X * X).sum(1)
    cur = int(start)
    for p in range(n):
        order[p] = cur
        visited[cur] = True
        if p == n - 1:
            break
        row = dense[cur].copy() if dense is not None else sq - 2.0 * (X @ X[cur]) + sq[cur]
        row[visited] = np.inf
        cur = int(np.argmin(row))
    return order


def greedy_order(features, start: int = 0) -> np.ndarray:
    """Nearest-neighbour path over the rows of ``features`` starting at ``start``: ``(N,)`` int64."""
    X = _check_features(features)
    n = X.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if not 0 <= start < n:
        raise ValueError(f"start must be a sample index in 0..{n - 1}, got {start}")
    return _greedy_path(X, start)


def _leading_direction(Xc: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Leading right singular vector of the centred block by power iteration (deterministic start)."""
    v = Xc[np.argmax((Xc * Xc).sum(1))].copy()
    norm = np.linalg.norm(v)
    if norm == 0.0:
        return v
    v /= norm
    for _ in range(iterations):
        w = Xc.T @ (Xc @ v)
        nw = np.linalg.norm(w)
        if nw == 0.0:
            break
        v = w / nw
    return v


def grouped_order(features, group_size: int = 512, start: int = 0) -> np.ndarray:
    """Principal-direction bisection into groups of <= ``group_size``, greedy inside (see module doc)."""
    X = _check_features(features)
    n = X.shape[0]
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 2:
        raise ValueError(f"group_size must be an integer >= 2, got {group_size!r}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if not 0 <= start < n:
        raise ValueError(f"start must be a sample index in 0..{n - 1}, got {start}")
    out: list = []
    entry = X[start]
    # explicit stack of index blocks, processed depth-first in path order
    stack = [np.arange(n)]
    while stack:
        idx = stack.pop()
        if len(idx) <= group_size:
            first = int(np.argmin(pairwise_sq_distances(entry[None, :], X[idx])[0]))
            local = _greedy_path(X[idx], first)
            out.append(idx[local])
            entry = X[idx[local[-1]]]
            continue
        Xs = X[idx]
        centre = Xs.mean(0)
        proj = (Xs - centre) @ _leading_direction(Xs - centre)
        half = np.argsort(proj, kind="stable")
        lo, hi = idx[half[: len(idx) // 2]], idx[half[len(idx) // 2 :]]
        # enter the half holding the sample nearest the current end of the path
        nearest = idx[int(np.argmin(pairwise_sq_distances(entry[None, :], Xs)[0]))]
        first, second = (lo, hi) if np.isin(nearest, lo) else (hi, lo)
        stack.append(second)
        stack.append(first)
    return np.concatenate(out)


def sort_order(features, method: str = "auto", group_size: int = 512, start: int = 0) -> np.ndarray:
    """The solve order for ``method`` in ``ORDERINGS``."""
    if method not in ORDERINGS:
        raise ValueError(f"unknown ordering {method!r}; allowed: {', '.join(ORDERINGS)}")
    X = _check_features(features)
    if method == "none":
        return np.arange(X.shape[0], dtype=np.int64)
    if method == "greedy" or (method == "auto" and X.shape[0] <= AUTO_GREEDY_MAX):
        return greedy_order(X, start)
    return grouped_order(X, group_size, start)


def path_length(features, order) -> float:
    """Sum of distances between consecutive samples of ``order``."""
    X = _check_features(features)[np.asarray(order)]
    return float(np.linalg.norm(np.diff(X, axis=0), axis=1).sum())
