"""The PDE families: parameter distributions, operators and sorting features."""

import math
import warnings

import numpy as np
import pytest

from datagen.elliptic.darcy import Darcy
from datagen.elliptic.heat import Heat
from datagen.elliptic.helmholtz import Helmholtz
from datagen.elliptic.poisson import Poisson
from datagen.grf import GaussianRandomField


def test_darcy_coefficients_follow_their_laws():
    logn = Darcy(33)
    g = GaussianRandomField((33, 33), alpha=2.5, tau=7.0, boundary="neumann").sample(4, [2])[0]
    np.testing.assert_array_equal(logn.sample(4, 2).inputs["a"], np.exp(g))
    pw = Darcy(33, coefficient="piecewise")
    a = pw.sample(4, 2).inputs["a"]
    assert set(np.unique(a)) == {3.0, 12.0}
    assert pw.grf.alpha == 2.0 and pw.grf.tau == 3.0
    with pytest.raises(ValueError, match="unknown coefficient 'binary'"):
        Darcy(33, coefficient="binary")


def test_helmholtz_default_is_indefinite_with_about_nine_negative_eigenvalues():
    fam = Helmholtz(33)
    A = fam.operator(fam.sample(0, 0)).toarray()
    neg = int((np.linalg.eigvalsh(A) < 0).sum())
    assert 7 <= neg <= 12, neg  # continuous Dirichlet Laplacian: 8 eigenvalues below (4 pi)^2
    k = fam.sample(0, 0).inputs["k"]
    assert 0.6 * 4 * math.pi < k.min() and k.max() < 1.6 * 4 * math.pi


def test_helmholtz_warns_when_underresolved_and_varies_k0_with_spread():
    with pytest.warns(UserWarning, match="points per local wavelength"):
        Helmholtz(17, wavenumber=40.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Helmholtz(129, wavenumber=40.0)
    fam = Helmholtz(65, spread=0.5)
    k0 = [fam.sample(0, i).params["k0"] for i in range(20)]
    assert min(k0) >= 0.5 * 4 * math.pi and max(k0) <= 1.5 * 4 * math.pi and np.std(k0) > 0.5


def test_heat_operator_and_poisson_fixed_matrix():
    heat = Heat(17, dt=0.01, theta=0.5)
    s = heat.sample(0, 0)
    M = heat.operator(s)
    L = heat._laplacian(s)
    assert abs(M - (np.eye(225) + 0.005 * L.toarray())).max() < 1e-12
    assert np.all(s.inputs["u0"][0] == 0) and np.all(s.inputs["u0"][:, -1] == 0)
    p = Poisson(17)
    assert p.operator(p.sample(0, 0)) is p.operator(p.sample(0, 1))  # handed to PETSc once


def test_features_approximate_the_l2_distance_of_the_log_coefficients():
    fam = Darcy(129)
    s1, s2 = fam.sample(0, 1), fam.sample(0, 2)
    d_feat = np.linalg.norm(fam.features(s1) - fam.features(s2))
    d_l2 = np.sqrt(np.mean((np.log(s1.inputs["a"]) - np.log(s2.inputs["a"])) ** 2))
    assert fam.features(s1).shape == (256,)
    assert 0.8 * d_l2 < d_feat <= 1.0001 * d_l2  # block averaging is a contraction (low pass)


def test_three_dimensional_variants():
    d3 = Darcy(10, dim=3)
    s = d3.sample(0, 0)
    assert d3.name == "darcy3d" and s.inputs["a"].shape == (10, 10, 10)
    A = d3.operator(s)
    assert A.shape == (512, 512) and A.nnz == 512 * 7 - 6 * 64
    h3 = Helmholtz(26, dim=3, wavenumber=10.0)
    assert h3.name == "helmholtz3d" and h3.features(h3.sample(0, 0)).shape == (2 * 512 + 1,)
