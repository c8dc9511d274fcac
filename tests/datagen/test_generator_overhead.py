"""The generator draws each sample's random inputs once: the feature pass keeps them for the solve loop
(within a memory budget), and the stored dataset is the same as when every sample is drawn twice."""

import numpy as np
import pytest

pytest.importorskip("petsc4py")

import datagen.elliptic.generator as G  # noqa: E402
from datagen.dataset import open_dataset  # noqa: E402
from datagen.elliptic.darcy import Darcy  # noqa: E402
from datagen.elliptic.poisson import Poisson  # noqa: E402


class Counting:
    """Wraps a family's ``sample`` and counts the draws per index."""

    def __init__(self, family):
        self.calls = {}
        self._sample = family.sample

        def sample(seed, index):
            self.calls[index] = self.calls.get(index, 0) + 1
            return self._sample(seed, index)

        family.sample = sample


@pytest.mark.parametrize("make", [lambda: Darcy(17), lambda: Poisson(17)])
def test_samples_are_drawn_once_and_the_data_do_not_change(tmp_path, monkeypatch, make):
    cfg = dict(n_samples=6, seed=2, solver="gmres", rtol=1e-10, ordering="greedy")
    fam = make()
    count = Counting(fam)
    summary = G.generate(fam, tmp_path / "once.h5", G.GenerationConfig(**cfg), progress=False)
    assert summary.complete and count.calls == {i: 1 for i in range(6)}

    # without the budget every sample is drawn for the features and again for the solve
    monkeypatch.setattr(G, "KEEP_SAMPLES_BYTES", 0)
    fam2 = make()
    count2 = Counting(fam2)
    G.generate(fam2, tmp_path / "twice.h5", G.GenerationConfig(**cfg), progress=False)
    assert count2.calls == {i: 2 for i in range(6)}
    with open_dataset(tmp_path / "once.h5") as a, open_dataset(tmp_path / "twice.h5") as b:
        assert set(a.fields) == set(b.fields) and "u" in a.fields
        for name in a.fields:
            for i in range(6):
                np.testing.assert_array_equal(a.read(name, i), b.read(name, i))
        np.testing.assert_array_equal(a.solver("order"), b.solver("order"))


def test_budget_bounds_the_kept_samples(monkeypatch):
    fam = Darcy(17)
    one = fam.sample(0, 0).inputs["a"].nbytes
    monkeypatch.setattr(G, "KEEP_SAMPLES_BYTES", 3 * one)
    keep = {}
    feats = G.compute_features(fam, 0, 8, keep=keep)
    assert feats.shape[0] == 8 and sorted(keep) == [0, 1, 2]
    np.testing.assert_array_equal(keep[1].inputs["a"], fam.sample(0, 1).inputs["a"])
