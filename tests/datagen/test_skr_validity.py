"""Files written by the SKR generator are right when they say so (issue 11, elliptic side):
unreachable samples stored invalid, pivoting fallback, float32 storage, resize, unknown keys,
bit-identical resumed / split runs."""

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

pytest.importorskip("petsc4py")

from datagen.cli import main as cli_main  # noqa: E402
from datagen.dataset import open_dataset  # noqa: E402
from datagen.elliptic.assembly import embed_interior  # noqa: E402
from datagen.elliptic.backends import PetscBackend  # noqa: E402
from datagen.elliptic.cli import build_family  # noqa: E402
from datagen.elliptic.darcy import Darcy, darcy_system  # noqa: E402
from datagen.elliptic.generator import GenerationConfig, chunk_of, generate  # noqa: E402
from datagen.elliptic.helmholtz import Helmholtz, helmholtz_system  # noqa: E402
from datagen.elliptic.poisson import Poisson  # noqa: E402


def file_residual(A, b, u_stored):
    """||b - A u|| / ||b|| of the stored interior values, in float64."""
    x = np.asarray(u_stored, dtype=np.float64)[(slice(1, -1),) * u_stored.ndim].ravel()
    return np.linalg.norm(b - A @ x) / np.linalg.norm(b)


# ------------------------------------------------------------------ 5: unreachable sample, pivoting fallback
class InconsistentDarcy(Darcy):
    """Darcy whose sample ``bad`` has a zero first row with right-hand side 1: no x satisfies it."""

    bad = 2

    def operator(self, sample):
        A = super().operator(sample).tocsr(copy=True)
        if sample.index == self.bad:
            A.data[A.indptr[0] : A.indptr[1]] = 0.0  # explicit zeros: the sparsity pattern stays the same
        return A


@pytest.mark.parametrize("solver", ["gmres", "skr", "lu", "cg-gamg"])
def test_unreachable_sample_is_stored_invalid_and_the_run_goes_on(tmp_path, solver):
    fam = InconsistentDarcy(17)
    cfg = GenerationConfig(n_samples=5, seed=1, solver=solver, rtol=1e-9, max_it=300, block=0)
    summary = generate(fam, tmp_path / "d.h5", cfg, progress=False)
    assert summary.complete and summary.solved == 5
    assert list(summary.invalid) == [2] and "splu" in summary.invalid[2]
    assert "INVALID samples 1" in summary.text()
    # read the file itself (readers may hide invalid samples by default)
    with h5py.File(tmp_path / "d.h5", "r") as f:
        valid = f["samples/valid"][()].astype(bool)
        reasons = [r.decode() if isinstance(r, bytes) else str(r) for r in f["samples/reason"][()]]
        np.testing.assert_array_equal(valid, [True, True, False, True, True])
        assert "system 0" in reasons[2] and "rtol 1e-09" in reasons[2] and reasons[0] == ""
        if solver == "skr":  # the zero pivot of ILU gives NaN in GCRO-DR's Arnoldi: reported, not raised
            assert "DIVERGED_NANORINF" in reasons[2]
        conv, res = f["solver/converged"][()].astype(bool), f["solver/residual"][()]
        np.testing.assert_array_equal(conv, valid)
        assert np.all(res[valid] <= 1e-9) and not res[2] <= 1e-9
        assert f["solver/fallback"][2]
        # the valid neighbours are right: residual recomputed here from the stored a and u
        for i in (0, 1, 3, 4):
            A, b = darcy_system(f["fields/a"][i], 1.0)
            assert file_residual(A, b, f["fields/u"][i]) <= 1e-9


class RowSwappedDarcy(Darcy):
    """Rows of the Darcy system swapped in pairs (b = 1 is unchanged): zero diagonal entries, so an LU
    without pivoting breaks down while the system stays well conditioned."""

    def operator(self, sample):
        A = super().operator(sample)
        n = A.shape[0]
        perm = np.arange(n)
        perm[: n - n % 2] = perm[: n - n % 2].reshape(-1, 2)[:, ::-1].ravel()
        return sp.csr_matrix(A[perm])


def test_fallback_pivots_where_petsc_lu_does_not(tmp_path):
    fam = RowSwappedDarcy(17)
    A = fam.operator(fam.sample(0, 0))
    assert np.count_nonzero(A.diagonal() == 0) > 0
    # PETSc's native LU (no pivoting; --solver lu pivots with UMFPACK/SuperLU when the build has them)
    cfg = GenerationConfig(
        n_samples=3, solver="lu", rtol=1e-10, block=0, petsc_options="-skrlu_pc_factor_mat_solver_type petsc"
    )
    summary = generate(fam, tmp_path / "p.h5", cfg, progress=False)
    assert not summary.invalid and summary.fallbacks == 3
    with open_dataset(tmp_path / "p.h5") as ds:
        assert np.all(ds.solver("fallback")) and np.all(ds.solver("residual") <= 1e-10)
        s = fam.sample(0, 1)
        exact = spla.spsolve(Darcy.operator(fam, s).tocsc(), np.ones(A.shape[0]))
        np.testing.assert_allclose(ds.read("u", 1), embed_interior(exact, fam.shape), rtol=0, atol=1e-12)


# ------------------------------------------------------------------ 1: float32 storage
def test_float32_storage_that_cannot_meet_rtol_is_refused_up_front(tmp_path, capsys):
    out = tmp_path / "f.h5"
    rc = cli_main(
        [
            "darcy",
            "--n",
            "3",
            "--resolution",
            "33",
            "--dtype",
            "float32",
            "--rtol",
            "1e-10",
            "--solver",
            "gmres",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "float32 cannot hold rtol 1e-10" in err and "smallest rtol" in err and "float64" in err
    assert not out.exists() and not (tmp_path / "f.h5.partial").exists()


@pytest.mark.parametrize("family, rtol", [("darcy", 1e-4), ("helmholtz", 1e-4)])
def test_float32_file_stores_the_residual_of_its_stored_values(tmp_path, family, rtol):
    fam = Darcy(33) if family == "darcy" else Helmholtz(33)
    cfg = GenerationConfig(n_samples=4, solver="skr", rtol=rtol, dtype="float32")
    summary = generate(fam, tmp_path / "f.h5", cfg, progress=False)
    assert summary.complete and not summary.invalid
    with open_dataset(tmp_path / "f.h5") as ds:
        assert ds.dtype("u") == np.float32
        storage = ds.spec["solver"]["storage"]
        assert storage["dtype"] == "float32" and 0 < storage["cast_residual_probe"] <= rtol / 2
        res = ds.solver("residual")
        assert np.all(res <= rtol)
        for i in range(4):
            if family == "darcy":
                A, b = darcy_system(ds.read("a", i).astype(np.float64), 1.0)
            else:
                k, f = ds.read("k", i).astype(np.float64), ds.read("f", i).astype(np.float64)
                A, b = helmholtz_system(k, f)
            # the system the stored inputs define, the stored (float32) solution: the stored residual
            r = file_residual(A, b, ds.read("u", i))
            assert r == pytest.approx(res[i], rel=1e-6) and r <= rtol


# ------------------------------------------------------------------ 7: operators of any size
@pytest.mark.parametrize("method", ["skr", "gmres", "lu", "cg-gamg"])
def test_backend_accepts_operators_of_another_size(method):
    be = PetscBackend(method, rtol=1e-9, pc="ilu", pc_reuse=2)
    for res in (17, 33, 17, 9):
        fam = Darcy(res)
        A = fam.operator(fam.sample(0, res))
        be.set_operator(A)
        b = np.ones(A.shape[0])
        x, st = be.solve(b, None)
        assert st.converged and x.shape == (A.shape[0],)
        assert np.linalg.norm(b - A @ x) / np.linalg.norm(b) <= 1e-9
    be.destroy()


# ------------------------------------------------------------------ 4: unknown keys
def test_unknown_set_key_is_refused_with_a_suggestion(tmp_path, capsys):
    out = tmp_path / "k.h5"
    rc = cli_main(["darcy", "--n", "2", "--resolution", "9", "--set", "alpah=3", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown key 'alpah' (did you mean 'alpha'?)" in err and "allowed:" in err
    assert "forcing" in err and "rtol" in err
    assert not out.exists() and not (tmp_path / "k.h5.partial").exists()


def test_set_reaches_family_options_and_solver_settings(tmp_path):
    out = tmp_path / "p.h5"
    rc = cli_main(
        [
            "poisson",
            "--n",
            "2",
            "--resolution",
            "9",
            "--set",
            "boundary_alpha=2.0",
            "--set",
            "restart=30",
            "--set",
            "pc-reuse=2",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    with open_dataset(out) as ds:
        assert ds.spec["sampling"]["g_grf"]["alpha"] == 2.0
        assert ds.spec["solver"]["restart"] == 30 and ds.spec["solver"]["pc_reuse"] == 2


def test_python_api_checks_keys_too():
    with pytest.raises(ValueError, match=r"unknown key 'wavenumbr' \(did you mean 'wavenumber'\?\)"):
        build_family("helmholtz", 17, {"wavenumbr": 3.0})
    with pytest.raises(ValueError, match=r"unknown key 'rtoll' \(did you mean 'rtol'\?\)"):
        GenerationConfig.from_dict({"n_samples": 2, "rtoll": 1e-6})
    assert isinstance(build_family("poisson", 9, {"boundary_tau": 4.0}), Poisson)


# ------------------------------------------------------------------ 10: bit-identical resumed / split runs
def test_chunks_are_whole_blocks():
    order = np.random.default_rng(0).permutation(23)
    pieces = [chunk_of(order, r, 3, block=4) for r in range(3)]
    np.testing.assert_array_equal(np.concatenate(pieces), order)
    starts = np.cumsum([0] + [len(p) for p in pieces[:-1]])
    assert all(s % 4 == 0 for s in starts)
    assert [len(p) for p in pieces] == [8, 8, 7]
    assert len(chunk_of(order[:3], 2, 3, block=4)) == 0


@pytest.mark.parametrize("solver", ["skr", "gmres"])
def test_resumed_run_is_bit_identical(tmp_path, solver):
    fam = Darcy(33)
    cfg = GenerationConfig(n_samples=10, solver=solver, rtol=1e-9, block=4, ordering="greedy")
    generate(fam, tmp_path / "full.h5", cfg, progress=False)
    part = generate(fam, tmp_path / "cut.h5", cfg, progress=False, max_new=6)  # cut inside the 2nd block
    assert not part.complete
    rest = generate(fam, tmp_path / "cut.h5", cfg, progress=False, resume=True)
    # the cut block is solved again from its start; its written samples are not written twice
    assert rest.complete and rest.solved == 4 and rest.skipped == 6 and rest.resolved == 2
    with open_dataset(tmp_path / "full.h5") as a, open_dataset(tmp_path / "cut.h5") as b:
        np.testing.assert_array_equal(a.read("u"), b.read("u"))
        for name in ("iterations", "residual", "order", "updates_skipped"):
            np.testing.assert_array_equal(a.solver(name), b.solver(name))
        assert a.spec["solver"]["block"] == 4


# ------------------------------------------------------------------ 6: GCRO-DR skips and drops reach the file
def test_skipped_updates_and_dropped_spaces_are_stored_per_sample(tmp_path, monkeypatch):
    import datagen.krylov.gcrodr as gcrodr_module

    fam = Darcy(17)
    cfg = GenerationConfig(n_samples=4, solver="skr", rtol=1e-9, block=0)
    clean = generate(fam, tmp_path / "clean.h5", cfg, progress=False)
    assert clean.updates_skipped == 0 and clean.spaces_dropped == 0

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("forced failure")

    monkeypatch.setattr(gcrodr_module, "harmonic_ritz_basis", broken)  # every update fails
    skipped = generate(fam, tmp_path / "skip.h5", cfg, progress=False)
    monkeypatch.undo()
    monkeypatch.setattr(gcrodr_module, "_DROP_RATIO", 2.0)  # every re-mapped space is dropped
    dropped = generate(fam, tmp_path / "drop.h5", cfg, progress=False)
    with open_dataset(tmp_path / "skip.h5") as ds:
        per_sample = ds.solver("updates_skipped")
        assert np.all(per_sample >= 1) and per_sample.sum() == skipped.updates_skipped
        assert not ds.solver("space_dropped").any() and np.all(ds.solver("residual") <= 1e-9)
    assert "recycled-space updates skipped" in skipped.text()
    with open_dataset(tmp_path / "drop.h5") as ds:
        order = np.argsort(ds.solver("order"))
        # the first system has no space to drop, every later one re-maps its predecessor's and drops it
        np.testing.assert_array_equal(ds.solver("space_dropped")[order], [False, True, True, True])
        assert dropped.spaces_dropped == 3 and np.all(ds.solver("residual") <= 1e-9)


@pytest.mark.mpi
def test_a_rank_without_a_whole_block_idles_and_the_file_is_the_same(tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec not available")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = [
        sys.executable,
        "-m",
        "datagen.cli",
        "darcy",
        "--n",
        "5",
        "--resolution",
        "9",
        "--block",
        "8",
        "--solver",
        "skr",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        args + ["--out", str(tmp_path / "one.h5")], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        ["mpiexec", "-n", "2", *args, "--out", str(tmp_path / "two.h5")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr + two.stdout
    assert "rank(s) 1 get no samples" in two.stderr and "--block 2 or less" in two.stderr
    with open_dataset(tmp_path / "one.h5") as a, open_dataset(tmp_path / "two.h5") as b:
        np.testing.assert_array_equal(a.read("u"), b.read("u"))
        assert set(b.solver("rank").tolist()) == {0}
