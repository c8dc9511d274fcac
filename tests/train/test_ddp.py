"""Two DDP processes on CPU (gloo) train to the same weights and metrics as one process on the
same global batch (the data modules split every global batch exactly over the ranks)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from train_helpers import write_steady

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_job(world, data, out):
    env = dict(
        os.environ,
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="1",
        MASTER_PORT=str(29500 + os.getpid() % 1000),
    )
    r = subprocess.run(
        [sys.executable, os.path.join(HERE, "ddp_job.py"), str(world), data, out],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    with open(os.path.join(out, "metrics.json")) as fh:
        return json.load(fh), torch.load(os.path.join(out, "weights.pt"))


@pytest.mark.timeout(400)
def test_two_process_ddp_matches_one_process(tmp_path):
    data = str(write_steady(tmp_path / "s.h5", n=32, res=16))
    m1, w1 = run_job(1, data, str(tmp_path / "one"))
    m2, w2 = run_job(2, data, str(tmp_path / "two"))
    assert m1["world"] == 1 and m2["world"] == 2
    assert m1["steps"] == m2["steps"] == 6  # 24 samples / global batch 8, 2 epochs
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=2e-5, atol=1e-6, msg=k)
    for k in ("val/relative_l2", "val/loss", "val/relative_h1"):
        assert m2[k] == pytest.approx(m1[k], rel=1e-5), k
    assert m1["val/relative_l2"] < 1.0
