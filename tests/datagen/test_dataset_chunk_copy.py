"""finalize() copies the segments' checksummed chunks into the final file as they are (no decoding and
re-encoding): the result must be the file the row-by-row merge writes, segments of the older contiguous
layout must still merge, and a chunk damaged inside a segment must be caught by its checksum in the
final file."""

import os

import h5py
import numpy as np

from datagen.dataset import DatasetWriter, FieldSpec, Grid, open_dataset, validate

N = 6


def writer(path, **kw):
    x = np.linspace(0, 1, 9)
    return DatasetWriter(
        path,
        pde="toy",
        spec={"n": 9},
        n_samples=N,
        seed=0,
        fields={"a": FieldSpec((9, 9), "input", "float32"), "u": FieldSpec((9, 9), "output", "float64")},
        grid=Grid({"x": x, "y": x}, {"x": "dirichlet", "y": "dirichlet"}),
        solver=["iterations", "residual", "seconds", "order", "converged"],
        flush_seconds=1e9,
        **kw,
    )


def sample(i):
    rng = np.random.default_rng(i)
    return {"a": rng.random((9, 9)).astype(np.float32), "u": rng.standard_normal((9, 9))}


def write_segments(path, order=(4, 1, 5, 0, 3, 2), per_segment=2):
    w = writer(path)
    for k, i in enumerate(order):
        w.write(i, sample(i), solver={"iterations": k, "residual": 1e-9, "seconds": 0.0, "order": k, "converged": True})
        if (k + 1) % per_segment == 0:
            w.flush()
    w.close()
    return sorted((path.parent / (path.name + ".partial")).glob("seg-*.h5"))


def finish(path):
    w = writer(path, resume=True)
    w.finalize()


def check_contents(path):
    with open_dataset(path) as ds:
        for i in range(N):
            np.testing.assert_array_equal(ds.read("a", i), sample(i)["a"])
            np.testing.assert_array_equal(ds.read("u", i), sample(i)["u"])
    with h5py.File(path, "r") as f:
        for name in ("a", "u"):
            d = f[f"fields/{name}"]
            assert d.chunks == (1, 9, 9) and d.fletcher32
    assert validate(path) == []


def test_segments_store_the_final_chunks_and_merge_into_the_same_file(tmp_path):
    path = tmp_path / "d.h5"
    segs = write_segments(path)
    with h5py.File(segs[0], "r") as f:
        assert f["fields/u"].chunks == (1, 9, 9) and f["fields/u"].fletcher32
        raw = f["fields/u"].id.read_direct_chunk((0, 0, 0))[1]
        first = int(f["index"][0])
    finish(path)
    check_contents(path)
    with h5py.File(path, "r") as f:  # the bytes on disk are the segment's, checksum included
        assert f["fields/u"].id.read_direct_chunk((first, 0, 0))[1] == raw


def test_segments_of_the_older_contiguous_layout_still_merge(tmp_path):
    path = tmp_path / "d.h5"
    segs = write_segments(path)
    for seg in segs[::2]:  # rewrite some segments as the previous version wrote them
        with h5py.File(seg, "r+") as f:
            for name in ("a", "u"):
                data = f[f"fields/{name}"][()]
                del f[f"fields/{name}"]
                f.create_dataset(f"fields/{name}", data=data)
                assert f[f"fields/{name}"].chunks is None
    finish(path)
    check_contents(path)


def test_a_chunk_damaged_in_a_segment_is_caught_in_the_final_file(tmp_path):
    path = tmp_path / "d.h5"
    segs = write_segments(path)
    with h5py.File(segs[1], "r") as f:
        index = int(f["index"][1])
        offset = f["fields/u"].id.get_chunk_info_by_coord((1, 0, 0)).byte_offset
    with open(segs[1], "r+b") as fh:  # flip one bit of sample `index`'s stored u
        fh.seek(offset + 40)
        byte = fh.read(1)
        fh.seek(offset + 40)
        fh.write(bytes([byte[0] ^ 0x10]))
    finish(path)
    problems = validate(path)
    assert any("fields/u" in p and str(index) in p for p in problems), problems
    assert os.path.exists(path)
