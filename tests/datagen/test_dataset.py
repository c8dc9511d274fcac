"""The data contract: round trip, lazy/worker reading, validation, crash safety, resume, shards."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from datagen.dataset import DatasetError, DatasetWriter, FieldSpec, Grid, describe, open_dataset, validate

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
JOB = os.path.join(HERE, "dataset_writer_job.py")
from dataset_writer_job import make_sample  # noqa: E402


def run_job(out, n, sleep=0.0, *extra, wait=True):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, JOB, str(out), str(n), str(sleep), *extra]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def write_toy(path, n=5, **kw):
    x = np.linspace(0, 1, 8)
    t = np.arange(3.0)
    w = DatasetWriter(
        path,
        pde="toy",
        spec={"n": 8, "rtol": 1e-6},
        n_samples=n,
        seed=1,
        fields={"a": FieldSpec((8, 8), "input"), "traj": FieldSpec((3, 8, 8), "state", "float64")},
        grid=Grid({"x": x, "y": x, "t": t}, {"x": "periodic", "y": "periodic"}),
        params=["nu"],
        **kw,
    )
    data = []
    with w:
        for i in range(n):
            a = np.full((8, 8), i, dtype=np.float32)
            traj = np.random.default_rng(i).standard_normal((3, 8, 8))
            w.write(
                i,
                {"a": a, "traj": traj},
                params={"nu": 1e-3 * (i + 1)},
                solver={"iterations": i, "residual": 1e-7, "seconds": 0.1, "order": n - 1 - i, "converged": True},
            )
            data.append((a, traj))
    return data


def field_contents(path):
    with h5py.File(path, "r") as f:
        out = {k: f["fields"][k][()] for k in f["fields"]}
        out.update({f"params/{k}": f["params"][k][()] for k in f["params"]})
        out.update({f"solver/{k}": f["solver"][k][()] for k in f["solver"] if k != "seconds"})
        out["valid"] = f["samples/valid"][()]
        out["spec"] = f.attrs["spec"]
    return out


def test_round_trip_layout_and_lazy_reads(tmp_path):
    path = tmp_path / "toy.h5"
    data = write_toy(path)
    assert not os.path.exists(str(path) + ".partial")
    ds = open_dataset(path)
    assert len(ds) == 5 and ds.pde == "toy" and ds.spec == {"n": 8, "rtol": 1e-6}
    assert ds.inputs == ["a"] and ds.states == ["traj"]
    assert ds.field_shape("traj") == (3, 8, 8) and ds.dtype("a") == np.float32
    np.testing.assert_array_equal(ds.read("traj", 2), data[2][1])
    np.testing.assert_array_equal(ds.read("traj", 3, frames=slice(1, 3)), data[3][1][1:3])
    np.testing.assert_array_equal(ds.read("traj", 1, frames=[0, 2]), data[1][1][[0, 2]])
    np.testing.assert_array_equal(ds.read("a", np.array([4, 0, 4]))[:, 0, 0], [4, 0, 4])
    np.testing.assert_allclose(ds.params("nu"), 1e-3 * np.arange(1, 6))
    assert ds.solver("converged").all() and list(ds.solver("order")) == [4, 3, 2, 1, 0]
    assert ds.grid.boundary == {"x": "periodic", "y": "periodic"}
    np.testing.assert_array_equal(ds.grid.coords["t"], [0, 1, 2])
    with h5py.File(path, "r") as f:
        assert f["fields/traj"].chunks == (1, 3, 8, 8)
        for key in ("format", "format_version", "pde", "spec", "created", "version", "seed", "n_samples"):
            assert key in f.attrs
    assert validate(path) == []
    text = describe(path)
    assert "traj" in text and "state" in text and "periodic" in text


def test_clear_errors_for_bad_access(tmp_path):
    path = tmp_path / "toy.h5"
    write_toy(path)
    ds = open_dataset(path)
    with pytest.raises(DatasetError, match="no field 'b'"):
        ds.read("b", 0)
    with pytest.raises(DatasetError, match="out of range"):
        ds.read("a", 5)
    with pytest.raises(DatasetError, match="no param"):
        ds.params("k")
    with pytest.raises(DatasetError, match="no dataset at"):
        open_dataset(tmp_path / "missing.h5")
    (tmp_path / "plain.h5").write_bytes(b"")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(DatasetError, match="not a neuralops dataset"):
        open_dataset(tmp_path / "other.h5")
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        open_dataset(tmp_path / "plain.h5")


def test_writer_rejects_bad_samples_and_arguments(tmp_path):
    x = np.linspace(0, 1, 4)
    grid = Grid({"x": x, "y": x}, {"x": "dirichlet", "y": "dirichlet"})
    with pytest.raises(DatasetError, match="n_samples"):
        DatasetWriter(
            tmp_path / "a.h5",
            pde="p",
            spec={},
            n_samples=-3,
            seed=0,
            fields={"u": FieldSpec((4, 4), "output")},
            grid=grid,
        )
    with pytest.raises(DatasetError, match="role"):
        FieldSpec((4, 4), "target")
    with pytest.raises(DatasetError, match="boundary"):
        Grid({"x": x}, {"x": "wrap"})
    w = DatasetWriter(
        tmp_path / "a.h5",
        pde="p",
        spec={},
        n_samples=2,
        seed=0,
        fields={"u": FieldSpec((4, 4), "output")},
        grid=grid,
        solver=["converged"],
    )
    with pytest.raises(DatasetError, match="shape"):
        w.write(0, {"u": np.zeros((3, 4))}, solver={"converged": True})
    with pytest.raises(DatasetError, match="non-finite"):
        w.write(0, {"u": np.full((4, 4), np.nan)}, solver={"converged": True})
    with pytest.raises(DatasetError, match="converged=False"):
        w.write(0, {"u": np.zeros((4, 4))}, solver={"converged": False})
    with pytest.raises(DatasetError, match="out of range"):
        w.write(2, {"u": np.zeros((4, 4))}, solver={"converged": True})
    u0 = np.arange(16.0).reshape(4, 4)
    w.write(0, {"u": u0}, solver={"converged": True})
    with pytest.raises(DatasetError, match="never written"):
        w.finalize()
    assert not os.path.exists(tmp_path / "a.h5")  # nothing mistaken for a dataset
    # an invalid sample is stored, but never as if valid
    w.write(1, {"u": np.full((4, 4), np.inf)}, solver={"converged": False}, invalid_reason="blew up at t=2")
    w.finalize()
    ds = open_dataset(tmp_path / "a.h5", include_invalid=True)
    assert list(ds.valid) == [True, False] and ds.invalid_reasons == {1: "blew up at t=2"}
    assert validate(tmp_path / "a.h5") == []
    # readers skip invalid samples by default
    ds = open_dataset(tmp_path / "a.h5")
    assert len(ds) == 1 and ds.n_rows == 2 and list(ds.indices) == [0] and ds.valid.all()
    np.testing.assert_array_equal(ds.read("u"), u0[None])
    assert ds.invalid_reasons == {1: "blew up at t=2"} and list(ds.solver("converged")) == [True]


def test_existing_output_is_never_clobbered_by_a_bad_argument(tmp_path):
    path = tmp_path / "toy.h5"
    write_toy(path)
    before = path.read_bytes()
    with pytest.raises(DatasetError, match="exists"):
        write_toy(path)
    assert path.read_bytes() == before
    write_toy(path, overwrite=True)  # replaced atomically only once complete
    assert validate(path) == []


def test_partial_and_writing_files_are_refused(tmp_path):
    path = tmp_path / "toy.h5"
    x = np.linspace(0, 1, 4)
    w = DatasetWriter(
        path,
        pde="p",
        spec={},
        n_samples=3,
        seed=0,
        fields={"u": FieldSpec((4, 4), "output")},
        grid=Grid({"x": x, "y": x}, {"x": "dirichlet", "y": "dirichlet"}),
        solver=[],
    )
    w.write(0, {"u": np.zeros((4, 4))})
    w.flush()
    with pytest.raises(DatasetError, match="unfinished run"):
        open_dataset(path)
    seg = sorted((tmp_path / "toy.h5.partial").glob("seg-*.h5"))[0]
    with pytest.raises(DatasetError):
        open_dataset(seg)
    assert validate(seg) != []
    w.close()  # the first run ends (and releases the output's lock)
    # a run started again without resume must not silently discard the partial run
    with pytest.raises(DatasetError, match="resume"):
        DatasetWriter(
            path,
            pde="p",
            spec={},
            n_samples=3,
            seed=0,
            fields={"u": FieldSpec((4, 4), "output")},
            grid=Grid({"x": x, "y": x}, {"x": "dirichlet", "y": "dirichlet"}),
            solver=[],
        )
    # resume with a different spec is refused and names what differs
    with pytest.raises(DatasetError, match="spec"):
        DatasetWriter(
            path,
            pde="p",
            spec={"other": 1},
            n_samples=3,
            seed=0,
            resume=True,
            fields={"u": FieldSpec((4, 4), "output")},
            grid=Grid({"x": x, "y": x}, {"x": "dirichlet", "y": "dirichlet"}),
            solver=[],
        )
    # a finalize that was killed leaves <path>.writing, which readers refuse
    write_toy(tmp_path / "b.h5")
    shutil.copy(tmp_path / "b.h5", tmp_path / "c.h5.writing")
    with h5py.File(tmp_path / "c.h5.writing", "a") as f:
        f.attrs["status"] = "writing"
    with pytest.raises(DatasetError, match="still being written"):
        open_dataset(tmp_path / "c.h5.writing")
    assert any("status" in p for p in validate(tmp_path / "c.h5.writing"))


def test_corrupted_and_truncated_files_are_detected(tmp_path):
    path = tmp_path / "toy.h5"
    write_toy(path, n=4)
    raw = bytearray(path.read_bytes())
    # corrupt the stored bytes of one chunk: find sample 2's trajectory values in the file
    ds = open_dataset(path)
    needle = ds.read("traj", 2).tobytes()[:64]
    ds.close()
    pos = bytes(raw).find(needle)
    assert pos > 0
    raw[pos + 8] ^= 0xFF
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(raw))
    problems = validate(bad)
    assert any("fields/traj[2]" in p for p in problems), problems
    with pytest.raises(DatasetError, match="corrupt"):
        open_dataset(bad).read("traj", 2)
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(bytes(raw[: len(raw) // 3]))
    problems = validate(trunc)
    assert problems and (
        "truncated" in problems[0] or "corrupt" in problems[0] or "cannot be read" in " ".join(problems)
    )
    with pytest.raises(DatasetError):
        ds = open_dataset(trunc)
        for i in range(len(ds)):
            ds.read("traj", i)


def test_dataloader_workers_read_lazily(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "toy.h5"
    data = write_toy(path, n=6)
    ds = open_dataset(path)
    ds.read("a", 0)  # open the handle in the parent: workers must reopen their own

    class Wrap(torch.utils.data.Dataset):
        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            return torch.from_numpy(ds.read("traj", i)), os.getpid()

    loader = torch.utils.data.DataLoader(Wrap(), batch_size=2, num_workers=2, multiprocessing_context="fork")
    got, pids = [], set()
    for x, pid in loader:
        got.append(x)
        pids.update(int(p) for p in pid)
    np.testing.assert_array_equal(torch.cat(got).numpy(), np.stack([d[1] for d in data]))
    assert os.getpid() not in pids


def test_kill_and_resume_gives_the_same_file(tmp_path):
    ref = tmp_path / "ref.h5"
    r = run_job(ref, 30)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "killed.h5"
    proc = run_job(out, 30, 0.05, wait=False)
    seen = 0
    deadline = time.time() + 60
    while seen < 8 and time.time() < deadline:
        line = proc.stdout.readline()
        seen += line.startswith("wrote")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert seen >= 8
    assert not out.exists()
    with pytest.raises(DatasetError, match="unfinished"):
        open_dataset(out)
    r = run_job(out, 30, 0.0, "--resume")
    assert r.returncode == 0, r.stderr
    rewritten = sum(line.startswith("wrote") for line in r.stdout.splitlines())
    assert rewritten < 30 - 6  # the killed run's samples were kept
    a, b = field_contents(ref), field_contents(out)
    assert a.keys() == b.keys()
    for k in a:
        if k == "solver/order":
            continue  # position in the (resumed) solve order is provenance, not data
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert validate(out) == []
    # a second resume of a finished run is a no-op
    r = run_job(out, 30, 0.0, "--resume")
    assert r.returncode == 0 and "wrote" not in r.stdout


def test_cli_info_and_validate(tmp_path, capsys):
    path = tmp_path / "toy.h5"
    write_toy(path)
    from train.data_cli import main

    assert main(["info", str(path)]) == 0
    assert main(["validate", str(path)]) == 0
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert main(["validate", str(tmp_path / "junk.h5")]) == 1
    capsys.readouterr()
    assert main(["info", str(tmp_path / "junk.h5")]) == 1
    assert capsys.readouterr().err.startswith("neuralops-data info: error: ")  # one style for every command
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(
        [sys.executable, "-m", "train.data_cli", "info", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["fields"]["traj"] == {"role": "state", "shape": [3, 8, 8], "dtype": "float64"}


MPI_JOB = r"""
import sys, numpy as np
from mpi4py import MPI
sys.path.insert(0, sys.argv[2])
from dataset_writer_job import make_sample
from datagen.dataset import DatasetWriter, FieldSpec, Grid
comm = MPI.COMM_WORLD
n = 12
x = np.linspace(0, 1, 8)
order = np.random.default_rng(0).permutation(n)
chunks = np.array_split(order, comm.Get_size())
with DatasetWriter(sys.argv[1], pde="toy", spec={"family": "toy", "n": 8, "seed": 3, "rtol": 1e-8}, n_samples=n,
                   seed=3, fields={"a": FieldSpec((8, 8), "input"), "u": FieldSpec((8, 8), "output", "float64")},
                   grid=Grid({"x": x, "y": x}, {"x": "dirichlet", "y": "dirichlet"}), params=["k"],
                   comm=comm) as w:
    for pos, i in enumerate(chunks[comm.Get_rank()]):
        f, p = make_sample(3, int(i))
        w.write(int(i), f, params=p, solver={"iterations": int(i) % 7 + 1, "residual": 1e-9, "seconds": 0.0,
                                             "order": pos, "converged": True})
"""


@pytest.mark.mpi
def test_two_rank_shards_form_one_virtual_dataset(tmp_path):
    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec not installed")
    pytest.importorskip("mpi4py")
    script = tmp_path / "job.py"
    script.write_text(MPI_JOB)
    out = tmp_path / "sharded.h5"
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, str(script), str(out), HERE],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    with h5py.File(out, "r") as f:
        assert f["fields/a"].is_virtual
    assert (tmp_path / "sharded.h5.shards" / "shard-0001.h5").exists()
    assert validate(out) == []
    ds = open_dataset(out)
    for i in range(12):
        fields, params = make_sample(3, i)
        np.testing.assert_array_equal(ds.read("a", i), fields["a"].astype(np.float32))
        np.testing.assert_array_equal(ds.read("u", i), fields["u"])
    # the folder can be moved: shards are referenced relative to the top file
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(out), moved / "sharded.h5")
    shutil.move(str(tmp_path / "sharded.h5.shards"), moved / "sharded.h5.shards")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        np.testing.assert_array_equal(open_dataset(moved / "sharded.h5").read("u", 5), make_sample(3, 5)[0]["u"])
    finally:
        os.chdir(cwd)
