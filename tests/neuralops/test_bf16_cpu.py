"""``--trainer.precision bf16-mixed`` on CPU works for every registered model.

Lightning's ``bf16-mixed`` on CPU is ``torch.autocast("cpu", dtype=torch.bfloat16)`` around the
forward pass. FNO-3D under it was reported to segfault in a torch bug triggered by the chunked
(checkpointed) projection (:class:`neuralops.layers.PointwiseMLP`); with torch 2.13 it does not
(forward + backward at the paper's size, 64^2 x 40 at batch 10, and through the CLI). Each model
runs in its own subprocess, so that a crash in a native kernel fails one test with its exit status
instead of killing pytest; the chunked paths (projection / MLP slabs with activation
checkpointing) are forced with a tiny chunk size.
"""

import json
import os
import subprocess
import sys

import pytest

from neuralops import models

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# tiny configurations: (constructor arguments, input shape, extra forward arguments)
CASES = {
    "fno2d": (
        {"in_channels": 3, "out_channels": 1, "modes": 4, "width": 8, "projection_channels": 16},
        [2, 3, 16, 16],
        [],
    ),
    "fno3d": (
        {"in_steps": 3, "out_steps": 4, "modes": 3, "width": 6, "n_layers": 1, "projection_channels": 16},
        [2, 3, 16, 16],
        [4],
    ),
    "mgno": ({"channels": 4, "num_layers": 1, "smoothing": [[1, 0], [1, 0], [2, 0]]}, [2, 1, 16, 16], []),
    "mgno_ns": ({"channels": 4, "num_layers": 1, "smoothing": [[1, 0], [2, 0]], "resolution": 16}, [2, 1, 16, 16], []),
    "mgno_ts": (
        {"time_history": 2, "channels": 4, "num_layers": 1, "smoothing": [[1, 0], [1, 0], [2, 0]]},
        [2, 2, 16, 16],
        [],
    ),
    "sfno": (
        {"modes_x": 3, "modes_y": 3, "modes_t": 2, "width": 6, "latent_steps": 4, "out_steps": 3},
        [2, 5, 16, 16],
        [3],
    ),
    "sinenet": (
        {"in_fields": 1, "time_history": 2, "hidden_channels": 8, "num_waves": 2, "num_levels": 2},
        [2, 2, 16, 16],
        [],
    ),
    "unet": (
        {"in_fields": 1, "time_history": 2, "hidden_channels": 8, "channel_multipliers": [1, 2], "blocks_per_level": 1},
        [2, 2, 16, 16],
        [],
    ),
    "unet_mod": (
        {
            "in_fields": 1,
            "time_history": 2,
            "hidden_channels": 8,
            "channel_multipliers": [1, 2],
            "blocks_per_level": 1,
            "final_norm_groups": 1,
        },
        [2, 2, 16, 16],
        [],
    ),
}
# the chunked pointwise MLPs, forced into slabs of one grid row (with activation checkpointing)
CHUNKED = {"fno2d": "projection_chunk_elements", "fno3d": "projection_chunk_elements", "sfno": "mlp_chunk_elements"}

SCRIPT = r"""
import json, sys, torch
from neuralops import models
name, cfg, shape, args, chunk_key = json.loads(sys.argv[1])
torch.manual_seed(0)
x = torch.randn(*shape)

def run(extra, autocast):
    torch.manual_seed(1)
    net = models.get(name, **cfg, **extra)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = net(x, *args)
        loss = out.float().square().mean()
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads), "non-finite gradient"
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        again = net.eval()(x, *args)          # evaluation path: no autograd, no checkpointing
    return out.detach().float(), again.float()

ref, _ = run({}, False)
variants = [{}] + ([{chunk_key: 16}] if chunk_key else [])
worst = 0.0
for extra in variants:
    out, ev = run(extra, True)
    assert out.shape == ref.shape and torch.isfinite(out).all() and torch.isfinite(ev).all()
    worst = max(worst, float((out - ref).abs().max() / ref.abs().max()))
print(json.dumps({"variants": len(variants), "max_rel_dev": worst}))
"""


def test_every_registered_model_has_a_bf16_case():
    assert sorted(CASES) == models.available(), "add a tiny configuration for the new model to CASES"


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_trains_and_evaluates_under_cpu_bf16_autocast(name):
    cfg, shape, args = CASES[name]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps([name, cfg, shape, args, CHUNKED.get(name)])],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, f"{name} under bf16 autocast on CPU: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["variants"] == (2 if name in CHUNKED else 1)
    # bf16 keeps about 3 significant digits: the outputs agree with float32 to a few per cent
    assert result["max_rel_dev"] < 0.1, result


def test_fno3d_bf16_mixed_through_the_cli(tmp_path):
    """The reported case: ``neuralops-train fit --config ns_fno3d --trainer.precision bf16-mixed`` on
    CPU, with the projection chunked (fit with validation, then test), in a subprocess."""
    script = r"""
import sys
from train_helpers import write_trajectories
from train.cli import main
root = sys.argv[1]
data = write_trajectories(root + "/ns.h5", n=4, frames=10, res=16)
common = ["--config", "ns_fno3d", "--data.init_args.path", data, "--data.init_args.train", "0:2",
          "--data.init_args.val", "2:3", "--data.init_args.test", "3:4", "--data.init_args.t_in", "4",
          "--data.init_args.t_out", "6", "--data.init_args.batch_size", "2",
          "--model.model_config",
          "{modes: 3, width: 6, n_layers: 1, projection_channels: 8, projection_chunk_elements: 64}",
          "--trainer.precision", "bf16-mixed", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
          "--trainer.default_root_dir", root, "--checkpoint.dirpath", root + "/ckpt",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
assert main(["fit", *common, "--trainer.max_steps", "2"]) == 0
assert main(["test", *common, "--ckpt_path", root + "/ckpt/last.ckpt"]) == 0
print("done")
"""
    helpers = os.path.join(ROOT, "tests", "train")  # train_helpers, the trajectory writer of the train tests
    path = os.pathsep.join(p for p in (ROOT, helpers, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip().endswith("done")
    assert "Using bfloat16 Automatic Mixed Precision" in proc.stderr + proc.stdout
    assert "test/relative_l2" in proc.stdout
