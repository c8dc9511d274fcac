"""PETSc options on the ``neuralops-datagen`` command line behave as on any PETSc program.

Options after ``--`` reach ``PetscInitialize`` (``-log_view`` and ``-options_left`` print at the
end), an option no solver read is reported in one line (an error with ``--strict-petsc-options``)
and only the options PETSc used are recorded in the dataset spec as applied.
"""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("petsc4py")

from datagen.cli import _petsc_command_line  # noqa: E402
from datagen.dataset import open_dataset  # noqa: E402
from datagen.elliptic.darcy import Darcy  # noqa: E402
from datagen.elliptic.generator import GenerationConfig, generate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    env.pop("PETSC_OPTIONS", None)
    return subprocess.run(
        [sys.executable, "-m", "datagen.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )


def err_lines(r):
    """stderr lines of a CLI run, less the allocator note the program prints when it starts (if any)."""
    return [line for line in r.stderr.strip().splitlines() if not line.startswith("neuralops: allocator")]


def darcy_args(out, solver):
    return ["darcy", "--n", "3", "--resolution", "17", "--solver", solver, "--no-progress", "--out", str(out)]


def test_petsc_command_line_takes_the_petsc_string_and_everything_after_the_separator():
    assert _petsc_command_line(["darcy", "--n", "3", "--", "-log_view", "-skr_pc_type", "jacobi"]) == [
        "-log_view",
        "-skr_pc_type",
        "jacobi",
    ]
    assert _petsc_command_line(["darcy", "--petsc", "-a 1", "--", "-b"]) == ["-a", "1", "-b"]
    assert _petsc_command_line(["darcy", "--petsc=-a 1"]) == ["-a", "1"]
    assert _petsc_command_line(["darcy", "--n", "3"]) == []
    assert _petsc_command_line(["darcy", "--", "oops"]) == []  # left to the generator's parse error


def test_log_view_options_left_and_ksp_view_work_after_the_separator(tmp_path):
    out = tmp_path / "g.h5"
    r = run_cli(
        *darcy_args(out, "gmres"), "--", "-skr_ksp_gmres_restart", "30", "-skr_ksp_view", "-log_view", "-options_left"
    )
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "restart=30" in text  # -skr_ksp_view shows the option applied
    summary, perf = text.index("complete;"), text.index("PETSc Performance Summary")
    assert summary < perf  # -log_view prints when the run ends
    assert "KSPSolve" in text[perf:]
    assert "There are no unused options." in text[perf:]  # -options_left at PetscFinalize
    with open_dataset(out) as ds:
        applied = ds.spec["solver"]["petsc_options"]
        assert "-skr_ksp_gmres_restart 30" in applied and "-skr_ksp_view" in applied
        assert "petsc_options_unused" not in ds.spec["solver"]


def test_misspelled_option_gives_one_warning_line_and_is_not_recorded(tmp_path):
    out = tmp_path / "s.h5"
    r = run_cli(
        *darcy_args(out, "skr"), "--", "-skr_pc_factor_levels", "1", "-skr_pc_factr_levels", "1", "-options_left"
    )
    assert r.returncode == 0, r.stderr
    lines = err_lines(r)
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(
        "neuralops-datagen darcy: warning: PETSc option -skr_pc_factr_levels not used by the skr solver"
    ), r.stderr
    # PETSc's own report of unused options, asked for with -options_left
    assert "Option left: name:-skr_pc_factr_levels value: 1" in r.stdout
    with open_dataset(out) as ds:
        solver = ds.spec["solver"]
        assert solver["petsc_options"] == "-skr_pc_factor_levels 1 -options_left"
        assert solver["petsc_options_unused"] == ["-skr_pc_factr_levels"]
        assert np.all(ds.solver("converged"))


def test_strict_petsc_options_makes_an_unused_option_a_one_line_error(tmp_path):
    out = tmp_path / "e.h5"
    r = run_cli(*darcy_args(out, "skr"), "--strict-petsc-options", "--", "-skr_pc_factr_levels", "1")
    assert r.returncode == 2
    lines = err_lines(r)
    assert len(lines) == 1 and lines[0].startswith("neuralops-datagen darcy: error: PETSc option -skr_pc_factr_levels")
    assert "--strict-petsc-options" in lines[0]
    assert r.stdout.strip() == ""  # no PETSc report of its own without -options_left
    assert not out.exists() and not os.path.exists(str(out) + ".partial")


def _database():
    from petsc4py import PETSc

    return PETSc.Options().getAll()


def test_generate_applies_used_options_and_reports_the_others(tmp_path):
    fam = Darcy(33)
    base = GenerationConfig(n_samples=4, seed=1, solver="skr", ordering="greedy")
    plain = generate(fam, tmp_path / "a.h5", base, progress=False)
    cfg = GenerationConfig(
        n_samples=4,
        seed=1,
        solver="skr",
        ordering="greedy",
        petsc_options="-skr_pc_factor_levels 2 -skr_pc_factr_levels 2",
    )
    with pytest.warns(UserWarning, match="-skr_pc_factr_levels not used by the skr solver"):
        fill = generate(fam, tmp_path / "b.h5", cfg, progress=False)
    # ILU(2) is really applied: fewer Krylov iterations than ILU(0) on the same systems
    assert sum(fill.iterations) < sum(plain.iterations)
    with open_dataset(tmp_path / "b.h5") as ds:
        assert ds.spec["solver"]["petsc_options"] == "-skr_pc_factor_levels 2"
        assert ds.spec["solver"]["petsc_options_unused"] == ["-skr_pc_factr_levels"]
    assert not {"skr_pc_factor_levels", "skr_pc_factr_levels", "skr_pc_type"} & set(_database())  # run cleaned up
    with pytest.raises(ValueError, match="-skr_pc_factr_levels not used by the skr solver"):
        generate(fam, tmp_path / "c.h5", cfg, progress=False, unused_options="error")
    assert not (tmp_path / "c.h5").exists() and not (tmp_path / "c.h5.partial").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every option used: no warning
        generate(
            fam,
            tmp_path / "d.h5",
            GenerationConfig(n_samples=2, solver="cg-gamg", petsc_options="-skrcg_ksp_norm_type unpreconditioned"),
            progress=False,
            unused_options="error",
        )
    with pytest.raises(ValueError, match="unused_options must be 'warn' or 'error'"):
        generate(fam, tmp_path / "e.h5", base, progress=False, unused_options="ignore")


def test_skr_runs_through_a_ksp_so_its_monitor_view_reason_and_rtol_apply(tmp_path):
    out = tmp_path / "k.h5"
    r = run_cli(
        *darcy_args(out, "skr"),
        "--",
        "-skr_ksp_monitor",
        "-skr_ksp_converged_reason",
        "-skr_ksp_view",
        "-skr_ksp_rtol",
        "1e-11",
    )
    assert r.returncode == 0, r.stderr
    assert err_lines(r) == []  # every option was used: no warning
    text = r.stdout
    assert text.count("Residual norms for skr_ solve.") == 3
    assert text.count("Linear skr_ solve converged due to CONVERGED_RTOL") == 3
    assert "Python: datagen.krylov.ksp_python.GCRODRKSP" in text and "relative=1e-11" in text
    with open_dataset(out) as ds:
        assert ds.spec["solver"]["petsc_options"] == (
            "-skr_ksp_monitor -skr_ksp_converged_reason -skr_ksp_view -skr_ksp_rtol 1e-11"
        )
        # the stored (true) residuals meet the KSP's tighter tolerance, not only --rtol 1e-8
        assert np.all(ds.solver("residual") <= 1e-11) and not np.any(ds.solver("fallback"))


@pytest.mark.parametrize("solver,prefix", [("skr", "skr_"), ("gmres", "skr_"), ("cg-gamg", "skrcg_")])
def test_a_ksp_rtol_looser_than_the_run_tolerance_is_refused(tmp_path, solver, prefix):
    cfg = GenerationConfig(n_samples=2, solver=solver, rtol=1e-8, petsc_options=f"-{prefix}ksp_rtol 1e-4")
    with pytest.raises(
        ValueError,
        match=rf"-{prefix}ksp_rtol 0.0001 is looser than the run's tolerance 1e-08.*"
        r"--rtol 0.0001",
    ):
        generate(Darcy(17), tmp_path / "r.h5", cfg, progress=False)
    assert not (tmp_path / "r.h5.partial").exists()
    assert f"{prefix}ksp_rtol" not in _database()
