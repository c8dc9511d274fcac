"""Sorting: the greedy path is the nearest-neighbour path; the grouped variant is a good, cheap path."""

import numpy as np
import pytest

from datagen.sorting import greedy_order, grouped_order, path_length, sort_order


def brute_force_greedy(X, start):
    n = len(X)
    order, left = [start], set(range(n)) - {start}
    while left:
        cur = X[order[-1]]
        nxt = min(sorted(left), key=lambda j: float(np.sum((X[j] - cur) ** 2)))
        order.append(nxt)
        left.remove(nxt)
    return np.array(order)


def test_greedy_is_the_nearest_neighbour_path_from_sample_0():
    X = np.random.default_rng(0).standard_normal((80, 5))
    order = greedy_order(X)
    assert order[0] == 0
    assert sorted(order.tolist()) == list(range(80))
    np.testing.assert_array_equal(order, brute_force_greedy(X, 0))
    np.testing.assert_array_equal(greedy_order(X, start=17), brute_force_greedy(X, 17))


def test_greedy_recovers_points_on_a_line():
    t = np.linspace(0.0, 1.0, 50) ** 1.3  # uneven spacing, strictly increasing
    perm = np.random.default_rng(1).permutation(50)
    X = np.stack([t[perm], 2 * t[perm]], axis=1)
    start = int(np.argmin(t[perm]))
    order = greedy_order(X, start=start)
    np.testing.assert_array_equal(perm[order], np.arange(50))
    assert path_length(X, order) == pytest.approx(np.sqrt(5) * (t[-1] - t[0]))


def test_greedy_without_dense_matrix_gives_the_same_path(monkeypatch):
    import datagen.sorting as sorting

    X = np.random.default_rng(2).standard_normal((120, 7))
    dense = greedy_order(X)
    monkeypatch.setattr(sorting, "GREEDY_DENSE_MAX", 10)
    np.testing.assert_array_equal(greedy_order(X), dense)


def test_grouped_order_is_a_short_permutation():
    rng = np.random.default_rng(3)
    # clustered data in 6-D: 20 clusters of 100
    centres = rng.standard_normal((20, 6)) * 10
    X = (centres[:, None, :] + rng.standard_normal((20, 100, 6))).reshape(-1, 6)[rng.permutation(2000)]
    g = grouped_order(X, group_size=128)
    assert sorted(g.tolist()) == list(range(2000))
    greedy = greedy_order(X)
    random_len = path_length(X, np.arange(2000))
    assert path_length(X, g) < 0.25 * random_len
    assert path_length(X, g) < 1.5 * path_length(X, greedy)
    # a single group is exactly the greedy path from the start sample
    np.testing.assert_array_equal(grouped_order(X[:100], group_size=100), greedy_order(X[:100]))


def test_sort_order_dispatch_and_bad_input():
    X = np.random.default_rng(4).standard_normal((30, 3))
    np.testing.assert_array_equal(sort_order(X, "none"), np.arange(30))
    np.testing.assert_array_equal(sort_order(X, "auto"), greedy_order(X))
    with pytest.raises(ValueError, match="unknown ordering 'best'"):
        sort_order(X, "best")
    with pytest.raises(ValueError, match="2-D"):
        greedy_order(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        greedy_order(np.array([[0.0], [np.nan]]))
    with pytest.raises(ValueError, match="group_size"):
        grouped_order(X, group_size=1)
    with pytest.raises(ValueError, match="start"):
        greedy_order(X, start=30)
