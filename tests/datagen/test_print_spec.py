"""``neuralops-datagen ... --print-spec`` prints the spec the run would write, and writes nothing;
``navier-stokes --help`` shows the named recipe's values as the overrides' defaults."""

import contextlib
import io
import json

import pytest

from datagen.cli import main
from datagen.dataset import open_dataset


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _printed(argv):
    rc, out, _ = _run(argv + ["--print-spec"])
    assert rc == 0
    return json.loads(out)


def test_elliptic_print_spec_is_the_spec_the_run_writes(tmp_path):
    pytest.importorskip("petsc4py")
    out = tmp_path / "d.h5"
    argv = ["darcy", "--n", "3", "--resolution", "17", "--out", str(out), "--set", "tau=5", "--no-progress"]
    printed = _printed(argv)
    assert not out.exists() and not list(tmp_path.iterdir()), "--print-spec must not write anything"
    assert printed["family"] == "darcy" and printed["n_samples"] == 3 and printed["out"] == str(out)
    assert _run(argv)[0] == 0
    with open_dataset(out) as ds:
        written = ds.spec
    solver_written = written.pop("solver")
    solver_printed = printed["spec"].pop("solver")
    assert printed["spec"] == json.loads(json.dumps(written))  # family, laws, --set tau=5, defaults
    assert printed["spec"]["sampling"]["grf"]["tau"] == 5.0
    for key, value in solver_printed.items():  # solver settings and auto's choice
        if key not in ("pc", "petsc_options"):
            assert solver_written[key] == value, key
    assert solver_printed["method"] == solver_written["method"] and solver_printed["auto_reason"]


def test_elliptic_print_spec_refuses_what_the_run_refuses(tmp_path):
    rc, _, err = _run(["darcy", "--n", "3", "--resolution", "17", "--set", "tua=5", "--print-spec"])
    assert rc == 2 and "did you mean 'tau'" in err


def test_navier_stokes_print_spec_is_the_spec_the_run_writes(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "ns.h5"
    argv = [
        "navier-stokes",
        "--recipe",
        "fno",
        "--n",
        "2",
        "--out",
        str(out),
        "--resolution",
        "16",
        "--store-resolution",
        "16",
        "--dt",
        "1e-2",
        "--t-end",
        "0.2",
        "--snapshot-interval",
        "0.1",
        "--batch-size",
        "2",
        "--no-progress",
    ]
    printed = _printed(argv)
    assert not out.exists()
    assert printed["n_samples"] == 2 and printed["spec"]["sampling"]["n_snapshots"] == 2
    assert printed["spec"]["solver"]["dt"] == 1e-2
    assert _run(argv)[0] == 0
    with open_dataset(out) as ds:
        assert json.loads(json.dumps(ds.spec)) == printed["spec"]


def test_navier_stokes_help_shows_the_recipe_values():
    from datagen.navier_stokes.recipes import RECIPES

    for name in ("fno", "mcwilliams"):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
            main(["navier-stokes", "--recipe", name, "--help"])
        text = " ".join(buf.getvalue().split())
        r = RECIPES[name]
        assert f"side L of the periodic box (default: {r['box']:g}, recipe {name})" in text
        assert f"(default: {r['stepper']}, recipe {name})" in text
        t_end = r["t_start"] + r["snapshot_interval"] * r["n_snapshots"]
        assert f"last stored time (default: {t_end:g}, recipe {name})" in text
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        main(["navier-stokes", "--help"])  # no --recipe: the default recipe's values
    assert "kinematic viscosity nu (default: 0.001, recipe fno)" in " ".join(buf.getvalue().split())


@pytest.mark.parametrize("family", ["darcy", "helmholtz", "poisson", "heat", "darcy3d", "navier-stokes"])
def test_every_option_with_a_default_shows_it_in_help(family):
    from datagen.cli import build_parser

    parser = build_parser(families=(family,))
    sub = next(a for a in parser._actions if a.dest == "family").choices[family]
    formatter = sub._get_formatter()
    for action in sub._actions:
        if not action.option_strings or action.dest == "help":
            continue
        shown = formatter._expand_help(action) if action.help else ""
        has_default = action.default not in (None, False, [])
        assert not has_default or "default" in shown, f"{family} {action.option_strings[0]}: {shown!r}"
        if (
            family == "navier-stokes"
            and action.container.title
            and "recipe overrides" in action.container.title
            and action.dest not in ("initial_key", "set")
        ):
            assert "recipe fno" in shown, f"{action.option_strings[0]}: {shown!r}"


def test_data_and_refine_commands_show_their_defaults():
    import argparse

    from train.data_cli import build_parser as data_parser
    from train.refine.cli import build_parser as refine_parser

    def parsers(p):
        yield p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub in a.choices.values():
                    yield from parsers(sub)

    for top in (data_parser(), refine_parser()):
        for p in parsers(top):
            formatter = p._get_formatter()
            for action in p._actions:
                if action.option_strings and action.default not in (None, False, []) and action.dest != "help":
                    assert "default" in formatter._expand_help(action), f"{p.prog} {action.option_strings[0]}"
