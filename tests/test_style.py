"""Style is checked by the suite, not only by pre-commit: ``ruff check`` and ``ruff format --check``
with the settings in pyproject.toml must pass on the whole tree (the commands contributors run)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list:
    try:
        import ruff  # noqa: F401  (installed by `make env`; its binary sits next to the interpreter)
    except ImportError:
        exe = shutil.which("ruff")
        if exe is None:
            pytest.skip("ruff is installed by `make env`")
        return [exe]
    return [sys.executable, "-m", "ruff"]


def test_ruff_check_passes():
    result = subprocess.run(
        [*_ruff(), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ruff_format_leaves_the_tree_unchanged():
    result = subprocess.run(
        [*_ruff(), "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (
        "files `ruff format .` would change:\n" + result.stdout[-4000:] + result.stderr[-2000:]
    )
