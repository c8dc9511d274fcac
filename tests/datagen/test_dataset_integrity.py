"""Datasets that validate are right (issue 11): tolerance and degenerate-data checks, one writer per
output, durable and resumable finalising, shards that must exist, resume with any rank count."""

import json
import os
import shutil
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

import datagen.dataset as D
from datagen.dataset import (
    DatasetError,
    DatasetWriter,
    FieldSpec,
    Grid,
    StaleLockWarning,
    open_dataset,
    spec_rtol,
    validate,
)
from datagen.spec import SCHEMA, check_spec

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
JOB = os.path.join(HERE, "dataset_writer_job.py")
from dataset_writer_job import make_sample  # noqa: E402


def job(out, n, *extra, sleep=0.0, mpi=0, wait=True, timeout=180):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    cmd = [sys.executable, JOB, str(out), str(n), str(sleep), *extra]
    if mpi:
        cmd = ["mpiexec", "-n", str(mpi), *cmd, "--mpi"]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def contents(path):
    """Everything a dataset holds except wall-clock provenance (solver/seconds) and the rank."""
    with open_dataset(path, include_invalid=True) as ds:
        out = {f"fields/{k}": ds.read(k) for k in ds.fields}
        out.update({f"params/{k}": ds.params(k) for k in ds.param_names})
        out.update({f"solver/{k}": ds.solver(k) for k in ds.solver_names if k not in ("seconds", "rank")})
        out["valid"] = ds.valid
        out["reasons"] = ds.invalid_reasons
        out["spec"] = ds.spec
    return out


def assert_same(a_path, b_path):
    a, b = contents(a_path), contents(b_path)
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert a[k] == b[k], k


def toy_writer(path, n=4, spec=None, **kw):
    x = np.linspace(0, 1, 8)
    return DatasetWriter(
        path,
        pde="toy",
        spec=spec if spec is not None else {"rtol": 1e-6},
        n_samples=n,
        seed=1,
        fields={"a": FieldSpec((8, 8), "input"), "u": FieldSpec((8, 8), "output", "float64")},
        grid=Grid({"x": x, "y": x}, {"x": "dirichlet", "y": "dirichlet"}),
        params=["k"],
        **kw,
    )


def write_toy(path, n=4, spec=None, residual=1e-9, a=None, invalid=(), **kw):
    with toy_writer(path, n, spec, **kw) as w:
        for i in range(n):
            f, p = make_sample(1, i)
            if a is not None:
                f["a"] = np.full((8, 8), a)
            reason = "blew up" if i in invalid else ""
            w.write(
                i,
                f,
                params=p,
                invalid_reason=reason,
                solver={"iterations": 3, "residual": residual, "seconds": 0.0, "order": i, "converged": not reason},
            )
    return path


def need_mpi():
    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec not installed")
    pytest.importorskip("mpi4py")


# ------------------------------------------------------------------ validate: tolerance, degenerate data
def test_validate_reads_the_tolerance_from_solver_rtol_and_upgrades_flat_specs(tmp_path):
    # one place: solver.rtol; the flat specs of earlier versions (rtol at the top or in their solver
    # record) are read through datagen.spec.Spec, which puts it there
    assert spec_rtol(
        {
            "family": "darcy",
            "schema": SCHEMA,
            "physics": {},
            "discretisation": {},
            "solver": {"rtol": 1e-9},
            "sampling": {},
        }
    ) == (1e-9, "spec.solver.rtol")
    assert spec_rtol({"rtol": 1e-8}) == (1e-8, "spec.solver.rtol")
    assert spec_rtol({"solver": {"rtol": 1e-10, "method": "lu"}}) == (1e-10, "spec.solver.rtol")
    assert spec_rtol({"viscosity": 1e-3}) == (None, "")
    assert any("records rtol twice" in p for p in check_spec({"rtol": 1e-8, "solver": {"rtol": 1e-6}}))
    nested = write_toy(tmp_path / "nested.h5", spec={"solver": {"rtol": 1e-8}}, residual=1e-9)
    assert validate(nested) == []
    bad = write_toy(tmp_path / "bad.h5", spec={"solver": {"rtol": 1e-8}}, residual=1e-9)
    with h5py.File(bad, "a") as f:
        f["solver/residual"][2] = 0.5
    problems = validate(bad)
    assert any("solver/residual above spec.solver.rtol=1e-08" in p and "[2]" in p for p in problems), problems
    # a NaN residual is not "below the tolerance"
    with h5py.File(bad, "a") as f:
        f["solver/residual"][2] = np.nan
    assert any("NaN/inf" in p for p in validate(bad))
    top = write_toy(tmp_path / "top.h5", spec={"rtol": 1e-10}, residual=1e-9)
    assert any("spec.solver.rtol=1e-10" in p for p in validate(top))
    # a tolerance that is none is reported once, by the schema's check (contract.check_rtol's range)
    worse = write_toy(tmp_path / "worse.h5", spec={"rtol": 2.0}, residual=1e-9)
    assert [p for p in validate(worse) if "rtol" in p] == [
        "spec (flat, earlier version) rtol: rtol must be a number in (0, 1), got 2.0: it is the relative residual "
        "reduction every solve must reach (e.g. 1e-8)"
    ]


def test_validate_flags_a_generated_darcy_file_whose_residual_was_corrupted(tmp_path):
    pytest.importorskip("petsc4py")
    from datagen.elliptic.darcy import Darcy
    from datagen.elliptic.generator import GenerationConfig, generate

    path = tmp_path / "darcy.h5"
    generate(Darcy(17), path, GenerationConfig(n_samples=3, solver="lu", rtol=1e-8), progress=False)
    assert validate(path) == []
    with open_dataset(path) as ds:
        assert "rtol" not in ds.spec and ds.spec["solver"]["rtol"] == 1e-8
    with h5py.File(path, "a") as f:
        f["solver/residual"][0] = 0.5
    problems = validate(path)
    assert any(
        "1 valid samples have solver/residual above spec.solver.rtol=1e-08 (first: [0]" in p for p in problems
    ), problems


def test_validate_refuses_degenerate_data(tmp_path):
    const = write_toy(tmp_path / "const.h5", a=2.5)
    problems = validate(const)
    assert any("fields/a is constant (2.5) over all 4 valid samples" in p for p in problems), problems
    assert validate(const, deep=False) == []  # the value check reads the data: deep only
    zero = write_toy(tmp_path / "zero.h5", a=0.0)
    assert any("fields/a is all zero" in p for p in validate(zero))
    # a field that is constant only over the invalid samples is fine; no valid sample at all is not
    none_valid = write_toy(tmp_path / "none.h5", invalid=(0, 1, 2, 3))
    problems = validate(none_valid)
    assert any("no valid sample" in p and "blew up" in p for p in problems), problems
    ok = write_toy(tmp_path / "some.h5", invalid=(1,))
    assert validate(ok) == []


def test_readers_skip_invalid_samples_by_default(tmp_path):
    path = write_toy(tmp_path / "inv.h5", n=5, invalid=(1, 3))
    ds = open_dataset(path)
    assert len(ds) == 3 and ds.n_rows == 5 and list(ds.indices) == [0, 2, 4] and ds.n_invalid == 2
    np.testing.assert_array_equal(ds.read("u", 1), make_sample(1, 2)[0]["u"])
    np.testing.assert_array_equal(ds.read("u", np.array([2, 0])), np.stack([make_sample(1, i)[0]["u"] for i in (4, 0)]))
    np.testing.assert_array_equal(
        ds.read("u", slice(1, None))[:, 0], np.stack([make_sample(1, i)[0]["u"][0] for i in (2, 4)])
    )
    np.testing.assert_array_equal(ds.params("k"), [make_sample(1, i)[1]["k"] for i in (0, 2, 4)])
    assert ds[2]["a"].shape == (8, 8)
    with pytest.raises(DatasetError, match="out of range .*3 valid samples"):
        ds.read("u", 3)
    full = open_dataset(path, include_invalid=True)
    assert len(full) == 5 and list(full.valid) == [True, False, True, False, True]
    assert full.invalid_reasons == ds.invalid_reasons == {1: "blew up", 3: "blew up"}
    text = D.describe(path)
    assert "3 valid, 2 invalid" in text and "2 x blew up  (samples 1, 3)" in text


# ------------------------------------------------------------------ one writer per output
def test_a_second_writer_on_one_output_is_refused(tmp_path):
    out = tmp_path / "locked.h5"
    proc = job(out, 40, sleep=0.2, wait=False)
    try:
        assert proc.stdout.readline().startswith("wrote")
        with pytest.raises(DatasetError, match=rf"being written by another writer \(pid {proc.pid} on host"):
            toy_writer(out, resume=True)
        r = job(out, 40, "--resume")
        assert r.returncode != 0 and f"pid {proc.pid}" in r.stderr
    finally:
        proc.kill()
        proc.wait()
    # the killed owner's lock (flock released by the kernel, file left behind) is taken over
    assert os.path.exists(str(out) + ".lock")
    r = job(out, 40, "--resume")
    assert r.returncode == 0, r.stderr
    assert "StaleLockWarning" in r.stderr and f"pid {proc.pid}" in r.stderr and "no longer runs" in r.stderr
    assert not os.path.exists(str(out) + ".lock") and validate(out) == []
    # the same in this process, with a lock left by a dead pid
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with open(tmp_path / "c.h5.lock", "w") as fh:
        json.dump({"pid": int(dead.stdout), "host": os.uname().nodename, "since": "earlier"}, fh)
    with pytest.warns(StaleLockWarning, match=rf"pid {int(dead.stdout)}.*no longer runs"):
        write_toy(tmp_path / "c.h5")
    # in one process, too
    w = toy_writer(tmp_path / "b.h5")
    with pytest.raises(DatasetError, match=r"\(this process\)"):
        toy_writer(tmp_path / "b.h5", overwrite=True)
    w.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        toy_writer(tmp_path / "b.h5", resume=True).close()


def test_a_lock_from_another_host_is_refused_with_a_way_out(tmp_path):
    out = tmp_path / "x.h5"
    with open(str(out) + ".lock", "w") as fh:
        json.dump({"pid": 1234, "host": "some-other-node", "since": "2026-01-01T00:00:00+00:00"}, fh)
    with pytest.raises(DatasetError, match="another host .*some-other-node.*remove .*x.h5.lock"):
        toy_writer(out)


# ------------------------------------------------------------------ durable, resumable finalising
def test_a_crash_inside_the_merge_is_resumable(tmp_path, monkeypatch):
    ref = write_toy(tmp_path / "ref.h5", n=6)
    path = tmp_path / "cut.h5"
    monkeypatch.setattr(DatasetWriter, "MERGE_BATCH_BYTES", 1)  # checkpoint after every segment
    real, calls = D._remove_files, []

    def failing(paths):
        if any("seg-" in os.path.basename(p) for p in paths):
            calls.append(list(paths))
        if len(calls) == 3:
            raise OSError(28, "No space left on device (simulated)")
        real(paths)

    monkeypatch.setattr(D, "_remove_files", failing)
    with pytest.raises(OSError, match="simulated"):
        write_toy(path, n=6, flush_every=1, flush_seconds=0.0)
    monkeypatch.setattr(D, "_remove_files", real)
    assert not path.exists() and os.path.exists(str(path) + ".writing")
    segs = sorted(os.listdir(str(path) + ".partial"))
    assert len([s for s in segs if s.startswith("seg-")]) == 4  # two merged segments are already gone
    w = toy_writer(path, n=6, resume=True)
    assert w.pending().size == 0
    w.finalize()
    assert not os.path.exists(str(path) + ".partial") and not os.path.exists(str(path) + ".writing")
    assert not os.path.exists(str(path) + ".lock")
    assert_same(ref, path)
    assert validate(path) == []


@pytest.mark.parametrize("die_at", [1, 3])
def test_a_kill_during_finalize_is_resumable(tmp_path, die_at):
    ref = tmp_path / "ref.h5"
    assert job(ref, 8).returncode == 0
    out = tmp_path / "cut.h5"
    r = job(out, 8, "--die-in-finalize", str(die_at), "--merge-batch-bytes", "1")
    assert r.returncode == 9 and not out.exists()
    r = job(out, 8, "--resume")
    assert r.returncode == 0, r.stderr
    assert "wrote" not in r.stdout  # every sample survived the kill: none is generated again
    assert_same(ref, out)
    assert validate(out) == []


def test_an_unreadable_merge_file_is_dropped_and_its_samples_written_again(tmp_path):
    ref = tmp_path / "ref.h5"
    assert job(ref, 6).returncode == 0
    out = tmp_path / "cut.h5"
    assert job(out, 6, "--die-in-finalize", "2", "--merge-batch-bytes", "1").returncode == 9
    writing = str(out) + ".writing"
    with open(writing, "r+b") as fh:  # what a kill inside an HDF5 write can leave
        fh.truncate(os.path.getsize(writing) // 3)
    r = job(out, 6, "--resume")
    assert r.returncode == 0, r.stderr
    assert "left unreadable by an interrupted finalize" in r.stderr
    assert 0 < sum(line.startswith("wrote") for line in r.stdout.splitlines()) < 6
    assert_same(ref, out)


# ------------------------------------------------------------------ MPI shards
@pytest.mark.mpi
def test_missing_or_short_shards_are_errors_that_name_the_file(tmp_path):
    need_mpi()
    out = tmp_path / "sh.h5"
    r = job(out, 10, mpi=2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert validate(out) == [] and len(open_dataset(out)) == 10
    shard1 = tmp_path / "sh.h5.shards" / "shard-0001.h5"
    saved = tmp_path / "saved.h5"
    shutil.copy(shard1, saved)
    shard1.unlink()
    with h5py.File(out, "r") as f:  # the virtual datasets' fill value: NaN, never zeros
        assert np.isnan(f["fields/u"][()]).any()
    with pytest.raises(DatasetError, match="shard .*shard-0001.h5 of fields/a is missing"):
        open_dataset(out)
    assert any("shard-0001.h5" in p and "missing" in p for p in validate(out, deep=False))
    # a short shard (fewer rows than the top file maps)
    with h5py.File(saved, "r") as src, h5py.File(shard1, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for key in ("index", "samples/valid", "samples/reason"):
            dst.create_dataset(key, data=src[key][:-1])
        for name in src["fields"]:
            dst.create_dataset(f"fields/{name}", data=src[f"fields/{name}"][:-1])
    with pytest.raises(DatasetError, match="shard-0001.h5: fields/.* has shape .*short or replaced shard"):
        open_dataset(out)
    assert any("short or replaced" in p for p in validate(out))
    shutil.copy(saved, shard1)
    assert validate(out) == []


@pytest.mark.mpi
def test_resume_with_fewer_ranks_and_with_one_process(tmp_path):
    need_mpi()
    ref = tmp_path / "ref.h5"
    assert job(ref, 12).returncode == 0
    three = tmp_path / "three.h5"
    r = job(three, 12, "--stop-after", "2", mpi=3)
    assert r.returncode == 0, r.stdout + r.stderr
    assert {f[:9] for f in os.listdir(str(three) + ".partial") if f.startswith("seg")} == {
        "seg-r0000",
        "seg-r0001",
        "seg-r0002",
    }
    r = job(three, 12, "--resume", mpi=2)  # rank 2's segments are taken over
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same(ref, three)
    assert validate(three) == []
    # an MPI run resumed by a single process ends as one ordinary file
    two = tmp_path / "two.h5"
    assert job(two, 12, "--stop-after", "3", mpi=2).returncode == 0
    r = job(two, 12, "--resume")
    assert r.returncode == 0, r.stderr
    assert_same(ref, two)
    with h5py.File(two, "r") as f:
        assert not f["fields/u"].is_virtual
    assert not os.path.exists(str(two) + ".shards")


@pytest.mark.mpi
def test_mpi_kill_during_finalize_resumes_with_another_rank_count(tmp_path):
    need_mpi()
    ref = tmp_path / "ref.h5"
    assert job(ref, 12).returncode == 0
    out = tmp_path / "cut.h5"
    r = job(out, 12, "--die-in-finalize", "2", "--merge-batch-bytes", "1", mpi=3)
    assert r.returncode != 0 and not out.exists()
    r = job(out, 12, "--resume", mpi=2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same(ref, out)
    assert validate(out) == []


def _disk_bytes(paths):
    total = 0
    for p in paths:
        if os.path.isdir(p):
            total += _disk_bytes([os.path.join(p, q) for q in os.listdir(p)])
        elif os.path.exists(p):
            total += os.stat(p).st_blocks * 512
    return total


def test_finalize_needs_one_batch_of_extra_disk_not_a_second_copy(tmp_path, monkeypatch):
    path = tmp_path / "big.h5"
    n, res = 24, 64
    x = np.linspace(0, 1, res)
    w = DatasetWriter(
        path,
        pde="toy",
        spec={},
        n_samples=n,
        seed=0,
        solver=[],
        fields={"u": FieldSpec((res, res), "output", "float64")},
        grid=Grid({"x": x, "y": x}, {"x": "dirichlet", "y": "dirichlet"}),
        flush_every=1,
        flush_seconds=0.0,
    )
    rng = np.random.default_rng(0)
    data = rng.standard_normal((n, res, res))
    for i in range(n):
        w.write(i, {"u": data[i]})
    sample_bytes = res * res * 8
    monkeypatch.setattr(DatasetWriter, "MERGE_BATCH_BYTES", 4 * sample_bytes)
    before = _disk_bytes([str(path) + ".partial"])
    peak = [0]
    real = D._remove_files

    def measure(paths):
        peak[0] = max(peak[0], _disk_bytes([str(path) + ".partial", str(path) + ".writing"]))
        real(paths)

    monkeypatch.setattr(D, "_remove_files", measure)
    w.finalize()
    np.testing.assert_array_equal(open_dataset(path).read("u"), data)
    # the data once, plus one batch (and HDF5 overhead), never the segments and a full copy together
    assert before >= n * sample_bytes
    assert peak[0] < before + 6 * sample_bytes + 256 * 1024, (peak[0], before)
