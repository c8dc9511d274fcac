"""``neuralops-train fit`` ends with one summary line: epochs, steps, time, last metrics, checkpoint."""

import os
import re

import pytest

from train.cli import main


def test_fit_ends_with_a_one_line_summary(tmp_path, capsys):
    pytest.importorskip("petsc4py")
    from datagen.cli import main as datagen

    data = str(tmp_path / "darcy.h5")
    assert datagen(["darcy", "--n", "6", "--resolution", "17", "--out", data, "--no-progress"]) == 0
    root = str(tmp_path / "run")
    capsys.readouterr()
    assert (
        main(
            [
                "fit",
                "-c",
                "darcy_fno",
                "--data.path",
                data,
                "--model.model_config",
                "{modes: 4, width: 8}",
                "--data.batch_size",
                "2",
                "--trainer.max_epochs",
                "2",
                "--trainer.enable_progress_bar",
                "false",
                "--trainer.enable_model_summary",
                "false",
                "--trainer.accelerator",
                "cpu",
                "--trainer.default_root_dir",
                root,
                "--checkpoint.dirpath",
                os.path.join(root, "ckpt"),
            ]
        )
        == 0
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if "fit finished" in line]
    assert len(lines) == 1, lines
    m = re.fullmatch(
        r"neuralops-train: fit finished: 2 epoch\(s\), (\d+) steps in \d+ s; train/loss [-0-9.e]+; "
        r"checkpoint: (.+)",
        lines[0],
    )
    assert m, lines[0]
    assert int(m.group(1)) == 6 and m.group(2) == os.path.join(root, "ckpt", "last.ckpt")  # 3 batches x 2 epochs
    assert os.path.isfile(m.group(2))
