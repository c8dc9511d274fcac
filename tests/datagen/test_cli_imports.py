"""``neuralops-datagen`` imports only the chosen generator: the elliptic path never imports torch."""

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def python(code):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_elliptic_parser_path_does_not_import_torch():
    out = python(
        "import sys\n"
        "from datagen.cli import build_parser, chosen_family\n"
        "argv = ['darcy', '--n', '4', '--resolution', '17', '--out', 'x.h5']\n"
        "args = build_parser(families=(chosen_family(argv),)).parse_args(argv)\n"
        "assert args.n == 4 and args.family == 'darcy'\n"
        "print('torch' in sys.modules)\n"
    )
    assert out.strip() == "False"


def test_navier_stokes_parser_still_gets_its_arguments():
    out = python(
        "import sys\n"
        "from datagen.cli import build_parser\n"
        "args = build_parser(families=('navier-stokes',)).parse_args(['navier-stokes', '--n', '2', "
        "'--out', 'x.h5'])\n"
        "print(args.recipe, args.dtype, 'torch' in sys.modules)\n"
    )
    assert out.split() == ["fno", "float32", "True"]  # float32 compute by default
    # the top-level --help lists every subcommand (none of them imported)
    proc = subprocess.run(
        [sys.executable, "-m", "datagen.cli", "--help"], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0 and "navier-stokes" in proc.stdout and "darcy" in proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("petsc4py") is None, reason="petsc4py not installed")
def test_elliptic_generation_run_does_not_import_torch(tmp_path):
    out = python(
        "import sys\n"
        "from datagen.cli import main\n"
        f"rc = main(['darcy', '--n', '3', '--resolution', '9', '--out', {str(tmp_path / 'd.h5')!r}, "
        "'--no-progress'])\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    assert out.split()[-2:] == ["0", "False"]
