"""User-supplied parameter fields (--coefficient-file, --source-file, --wavenumber-file): the family's
own sampled fields, written to a file and read back, give the family's own systems and solutions."""

import h5py
import numpy as np
import pytest
import scipy.sparse.linalg as spla
from scipy.io import savemat

from datagen.elliptic.darcy import Darcy
from datagen.elliptic.heat import Heat
from datagen.elliptic.helmholtz import Helmholtz
from datagen.elliptic.poisson import Poisson
from datagen.elliptic.user_fields import UserFields, read_fields


def direct_solve(family, sample):
    A = family.operator(sample)
    return family.solve(sample, A, lambda b, x0: spla.spsolve(A.tocsc(), b))


def own_fields(family, name, n, seed=0):
    return np.stack([family.sample(seed, i).inputs[name] for i in range(n)])


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".h5", ".mat"])
def test_darcy_coefficients_from_a_file_give_the_family_s_own_solutions(tmp_path, suffix):
    fam = Darcy(17)
    a = own_fields(fam, "a", 3)
    path = str(tmp_path / f"coeff{suffix}")
    {
        ".npy": lambda: np.save(path, a),
        ".npz": lambda: np.savez(path, a=a),
        ".h5": lambda: h5py.File(path, "w").create_dataset("a", data=a).file.close(),
        ".mat": lambda: savemat(path, {"a": a}),
    }[suffix]()
    user = UserFields(Darcy(17), {"coefficient": (path, "a")})
    for i in range(3):
        mine, theirs = user.sample(5, i), fam.sample(0, i)  # another seed: the file decides a
        np.testing.assert_array_equal(mine.inputs["a"], theirs.inputs["a"])
        np.testing.assert_array_equal(direct_solve(user, mine)["u"], direct_solve(fam, theirs)["u"])
        np.testing.assert_array_equal(user.features(mine), fam.features(theirs))
    spec = user.spec()
    assert spec["coefficient"] == "file" and "grf" not in spec and "coefficient_law" not in spec
    rec = spec["user_fields"]["a"]
    assert rec["key"] == "a" and rec["samples"] == 3 and len(rec["sha256"]) == 64 and rec["path"].endswith(suffix)


def test_mat_v73_fields_are_read_in_matlab_order(tmp_path):
    a = np.random.default_rng(1).uniform(1, 2, (2, 5, 5))
    path = tmp_path / "c.mat"
    with h5py.File(path, "w") as f:
        f.create_dataset("coeff", data=np.transpose(a))  # MATLAB v7.3: column-major
    np.testing.assert_array_equal(read_fields(str(path), "coeff"), a)


def test_helmholtz_wavenumber_and_source_and_poisson_heat_sources(tmp_path):
    fam = Helmholtz(17, wavenumber=6.0)
    k, f = own_fields(fam, "k", 2), own_fields(fam, "f", 2)
    np.save(tmp_path / "k.npy", k)
    np.save(tmp_path / "f.npy", f)
    user = UserFields(
        Helmholtz(17, wavenumber=6.0),
        {"wavenumber": (str(tmp_path / "k.npy"), None), "source": (str(tmp_path / "f.npy"), None)},
    )
    s = user.sample(9, 1)
    np.testing.assert_array_equal(direct_solve(user, s)["u"], direct_solve(fam, fam.sample(0, 1))["u"])
    assert s.params["k0"] == pytest.approx(k[1].mean())
    spec = user.spec()
    assert {"k_grf", "f_grf", "wavenumber_law"}.isdisjoint(spec) and set(spec["user_fields"]) == {"k", "f"}
    for cls, role, name in ((Poisson, "source", "f"), (Heat, "coefficient", "a")):
        fam = cls(9)
        x = own_fields(fam, name, 2)
        np.save(tmp_path / "x.npy", x)
        user = UserFields(cls(9), {role: (str(tmp_path / "x.npy"), None)})
        # the other inputs (Poisson's boundary data g, heat's u0) still come from the seed
        np.testing.assert_array_equal(user.sample(3, 1).inputs[name], x[1])
        np.testing.assert_array_equal(
            direct_solve(user, user.sample(0, 1))["u"], direct_solve(fam, fam.sample(0, 1))["u"]
        )


def test_bad_fields_are_refused_with_one_line(tmp_path):
    a = np.ones((2, 9, 9))
    a[1, 4, 5] = 0.0
    np.save(tmp_path / "zero.npy", a)
    with pytest.raises(ValueError, match=r"\[1, 4, 5\] = 0: a coefficient must be positive and finite"):
        UserFields(Darcy(9), {"coefficient": (str(tmp_path / "zero.npy"), None)})
    np.save(tmp_path / "coarse.npy", np.ones((2, 5, 5)))
    with pytest.raises(ValueError, match=r"shape \(5, 5\).*needs \(N,\) \+ \(9, 9\).*--resolution 5"):
        UserFields(Darcy(9), {"coefficient": (str(tmp_path / "coarse.npy"), None)})
    np.save(tmp_path / "ok.npy", np.ones((2, 9, 9)))
    with pytest.raises(ValueError, match="darcy takes no source field"):
        UserFields(Darcy(9), {"source": (str(tmp_path / "ok.npy"), None)})
    with pytest.raises(ValueError, match="hold 2 samples but --n is 5"):
        UserFields(Darcy(9), {"coefficient": (str(tmp_path / "ok.npy"), None)}).check_samples(5)
    with pytest.raises(ValueError, match="key 'b' not found; keys: a"):
        np.savez(tmp_path / "z.npz", a=np.ones((2, 9, 9)))
        read_fields(str(tmp_path / "z.npz"), "b")


def test_cli_coefficient_file_reproduces_the_family_s_dataset(tmp_path):
    pytest.importorskip("petsc4py")
    from datagen.cli import main
    from datagen.dataset import open_dataset

    common = ["--n", "3", "--resolution", "17", "--solver", "lu", "--no-progress"]
    assert main(["darcy", *common, "--out", str(tmp_path / "own.h5")]) == 0
    own = open_dataset(tmp_path / "own.h5")
    np.savez(tmp_path / "a.npz", a=own.read("a"))
    assert (
        main(
            [
                "darcy",
                *common,
                "--seed",
                "4",
                "--coefficient-file",
                str(tmp_path / "a.npz"),
                "--coefficient-key",
                "a",
                "--out",
                str(tmp_path / "user.h5"),
            ]
        )
        == 0
    )
    user = open_dataset(tmp_path / "user.h5")
    np.testing.assert_array_equal(user.read("a"), own.read("a"))
    np.testing.assert_allclose(user.read("u"), own.read("u"), rtol=1e-10, atol=1e-14)
    sampling = user.spec["sampling"]
    assert sampling["coefficient"] == "file" and sampling["user_fields"]["a"]["key"] == "a"
    assert "grf" not in sampling
    assert (
        main(
            [
                "darcy",
                "--n",
                "4",
                "--resolution",
                "17",
                "--coefficient-file",
                str(tmp_path / "a.npz"),
                "--out",
                str(tmp_path / "x.h5"),
            ]
        )
        == 2
    )
