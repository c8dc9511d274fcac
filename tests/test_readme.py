"""The README's command examples, as written.

Default run (seconds): every command of every fenced shell block in README.md is parsed by its
program's own parser, so a renamed or removed flag, a choice that is no longer allowed or an
unknown ``--set`` key breaks the test suite: ``neuralops-datagen`` commands resolve their generation
spec with ``--print-spec`` (recipe, overrides and defaults, nothing generated), ``neuralops-train``
fit/test/predict parse through LightningCLI with ``--print_config`` (the config and every override
checked, nothing instantiated), ``neuralops-data``, ``neuralops-eval`` and ``neuralops-train refine``
through their argparse parsers.

Slow run (``pytest -m slow tests/test_readme.py``): every command runs, in README order, in an empty
folder, through the worktree's programs (``python -m datagen.cli`` etc.), with only the reductions
the README states under "Trying the examples" (:data:`REDUCTIONS`); the files the README names but
does not create (the user's own data in foreign layouts, ``train.h5`` ...) are written first by
:func:`write_user_files`. ``make demo`` / ``make test`` are not run (they set up ``.venv``). The
seconds each command took are printed and written to ``readme_times.json`` in the run folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: program name in the README -> the module that implements it in this checkout
PROGRAMS = {
    "neuralops-datagen": "datagen.cli",
    "neuralops-train": "train.cli",
    "neuralops-eval": "train.evaluate",
    "neuralops-data": "train.data_cli",
}
NOT_RUN = {"make": "make targets set up .venv (scripts/setup_env.sh); the tests run against the existing one"}


@dataclass(frozen=True)
class Command:
    line: int  # line number in README.md
    argv: tuple  # the words, comments stripped
    launcher: tuple  # ("mpiexec", "-n", "2") or ()

    @property
    def program(self) -> str:
        return self.argv[0]

    @property
    def id(self) -> str:
        words = [w for w in self.argv[:3] if not w.startswith("-")]
        return f"L{self.line}-" + "-".join(words)


def readme_commands(text: str | None = None) -> List[Command]:
    """The commands of the fenced ``bash``/``sh``/``shell`` blocks (backslash continuations joined,
    ``#`` comments dropped), in order."""
    text = README.read_text() if text is None else text
    out, block, pending, start = [], False, "", 0
    for no, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```(\w*)", line)
        if fence:
            block = not block and fence.group(1) in ("bash", "sh", "shell")
            continue
        if not block:
            continue
        if not pending:
            start = no
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        words = shlex.split(pending + line, comments=True)
        pending = ""
        if not words:
            continue
        launcher = ()
        if words[0] == "mpiexec":
            launcher, words = tuple(words[:3]), words[3:]
        out.append(Command(start, tuple(words), launcher))
    return out


COMMANDS = readme_commands()


def test_readme_commands_use_known_programs():
    assert len(COMMANDS) >= 30, "README.md lost its examples, or the fence parser broke"
    for c in COMMANDS:
        assert c.program in PROGRAMS or c.program in NOT_RUN, (
            f"README.md line {c.line}: unknown program {c.program!r} (add it to tests/test_readme.py PROGRAMS)"
        )
        assert "..." not in c.argv, f"README.md line {c.line}: a '...' placeholder cannot be run as written"
        if c.launcher:
            assert c.launcher[:2] == ("mpiexec", "-n") and c.launcher[2].isdigit(), c.launcher


# ------------------------------------------------------------------------------------------------
# default run: parse every command
# ------------------------------------------------------------------------------------------------
def _flag(argv: list, name: str):
    """The value of ``name`` in argv (``--name V`` or ``--name=V``), else None."""
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _parse(cmd: Command, cwd: Path) -> None:
    argv = list(cmd.argv[1:])
    if cmd.program == "neuralops-datagen":
        from datagen.cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            cut = argv.index("--") if "--" in argv else len(argv)  # PETSc options follow "--"
            rc = main(argv[:cut] + ["--print-spec"] + argv[cut:])
        assert rc == 0, f"README.md line {cmd.line}: --print-spec failed ({rc})"
        spec = json.loads(out.getvalue())
        assert spec["family"] == argv[0] or spec.get("pde") == "navier_stokes_2d"
    elif cmd.program == "neuralops-data":
        from train.data_cli import build_parser

        build_parser().parse_args(argv)
    elif cmd.program == "neuralops-eval":
        from train.evaluate import build_parser

        build_parser().parse_args(argv)
    elif cmd.program == "neuralops-train" and argv[0] == "refine":
        from train.refine.cli import build_parser

        build_parser().parse_args(argv[1:])
    elif cmd.program == "neuralops-train" and argv[0] in ("fit", "validate", "test", "predict"):
        from train.cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
            main(argv + ["--print_config"])
        assert exit_.value.code in (0, None), f"README.md line {cmd.line}: LightningCLI refused the arguments"
        config = out.getvalue()
        path = _flag(argv, "--data.path")
        assert path is None or f"path: {path}" in config, config
    elif cmd.program == "neuralops-train":
        from train.cli import main

        with contextlib.redirect_stdout(io.StringIO()):
            assert main(argv) == 0
    else:
        pytest.skip(NOT_RUN[cmd.program])


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.id for c in COMMANDS])
def test_readme_command_parses(cmd, tmp_path, monkeypatch):
    """Each README command's arguments are accepted by its program (nothing is generated or trained)."""
    if cmd.program in NOT_RUN:
        pytest.skip(NOT_RUN[cmd.program])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [cmd.program])  # LightningCLI compares its args with sys.argv
    write_user_files(tmp_path, cheap_only=True)
    try:
        _parse(cmd, tmp_path)
    except SystemExit as exc:  # argparse: the message is on stderr
        raise AssertionError(f"README.md line {cmd.line}: {' '.join(cmd.argv)}: exit {exc.code}") from exc


def test_a_renamed_flag_is_caught(tmp_path, monkeypatch):
    """The parse checks above do refuse what the programs do not know."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["neuralops"])
    bad = [
        Command(1, ("neuralops-datagen", "darcy", "--n", "4", "--resolutoin", "33"), ()),
        Command(1, ("neuralops-datagen", "navier-stokes", "--n", "1", "--out", "x.h5", "--set", "viscosty=1"), ()),
        Command(1, ("neuralops-train", "fit", "-c", "darcy_fno", "--data.pth", "x.h5"), ()),
        Command(1, ("neuralops-eval", "--checkpoint", "x.ckpt", "--out", "r"), ()),
    ]
    for cmd in bad:
        with (
            pytest.raises((SystemExit, AssertionError, ValueError)),
            contextlib.redirect_stderr(io.StringIO()),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            _parse(cmd, tmp_path)


# ------------------------------------------------------------------------------------------------
# slow run: every command, in order
# ------------------------------------------------------------------------------------------------
#: what the slow run changes, and only this (README "Trying the examples" says the same)
REDUCTIONS = {
    "elliptic": "--n at most 12, --resolution at most 33 (3D: 18)",
    "navier-stokes": "--n and --batch-size at most 4, --resolution 32 --store-resolution 32 --dt 5e-3 "
    "(the recipe's times and frames kept), --device cpu without a GPU",
    "fit": "--trainer.max_epochs 1, --trainer.devices at most 2",
    "refine": "--steps at most 2",
}


def test_readme_states_the_reductions_the_slow_run_applies():
    """The slow run changes only what the README says it changes (section "Running the examples")."""
    text = " ".join(README.read_text().split())
    for phrase in (
        "elliptic `--n` at most 12 and `--resolution` at most 33 (3D: 18)",
        "Navier-Stokes `--n` and `--batch-size` at most 4 with `--resolution 32 --store-resolution 32 "
        "--dt 5e-3` (the recipe's times and frames kept) and `--device cpu` without a GPU",
        "`fit` one epoch on at most 2 devices",
        "`refine` at most 2 steps",
    ):
        assert phrase in text, f"README.md no longer states the reduction: {phrase}"
    assert reduce(["neuralops-datagen", "darcy", "--n", "1000", "--resolution", "129", "--", "-log_view"]) == [
        "neuralops-datagen",
        "darcy",
        "--n",
        "12",
        "--resolution",
        "33",
        "--",
        "-log_view",
    ]
    assert reduce(["neuralops-datagen", "helmholtz3d", "--n", "200"])[-2:] == ["--resolution", "18"]
    ns = reduce(
        [
            "neuralops-datagen",
            "navier-stokes",
            "--recipe",
            "fno",
            "--n",
            "1200",
            "--out",
            "x.h5",
            "--device",
            "cuda",
            "--batch-size",
            "100",
        ]
    )
    assert ns[ns.index("--n") + 1] == "4" and ns[ns.index("--batch-size") + 1] == "4"
    assert ns[ns.index("--resolution") + 1] == "32" and ns[ns.index("--dt") + 1] == "5e-3"
    assert reduce(["neuralops-train", "fit", "-c", "x", "--trainer.devices", "4"]) == [
        "neuralops-train",
        "fit",
        "-c",
        "x",
        "--trainer.devices",
        "2",
        "--trainer.max_epochs",
        "1",
    ]
    assert reduce(["neuralops-train", "refine", "--steps", "60"]) == ["neuralops-train", "refine", "--steps", "2"]
    assert reduce(["neuralops-eval", "--ckpt", "c", "--out", "r"]) == ["neuralops-eval", "--ckpt", "c", "--out", "r"]


def _set(argv: list, name: str, value) -> list:
    """argv with ``name value`` (replaced where present, else added before a ``--`` separator)."""
    value = str(value)
    for i, a in enumerate(argv):
        if a == name:
            return argv[: i + 1] + [value] + argv[i + 2 :]
        if a.startswith(name + "="):
            return argv[:i] + [f"{name}={value}"] + argv[i + 1 :]
    cut = argv.index("--") if "--" in argv else len(argv)
    return argv[:cut] + [name, value] + argv[cut:]


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def reduce(argv: list) -> list:
    """A README command with the :data:`REDUCTIONS` applied."""
    argv = list(argv)
    prog, sub = argv[0], (argv[1] if len(argv) > 1 else "")
    if prog == "neuralops-datagen" and sub == "navier-stokes":
        argv = _set(argv, "--n", min(int(_flag(argv, "--n")), 4))
        argv = _set(argv, "--batch-size", min(int(_flag(argv, "--batch-size") or 8), 4))
        for name, value in (("--resolution", 32), ("--store-resolution", 32), ("--dt", "5e-3")):
            argv = _set(argv, name, value)
        if (_flag(argv, "--device") or "cpu").startswith("cuda") and not _cuda():
            argv = _set(argv, "--device", "cpu")
    elif prog == "neuralops-datagen":
        argv = _set(argv, "--n", min(int(_flag(argv, "--n") or 100), 12))
        from datagen.elliptic.cli import DEFAULT_RESOLUTION

        cap = 18 if sub.endswith("3d") else 33
        argv = _set(argv, "--resolution", min(int(_flag(argv, "--resolution") or DEFAULT_RESOLUTION[sub]), cap))
    elif prog == "neuralops-train" and sub == "fit":
        argv = _set(argv, "--trainer.max_epochs", 1)
        if _flag(argv, "--trainer.devices"):
            argv = _set(argv, "--trainer.devices", min(int(_flag(argv, "--trainer.devices")), 2))
    elif prog == "neuralops-train" and sub == "refine":
        argv = _set(argv, "--steps", min(int(_flag(argv, "--steps") or 60), 2))
    return argv


def _darcy_file(root: Path, name: str, n: int, resolution: int, seed: int) -> None:
    from datagen.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                [
                    "darcy",
                    "--n",
                    str(n),
                    "--resolution",
                    str(resolution),
                    "--seed",
                    str(seed),
                    "--out",
                    str(root / name),
                    "--no-progress",
                    "--overwrite",
                ]
            )
            == 0
        )


def write_user_files(root: Path, cheap_only: bool = False) -> None:
    """The files the README names but does not create: the user's own data, each in its foreign
    layout (neuraloperator ``.pt``, FNO ``.mat`` v5, PDEBench and The Well HDF5, an ``.npz`` of
    coefficients) and, unless ``cheap_only``, Darcy data-contract files for the separate-file and
    super-resolution examples (made by the generator with their own seeds)."""
    rng = np.random.default_rng(0)
    root = Path(root)
    # --coefficient-file my_a.npz: (N, s, s) positive fields on the family's nodes (reduced with the run)
    cmd = next(c for c in COMMANDS if "my_a.npz" in c.argv)
    red = list(cmd.argv) if cheap_only else reduce(list(cmd.argv))
    n, s = int(_flag(red, "--n")), int(_flag(red, "--resolution"))
    np.savez(root / "my_a.npz", a=np.exp(rng.standard_normal((n, s, s))))
    if cheap_only:
        return
    import h5py
    import torch
    from scipy.io import savemat

    # FNO Navier-Stokes .mat (u: (N, s, s, T), a: (N, s, s), t: (1, T)); its viscosity is in its name
    savemat(
        root / "ns_V1e-3_N5000_T50.mat",
        {
            "u": rng.standard_normal((4, 16, 16, 50)).astype(np.float32),
            "a": rng.standard_normal((4, 16, 16)).astype(np.float32),
            "t": np.arange(1, 51, dtype=np.float64)[None],
        },
    )
    # FNO Darcy .mat: coeff 3/12, sol (N, s, s)
    coeff = np.where(rng.random((4, 29, 29)) > 0.5, 12.0, 3.0)
    savemat(root / "piececonst_r421_N1024_smooth1.mat", {"coeff": coeff, "sol": rng.random((4, 29, 29)) * 0.01})
    # neuraloperator .pt: Darcy x a 0/1 mask, Navier-Stokes x/y vorticities
    j = np.arange(16) / 16
    u = np.sin(np.pi * j)[:, None] * np.sin(np.pi * j)[None, :]
    torch.save(
        {
            "x": torch.from_numpy((rng.random((4, 16, 16)) > 0.5).astype(np.float32)),
            "y": torch.from_numpy((u[None] * rng.uniform(0.5, 1, (4, 1, 1))).astype(np.float32)),
        },
        root / "darcy_train_16.pt",
    )
    torch.save(
        {
            "x": torch.from_numpy(rng.standard_normal((4, 16, 16)).astype(np.float32)),
            "y": torch.from_numpy(rng.standard_normal((4, 16, 16)).astype(np.float32)),
        },
        root / "nsforcing_train_128.pt",
    )
    # PDEBench shallow water: one group per sample, data (T, X, Y, 1), cell-centred grid on [-2.5, 2.5]
    x = -2.5 + 5 * (np.arange(16) + 0.5) / 16
    with h5py.File(root / "2D_rdb_NA_NA.h5", "w") as f:
        for i in range(4):
            f[f"{i:04d}/data"] = (1 + 0.1 * rng.random((5, 16, 16, 1))).astype(np.float32)
            for ax, c in (("x", x), ("y", x), ("t", np.linspace(0, 1, 5))):
                f[f"{i:04d}/grid/{ax}"] = c.astype(np.float32)
    # The Well: t0_fields / t1_fields, dimensions, boundary_conditions (shear_flow is periodic on both axes)
    _well_file(root / "shear_flow_00.hdf5", rng)
    # the user's own Darcy files: separate train / val / test, and one training grid + three test grids
    for name, n, res, seed in (
        ("train.h5", 12, 33, 1),
        ("val.h5", 4, 33, 2),
        ("test.h5", 4, 33, 3),
        ("train_16.h5", 12, 16, 4),
        ("test_16.h5", 4, 16, 5),
        ("test_32.h5", 4, 32, 6),
        ("test_64.h5", 4, 64, 7),
    ):
        _darcy_file(root, name, n, res, seed)


def _well_file(path: Path, rng, n: int = 2, T: int = 4, s: int = 8) -> None:
    import h5py

    x = (np.arange(s) + 0.5) / s
    with h5py.File(path, "w") as f:
        f.attrs.update(
            {
                "dataset_name": "shear_flow",
                "grid_type": "cartesian",
                "n_spatial_dims": 2,
                "n_trajectories": n,
                "simulation_parameters": ["Reynolds"],
                "Reynolds": 1e4,
            }
        )
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = ["x", "y"]
        dims.create_dataset("time", data=np.arange(T, dtype=np.float32)).attrs["sample_varying"] = False
        for ax in ("x", "y"):
            dims.create_dataset(ax, data=x.astype(np.float32)).attrs.update(
                {"sample_varying": False, "time_varying": False}
            )
        for ax, bc in (("x", "PERIODIC"), ("y", "PERIODIC")):
            g = f.create_group(f"boundary_conditions/{ax}_bc")
            g.attrs.update(
                {
                    "bc_type": bc,
                    "associated_dims": [ax],
                    "associated_fields": [],
                    "sample_varying": False,
                    "time_varying": False,
                }
            )
            g.create_dataset("mask", data=np.r_[True, np.zeros(s - 2, bool), True])
        f.create_group("scalars").attrs["field_names"] = []
        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = ["pressure"]
        t0.create_dataset("pressure", data=rng.standard_normal((n, T, s, s)).astype(np.float32)).attrs.update(
            {"dim_varying": [True, True], "sample_varying": True, "time_varying": True}
        )
        t1 = f.create_group("t1_fields")
        t1.attrs["field_names"] = ["velocity"]
        t1.create_dataset("velocity", data=rng.standard_normal((n, T, s, s, 2)).astype(np.float32)).attrs.update(
            {"dim_varying": [True, True], "sample_varying": True, "time_varying": True}
        )
        f.create_group("t2_fields").attrs["field_names"] = []


def _subprocess_argv(cmd: Command, argv: list) -> list:
    return list(cmd.launcher) + [sys.executable, "-m", PROGRAMS[argv[0]]] + argv[1:]


@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_readme_examples_run_in_order(tmp_path):
    """Every README command, in order, in an empty folder, with the stated reductions only."""
    write_user_files(tmp_path)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )
    times = []
    for cmd in COMMANDS:
        if cmd.program in NOT_RUN:
            continue
        argv = reduce(list(cmd.argv))
        t0 = time.perf_counter()
        proc = subprocess.run(
            _subprocess_argv(cmd, argv), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800
        )
        seconds = time.perf_counter() - t0
        shown = " ".join(list(cmd.launcher) + [shlex.quote(a) for a in argv])
        times.append({"line": cmd.line, "command": shown, "seconds": round(seconds, 1), "rc": proc.returncode})
        print(f"README.md:{cmd.line}  {seconds:7.1f} s  rc {proc.returncode}  {shown}", flush=True)
        assert proc.returncode == 0, (
            f"README.md line {cmd.line} failed (exit {proc.returncode}): {shown}\n"
            f"--- stderr (tail) ---\n{proc.stderr[-3000:]}\n--- stdout (tail) ---\n"
            f"{proc.stdout[-2000:]}"
        )
        (tmp_path / "readme_times.json").write_text(json.dumps(times, indent=1))
