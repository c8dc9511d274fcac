"""The SKR generator end to end: stored data = solved systems, fallback, resume, MPI, bad input."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse.linalg as spla

pytest.importorskip("petsc4py")

from datagen.cli import main as cli_main  # noqa: E402
from datagen.dataset import DatasetError, open_dataset  # noqa: E402
from datagen.elliptic.darcy import Darcy  # noqa: E402
from datagen.elliptic.generator import GenerationConfig, auto_choice, generate  # noqa: E402
from datagen.elliptic.heat import Heat  # noqa: E402
from datagen.elliptic.helmholtz import Helmholtz  # noqa: E402
from datagen.elliptic.poisson import Poisson  # noqa: E402
from datagen.sorting import sort_order  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def direct(family, i, seed=0):
    s = family.sample(seed, i)
    A = family.operator(s)
    lu = spla.splu(A.tocsc())
    return s, family.solve(s, A, lambda b, x0: lu.solve(b)), A


@pytest.mark.parametrize("solver", ["skr", "gmres"])
def test_darcy_dataset_holds_converged_solutions_in_sample_order(tmp_path, solver):
    fam = Darcy(33)
    cfg = GenerationConfig(n_samples=8, seed=3, solver=solver, rtol=1e-10, ordering="greedy")
    summary = generate(fam, tmp_path / "d.h5", cfg, progress=False)
    assert summary.complete and summary.solved == 8 and summary.fallbacks == 0
    ds = open_dataset(tmp_path / "d.h5")
    assert ds.pde == "darcy" and len(ds) == 8 and ds.spec["solver"]["method"] == solver
    assert np.all(ds.solver("residual") <= 1e-10) and np.all(ds.solver("converged"))
    # 'order' is the position in the greedy order of the family's own features
    feats = np.stack([fam.features(fam.sample(3, i)) for i in range(8)])
    order = sort_order(feats, "greedy")
    np.testing.assert_array_equal(ds.solver("order")[order], np.arange(8))
    for i in (0, 5):
        s, out, A = direct(fam, i, seed=3)
        np.testing.assert_array_equal(ds.read("a", i), s.inputs["a"])  # inputs bit-identical
        u = ds.read("u", i)
        assert np.abs(u - out["u"]).max() <= 1e-6 * np.abs(out["u"]).max()
        inner = u[1:-1, 1:-1].ravel()
        r = np.linalg.norm(A @ inner - np.ones(inner.size)) / np.sqrt(inner.size)
        assert r <= 1.01e-10  # stored u meets rtol
    ds.close()


def test_skr_needs_fewer_iterations_than_gmres_on_the_same_sorted_systems(tmp_path):
    fam = Darcy(65)
    its = {}
    for solver in ("gmres", "skr"):
        cfg = GenerationConfig(n_samples=6, solver=solver, rtol=1e-8, ordering="greedy")
        its[solver] = generate(fam, tmp_path / f"{solver}.h5", cfg, progress=False).iterations
    # after the first system the recycled space cuts the count well below GMRES(40)'s
    assert np.mean(its["skr"][1:]) < 0.7 * np.mean(its["gmres"][1:]), its


def test_failed_solve_falls_back_to_lu_and_is_marked(tmp_path):
    fam = Helmholtz(33)
    cfg = GenerationConfig(n_samples=3, solver="gmres", max_it=5, rtol=1e-9)
    summary = generate(fam, tmp_path / "h.h5", cfg, progress=False)
    assert summary.fallbacks == 3
    with open_dataset(tmp_path / "h.h5") as ds:
        assert np.all(ds.solver("fallback")) and np.all(ds.solver("residual") <= 1e-9)
        assert np.all(ds.solver("iterations") >= 5)
        s, out, _ = direct(fam, 1)
        np.testing.assert_allclose(ds.read("u", 1), out["u"], atol=1e-6 * np.abs(out["u"]).max())
        np.testing.assert_array_equal(ds.params("k0"), [fam.sample(0, i).params["k0"] for i in range(3)])


def test_heat_and_poisson_datasets(tmp_path):
    heat = Heat(17, n_steps=4, dt=0.01)
    generate(heat, tmp_path / "heat.h5", GenerationConfig(n_samples=3, solver="skr"), progress=False)
    with open_dataset(tmp_path / "heat.h5") as ds:
        assert ds.read("u", 0).shape == (4, 17, 17)
        np.testing.assert_allclose(ds.grid.coords["t"], [0.01, 0.02, 0.03, 0.04])
        s, out, _ = direct(heat, 2)
        np.testing.assert_allclose(ds.read("u", 2), out["u"], atol=1e-6 * np.abs(out["u"]).max())
    pois = Poisson(17)
    generate(pois, tmp_path / "p.h5", GenerationConfig(n_samples=3, solver="auto"), progress=False)
    with open_dataset(tmp_path / "p.h5") as ds:
        assert ds.spec["solver"]["method"] == "lu"
        s, out, _ = direct(pois, 1)
        np.testing.assert_allclose(ds.read("u", 1), out["u"], atol=1e-8 * np.abs(out["u"]).max())
        np.testing.assert_array_equal(ds.read("g", 1)[0], s.inputs["g"][0])


def test_resume_gives_the_same_dataset(tmp_path):
    fam = Darcy(33)
    cfg = GenerationConfig(n_samples=10, solver="skr", rtol=1e-10)
    generate(fam, tmp_path / "full.h5", cfg, progress=False)
    part = generate(fam, tmp_path / "cut.h5", cfg, progress=False, max_new=4)
    assert not part.complete and part.solved == 4
    with pytest.raises(DatasetError):
        open_dataset(tmp_path / "cut.h5")  # an interrupted run is never taken for a dataset
    rest = generate(fam, tmp_path / "cut.h5", cfg, progress=False, resume=True)
    assert rest.complete and rest.skipped == 4 and rest.solved == 6
    with open_dataset(tmp_path / "full.h5") as a, open_dataset(tmp_path / "cut.h5") as b:
        np.testing.assert_array_equal(a.read("a"), b.read("a"))
        np.testing.assert_array_equal(a.solver("order"), b.solver("order"))
        # the cut block (all 10 samples at the default block size) is solved again from its start
        np.testing.assert_array_equal(a.read("u"), b.read("u"))
    assert rest.resolved == 4


@pytest.mark.mpi
def test_two_ranks_equal_one_rank(tmp_path):
    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec not available")
    # block 3: three blocks of the sorted order, ranks get whole blocks (2 and 1)
    args = [
        "darcy",
        "--n",
        "9",
        "--resolution",
        "33",
        "--solver",
        "skr",
        "--rtol",
        "1e-10",
        "--block",
        "3",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "datagen.cli", *args, "--out", str(tmp_path / "one.h5")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, "-m", "datagen.cli", *args, "--out", str(tmp_path / "two.h5")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr + two.stdout
    assert os.path.isdir(tmp_path / "two.h5.shards")
    with open_dataset(tmp_path / "one.h5") as a, open_dataset(tmp_path / "two.h5") as b:
        np.testing.assert_array_equal(a.read("a"), b.read("a"))
        # every block starts from an empty recycled space: bit-identical to the one-process run
        np.testing.assert_array_equal(a.read("u"), b.read("u"))
        np.testing.assert_array_equal(a.solver("iterations"), b.solver("iterations"))
        assert sorted(set(b.solver("rank").tolist())) == [0, 1]
        assert np.all(b.solver("residual") <= 1e-10)
        # each rank solved a contiguous piece of the order
        ranks = b.solver("rank")[np.argsort(b.solver("order"))]
        assert np.all(np.diff(ranks) >= 0)


def test_auto_choice_rule():
    assert auto_choice(Darcy(17), GenerationConfig(n_samples=1)).method == "lu"
    assert auto_choice(Darcy(257), GenerationConfig(n_samples=1)).method == "cg-gamg"
    assert auto_choice(Heat(17), GenerationConfig(n_samples=1)).method == "lu"
    assert auto_choice(Poisson(17), GenerationConfig(n_samples=1)).method == "lu"
    assert auto_choice(Helmholtz(33), GenerationConfig(n_samples=1)).method == "lu"
    assert auto_choice(Helmholtz(50, dim=3), GenerationConfig(n_samples=1)).method == "skr"
    assert auto_choice(Helmholtz(18, dim=3, wavenumber=5.0), GenerationConfig(n_samples=1)).method == "lu"
    # below 12k unknowns in 3D and above 10k in 2D: GMRES with a sorted neighbour's LU, once there are
    # enough samples to pay for the factorisation
    choice = auto_choice(Helmholtz(18, dim=3, wavenumber=5.0), GenerationConfig(n_samples=16))
    assert (choice.method, choice.pc, choice.pc_reuse) == ("gmres", "lu", 8)
    choice = auto_choice(Helmholtz(129), GenerationConfig(n_samples=16))
    assert (choice.method, choice.pc, choice.pc_reuse) == ("gmres", "lu", 8)
    assert auto_choice(Helmholtz(129), GenerationConfig(n_samples=2)).method == "lu"
    assert auto_choice(Helmholtz(65), GenerationConfig(n_samples=16)).method == "lu"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["darcy", "--n", "-3"], "--n must be a positive"),
        (["darcy", "--n", "2", "--resolution", "-5"], "resolution must be an integer >= 3"),
        (["darcy", "--n", "2", "--resolution", "9", "--rtol", "0"], "rtol must be a number in (0, 1), got 0.0"),
        (
            ["darcy", "--n", "2", "--resolution", "9", "--solver", "gmres", "--pc", "nosuchpc"],
            "unknown preconditioner 'nosuchpc'",
        ),
        (["darcy", "--n", "2", "--resolution", "9", "--petsc", "skr_pc_type ilu"], "do not parse"),
        (["helmholtz", "--n", "2", "--resolution", "33", "--solver", "cg-gamg"], "indefinite"),
        (["darcy", "--n", "2", "--resolution", "9", "--seed", "-1"], "seed must be a non-negative"),
    ],
)
def test_bad_input_gives_a_clear_message_and_no_file(tmp_path, capsys, argv, message):
    out = tmp_path / "bad.h5"
    assert cli_main(argv + ["--out", str(out), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "bad.h5.partial").exists()


def test_unknown_family_and_unknown_choice_are_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["darcy5d", "--n", "2"])
    assert e.value.code == 2 and "invalid choice: 'darcy5d'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["darcy", "--solver", "magic"])
    assert "invalid choice: 'magic'" in capsys.readouterr().err


def test_cli_passes_petsc_options_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "c.h5"
    rc = cli_main(
        [
            "darcy",
            "--n",
            "3",
            "--resolution",
            "17",
            "--solver",
            "gmres",
            "--out",
            str(out),
            "--no-progress",
            "--",
            "-skr_pc_type",
            "jacobi",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "complete" in text and "iterations/sample" in text
    with open_dataset(out) as ds:
        assert ds.spec["solver"]["petsc_options"] == "-skr_pc_type jacobi"
        assert ds.spec["discretisation"]["resolution"] == 17


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_dataset(tmp_path):
    """Kill the CLI with SIGKILL once a segment is on disk, resume, compare with an uninterrupted run."""
    import signal
    import time

    args = [
        "darcy",
        "--n",
        "60",
        "--resolution",
        "97",
        "--solver",
        "gmres",
        "--pc",
        "none",
        "--rtol",
        "1e-9",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cut = tmp_path / "cut.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "datagen.cli", *args, "--out", str(cut)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "cut.h5.partial").glob("seg-*.h5")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not cut.exists(), "the run finished before it could be killed"
    assert cli_main(args + ["--out", str(cut), "--resume"]) == 0
    assert cli_main(args + ["--out", str(tmp_path / "full.h5")]) == 0
    with open_dataset(tmp_path / "full.h5") as a, open_dataset(cut) as b:
        np.testing.assert_array_equal(a.read("a"), b.read("a"))
        # the kill landed inside a block, which the resumed run solves again from its start
        np.testing.assert_array_equal(a.read("u"), b.read("u"))
        assert np.all(b.solver("residual") <= 1e-9)
