"""Data modules: windows, splits, normalisation, loaders and config checks against the raw files."""

import h5py
import numpy as np
import pytest
import torch
from train_helpers import write_steady, write_trajectories

from datagen.dataset import DatasetError
from train.data import ChannelNormalizer, RunningChannelStats, SteadyDataModule, TrajectoryDataModule
from train.data.windows import all_windows


@pytest.fixture(scope="module")
def traj_file(tmp_path_factory):
    return str(write_trajectories(tmp_path_factory.mktemp("d") / "traj.h5", n=12, frames=8, res=8, invalid=(5,)))


@pytest.fixture(scope="module")
def steady_file(tmp_path_factory):
    return str(write_steady(tmp_path_factory.mktemp("d") / "steady.h5", n=24, res=16, extra_output=True))


def raw(path, name):
    with h5py.File(path, "r") as f:  # the file itself, not the reader under test
        return f["fields"][name][()]


def test_direct_protocol_windows_match_raw_frames(traj_file):
    dm = TrajectoryDataModule(traj_file, train="0:8", val="8:10", test="-2:", mode="direct", t_in=3, t_out=4, start=1)
    w = raw(traj_file, "vorticity")
    for split in ("train", "val", "test"):
        ds = dm.make_dataset(split)
        idx = dm.splits[split].indices
        assert len(ds) == len(idx)
        for k, i in enumerate(idx):
            x, y = ds[k]
            assert x.shape == (3, 1, 8, 8) and y.shape == (4, 1, 8, 8)
            np.testing.assert_array_equal(x[:, 0].numpy(), w[i, 1:4])
            np.testing.assert_array_equal(y[:, 0].numpy(), w[i, 4:8])
    # the invalid trajectory 5 is in no split
    assert 5 not in dm.splits["train"].indices and dm.splits["train"].dropped_invalid == 1
    assert dm.splits["test"].indices.tolist() == [10, 11]


def test_autoregressive_windows_every_start_and_protocol_eval(traj_file):
    dm = TrajectoryDataModule(
        traj_file, train="0:4", val="8:12", mode="autoregressive", t_in=4, t_out=4, history=2, unroll=3
    )
    w = raw(traj_file, "vorticity")
    train = dm.make_dataset("train")
    starts = list(range(0, 8 - 2 - 3 + 1))  # every start time that fits history + unroll
    assert len(train) == 4 * len(starts)
    seen = set()
    for k in range(len(train)):
        x, y = train[k]
        # the values encode (trajectory, frame): 100 i + t + 0.01 pattern
        v = int(round(float(x[0, 0].mean())))
        i, s = v // 100, v % 100
        np.testing.assert_array_equal(x[:, 0].numpy(), w[i, s : s + 2])
        np.testing.assert_array_equal(y[:, 0].numpy(), w[i, s + 2 : s + 5])
        seen.add((i, s))
    assert seen == {(i, s) for i in range(4) for s in starts}
    val = dm.make_dataset("val")  # fixed protocol window: t_in frames, then t_out
    x, y = val[0]
    assert x.shape[0] == 4 and y.shape[0] == 4
    np.testing.assert_array_equal(x[:, 0].numpy(), w[8, 0:4])
    np.testing.assert_array_equal(y[:, 0].numpy(), w[8, 4:8])
    assert all_windows([0], 8, 5, stride=2)[:, 1].tolist() == [0, 2]


def test_multichannel_trajectories_stack_channels(tmp_path):
    path = str(write_trajectories(tmp_path / "c.h5", n=4, frames=6, res=8, channels=2))
    dm = TrajectoryDataModule(path, train="0:3", mode="autoregressive", t_in=2, history=2)
    x, y = dm.make_dataset("train")[0]
    assert x.shape == (2, 2, 8, 8) and dm.io["channels"] == 2
    np.testing.assert_array_equal(x.numpy(), raw(path, "vorticity")[0, 0:2])
    with pytest.raises(ValueError, match="one scalar field"):
        TrajectoryDataModule(path, train="0:3", mode="direct", t_in=2)


def test_normalisation_statistics_from_train_split_only(traj_file, steady_file):
    dm = TrajectoryDataModule(traj_file, train="0:8", test="-2:", mode="direct", t_in=3, t_out=2, start=1)
    mean, std = dm.normalization_statistics()["state"]
    w = raw(traj_file, "vorticity").astype(np.float64)
    train = w[[0, 1, 2, 3, 4, 6, 7], 1:6]  # trajectory 5 is invalid; frames of the windows only
    np.testing.assert_allclose(mean, [train.mean()], rtol=1e-12)
    np.testing.assert_allclose(std, [train.std()], rtol=1e-10)
    assert abs(mean[0] - w.mean()) > 50  # the whole file would give a very different mean
    sdm = SteadyDataModule(steady_file, train="0:16", test="16:24", outputs=["u", "v"], stats_chunk=5)
    st = sdm.normalization_statistics()
    a, u, v = (raw(steady_file, k).astype(np.float64)[:16] for k in ("a", "u", "v"))
    np.testing.assert_allclose(st["input"][0], [a.mean()], rtol=1e-10)
    # outputs u (X, Y) and v (2, X, Y) = (u, -u): three channels
    np.testing.assert_allclose(st["output"][0], [u.mean(), u.mean(), -u.mean()], rtol=1e-10)
    np.testing.assert_allclose(st["output"][1], [u.std()] * 3, rtol=1e-10)
    assert sdm.io["out_channels"] == 3 and sdm.io["in_channels"] == 1


def test_channel_normalizer_and_running_stats():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((10, 3, 5, 5)) * [[[[2.0]], [[5.0]], [[0.1]]]] + [[[[1.0]], [[-3.0]], [[1e4]]]]
    stats = RunningChannelStats(3)
    for chunk in np.array_split(data, 4):
        stats.update(chunk, channel_axis=1)
    mean, std = stats.result()
    np.testing.assert_allclose(mean, data.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, data.std(axis=(0, 2, 3)), rtol=1e-9)
    norm = ChannelNormalizer(3)
    norm.set_statistics(mean, std)
    x = torch.as_tensor(data, dtype=torch.float64)
    z = norm.encode(x, 1)
    np.testing.assert_allclose(z.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-10)
    np.testing.assert_allclose(z.std(dim=(0, 2, 3), unbiased=False).numpy(), 1, rtol=1e-10)
    torch.testing.assert_close(norm.decode(z, 1), x)
    # state travels in the state dict
    other = ChannelNormalizer(3)
    other.load_state_dict(norm.state_dict())
    assert bool(other.fitted) and torch.equal(other.mean, norm.mean)
    with pytest.raises(ValueError, match="channels"):
        norm.encode(torch.zeros(2, 4, 5, 5), 1)


def test_splits_ranges_files_and_overlap(traj_file, steady_file, tmp_path):
    other = str(write_trajectories(tmp_path / "other.h5", n=5, frames=8, res=8))
    dm = TrajectoryDataModule(traj_file, train="2:6", val=f"{other}[1:3]", test=other, mode="direct", t_in=2)
    assert dm.splits["train"].indices.tolist() == [2, 3, 4]  # 5 is invalid
    assert dm.splits["val"].indices.tolist() == [1, 2] and dm.splits["val"].path == other
    assert dm.splits["test"].indices.tolist() == [0, 1, 2, 3, 4]
    x, _ = dm.make_dataset("val")[0]
    np.testing.assert_array_equal(x[:, 0].numpy(), raw(other, "vorticity")[1, :2])
    with pytest.raises(ValueError, match="shares 2 samples with the train split"):
        SteadyDataModule(steady_file, train="0:10", val="8:12")
    with pytest.raises(ValueError, match="neither an index range nor an existing file"):
        SteadyDataModule(steady_file, train="0-10")
    with pytest.raises(ValueError, match="selects no samples"):
        SteadyDataModule(steady_file, train="5:5")
    # ranges beyond the file: the same proportions of the file (said on stderr), or an error
    with pytest.raises(ValueError, match=r"index splits \(train 30:40\) do not fit the 24 samples .*adapt_splits"):
        SteadyDataModule(steady_file, train="30:40", adapt_splits=False)
    dm = SteadyDataModule(steady_file, train="0:1000", val="-100:", test="-100:")
    assert dm.splits["train"].indices.tolist() == list(range(22)) and dm.splits["test"].indices.tolist() == [22, 23]
    assert dm.splits["val"].indices.tolist() == [22, 23] and "split by fraction instead" in dm.split_note
    assert dm.io["splits"]["note"] == dm.split_note and dm.io["n_train"] == 22


def test_samplers_split_global_batches_across_ranks(steady_file):
    dm = SteadyDataModule(steady_file, train="0:16", batch_size=4, seed=3)
    one = [b for b in dm._loader(list(range(16)), True, 8)]

    class FakeTrainer:
        world_size = 2

        def __init__(self, rank):
            self.global_rank = rank

    per_rank = []
    for rank in (0, 1):
        dm.trainer = FakeTrainer(rank)
        per_rank.append([b for b in dm._loader(list(range(16)), True, 4)])
    dm.trainer = None
    for k, batch in enumerate(one):  # the two ranks' batches k together are the single process's batch k
        assert sorted(batch.tolist()) == sorted(per_rank[0][k].tolist() + per_rank[1][k].tolist())


def test_lazy_reading_with_workers(steady_file):
    dm = SteadyDataModule(steady_file, train="0:16", batch_size=4, num_workers=2)
    xs = torch.cat([x for x, _ in dm.train_dataloader()])
    assert xs.shape == (16, 1, 16, 16)
    ref = raw(steady_file, "a")[:16]
    assert sorted(xs[:, 0, 0, 0].tolist()) == sorted(ref[:, 0, 0].astype(np.float32).tolist())


def test_bad_configs_stop_with_clear_messages(traj_file, steady_file, tmp_path):
    with pytest.raises(ValueError, match="longer than the 8 frames"):
        TrajectoryDataModule(traj_file, train="0:4", mode="direct", t_in=5, t_out=4)
    with pytest.raises(ValueError, match="history=6 must be between 1 and t_in=4"):
        TrajectoryDataModule(traj_file, train="0:4", mode="autoregressive", t_in=4, history=6)
    with pytest.raises(ValueError, match="field 'pressure' is not in"):
        TrajectoryDataModule(traj_file, train="0:4", fields=["pressure"])
    with pytest.raises(ValueError, match="no field with role 'state'"):
        TrajectoryDataModule(steady_file, train="0:4")
    with pytest.raises(ValueError, match="field 'b' is not in"):
        SteadyDataModule(steady_file, train="0:4", inputs=["b"])
    with pytest.raises(ValueError, match="mode must be one of"):
        TrajectoryDataModule(traj_file, train="0:4", mode="rollout")
    # a file that fails the data contract's validation
    broken = tmp_path / "broken.h5"
    write_steady(broken, n=4, res=8)
    with h5py.File(broken, "r+") as f:
        del f.attrs["created"]
    with pytest.raises(DatasetError, match="(?s)fails the data contract.s validation.*created"):
        SteadyDataModule(str(broken), train="0:4")
    with pytest.raises(DatasetError):
        SteadyDataModule(str(tmp_path / "missing.h5"), train="0:4")


def test_eval_files_may_have_another_resolution_but_the_same_physics(steady_file, tmp_path):
    finer = str(write_steady(tmp_path / "fine.h5", n=4, res=32, extra_output=True))
    dm = SteadyDataModule(steady_file, train="0:20", test=finer)
    assert dm.resolution("train") == [16, 16] and dm.resolution("test") == [32, 32]
    x, y = dm.make_dataset("test")[0]
    assert x.shape == (1, 32, 32) and y.shape == (3, 32, 32) and dm.io["grid"]["x"]["n"] == 16
    periodic = str(write_steady(tmp_path / "periodic.h5", n=4, res=32, boundary="periodic", extra_output=True))
    with pytest.raises(ValueError, match="boundary condition 'periodic' on axis x but the train file 'dirichlet'"):
        SteadyDataModule(steady_file, train="0:20", test=periodic)
    with pytest.raises(ValueError, match="has no field 'v'"):
        SteadyDataModule(steady_file, train="0:20", test=str(write_steady(tmp_path / "nov.h5", n=4, res=32)))
