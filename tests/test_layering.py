"""The package layering (docs/architecture.md) is enforced, not only described.

``pyproject.toml`` states it as import-linter contracts. The first test checks the real tree; the
second plants a forbidden import in a copy of the tree and checks that the same contracts catch it,
so the first test is known to be able to fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("neuralops", "datagen", "train")

pytest.importorskip("importlinter", reason="import-linter is installed by `make env`")


def _lint(root: Path) -> subprocess.CompletedProcess:
    # lint-imports reads [tool.importlinter] from the pyproject.toml in its working directory and
    # finds the packages on sys.path; run it in `root` with `root` first on the path.
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_layering_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, planted",
    [
        ("neuralops/losses.py", "import train.metrics  # planted by the test\n"),
        ("datagen/grf.py", "import neuralops.losses  # planted by the test\n"),
        ("train/metrics.py", "import datagen.krylov.gcrodr  # planted by the test\n"),
    ],
)
def test_a_planted_forbidden_import_is_caught(tmp_path, module, planted):
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(planted + target.read_text())
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "BROKEN" in result.stdout
